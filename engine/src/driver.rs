//! The driver contract: one batch-oriented async trait for every component.
//!
//! A driver is created fresh for every step by its [`Component`](crate::registry::Component)
//! from the step's validated config. It gets a [`StepContext`] (step id, bound connection,
//! cancellation, telemetry, artifacts directory, memory budget) and its [`StepIo`]: the named
//! input readers of the steps it needs and, unless it is a writer, an [`OutputSink`] that feeds
//! the columnar step cache.
//!
//! ```
//! use async_trait::async_trait;
//! use osiris_engine::driver::{Driver, DriverError, StepContext, StepIo};
//!
//! /// Passes every input batch through unchanged.
//! #[derive(Debug)]
//! struct PassThrough;
//!
//! #[async_trait]
//! impl Driver for PassThrough {
//!     async fn run(self: Box<Self>, ctx: StepContext, mut io: StepIo) -> Result<(), DriverError> {
//!         let mut output = io.take_output()?;
//!         for mut input in io.inputs.drain(..) {
//!             output.set_schema(input.reader.schema().await?);
//!             while let Some(batch) = input.reader.next_batch().await? {
//!                 output.send(batch).await?;
//!             }
//!         }
//!         let _ = ctx;
//!         Ok(())
//!     }
//! }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::connections::BoundConnection;
use crate::runtime::cache::{CacheError, InputReader, OutputSink};
use crate::telemetry::StepTelemetry;

/// Boxed error of a foreign library, kept as the source of a [`DriverError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Runs one step.
#[async_trait]
pub trait Driver: Send + fmt::Debug {
    /// Moves the step's data. Extractors send batches to the output, writers drain their
    /// inputs, transforms do both. Must return promptly once `ctx.cancel` fires.
    async fn run(self: Box<Self>, ctx: StepContext, io: StepIo) -> Result<(), DriverError>;
}

/// Everything a driver may use while it runs.
pub struct StepContext {
    /// The step id from the pipeline.
    pub step_id: String,
    /// The component name (`filesystem.csv_writer`).
    pub component: String,
    /// The connection the step names (or the family default), with secrets bound.
    pub connection: Option<BoundConnection>,
    /// Fires when the run is aborted or an upstream step failed.
    pub cancel: CancellationToken,
    /// Rows/bytes counters and events of this step.
    pub telemetry: StepTelemetry,
    /// `run_logs/.../artifacts/<step>/`, already created.
    pub artifacts_dir: PathBuf,
    /// Directory that relative paths in the config are resolved against (the working directory
    /// of the `osiris` invocation).
    pub base_dir: PathBuf,
    /// The run's step-cache budget in bytes; drivers that buffer data should stay within it.
    pub memory_budget: u64,
    /// Target rows per batch for drivers that choose their batch size.
    pub batch_size: usize,
}

impl StepContext {
    /// Resolves a path from the config against the base directory.
    pub fn resolve_path(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() { p.to_path_buf() } else { self.base_dir.join(p) }
    }
}

impl fmt::Debug for StepContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepContext")
            .field("step_id", &self.step_id)
            .field("component", &self.component)
            .field("artifacts_dir", &self.artifacts_dir)
            .finish_non_exhaustive()
    }
}

/// One upstream step's output, as seen by a consumer.
pub struct StepInput {
    /// The upstream step id.
    pub step_id: String,
    /// The name SQL transforms use for this input: `df_<sanitized step id>` (Osiris naming).
    pub table_name: String,
    pub reader: InputReader,
}

/// The data side of a step: its inputs and (unless it writes) its output.
pub struct StepIo {
    /// Inputs in the order of the step's `needs`.
    pub inputs: Vec<StepInput>,
    /// The output sink; `None` for writers.
    pub output: Option<OutputSink>,
}

impl StepIo {
    /// Takes the output sink, or fails with a clear error for a component that needs one.
    pub fn take_output(&mut self) -> Result<OutputSink, DriverError> {
        self.output
            .take()
            .ok_or_else(|| DriverError::new("config.invalid", "this step has no output sink (is it a writer?)"))
    }

    /// Takes the single input of a writer or single-input transform.
    pub fn single_input(&mut self) -> Result<StepInput, DriverError> {
        match self.inputs.len() {
            1 => Ok(self.inputs.remove(0)),
            0 => Err(DriverError::new("config.missing_input", "this step has no input")
                .with_hint("add `needs: [<step id>]` naming the step whose rows it should consume")),
            n => Err(DriverError::new(
                "config.too_many_inputs",
                format!("this step takes one input but needs {n} steps"),
            )
            .with_hint("list exactly one producing step in `needs`")),
        }
    }
}

/// The code of a producer stopped because every step reading its output has stopped reading
/// (a `LIMIT`, or a failed consumer). The runtime ends such a step normally: it did all the work
/// anyone needed. (When the run itself was cancelled, the step is cancelled.)
pub const OUTPUT_UNNEEDED: &str = "run.output_unneeded";

/// A driver failure, with an Osiris-style error code (`extract.io_error`, `write.schema_mismatch`, ...).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DriverError {
    /// Stable code, `<phase>.<kind>`.
    pub code: String,
    /// What failed, in words a user understands (never containing a secret).
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    #[source]
    pub source: Option<BoxError>,
}

impl DriverError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        DriverError { code: code.into(), message: message.into(), hint: None, source: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The run was cancelled while this step ran.
    pub fn cancelled() -> Self {
        DriverError::new("run.cancelled", "cancelled")
    }

    /// Whether this error only reports cancellation (not a failure of this step).
    pub fn is_cancellation(&self) -> bool {
        self.code == "run.cancelled" || self.code == "run.upstream_failed"
    }
}

impl From<CacheError> for DriverError {
    fn from(err: CacheError) -> Self {
        match &err {
            CacheError::Cancelled => DriverError::cancelled(),
            CacheError::NoConsumers { .. } => DriverError::new(OUTPUT_UNNEEDED, err.to_string()),
            CacheError::UpstreamFailed { step_id } => {
                DriverError::new("run.upstream_failed", format!("upstream step '{step_id}' failed"))
            }
            _ => DriverError::new("runtime.cache_error", err.to_string()).with_source(err),
        }
    }
}

/// Deserializes a step config (the `cfg/<step>.json` object) into a driver's typed options,
/// turning serde's message into a [`DriverError`] that names the problem.
pub fn parse_config<T: serde::de::DeserializeOwned>(config: &Map<String, Value>) -> Result<T, DriverError> {
    serde_json::from_value(Value::Object(config.clone()))
        .map_err(|e| DriverError::new("config.invalid", format!("invalid config: {e}")))
}
