//! File drivers of Osiris in Rust: `filesystem.csv_extractor`, `filesystem.csv_writer`,
//! `filesystem.parquet_extractor` and `filesystem.parquet_writer`.
//!
//! Every reader streams in bounded memory (a blocking thread feeds a small bounded channel) and
//! every writer writes atomically: the data goes to a temporary file next to the target, which is
//! renamed onto the target only when the whole input was written.

pub mod atomic;
mod common;
pub mod csv;
pub mod parquet;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

use osiris_engine::registry::{Registry, RegistryError};

pub use crate::csv::{CsvExtractor, CsvWriter};
pub use crate::parquet::{ParquetExtractor, ParquetWriter};

/// Registers the four file components.
pub fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    registry.register(CsvExtractor::new())?;
    registry.register(CsvWriter::new())?;
    registry.register(ParquetExtractor::new())?;
    registry.register(ParquetWriter::new())?;
    Ok(())
}

/// Names of the components [`register`] adds.
pub fn component_names() -> [&'static str; 4] {
    [crate::csv::EXTRACTOR_NAME, crate::csv::WRITER_NAME, crate::parquet::EXTRACTOR_NAME, crate::parquet::WRITER_NAME]
}
