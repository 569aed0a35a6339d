//! The local adapter: runs the DAG in this process.

use std::sync::Arc;

use osiris_engine::prepared::PreparedRun;
use osiris_engine::registry::Registry;
use osiris_engine::runlog::{RunStatus, TextLogSink};
use osiris_engine::runtime::{Execution, RunEnv};
use osiris_engine::telemetry::{JsonlSink, Telemetry, TelemetrySink};

use crate::{AdapterError, ExecResult, ExecutionAdapter, ExecutionContext};

/// Runs a prepared run in-process.
pub struct LocalAdapter {
    registry: Registry,
}

impl LocalAdapter {
    pub fn new(registry: Registry) -> Self {
        LocalAdapter { registry }
    }
}

#[async_trait::async_trait]
impl ExecutionAdapter for LocalAdapter {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn execute(&self, run: PreparedRun, ctx: ExecutionContext) -> Result<ExecResult, AdapterError> {
        let dir = ctx.run_dir.path().to_path_buf();
        let log_err = |source| AdapterError::RunLog { path: dir.clone(), source };
        let mut sinks: Vec<Arc<dyn TelemetrySink>> = vec![
            Arc::new(JsonlSink::create(&dir).map_err(log_err)?),
            Arc::new(TextLogSink::create(&dir).map_err(log_err)?),
        ];
        sinks.extend(ctx.extra_sinks);
        let run_id = run.metadata.run_id.clone();
        let env = RunEnv {
            registry: self.registry.clone(),
            telemetry: Telemetry::new(run.metadata.run_id.clone(), sinks),
            secrets: ctx.secrets,
            run_dir: dir.clone(),
            base_dir: ctx.base_dir,
            cancel: ctx.cancel,
        };
        let execution = Execution::new(run, env)?;
        if let Some(on_start) = ctx.on_start {
            on_start(execution.progress());
        }
        let report = execution.run().await;
        let status = RunStatus::from_report(&report, &ctx.run_dir, self.name());
        ctx.run_dir.write_status(&status).map_err(log_err)?;
        Ok(ExecResult { run_id, report, status })
    }
}
