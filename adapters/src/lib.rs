//! # osiris-adapters
//!
//! Where a run executes. Every adapter takes the same [`PreparedRun`] and leaves the same run-log
//! directory; the DAG scheduler and the drivers are the engine's, so results cannot diverge.
//!
//! - [`local::LocalAdapter`]: runs the DAG in this process.
//!
//! The built-in component registry ([`components::builtin_registry`]) lives here because every
//! adapter's worker side needs it.

pub mod components;
pub mod local;

use std::path::PathBuf;
use std::sync::Arc;

use osiris_engine::connections::SecretSource;
use osiris_engine::prepared::PreparedRun;
use osiris_engine::runlog::{RunDir, RunStatus};
use osiris_engine::runtime::{RunReport, StepProgress};
use osiris_engine::telemetry::TelemetrySink;
use tokio_util::sync::CancellationToken;

/// Errors that keep a run from executing at all (a failed step is not one: see [`ExecResult`]).
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error(transparent)]
    Runtime(#[from] osiris_engine::runtime::RuntimeError),
    #[error("cannot write run log {path}: {source}")]
    RunLog { path: PathBuf, source: std::io::Error },
}

/// Called once the run's steps are wired, with live per-step counters (for progress displays).
pub type ProgressHook = Box<dyn FnOnce(Vec<StepProgress>) + Send>;

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

/// The outcome of an executed run.
#[derive(Debug)]
pub struct ExecResult {
    /// The run id: the `session` of every telemetry line.
    pub run_id: String,
    pub report: RunReport,
    pub status: RunStatus,
}

impl ExecResult {
    pub fn succeeded(&self) -> bool {
        self.report.succeeded()
    }
}

/// Executes prepared runs.
#[async_trait::async_trait]
pub trait ExecutionAdapter: Send + Sync {
    /// `local`, `process` or `e2b`.
    fn name(&self) -> &'static str;
    async fn execute(&self, run: PreparedRun, ctx: ExecutionContext) -> Result<ExecResult, AdapterError>;
}
