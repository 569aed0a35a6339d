//! The local adapter: runs the DAG in this process.

use osiris_engine::prepared::PreparedRun;
use osiris_engine::registry::Registry;
use osiris_engine::runtime::{Execution, RunEnv};
use osiris_engine::telemetry::Telemetry;

use crate::{AdapterError, Executed, ExecutionAdapter, ExecutionContext, worker};

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

    async fn execute(&mut self, run: &PreparedRun, ctx: &mut ExecutionContext) -> Result<Executed, AdapterError> {
        let mut sinks = worker::run_log_sinks(ctx.run_dir.path())?;
        sinks.append(&mut ctx.extra_sinks);
        let env = RunEnv {
            registry: self.registry.clone(),
            telemetry: Telemetry::new(run.run_id(), sinks),
            secrets: ctx.secrets.clone(),
            run_dir: ctx.run_dir.path().to_path_buf(),
            base_dir: ctx.base_dir.clone(),
            cancel: ctx.cancel.clone(),
        };
        let execution = Execution::new(run.clone(), env)?;
        if let Some(on_start) = ctx.on_start.take() {
            on_start(execution.progress());
        }
        let report = execution.run().await;
        Ok(Executed { report, sandbox_id: self.name().to_string(), details: Default::default() })
    }
}
