//! # osiris-adapters
//!
//! Where a run executes. Every adapter takes the same [`PreparedRun`] through the same three
//! phases — [`ExecutionAdapter::prepare`], [`ExecutionAdapter::execute`],
//! [`ExecutionAdapter::collect`] — and leaves the same run-log directory. The DAG scheduler and
//! the drivers are the engine's, and a worker runs exactly them, so results cannot diverge.
//!
//! - [`local::LocalAdapter`]: runs the DAG in this process.
//! - [`process::ProcessAdapter`]: runs `osiris worker` as a child process over ipc-channel.
//! - [`worker`]: the worker side, and the Arrow IPC telemetry stream it sends home.
//!
//! The built-in component registry ([`components::builtin_registry`]) lives here because every
//! adapter's worker side needs it.

pub mod binary;
pub mod components;
pub mod e2b;
pub mod local;
pub mod process;
pub mod sandbox;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;

use osiris_engine::connections::SecretSource;
use osiris_engine::prepared::{PreparedRun, PreparedRunError};
use osiris_engine::runlog::{RunDir, RunStatus};
use osiris_engine::runtime::{RunReport, StepProgress};
use osiris_engine::telemetry::TelemetrySink;
use tokio_util::sync::CancellationToken;

/// Errors that keep a run from executing or its results from coming home (a failed step is not
/// one: see [`ExecResult`]).
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error(transparent)]
    Runtime(#[from] osiris_engine::runtime::RuntimeError),
    #[error(transparent)]
    Prepared(#[from] PreparedRunError),
    #[error("cannot write run log {path}: {source}")]
    RunLog { path: PathBuf, source: std::io::Error },
    /// The worker process could not be started or talked to.
    #[error("{message}")]
    Worker { message: String, hint: Option<String> },
    /// Found before anything ran: the run cannot execute on this adapter as set up (exit 2).
    #[error("{message}")]
    Preflight { message: String, hint: Option<String> },
}

impl AdapterError {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<&str> {
        match self {
            AdapterError::Worker { hint, .. } | AdapterError::Preflight { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }
}

/// Called once the run's steps are wired, with live per-step counters (for progress displays).
pub type ProgressHook = Box<dyn FnOnce(Vec<StepProgress>) + Send + Sync>;

/// Everything about a run that is not in the [`PreparedRun`]: where it logs, what it may read.
pub struct ExecutionContext {
    /// The run-log directory, already created (with `manifest.yaml` and `cfg/`).
    pub run_dir: RunDir,
    /// Relative paths in step configs resolve against this directory.
    pub base_dir: PathBuf,
    /// Where connection secrets come from.
    pub secrets: Arc<dyn SecretSource>,
    /// Cancels the run (Ctrl-C).
    pub cancel: CancellationToken,
    /// Telemetry sinks besides the run log (progress, tests).
    pub extra_sinks: Vec<Arc<dyn TelemetrySink>>,
    pub on_start: Option<ProgressHook>,
}

/// Where a failure happened: in this process or a local child (`local`), or in a sandbox
/// (`remote`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureSource {
    Local,
    Remote,
}

/// The outcome of an executed run.
#[derive(Debug)]
pub struct ExecResult {
    /// The run id: the `session` of every telemetry line.
    pub run_id: String,
    pub report: RunReport,
    pub status: RunStatus,
    pub source: FailureSource,
    /// Adapter facts for `--json` (sandbox id, upload and collect times, …).
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl ExecResult {
    pub fn succeeded(&self) -> bool {
        self.report.succeeded()
    }
}

/// How a run executed, as far as the adapter knows: the engine's report plus adapter facts.
#[derive(Debug)]
pub struct Executed {
    pub report: RunReport,
    /// `status.json`'s `sandbox_id`: the adapter name, or the sandbox id for E2B.
    pub sandbox_id: String,
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// Executes prepared runs: `prepare → execute → collect`.
#[async_trait::async_trait]
pub trait ExecutionAdapter: Send {
    /// `local`, `process` or `e2b`.
    fn name(&self) -> &'static str;

    /// Where failures of this adapter's runs happen.
    fn failure_source(&self) -> FailureSource {
        FailureSource::Local
    }

    /// Everything that can be checked before a step runs: the run holds together (every step
    /// finds its cfg and connection) and the adapter can reach where it executes. Problems the
    /// user must fix are [`AdapterError::Preflight`].
    async fn prepare(&mut self, run: &PreparedRun, _ctx: &ExecutionContext) -> Result<(), AdapterError> {
        run.steps()?;
        Ok(())
    }

    /// Runs the steps; a failed step is in the report, not an error.
    async fn execute(&mut self, run: &PreparedRun, ctx: &mut ExecutionContext) -> Result<Executed, AdapterError>;

    /// Brings outputs and artifacts home and releases what the run held (a sandbox). Called after
    /// every `execute`, whatever its outcome.
    async fn collect(&mut self, _run: &PreparedRun, _ctx: &ExecutionContext) -> Result<(), AdapterError> {
        Ok(())
    }
}

/// Runs all three phases and writes `status.json`. `collect` runs even when `execute` failed, so
/// that remote resources are released on every path.
pub async fn run_prepared(
    adapter: &mut dyn ExecutionAdapter,
    run: PreparedRun,
    mut ctx: ExecutionContext,
) -> Result<ExecResult, AdapterError> {
    adapter.prepare(&run, &ctx).await?;
    let executed = adapter.execute(&run, &mut ctx).await;
    let collected = adapter.collect(&run, &ctx).await;
    let mut executed = executed?;
    // Bringing results home matters for a run that succeeded; for a failed run (a sandbox that
    // timed out is gone with its files) the run's own failure is the news, and the collect
    // problem is noted beside it.
    match collected {
        Err(e) if executed.report.succeeded() => return Err(e),
        Err(e) => {
            executed.details.insert("collect_error".into(), serde_json::Value::String(e.to_string()));
        }
        Ok(()) => {}
    }
    let dir = ctx.run_dir.path().to_path_buf();
    let status = RunStatus::from_report(&executed.report, &ctx.run_dir, &executed.sandbox_id);
    ctx.run_dir.write_status(&status).map_err(|source| AdapterError::RunLog { path: dir, source })?;
    Ok(ExecResult {
        run_id: run.run_id().to_string(),
        report: executed.report,
        status,
        source: adapter.failure_source(),
        details: executed.details,
    })
}
