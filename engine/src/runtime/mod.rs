//! The DAG runtime: runs a [`PreparedRun`]'s steps concurrently, wiring each step's inputs to its
//! upstream outputs through the columnar step cache.
//!
//! Every step starts at once and streams: a writer consumes batches while its extractor is still
//! reading. A step whose `needs` names a writer (which produces no data) waits for that writer to
//! finish first. When a step fails, every step downstream of it is cancelled, independent
//! branches run to completion, and the run reports the failed step.

pub mod budget;
pub mod cache;

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::connections::{BoundConnection, SecretSource};
use crate::driver::{DriverError, StepContext, StepInput, StepIo};
use crate::prepared::{PreparedRun, PreparedStep};
use crate::registry::Registry;
use crate::spec::Mode;
use crate::telemetry::{Event, MetricName, StepCounters, StepTelemetry, Telemetry, Unit};
use budget::MemoryBudget;
use cache::{InputReader, StepOutput};

/// Errors that prevent a run from starting.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("step '{step_id}' needs unknown step '{need}'")]
    UnknownNeed { step_id: String, need: String },
    #[error("no step '{0}' in this pipeline")]
    UnknownStep(String),
    #[error("step '{0}' is a writer and produces no rows to read")]
    NoOutput(String),
    #[error("cannot create run directory {path}: {source}")]
    RunDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Prepared(#[from] crate::prepared::PreparedRunError),
}

/// Where and how a run executes.
pub struct RunEnv {
    pub registry: Registry,
    pub telemetry: Telemetry,
    /// Supplies connection secrets when a step binds its connection.
    pub secrets: Arc<dyn SecretSource>,
    /// The run-log directory: `artifacts/<step>/` and `spill/` are created inside.
    pub run_dir: PathBuf,
    /// Relative paths in step configs resolve against this directory.
    pub base_dir: PathBuf,
    /// Cancels the whole run (Ctrl-C, timeouts).
    pub cancel: CancellationToken,
}

/// Final state of one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// Why a run failed: the first step that failed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepFailure {
    pub step_id: String,
    pub component: String,
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
}

/// Outcome of one step.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepReport {
    pub step_id: String,
    pub component: String,
    pub mode: Mode,
    pub status: StepStatus,
    pub duration_seconds: f64,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_read: u64,
    pub rows_written: u64,
}

/// Outcome of a run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunReport {
    pub steps: Vec<StepReport>,
    pub failure: Option<StepFailure>,
    pub duration_seconds: f64,
    /// Highest step-cache memory use.
    pub cache_peak_bytes: u64,
    /// Rows written by writers, or read by extractors when the pipeline has no writer.
    pub total_rows: u64,
}

impl RunReport {
    pub fn succeeded(&self) -> bool {
        self.failure.is_none() && self.steps.iter().all(|s| s.status == StepStatus::Succeeded)
    }

    /// `success`, `failed` (a step failed) or `cancelled` (the run was cancelled — Ctrl-C,
    /// SIGTERM, SIGHUP — before every step finished, and no step failed): `run_end`'s and
    /// `status.json`'s `status`.
    pub fn outcome(&self) -> &'static str {
        Self::outcome_of(self.failure.is_some(), &self.steps)
    }

    fn outcome_of(failed: bool, steps: &[StepReport]) -> &'static str {
        match (failed, steps.iter().all(|s| s.status == StepStatus::Succeeded)) {
            (true, _) => "failed",
            (false, true) => "success",
            (false, false) => "cancelled",
        }
    }

    /// The steps that were cancelled, in pipeline order.
    pub fn cancelled_steps(&self) -> Vec<&str> {
        self.steps.iter().filter(|s| s.status == StepStatus::Cancelled).map(|s| s.step_id.as_str()).collect()
    }
}

/// Live view of a running step, for progress displays.
#[derive(Clone, Debug)]
pub struct StepProgress {
    pub step_id: String,
    pub mode: Mode,
    pub counters: Arc<StepCounters>,
    pub status: watch::Receiver<StepStatus>,
    pub started: Arc<std::sync::OnceLock<Instant>>,
}

struct StepSlot {
    step: PreparedStep,
    telemetry: StepTelemetry,
    cancel: CancellationToken,
    /// Why `cancel` fired, when an upstream step failed: the step reports that reason whichever
    /// it notices first, the token or its input's end.
    cancel_reason: Arc<std::sync::OnceLock<String>>,
    status: watch::Sender<StepStatus>,
    started: Arc<std::sync::OnceLock<Instant>>,
    output: Option<StepOutput>,
}

/// A run ready to execute. Add taps with [`Execution::tap`] before calling [`Execution::run`].
pub struct Execution {
    prepared: PreparedRun,
    steps: Vec<PreparedStep>,
    env: RunEnv,
    budget: Arc<MemoryBudget>,
    slots: Vec<StepSlot>,
    index: HashMap<String, usize>,
}

impl Execution {
    /// Checks the step graph and sets up the step cache.
    pub fn new(prepared: PreparedRun, env: RunEnv) -> Result<Self, RuntimeError> {
        let steps = prepared.steps()?;
        let budget = Arc::new(MemoryBudget::new(prepared.constraints.memory_budget));
        let spill_dir = env.run_dir.join("spill");
        let mut index = HashMap::new();
        let mut slots = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            index.insert(step.id.clone(), i);
            // The index keeps spill files of ids that sanitize alike (`a.b`, `a_b`) apart.
            let spill_path = spill_dir.join(format!("{i}-{}.arrows", sanitize_identifier(&step.id)));
            let output = step.mode.produces_output().then(|| StepOutput::new(&step.id, budget.clone(), spill_path));
            slots.push(StepSlot {
                step: step.clone(),
                telemetry: env.telemetry.step(&step.id),
                cancel: env.cancel.child_token(),
                cancel_reason: Arc::default(),
                status: watch::channel(StepStatus::Pending).0,
                started: Arc::default(),
                output,
            });
        }
        for step in &steps {
            for need in &step.needs {
                if !index.contains_key(need) {
                    return Err(RuntimeError::UnknownNeed { step_id: step.id.clone(), need: need.clone() });
                }
            }
        }
        Ok(Execution { prepared, steps, env, budget, slots, index })
    }

    /// Reads a step's output while the run executes, as an extra consumer of the step cache.
    /// Keep reading it: an unread tap holds back its producer once the budget is used up, and
    /// its batches spill.
    pub fn tap(&mut self, step_id: &str) -> Result<InputReader, RuntimeError> {
        let slot =
            &self.slots[*self.index.get(step_id).ok_or_else(|| RuntimeError::UnknownStep(step_id.to_string()))?];
        let output = slot.output.as_ref().ok_or_else(|| RuntimeError::NoOutput(step_id.to_string()))?;
        Ok(output.reader(self.env.cancel.clone(), Arc::default()))
    }

    /// Live counters of every step.
    pub fn progress(&self) -> Vec<StepProgress> {
        self.slots
            .iter()
            .map(|s| StepProgress {
                step_id: s.step.id.clone(),
                mode: s.step.mode,
                counters: s.telemetry.counters().clone(),
                status: s.status.subscribe(),
                started: s.started.clone(),
            })
            .collect()
    }

    /// Runs every step and reports the outcome. Never panics on driver failures or panics.
    pub async fn run(self) -> RunReport {
        let started = Instant::now();
        let telemetry = self.env.telemetry.clone();
        let meta = &self.prepared.metadata;
        telemetry.event(Event::RunStart {
            pipeline_id: meta.pipeline_id.clone(),
            profile: self.prepared.run_params.profile.clone(),
            manifest_hash: self.prepared.plan.meta.manifest_hash.clone(),
            manifest_short: self.prepared.plan.meta.manifest_short.clone(),
            adapter: meta.adapter_target.clone(),
            steps_total: self.slots.len(),
            memory_budget_bytes: self.budget.limit(),
        });

        let shared = Arc::new(RunShared {
            registry: self.env.registry.clone(),
            secrets: self.env.secrets.clone(),
            run_dir: self.env.run_dir.clone(),
            base_dir: self.env.base_dir.clone(),
            memory_budget: self.budget.limit(),
            batch_size: self.prepared.constraints.batch_size,
        });
        let downstream = downstream_map(&self.steps);
        let statuses: Vec<watch::Receiver<StepStatus>> = self.slots.iter().map(|s| s.status.subscribe()).collect();
        let cancels: Vec<(CancellationToken, Arc<std::sync::OnceLock<String>>)> =
            self.slots.iter().map(|s| (s.cancel.clone(), s.cancel_reason.clone())).collect();

        // Wire every consumer to its upstream outputs before any step starts.
        let mut wired = Vec::new();
        for slot in &self.slots {
            let mut inputs = Vec::new();
            let mut wait_for = Vec::new();
            for need in &slot.step.needs {
                let upstream = &self.slots[self.index[need]];
                // An extractor reads no rows: what it needs (often only the implicit "previous
                // step") is an ordering, like a writer's, not a stream it would never drain.
                let stream = upstream.output.as_ref().filter(|_| slot.step.mode != Mode::Extract);
                match stream {
                    Some(output) => inputs.push(StepInput {
                        step_id: need.clone(),
                        table_name: table_name_for(need, &slot.step.needs),
                        reader: output.reader(slot.cancel.clone(), slot.telemetry.counters().clone()),
                    }),
                    None => wait_for.push(statuses[self.index[need]].clone()),
                }
            }
            wired.push((inputs, wait_for));
        }

        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        for (i, (slot, (inputs, wait_for))) in self.slots.into_iter().zip(wired).enumerate() {
            let shared = shared.clone();
            let done_tx = done_tx.clone();
            tokio::spawn(async move {
                // A panic anywhere in the step (not only in its driver) fails the step, never the run.
                let result = AssertUnwindSafe(run_step(&shared, &slot, inputs, wait_for))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|panic| StepResult::Failed(panic_error(&slot.step.component, panic)));
                let _ = done_tx.send((i, slot, result));
            });
        }
        drop(done_tx);

        let mut reports: BTreeMap<usize, StepReport> = BTreeMap::new();
        let mut failure: Option<StepFailure> = None;
        while let Some((i, slot, result)) = done_rx.recv().await {
            let status = match result {
                StepResult::Succeeded => StepStatus::Succeeded,
                StepResult::Cancelled => StepStatus::Cancelled,
                StepResult::Failed(err) => {
                    for &d in &downstream[i] {
                        let (cancel, reason) = &cancels[d];
                        let _ = reason.set(cache::upstream_failed_message(&slot.step.id));
                        cancel.cancel();
                    }
                    if failure.is_none() {
                        telemetry.event(Event::RunError {
                            step_id: slot.step.id.clone(),
                            error_code: err.code.clone(),
                            message: err.message.clone(),
                        });
                        failure = Some(StepFailure {
                            step_id: slot.step.id.clone(),
                            component: slot.step.component.clone(),
                            code: err.code,
                            message: err.message,
                            hint: err.hint,
                        });
                    }
                    StepStatus::Failed
                }
            };
            let counters = slot.telemetry.counters();
            reports.insert(
                i,
                StepReport {
                    step_id: slot.step.id.clone(),
                    component: slot.step.component.clone(),
                    mode: slot.step.mode,
                    status,
                    duration_seconds: slot.started.get().map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0),
                    rows_in: StepCounters::get(&counters.rows_in),
                    rows_out: StepCounters::get(&counters.rows_out),
                    rows_read: StepCounters::get(&counters.rows_read),
                    rows_written: StepCounters::get(&counters.rows_written),
                },
            );
            slot.status.send_replace(status);
        }

        let steps: Vec<StepReport> = reports.into_values().collect();
        let total_rows = total_rows(&steps);
        let steps_executed = steps.iter().filter(|s| s.status != StepStatus::Pending).count();
        telemetry.event(Event::CleanupComplete { steps_executed, total_rows });
        let duration_seconds = started.elapsed().as_secs_f64();
        telemetry.metric(crate::telemetry::Metric {
            name: MetricName::ExecutionDuration,
            value: duration_seconds.into(),
            step_id: None,
            unit: Unit::Seconds,
        });
        telemetry.metric(crate::telemetry::Metric {
            name: MetricName::CachePeakBytes,
            value: self.budget.peak().into(),
            step_id: None,
            unit: Unit::Bytes,
        });
        let count = |status| steps.iter().filter(|s| s.status == status).count();
        let status = RunReport::outcome_of(failure.is_some(), &steps);
        telemetry.event(Event::RunEnd {
            status: status.to_string(),
            duration_seconds,
            steps_completed: count(StepStatus::Succeeded),
            steps_failed: count(StepStatus::Failed),
            steps_cancelled: count(StepStatus::Cancelled),
        });
        let _ = std::fs::remove_dir(self.env.run_dir.join("spill"));
        RunReport { steps, failure, duration_seconds, cache_peak_bytes: self.budget.peak(), total_rows }
    }
}

struct RunShared {
    registry: Registry,
    secrets: Arc<dyn SecretSource>,
    run_dir: PathBuf,
    base_dir: PathBuf,
    memory_budget: u64,
    batch_size: usize,
}

enum StepResult {
    Succeeded,
    Failed(DriverError),
    Cancelled,
}

async fn run_step(
    shared: &RunShared,
    slot: &StepSlot,
    inputs: Vec<StepInput>,
    wait_for: Vec<watch::Receiver<StepStatus>>,
) -> StepResult {
    let step = &slot.step;
    let telemetry = &slot.telemetry;
    for mut dependency in wait_for {
        let finished = tokio::select! {
            _ = slot.cancel.cancelled() => None,
            status = dependency.wait_for(|s| matches!(s, StepStatus::Succeeded | StepStatus::Failed | StepStatus::Cancelled)) => status.ok().map(|s| *s),
        };
        if finished != Some(StepStatus::Succeeded) {
            return cancelled(slot, "a step it needs did not succeed");
        }
    }
    if slot.cancel.is_cancelled() {
        return cancelled(slot, "the run was cancelled");
    }

    slot.started.get_or_init(Instant::now);
    slot.status.send_replace(StepStatus::Running);
    telemetry.event(Event::StepStart { step_id: step.id.clone(), driver: step.component.clone() });
    for input in &inputs {
        telemetry.event(Event::InputsResolved {
            step_id: step.id.clone(),
            from_step: input.step_id.clone(),
            key: input.table_name.clone(),
            from_memory: true,
        });
    }
    let output = slot.output.as_ref().map(|o| o.sink(slot.cancel.clone(), telemetry.clone()));
    let result = match execute_driver(shared, slot, StepIo { inputs, output }).await {
        // Consumers that stopped because the run was cancelled did not need less: the step was
        // cancelled too, not done.
        Err(err) if err.code == crate::driver::OUTPUT_UNNEEDED && !slot.cancel.is_cancelled() => Ok(()),
        other => other,
    };
    if let Some(output) = &slot.output {
        output.finish(result.is_ok());
    }
    let duration = slot.started.get().map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
    let counters = telemetry.counters();
    match result {
        Ok(()) => {
            emit_step_metrics(slot, duration);
            telemetry.event(Event::StepComplete {
                step_id: step.id.clone(),
                driver: step.component.clone(),
                duration,
                rows_in: StepCounters::get(&counters.rows_in),
                rows_out: StepCounters::get(&counters.rows_out),
            });
            StepResult::Succeeded
        }
        Err(err) if err.is_cancellation() || slot.cancel.is_cancelled() => {
            cancelled(slot, slot.cancel_reason.get().unwrap_or(&err.message))
        }
        Err(err) => {
            emit_step_metrics(slot, duration);
            telemetry.event(Event::StepError {
                step_id: step.id.clone(),
                driver: step.component.clone(),
                duration,
                error: err.message.clone(),
                error_code: err.code.clone(),
                hint: err.hint.clone(),
            });
            StepResult::Failed(err)
        }
    }
}

fn cancelled(slot: &StepSlot, reason: &str) -> StepResult {
    if let Some(output) = &slot.output {
        output.finish(false);
    }
    slot.telemetry.event(Event::StepCancelled {
        step_id: slot.step.id.clone(),
        driver: slot.step.component.clone(),
        reason: reason.to_string(),
    });
    StepResult::Cancelled
}

async fn execute_driver(shared: &RunShared, slot: &StepSlot, io: StepIo) -> Result<(), DriverError> {
    let step = &slot.step;
    let artifacts_dir = shared.run_dir.join("artifacts").join(&step.id);
    std::fs::create_dir_all(&artifacts_dir).map_err(|e| {
        DriverError::new(
            "runtime.io_error",
            format!("cannot create artifacts directory {}: {e}", artifacts_dir.display()),
        )
    })?;
    let connection = bind_connection(shared, slot)?;
    write_cleaned_config(slot, &artifacts_dir, connection.as_ref());

    let component = shared.registry.get(&step.component).ok_or_else(|| {
        DriverError::new(
            "config.unknown_component",
            format!("component '{}' is not in this build's registry", step.component),
        )
    })?;
    let driver = component.create(&step.config)?;
    let ctx = StepContext {
        step_id: step.id.clone(),
        component: step.component.clone(),
        connection,
        cancel: slot.cancel.clone(),
        telemetry: slot.telemetry.clone(),
        artifacts_dir,
        base_dir: shared.base_dir.clone(),
        memory_budget: shared.memory_budget,
        batch_size: shared.batch_size,
    };
    // A panicking driver must fail its step, not the process.
    match tokio::spawn(driver.run(ctx, io)).await {
        Ok(result) => result,
        Err(join) => match join.try_into_panic() {
            Ok(panic) => Err(panic_error(&step.component, panic)),
            Err(_) => Err(DriverError::cancelled()),
        },
    }
}

fn panic_error(component: &str, panic: Box<dyn std::any::Any + Send>) -> DriverError {
    let detail = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".to_string());
    DriverError::new("runtime.driver_panic", format!("driver '{component}' panicked: {detail}"))
        .with_hint("this is a bug in the driver; please report it with the run's osiris.log")
}

fn bind_connection(shared: &RunShared, slot: &StepSlot) -> Result<Option<BoundConnection>, DriverError> {
    let Some(descriptor) = &slot.step.connection else { return Ok(None) };
    let step_id = slot.step.id.clone();
    slot.telemetry.event(Event::ConnectionResolveStart {
        step_id: step_id.clone(),
        family: descriptor.family.clone(),
        alias: descriptor.alias.clone(),
    });
    let bound = descriptor.bind(shared.secrets.as_ref());
    slot.telemetry.event(Event::ConnectionResolveComplete {
        step_id,
        family: descriptor.family.clone(),
        alias: descriptor.alias.clone(),
        ok: bound.is_ok(),
        error: bound.as_ref().err().map(|e| e.to_string()),
    });
    bound.map(Some).map_err(|e| {
        DriverError::new("connection.missing_secret", e.to_string())
            .with_hint("export the variable or put it in .env next to osiris_connections.yaml")
    })
}

/// `artifacts/<step>/cleaned_config.json`: the config the driver got, secrets masked.
fn write_cleaned_config(slot: &StepSlot, artifacts_dir: &std::path::Path, connection: Option<&BoundConnection>) {
    let mut cleaned: Map<String, Value> = slot.step.config.clone();
    if let Some(connection) = connection {
        cleaned.insert("resolved_connection".into(), Value::Object(connection.masked()));
    }
    let path = artifacts_dir.join("cleaned_config.json");
    let text = serde_json::to_string_pretty(&Value::Object(cleaned)).unwrap_or_default();
    if std::fs::write(&path, text + "\n").is_ok() {
        slot.telemetry.event(Event::ArtifactCreated {
            step_id: slot.step.id.clone(),
            artifact_type: "cleaned_config".into(),
            path: crate::runlog::artifact_log_path(artifacts_dir, "cleaned_config.json"),
        });
    }
}

fn emit_step_metrics(slot: &StepSlot, duration: f64) {
    let t = &slot.telemetry;
    let c = t.counters();
    match slot.step.mode {
        Mode::Extract => t.metric(MetricName::RowsRead, StepCounters::get(&c.rows_read), Unit::Rows),
        Mode::Write => t.metric(MetricName::RowsWritten, StepCounters::get(&c.rows_written), Unit::Rows),
        Mode::Transform => {}
    }
    if slot.step.mode != Mode::Extract {
        t.metric(MetricName::RowsIn, StepCounters::get(&c.rows_in), Unit::Rows);
    }
    if slot.step.mode != Mode::Write {
        t.metric(MetricName::RowsOut, StepCounters::get(&c.rows_out), Unit::Rows);
    }
    for (name, counter) in [(MetricName::BytesRead, &c.bytes_read), (MetricName::BytesWritten, &c.bytes_written)] {
        let bytes = StepCounters::get(counter);
        if bytes > 0 {
            t.metric(name, bytes, Unit::Bytes);
        }
    }
    t.metric(MetricName::StepDuration, duration, Unit::Seconds);
}

fn total_rows(steps: &[StepReport]) -> u64 {
    let written: Vec<u64> = steps.iter().filter(|s| s.mode == Mode::Write).map(|s| s.rows_written).collect();
    if written.is_empty() {
        steps.iter().filter(|s| s.mode == Mode::Extract).map(|s| s.rows_read).sum()
    } else {
        written.iter().sum()
    }
}

/// For every step, all steps that depend on it directly or transitively.
fn downstream_map(steps: &[PreparedStep]) -> Vec<Vec<usize>> {
    let index: HashMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
    let mut direct = vec![Vec::new(); steps.len()];
    for (i, step) in steps.iter().enumerate() {
        for need in &step.needs {
            if let Some(&u) = index.get(need.as_str()) {
                direct[u].push(i);
            }
        }
    }
    (0..steps.len())
        .map(|start| {
            let mut seen = vec![false; steps.len()];
            let mut stack = direct[start].clone();
            let mut out = Vec::new();
            while let Some(n) = stack.pop() {
                if !std::mem::replace(&mut seen[n], true) {
                    out.push(n);
                    stack.extend(direct[n].iter().copied());
                }
            }
            out
        })
        .collect()
}

/// The table name SQL transforms use for an input: `df_<sanitized id>`, with a hash suffix when
/// two inputs sanitize to the same name (Osiris's rule).
pub fn table_name_for(step_id: &str, all_inputs: &[String]) -> String {
    let base = sanitize_identifier(step_id);
    let collides = all_inputs.iter().filter(|other| sanitize_identifier(other) == base).count() > 1;
    if collides {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(step_id.as_bytes());
        let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        format!("df_{base}_{hex}")
    } else {
        format!("df_{base}")
    }
}

fn sanitize_identifier(id: &str) -> String {
    let mut s: String = id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests;
