//! # osiris-engine
//!
//! The engine of Osiris in Rust: OML pipelines, the compiler and its fingerprinted manifest,
//! connections, the DAG runtime whose edges carry Arrow `RecordBatch`es through a columnar step
//! cache, the driver contract and component registry, and telemetry. It has no database or
//! network code; drivers live in their own crates.

pub mod calendar;
pub mod compile;
pub mod config;
pub mod connections;
pub mod driver;
pub mod embed;
pub mod manifest;
pub mod pipeline;
pub mod placeholders;
pub mod prepare;
pub mod prepared;
pub mod registry;
pub mod runlog;
pub mod runtime;
pub mod scratch;
pub mod spec;
pub mod telemetry;
#[cfg(test)]
mod test_support;
pub mod yaml;

/// What secret values are replaced with wherever they would otherwise be shown.
pub const MASK: &str = "***MASKED***";
