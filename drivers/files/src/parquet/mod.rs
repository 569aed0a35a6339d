//! Parquet components: `filesystem.parquet_extractor` and `filesystem.parquet_writer`.

mod extract;
mod write;

use osiris_engine::driver::{Driver, DriverError};
use osiris_engine::registry::Component;
use osiris_engine::spec::{ComponentSpec, ConfigField, FieldType, Mode};
use serde_json::{Map, Value, json};

/// Name of the Parquet extractor component.
pub const EXTRACTOR_NAME: &str = "filesystem.parquet_extractor";
/// Name of the Parquet writer component.
pub const WRITER_NAME: &str = "filesystem.parquet_writer";

/// `filesystem.parquet_extractor`: streams a Parquet file row group by row group.
pub struct ParquetExtractor {
    spec: ComponentSpec,
}

impl Default for ParquetExtractor {
    fn default() -> Self {
        Self::new()
    }
}

impl ParquetExtractor {
    /// The component with its spec.
    pub fn new() -> Self {
        use FieldType::*;
        let spec = ComponentSpec {
            name: EXTRACTOR_NAME.into(),
            version: "0.1.0".into(),
            title: "Read a Parquet file".into(),
            description: "Streams a Parquet file as Arrow batches in bounded memory, optionally projecting columns and limiting rows.".into(),
            modes: vec![Mode::Extract],
            config: vec![
                ConfigField::required("path", String, "Parquet file to read; relative paths resolve against the connection's base_dir, else the working directory")
                .input_file(),
                ConfigField::optional("columns", Array, "Column names to keep, in this order"),
                ConfigField::optional("batch_size", Integer, "Rows per output batch (default: the run's batch size)"),
                ConfigField::optional("limit", Integer, "Maximum number of rows to read"),
            ],
            connection: Some(crate::common::filesystem_connection()),
            example: Some(json!({"path": "data/orders.parquet"})),
        };
        ParquetExtractor { spec }
    }
}

impl Component for ParquetExtractor {
    fn spec(&self) -> &ComponentSpec {
        &self.spec
    }

    fn create(&self, config: &Map<String, Value>) -> Result<Box<dyn Driver>, DriverError> {
        Ok(Box::new(extract::ParquetExtractorDriver { opts: extract::Options::parse(config)? }))
    }
}

/// `filesystem.parquet_writer`: writes its input as a Parquet file, atomically.
pub struct ParquetWriter {
    spec: ComponentSpec,
}

impl Default for ParquetWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ParquetWriter {
    /// The component with its spec.
    pub fn new() -> Self {
        use FieldType::*;
        let spec = ComponentSpec {
            name: WRITER_NAME.into(),
            version: "0.1.0".into(),
            title: "Write a Parquet file".into(),
            description: "Writes its single input as a Parquet file with the Arrow schema preserved. \
A regular file is written under a temporary name and renamed on success, so a failed run never leaves a truncated file (a run killed outright leaves the temporary file, which the next run writing the same path removes); a symlink's target is replaced that way and the link stays. A FIFO, a device (/dev/null) or /dev/stdout is written through, never replaced, with no atomicity: its reader sees rows as they come, and a failed run leaves what it wrote."
                .into(),
            modes: vec![Mode::Write],
            config: vec![
                ConfigField::required(
                    "path",
                    String,
                    "Parquet file to write; relative paths resolve against the connection's base_dir, else the working directory",
                )
                .output_file(),
                ConfigField::with_default("compression", String, json!("snappy"), "Column chunk compression")
                    .allowed(["none", "snappy", "zstd", "lz4", "gzip"]),
                ConfigField::with_default("row_group_size", Integer, json!(1_048_576), "Maximum rows per row group"),
                ConfigField::with_default("create_dirs", Boolean, json!(true), "Create missing parent directories"),
            ],
            connection: Some(crate::common::filesystem_connection()),
            example: Some(json!({"path": "output/orders.parquet", "compression": "zstd"})),
        };
        ParquetWriter { spec }
    }
}

impl Component for ParquetWriter {
    fn spec(&self) -> &ComponentSpec {
        &self.spec
    }

    fn create(&self, config: &Map<String, Value>) -> Result<Box<dyn Driver>, DriverError> {
        Ok(Box::new(write::ParquetWriterDriver { opts: write::Options::parse(config)? }))
    }
}
