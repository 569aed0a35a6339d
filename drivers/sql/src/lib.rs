//! SQL transforms on Apache DataFusion: `sql.processor` and its Osiris-compatibility alias
//! `duckdb.processor`.
//!
//! Every upstream output is a table named `df_<sanitized step id>` (Osiris's naming), backed by
//! the step cache: the query scans the cached batches (as often as the plan needs, e.g. for a
//! self-join) without re-running the producer and without copying the input into a `MemTable`.
//! Sorts, joins and aggregates run in a DataFusion memory pool sized from the run's memory budget
//! and spill to disk past it.

mod driver;
mod error;
mod table;

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

use osiris_engine::driver::{Driver, DriverError};
use osiris_engine::registry::{Component, Registry, RegistryError};
use osiris_engine::spec::{ComponentSpec, ConfigField, FieldType, Mode};
use serde_json::{Map, Value, json};

pub use crate::driver::SqlDriver;

/// Name of the SQL transform component.
pub const SQL_NAME: &str = "sql.processor";
/// Name of the Osiris-compatibility alias of [`SQL_NAME`].
pub const DUCKDB_ALIAS: &str = "duckdb.processor";

/// A SQL transform component (`sql.processor` or its alias `duckdb.processor`).
pub struct SqlProcessor {
    spec: ComponentSpec,
}

impl SqlProcessor {
    /// `sql.processor`.
    pub fn new() -> Self {
        Self::named(
            SQL_NAME,
            "Transform with SQL",
            "Runs a SQL query (Apache DataFusion dialect) over the outputs of the steps it needs. \
Each input is a table named `df_<step id>` with every character other than ASCII letters, digits and `_` replaced by `_` \
(a leading digit gets a `_` prefix; two inputs that sanitize alike get a hash suffix). \
Inputs are read from the step cache, never by re-running their producers; a query may scan an input several times (self-joins). \
A step without inputs may still run a query (`SELECT 1 AS x`, `generate_series`). \
Sorts, joins and aggregates use a memory pool of half the run's memory budget (at least 16 MiB) and spill to disk past it. \
Only queries are allowed: DDL, DML and statements like SET fail with transform.sql_error. See docs/sql.md.",
        )
    }

    /// `duckdb.processor`, the Osiris-compatibility alias.
    pub fn duckdb_alias() -> Self {
        Self::named(
            DUCKDB_ALIAS,
            "Transform with SQL (Osiris-compatibility alias of sql.processor)",
            "Osiris-compatibility alias of `sql.processor`: the same driver, so Osiris pipelines run unchanged. \
The query runs on Apache DataFusion, not DuckDB; standard SQL (SELECT, JOIN, GROUP BY, window functions, CTEs) behaves the same, \
but DuckDB-only functions and syntax do not exist. Inputs are tables named `df_<sanitized step id>` as in Osiris. See docs/sql.md.",
        )
    }

    fn named(name: &str, title: &str, description: &str) -> Self {
        let config = vec![ConfigField::required(
            "query",
            FieldType::String,
            "SQL query; upstream outputs are tables named df_<sanitized step id>",
        )];
        let spec = ComponentSpec {
            name: name.into(),
            version: "0.1.0".into(),
            title: title.into(),
            description: description.into(),
            modes: vec![Mode::Transform],
            config,
            connection: None,
            example: Some(
                json!({"query": "SELECT director_id, COUNT(*) AS c FROM df_extract_movies GROUP BY 1 ORDER BY 1"}),
            ),
        };
        SqlProcessor { spec }
    }
}

impl Default for SqlProcessor {
    fn default() -> Self {
        Self::new()
    }
}

impl Component for SqlProcessor {
    fn spec(&self) -> &ComponentSpec {
        &self.spec
    }

    fn create(&self, config: &Map<String, Value>) -> Result<Box<dyn Driver>, DriverError> {
        Ok(Box::new(SqlDriver::from_config(config)?))
    }
}

/// Registers `sql.processor` and `duckdb.processor`.
pub fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    registry.register(SqlProcessor::new())?;
    registry.register(SqlProcessor::duckdb_alias())?;
    Ok(())
}

/// Names of the components [`register`] adds.
pub fn component_names() -> [&'static str; 2] {
    [SQL_NAME, DUCKDB_ALIAS]
}
