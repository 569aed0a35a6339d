//! The Parquet extractor driver.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use osiris_engine::driver::{Driver, DriverError, StepContext, StepIo, parse_config};
use osiris_engine::telemetry::StepTelemetry;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::common::{Emitter, invalid, open_input, run_producer};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    path: String,
    #[serde(default)]
    columns: Option<Vec<String>>,
    #[serde(default)]
    batch_size: Option<u64>,
    #[serde(default)]
    limit: Option<u64>,
}

/// Validated options.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    path: String,
    columns: Option<Vec<String>>,
    batch_size: Option<usize>,
    limit: Option<usize>,
}

impl Options {
    pub(crate) fn parse(config: &Map<String, Value>) -> Result<Self, DriverError> {
        let raw: RawConfig = parse_config(config)?;
        if raw.path.trim().is_empty() {
            return Err(invalid("`path` is empty").with_hint("set `path` to the Parquet file to read"));
        }
        if let Some(b) = raw.batch_size
            && (b == 0 || b > 10_000_000)
        {
            return Err(
                invalid(format!("invalid batch_size {b}")).with_hint("use a number of rows between 1 and 10000000")
            );
        }
        Ok(Options {
            path: raw.path,
            columns: raw.columns,
            batch_size: raw.batch_size.map(|b| b as usize),
            limit: raw.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
        })
    }
}

/// Streams a Parquet file.
#[derive(Debug)]
pub(crate) struct ParquetExtractorDriver {
    pub opts: Options,
}

#[async_trait]
impl Driver for ParquetExtractorDriver {
    async fn run(self: Box<Self>, ctx: StepContext, mut io: StepIo) -> Result<(), DriverError> {
        let output = io.take_output()?;
        let path = crate::common::resolve_data_path(&ctx, &self.opts.path);
        let telemetry = ctx.telemetry.clone();
        let batch_size = self.opts.batch_size.unwrap_or(ctx.batch_size.max(1));
        let opts = self.opts;
        run_producer(&ctx, output, move |em| read(&opts, &path, batch_size, &telemetry, em)).await
    }
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> DriverError {
    DriverError::new("extract.read_error", format!("cannot read Parquet file '{}': {e}", path.display()))
        .with_hint("check that the file is a valid Parquet file")
}

fn read(
    opts: &Options,
    path: &Path,
    batch_size: usize,
    telemetry: &StepTelemetry,
    em: &Emitter,
) -> Result<(), DriverError> {
    let file = open_input(path)?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| read_error(path, e))?;
    let file_schema = builder.schema().clone();
    // Positions (within the projected, file-ordered columns) of the requested columns.
    let mut reorder: Option<Vec<usize>> = None;
    if let Some(wanted) = &opts.columns {
        let mut indices = Vec::with_capacity(wanted.len());
        for name in wanted {
            let i = file_schema.index_of(name).map_err(|_| {
                let names: Vec<&str> = file_schema.fields().iter().map(|f| f.name().as_str()).take(20).collect();
                DriverError::new(
                    "extract.column_not_found",
                    format!(
                        "column '{name}' named in `columns` is not in {} (columns: {})",
                        path.display(),
                        names.join(", ")
                    ),
                )
                .with_hint("fix `columns` to use the file's column names")
            })?;
            indices.push(i);
        }
        let mut sorted = indices.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let mask = ProjectionMask::roots(builder.parquet_schema(), sorted.iter().copied());
        builder = builder.with_projection(mask);
        reorder = Some(indices.iter().map(|i| sorted.iter().position(|s| s == i).unwrap_or(0)).collect());
    }
    builder = builder.with_batch_size(batch_size);
    if let Some(limit) = opts.limit {
        builder = builder.with_limit(limit);
    }
    let reader = builder.build().map_err(|e| read_error(path, e))?;
    let schema = {
        use arrow_array::RecordBatchReader;
        reader.schema()
    };
    let out_schema = match &reorder {
        Some(pos) => Arc::new(schema.project(pos).map_err(|e| read_error(path, e))?),
        None => schema,
    };
    em.schema(out_schema)?;
    for batch in reader {
        em.check_cancel()?;
        let batch = batch.map_err(|e| read_error(path, e))?;
        let batch = match &reorder {
            Some(pos) => batch.project(pos).map_err(|e| read_error(path, e))?,
            None => batch,
        };
        telemetry.add_rows_read(batch.num_rows() as u64);
        em.batch(batch)?;
    }
    telemetry.add_bytes_read(file_len);
    Ok(())
}
