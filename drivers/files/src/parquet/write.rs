//! The Parquet writer driver.

use std::fs::File;

use arrow_schema::SchemaRef;
use async_trait::async_trait;
use osiris_engine::driver::{Driver, DriverError, StepContext, StepIo, parse_config};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::atomic::OutputTarget;
use crate::common::invalid;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    path: String,
    #[serde(default = "default_compression")]
    compression: String,
    #[serde(default = "default_row_group_size")]
    row_group_size: u64,
    #[serde(default = "yes")]
    create_dirs: bool,
}

fn default_compression() -> String {
    "snappy".into()
}
fn default_row_group_size() -> u64 {
    1_048_576
}
fn yes() -> bool {
    true
}

/// Validated options.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    path: String,
    compression: Compression,
    row_group_size: usize,
    create_dirs: bool,
}

impl Options {
    pub(crate) fn parse(config: &Map<String, Value>) -> Result<Self, DriverError> {
        let raw: RawConfig = parse_config(config)?;
        if raw.path.trim().is_empty() {
            return Err(invalid("`path` is empty").with_hint("set `path` to the Parquet file to write"));
        }
        let compression = match raw.compression.to_ascii_lowercase().as_str() {
            "none" | "uncompressed" => Compression::UNCOMPRESSED,
            "snappy" => Compression::SNAPPY,
            "zstd" => Compression::ZSTD(ZstdLevel::default()),
            "lz4" => Compression::LZ4_RAW,
            "gzip" => Compression::GZIP(GzipLevel::default()),
            other => {
                return Err(invalid(format!("unsupported compression '{other}'"))
                    .with_hint("use one of none, snappy (default), zstd, lz4, gzip"));
            }
        };
        if raw.row_group_size == 0 {
            return Err(invalid("row_group_size must be at least 1").with_hint("use e.g. `row_group_size: 1048576`"));
        }
        Ok(Options {
            path: raw.path,
            compression,
            row_group_size: usize::try_from(raw.row_group_size).unwrap_or(usize::MAX),
            create_dirs: raw.create_dirs,
        })
    }
}

/// Writes its single input as Parquet.
#[derive(Debug)]
pub(crate) struct ParquetWriterDriver {
    pub opts: Options,
}

fn parquet_error(path: &std::path::Path, e: impl std::fmt::Display) -> DriverError {
    DriverError::new("write.io_error", format!("cannot write Parquet file '{}': {e}", path.display()))
        .with_hint("check that the directory is writable and has free space, or choose another `path`")
}

#[async_trait]
impl Driver for ParquetWriterDriver {
    async fn run(self: Box<Self>, ctx: StepContext, mut io: StepIo) -> Result<(), DriverError> {
        let mut input = io.single_input()?;
        let schema: SchemaRef = input.reader.schema().await?;
        if schema.fields().is_empty() {
            return Err(DriverError::new(
                "write.empty_schema",
                "the input has no columns; Parquet cannot store a file without columns",
            )
            .with_hint("check the upstream step (an empty CSV file has no columns)"));
        }
        let path = crate::common::resolve_data_path(&ctx, &self.opts.path);
        let (target, file) = OutputTarget::create(&path, self.opts.create_dirs)?;
        let props = WriterProperties::builder()
            .set_compression(self.opts.compression)
            .set_max_row_group_row_count(Some(self.opts.row_group_size))
            .build();
        let mut writer: ArrowWriter<File> =
            ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| parquet_error(&path, e))?;
        loop {
            if ctx.cancel.is_cancelled() {
                return Err(DriverError::cancelled());
            }
            let Some(batch) = input.reader.next_batch().await? else { break };
            let rows = batch.num_rows() as u64;
            // A row group is buffered in memory until it is flushed: cap it by bytes as well as
            // rows, so wide rows stay within the run's memory budget.
            let max_buffered = (ctx.memory_budget / 4).clamp(1 << 20, 128 << 20) as usize;
            writer = tokio::task::spawn_blocking(move || {
                writer.write(&batch)?;
                if writer.in_progress_size() >= max_buffered {
                    writer.flush()?;
                }
                Ok::<_, parquet::errors::ParquetError>(writer)
            })
            .await
            .map_err(|e| DriverError::new("write.internal_error", format!("writer thread failed: {e}")))?
            .map_err(|e| parquet_error(&path, e))?;
            ctx.telemetry.add_rows_written(rows);
        }
        let p = path.clone();
        let bytes = tokio::task::spawn_blocking(move || {
            writer.finish().map_err(|e| parquet_error(&p, e))?;
            Ok::<_, DriverError>(writer.bytes_written() as u64)
        })
        .await
        .map_err(|e| DriverError::new("write.internal_error", format!("writer thread failed: {e}")))??;
        target.commit_unless_cancelled(&ctx.cancel)?;
        ctx.telemetry.add_bytes_written(bytes);
        Ok(())
    }
}
