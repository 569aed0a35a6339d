//! Helpers shared by the file drivers: config value checks, the blocking producer that feeds an
//! extractor's output through a bounded channel, and error constructors.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use osiris_engine::driver::{DriverError, StepContext};
use osiris_engine::runtime::cache::OutputSink;
use osiris_engine::spec::{ConnectionField, ConnectionSpec, OverridePolicy};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The optional `filesystem` connection of every file component: its `base_dir` is where
/// relative `path`s resolve.
pub(crate) fn filesystem_connection() -> ConnectionSpec {
    ConnectionSpec {
        family: "filesystem".into(),
        required: false,
        fields: vec![ConnectionField::new("base_dir", OverridePolicy::Allowed)],
        ignored_keys: Vec::new(),
    }
}

/// Resolves a config `path`: absolute paths stay; relative ones resolve against the step's
/// filesystem connection `base_dir` when it names one, else against the working directory.
pub(crate) fn resolve_data_path(ctx: &StepContext, path: &str) -> PathBuf {
    match ctx.connection.as_ref().and_then(|c| c.get_string("base_dir")) {
        Some(base) if !Path::new(path).is_absolute() => ctx.resolve_path(&base).join(path),
        _ => ctx.resolve_path(path),
    }
}

/// `osiris connections doctor` for a filesystem connection: its `base_dir`, when set, must be
/// an existing directory.
pub(crate) fn check_base_dir(connection: &osiris_engine::connections::BoundConnection) -> Result<(), DriverError> {
    let Some(base) = connection.get_string("base_dir") else { return Ok(()) };
    match std::fs::metadata(&base) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(DriverError::new("connection.config", format!("base_dir '{base}' is not a directory"))
            .with_hint("point base_dir at the directory holding the data files")),
        Err(e) => Err(DriverError::new("connection.config", format!("base_dir '{base}': {e}"))
            .with_hint("create the directory or fix base_dir in osiris_connections.yaml")),
    }
}

/// Text encodings the CSV drivers support.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    Utf8,
    Latin1,
    Ascii,
}

impl Encoding {
    pub(crate) fn parse(value: &str) -> Result<Encoding, DriverError> {
        let norm = value.trim().to_ascii_lowercase().replace('_', "-");
        match norm.as_str() {
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "l1" => Ok(Encoding::Latin1),
            "ascii" | "us-ascii" => Ok(Encoding::Ascii),
            _ => Err(invalid(format!("unsupported encoding '{value}'")).with_hint(
                "use `encoding: utf-8` (default), `latin-1` or `ascii`; convert other files to UTF-8 first",
            )),
        }
    }
}

/// `config.invalid` error.
pub(crate) fn invalid(message: impl Into<String>) -> DriverError {
    DriverError::new("config.invalid", message)
}

/// Parses a one-character delimiter (`\t` and `tab` spell a tab).
pub(crate) fn parse_delimiter(value: &str) -> Result<u8, DriverError> {
    let v = match value {
        "\\t" | "tab" | "TAB" => "\t",
        other => other,
    };
    let bytes = v.as_bytes();
    if bytes.len() != 1 || !bytes[0].is_ascii() || matches!(bytes[0], b'"' | b'\r' | b'\n') {
        return Err(invalid(format!(
            "invalid delimiter {value:?}: it must be a single ASCII character other than a quote or a line break"
        ))
        .with_hint("use e.g. `delimiter: \",\"`, `\";\"`, `\"|\"` or `\"\\t\"`"));
    }
    Ok(bytes[0])
}

/// Opens an input file, mapping a missing file to `extract.file_not_found`.
pub(crate) fn open_input(path: &Path) -> Result<File, DriverError> {
    if path.is_dir() {
        return Err(DriverError::new("extract.io_error", format!("input path '{}' is a directory", path.display()))
            .with_hint("set `path` to a file"));
    }
    File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DriverError::new("extract.file_not_found", format!("input file '{}' does not exist", path.display()))
                .with_hint("check `path`; relative paths are resolved against the directory osiris runs in")
        } else {
            DriverError::new("extract.io_error", format!("cannot open '{}': {e}", path.display()))
                .with_hint("check that the file is readable")
                .with_source(e)
        }
    })
}

/// What a blocking producer hands to the async side.
pub(crate) enum Produced {
    Schema(SchemaRef),
    Batch(RecordBatch),
}

/// The blocking side of an extractor: sends the schema and batches into a bounded channel.
pub(crate) struct Emitter {
    tx: mpsc::Sender<Result<Produced, DriverError>>,
    cancel: CancellationToken,
}

impl Emitter {
    /// Fails with `run.cancelled` once the run is cancelled.
    pub(crate) fn check_cancel(&self) -> Result<(), DriverError> {
        if self.cancel.is_cancelled() || self.tx.is_closed() { Err(DriverError::cancelled()) } else { Ok(()) }
    }

    /// Declares the output schema.
    pub(crate) fn schema(&self, schema: SchemaRef) -> Result<(), DriverError> {
        self.tx.blocking_send(Ok(Produced::Schema(schema))).map_err(|_| DriverError::cancelled())
    }

    /// Sends one batch (waits while the channel is full).
    pub(crate) fn batch(&self, batch: RecordBatch) -> Result<(), DriverError> {
        self.check_cancel()?;
        self.tx.blocking_send(Ok(Produced::Batch(batch))).map_err(|_| DriverError::cancelled())
    }
}

/// Runs `produce` on a blocking thread and forwards what it emits to `output`; the channel holds
/// at most two messages, so memory stays bounded by a few batches.
pub(crate) async fn run_producer<F>(ctx: &StepContext, mut output: OutputSink, produce: F) -> Result<(), DriverError>
where
    F: FnOnce(&Emitter) -> Result<(), DriverError> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel(2);
    let emitter = Emitter { tx, cancel: ctx.cancel.clone() };
    let handle = tokio::task::spawn_blocking(move || {
        if let Err(e) = produce(&emitter) {
            let _ = emitter.tx.blocking_send(Err(e));
        }
    });
    loop {
        let msg = tokio::select! {
            _ = ctx.cancel.cancelled() => return Err(DriverError::cancelled()),
            msg = rx.recv() => msg,
        };
        match msg {
            None => break,
            Some(Ok(Produced::Schema(schema))) => output.set_schema(schema),
            Some(Ok(Produced::Batch(batch))) => output.send(batch).await?,
            Some(Err(e)) => return Err(e),
        }
    }
    handle.await.map_err(|e| DriverError::new("extract.internal_error", format!("reader thread failed: {e}")))?;
    Ok(())
}
