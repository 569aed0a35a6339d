//! Embedding the engine: compile, prepare and run a pipeline from Rust, and read any step's rows
//! as a stream of `RecordBatch`es while the run executes.
//!
//! ```no_run
//! # async fn demo(registry: osiris_engine::registry::Registry) -> Result<(), Box<dyn std::error::Error>> {
//! use futures::StreamExt;
//! use osiris_engine::embed::PipelineRun;
//!
//! let mut run = PipelineRun::builder(registry)
//!     .pipeline_file("examples/pipelines/orders_fanout.yaml")
//!     .param("out_dir", "/tmp/orders")
//!     .memory_budget(64 << 20)
//!     .build()?;
//! let mut rows = run.stream("extract-orders")?;
//! let execution = tokio::spawn(run.execute());
//! while let Some(batch) = rows.next().await {
//!     println!("{} rows", batch?.num_rows());
//! }
//! let report = execution.await?;
//! assert!(report.succeeded());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;

use crate::compile::{CompileError, Compiled, Compiler};
use crate::connections::SecretSource;
use crate::connections::file::{ConnectionFileError, ConnectionsFile};
use crate::prepare::{PrepareError, RunInputs, prepare};
use crate::prepared::RunLimits;
use crate::registry::Registry;
use crate::runlog::RunIds;
use crate::runtime::cache::CacheError;
use crate::runtime::{Execution, RunEnv, RunReport, RuntimeError};
use crate::telemetry::{Telemetry, TelemetrySink};

/// Why an embedded run could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("no pipeline given: call pipeline_file() or pipeline_text()")]
    NoPipeline,
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Connections(#[from] ConnectionFileError),
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("cannot create the run directory {path}: {source}")]
    RunDir { path: PathBuf, source: std::io::Error },
}

/// Configures a [`PipelineRun`].
pub struct PipelineRunBuilder {
    registry: Registry,
    source: Option<(PathBuf, Option<String>)>,
    profile: Option<String>,
    params: BTreeMap<String, String>,
    connections: Option<ConnectionsFile>,
    secrets: Arc<dyn SecretSource>,
    limits: RunLimits,
    run_dir: Option<PathBuf>,
    base_dir: Option<PathBuf>,
    sinks: Vec<Arc<dyn TelemetrySink>>,
}

impl PipelineRunBuilder {
    /// The OML file to compile.
    pub fn pipeline_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.source = Some((path.into(), None));
        self
    }

    /// OML text; `name` stands in for the file name in messages and the slug.
    pub fn pipeline_text(mut self, name: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        self.source = Some((name.into(), Some(text.into())));
        self
    }

    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// A pipeline parameter (highest precedence, like `--param`).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }

    /// Connections to use (default: `osiris_connections.yaml` from `$OSIRIS_HOME` or the base
    /// directory, if any).
    pub fn connections(mut self, connections: ConnectionsFile) -> Self {
        self.connections = Some(connections);
        self
    }

    /// Where secret values come from (default: the process environment).
    pub fn secrets(mut self, secrets: Arc<dyn SecretSource>) -> Self {
        self.secrets = secrets;
        self
    }

    /// Step-cache budget in bytes.
    pub fn memory_budget(mut self, bytes: u64) -> Self {
        self.limits.memory_budget = bytes;
        self
    }

    /// Directory for artifacts and spill files (default: a new directory under the system
    /// temporary directory, removed when the run ends).
    pub fn run_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.run_dir = Some(dir.into());
        self
    }

    /// Relative paths in step configs resolve against this directory (default: the working
    /// directory).
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }

    /// Receives every event and metric.
    pub fn telemetry_sink(mut self, sink: Arc<dyn TelemetrySink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Compiles and prepares the pipeline.
    pub fn build(self) -> Result<PipelineRun, EmbedError> {
        let (path, text) = self.source.ok_or(EmbedError::NoPipeline)?;
        let base_dir = self.base_dir.unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
        let mut compiler = Compiler::new(&self.registry).params(self.params).with_process_env();
        if let Some(profile) = self.profile {
            compiler = compiler.profile(profile);
        }
        let compiled = match text {
            Some(text) => compiler.compile(&path, &text)?,
            None => compiler.compile_file(&path)?,
        };
        let connections = match self.connections {
            Some(c) => c,
            None => ConnectionsFile::load(std::env::var_os("OSIRIS_HOME").map(PathBuf::from).as_deref(), &base_dir)?,
        };
        let ids = RunIds::generate();
        let inputs =
            RunInputs { run_id: ids.run_id.clone(), adapter: "local".into(), created_at: ids.started_at.to_rfc3339() };
        let (prepared, synthetic) =
            prepare(&compiled, &connections, &self.registry, self.secrets.as_ref(), inputs, self.limits)?;
        let secrets: Arc<dyn SecretSource> = if synthetic.is_empty() {
            self.secrets
        } else {
            Arc::new(Layered { synthetic: synthetic.into_iter().collect(), caller: self.secrets })
        };
        let temporary_run_dir = self.run_dir.is_none();
        let run_dir = self.run_dir.unwrap_or_else(|| std::env::temp_dir().join(format!("osiris-{}", ids.run_id)));
        std::fs::create_dir_all(&run_dir).map_err(|source| EmbedError::RunDir { path: run_dir.clone(), source })?;
        let env = RunEnv {
            registry: self.registry,
            telemetry: Telemetry::new(ids.run_id, self.sinks),
            secrets,
            run_dir,
            base_dir,
            cancel: CancellationToken::new(),
        };
        let cancel = env.cancel.clone();
        let remove_after = temporary_run_dir.then(|| env.run_dir.clone());
        Ok(PipelineRun { compiled, execution: Execution::new(prepared, env)?, cancel, remove_after })
    }
}

/// A compiled and prepared pipeline, ready to execute.
pub struct PipelineRun {
    compiled: Compiled,
    execution: Execution,
    cancel: CancellationToken,
    /// The run directory made up by the builder, removed after the run.
    remove_after: Option<PathBuf>,
}

impl PipelineRun {
    pub fn builder(registry: Registry) -> PipelineRunBuilder {
        PipelineRunBuilder {
            registry,
            source: None,
            profile: None,
            params: BTreeMap::new(),
            connections: None,
            secrets: Arc::new(crate::connections::ProcessEnv),
            limits: RunLimits::default(),
            run_dir: None,
            base_dir: None,
            sinks: Vec::new(),
        }
    }

    /// The compiled manifest and step configs.
    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// The rows of `step_id` as they are produced. Call before [`PipelineRun::execute`] and keep
    /// reading the stream while the run executes.
    pub fn stream(
        &mut self,
        step_id: &str,
    ) -> Result<BoxStream<'static, Result<RecordBatch, CacheError>>, RuntimeError> {
        Ok(self.execution.tap(step_id)?.into_stream())
    }

    /// Cancels the run from elsewhere.
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Runs every step; failures are in the report, never a panic.
    pub async fn execute(self) -> RunReport {
        let report = self.execution.run().await;
        if let Some(dir) = self.remove_after {
            let _ = std::fs::remove_dir_all(dir);
        }
        report
    }
}

/// The synthetic variables of secrets written in the connections file first (a stray variable
/// of the same name must not shadow them), then the caller's secrets.
struct Layered {
    synthetic: BTreeMap<String, String>,
    caller: Arc<dyn SecretSource>,
}

impl SecretSource for Layered {
    fn get(&self, name: &str) -> Option<String> {
        self.synthetic.get(name).cloned().or_else(|| self.caller.get(name))
    }

    fn is_set_but_empty(&self, name: &str) -> bool {
        self.caller.is_set_but_empty(name)
    }
}
