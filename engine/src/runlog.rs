//! The run-log directory of one run (Osiris layout):
//!
//! ```text
//! run_logs/<profile>/<slug>/<run_ts>_<run_id>-<manifest_short>/     (slug: the pipeline name)
//!   events.jsonl  metrics.jsonl  osiris.log  status.json  manifest.yaml  cfg/<step>.json
//!   artifacts/<step>/cleaned_config.json
//! ```

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::pipeline::slugify;
use crate::runtime::{RunReport, StepStatus};
use crate::telemetry::{Event, Record, RecordBody, TelemetrySink};

/// Identity of a run: `run_id` (`2025-10-07T14-22-19Z_<ULID>`) and `run_ts` (`20251007T142219Z`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunIds {
    pub run_id: String,
    pub run_ts: String,
    pub started_at: DateTime<Utc>,
}

impl RunIds {
    /// Ids for a run starting now (`iso_ulid` format, as Osiris's default).
    pub fn generate() -> Self {
        let now = Utc::now();
        RunIds {
            run_id: format!("{}_{}", now.format("%Y-%m-%dT%H-%M-%SZ"), ulid(now)),
            run_ts: now.format("%Y%m%dT%H%M%SZ").to_string(),
            started_at: now,
        }
    }
}

/// A ULID: 48-bit millisecond time and 80 random bits in Crockford base32.
fn ulid(now: DateTime<Utc>) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut random = [0u8; 10];
    if getrandom::fill(&mut random).is_err() {
        // Without an entropy source, fall back to the process id and the clock's nanoseconds.
        let seed = (u128::from(std::process::id()) << 64) | now.timestamp_subsec_nanos() as u128;
        random.copy_from_slice(&seed.to_be_bytes()[6..16]);
    }
    let mut value: u128 = (now.timestamp_millis() as u128 & ((1 << 48) - 1)) << 80;
    for (i, b) in random.iter().enumerate() {
        value |= (*b as u128) << (72 - 8 * i);
    }
    (0..26).rev().map(|i| ALPHABET[((value >> (5 * i)) & 31) as usize] as char).collect()
}

/// How the run log names an artifact: `artifacts/<step dir>/<file>`, relative to the run
/// directory, so that the line is the same wherever the run executed.
pub fn artifact_log_path(artifacts_dir: &Path, file_name: &str) -> String {
    let step_dir = artifacts_dir.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    format!("artifacts/{step_dir}/{file_name}")
}

/// The run-log directory of one run.
#[derive(Clone, Debug)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates `<root>/<profile>/<slug>/<run_ts>_<run_id>-<manifest_short>/` (tokens slugified).
    pub fn create(root: &Path, profile: &str, slug: &str, ids: &RunIds, manifest_short: &str) -> io::Result<Self> {
        let name = format!("{}_{}-{}", slugify(&ids.run_ts), slugify(&ids.run_id), slugify(manifest_short));
        let path = root.join(slugify(profile)).join(slugify(slug)).join(name);
        std::fs::create_dir_all(path.join("cfg"))?;
        std::fs::create_dir_all(path.join("artifacts"))?;
        Ok(RunDir { path })
    }

    /// Uses an existing directory (a worker writing into a directory its host created).
    pub fn open(path: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(path.join("cfg"))?;
        std::fs::create_dir_all(path.join("artifacts"))?;
        Ok(RunDir { path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `manifest.yaml` and `cfg/<step>.json` as compiled.
    pub fn write_compiled(&self, manifest_yaml: &str, cfgs: &[(String, String)]) -> io::Result<()> {
        std::fs::write(self.path.join("manifest.yaml"), manifest_yaml)?;
        for (step_id, json) in cfgs {
            std::fs::write(self.path.join("cfg").join(format!("{step_id}.json")), json)?;
        }
        Ok(())
    }

    /// Writes `prepared_run.json`: the run exactly as it was handed to the adapter (secret
    /// placeholders only).
    pub fn write_prepared(&self, prepared: &crate::prepared::PreparedRun) -> io::Result<()> {
        let text = serde_json::to_string_pretty(prepared).map_err(io::Error::other)?;
        std::fs::write(self.path.join("prepared_run.json"), text + "\n")
    }

    /// Writes `status.json` from the run's report.
    pub fn write_status(&self, status: &RunStatus) -> io::Result<()> {
        let text = serde_json::to_string_pretty(status).map_err(io::Error::other)?;
        std::fs::write(self.path.join("status.json"), text + "\n")
    }
}

/// `status.json`: Osiris's fields plus the outcome in words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    pub sandbox_id: String,
    pub exit_code: i32,
    pub steps_completed: usize,
    pub steps_total: usize,
    pub ok: bool,
    pub session_path: String,
    pub session_copied: bool,
    pub events_jsonl_exists: bool,
    /// `""` on success, else `execution_failed` (a step failed) or `incomplete_steps` (the run
    /// was cancelled), as in Osiris.
    pub reason: String,
    /// `success`, `failed` (a step failed) or `cancelled` (Ctrl-C, SIGTERM or SIGHUP before every
    /// step finished), as `run_end`'s `status`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunStatus {
    /// The status of a finished run in `dir`, executed by `adapter`.
    pub fn from_report(report: &RunReport, dir: &RunDir, adapter: &str) -> Self {
        let completed = report.steps.iter().filter(|s| s.status == StepStatus::Succeeded).count();
        let ok = report.succeeded();
        let reason = if ok {
            ""
        } else if report.failure.is_some() {
            "execution_failed"
        } else {
            "incomplete_steps"
        };
        RunStatus {
            sandbox_id: adapter.to_string(),
            exit_code: if ok { 0 } else { 1 },
            steps_completed: completed,
            steps_total: report.steps.len(),
            ok,
            session_path: adapter.to_string(),
            session_copied: true,
            events_jsonl_exists: dir.path().join("events.jsonl").exists(),
            reason: reason.to_string(),
            status: report.outcome().to_string(),
            failed_step: report.failure.as_ref().map(|f| f.step_id.clone()),
            error: report.failure.as_ref().map(|f| format!("{}: {}", f.code, f.message)),
        }
    }
}

/// `osiris.log`: one human-readable line per event, in Osiris's log format
/// (`<time> - osiris - [<session>] - <LEVEL> - <message>`).
pub struct TextLogSink {
    out: Mutex<Box<dyn Write + Send>>,
}

impl TextLogSink {
    /// Appends to `osiris.log` in `dir`.
    pub fn create(dir: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(dir.join("osiris.log"))?;
        Ok(Self::to_writer(file))
    }

    /// Writes the lines to `out` (a worker's stderr).
    pub fn to_writer(out: impl Write + Send + 'static) -> Self {
        TextLogSink { out: Mutex::new(Box::new(out)) }
    }
}

impl TelemetrySink for TextLogSink {
    fn record(&self, record: &Record) {
        let RecordBody::Event(event) = &record.body else { return };
        let (level, message) = describe(event);
        let line = format!(
            "{} - osiris - [{}] - {} - {}\n",
            record.ts.to_rfc3339_opts(SecondsFormat::Millis, true),
            record.session,
            level,
            message
        );
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = out.write_all(line.as_bytes());
    }
}

fn describe(event: &Event) -> (&'static str, String) {
    match event {
        Event::RunStart { pipeline_id, profile, manifest_short, adapter, steps_total, memory_budget_bytes, .. } => (
            "INFO",
            format!(
                "run started: pipeline {pipeline_id} (profile {profile}, manifest {manifest_short}), {steps_total} steps, adapter {adapter}, step-cache budget {memory_budget_bytes} bytes"
            ),
        ),
        Event::StepStart { step_id, driver } => ("INFO", format!("step {step_id} started ({driver})")),
        Event::InputsResolved { step_id, from_step, key, .. } => {
            ("INFO", format!("step {step_id} reads {from_step} as {key}"))
        }
        Event::ConnectionResolveStart { step_id, family, alias } => {
            ("INFO", format!("step {step_id} binds connection @{family}.{alias}"))
        }
        Event::ConnectionResolveComplete { step_id, family, alias, ok, error } => match error {
            Some(error) if !ok => ("ERROR", format!("step {step_id}: connection @{family}.{alias} failed: {error}")),
            _ => ("INFO", format!("step {step_id}: connection @{family}.{alias} bound")),
        },
        Event::ArtifactCreated { step_id, artifact_type, path } => {
            ("INFO", format!("step {step_id} wrote {artifact_type} artifact {path}"))
        }
        Event::CacheSpillStart { step_id, path, budget_bytes, used_bytes } => (
            "WARNING",
            format!("step {step_id}: step cache over budget ({used_bytes}/{budget_bytes} bytes), spilling to {path}"),
        ),
        Event::CacheSpillComplete { step_id, batches, rows, bytes } => {
            ("INFO", format!("step {step_id}: spilled {batches} batches, {rows} rows, {bytes} bytes"))
        }
        Event::StepComplete { step_id, duration, rows_in, rows_out, .. } => {
            ("INFO", format!("step {step_id} completed in {duration:.3}s (rows in {rows_in}, rows out {rows_out})"))
        }
        Event::StepError { step_id, error, error_code, hint, .. } => (
            "ERROR",
            match hint {
                Some(hint) => format!("step {step_id} failed [{error_code}]: {error} (hint: {hint})"),
                None => format!("step {step_id} failed [{error_code}]: {error}"),
            },
        ),
        Event::StepCancelled { step_id, reason, .. } => ("WARNING", format!("step {step_id} cancelled: {reason}")),
        Event::RunError { step_id, message, .. } => ("ERROR", format!("run failed at step {step_id}: {message}")),
        Event::CleanupComplete { steps_executed, total_rows } => {
            ("INFO", format!("{steps_executed} steps executed, {total_rows} rows"))
        }
        Event::RunEnd { status, duration_seconds, .. } => {
            ("INFO", format!("run ended: {status} in {duration_seconds:.3}s"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_have_osiris_shape() {
        let ids = RunIds::generate();
        let (time, ulid) = ids.run_id.split_once("Z_").expect("iso_ulid format");
        assert_eq!(time.len(), "2025-10-07T14-22-19".len());
        assert_eq!(ulid.len(), 26);
        assert_eq!(ids.run_ts.len(), "20251007T142219Z".len());
        assert_ne!(RunIds::generate().run_id, ids.run_id);
    }
}
