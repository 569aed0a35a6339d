//! Maps DataFusion errors to Osiris-style [`DriverError`] codes.

use std::error::Error;

use arrow_schema::SchemaRef;
use datafusion::common::DataFusionError;
use osiris_engine::driver::DriverError;
use osiris_engine::runtime::cache::CacheError;

/// Code of planning and SQL errors (syntax, unknown tables or columns, type errors).
pub(crate) const SQL_ERROR: &str = "transform.sql_error";
/// Code of a query that needs more memory than its pool, even with spilling.
pub(crate) const RESOURCES_EXHAUSTED: &str = "transform.resources_exhausted";
/// Code of any other failure while the query runs.
pub(crate) const EXECUTION_ERROR: &str = "transform.execution_error";

/// DataFusion's message without its backtrace.
pub(crate) fn text(err: &DataFusionError) -> String {
    err.strip_backtrace()
}

/// An error of parsing or planning the query.
pub(crate) fn planning(err: DataFusionError, tables: &[(String, SchemaRef)]) -> DriverError {
    if let Some(e) = known(&err) {
        return e;
    }
    DriverError::new(SQL_ERROR, format!("SQL error: {}", text(&err))).with_hint(tables_hint(tables)).with_source(err)
}

/// An error while the query runs.
pub(crate) fn execution(err: DataFusionError) -> DriverError {
    if let Some(e) = known(&err) {
        return e;
    }
    DriverError::new(EXECUTION_ERROR, format!("SQL execution failed: {}", text(&err))).with_source(err)
}

/// Cancellation, upstream failures and memory exhaustion, wherever they sit in the error chain.
fn known(err: &DataFusionError) -> Option<DriverError> {
    let mut cur: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(cache) = e.downcast_ref::<CacheError>() {
            return Some(match cache {
                CacheError::Cancelled | CacheError::NoConsumers { .. } => DriverError::cancelled(),
                CacheError::UpstreamFailed { step_id } => {
                    DriverError::new("run.upstream_failed", format!("upstream step '{step_id}' failed"))
                }
                other => DriverError::new("runtime.cache_error", other.to_string()),
            });
        }
        if let Some(DataFusionError::ResourcesExhausted(msg)) = e.downcast_ref::<DataFusionError>() {
            return Some(resources(msg));
        }
        cur = e.source();
    }
    let msg = text(err);
    msg.contains("Resources exhausted").then(|| resources(&msg))
}

fn resources(msg: &str) -> DriverError {
    DriverError::new(RESOURCES_EXHAUSTED, format!("the SQL query ran out of memory: {msg}")).with_hint(
        "raise the run's memory budget (the SQL step uses half of it), or reduce the data the query holds at once: \
hash joins keep their build side (the smaller input) in memory and cannot spill; sorts and aggregates spill to disk",
    )
}

/// "available tables: df_a (id, name), df_b (x)".
pub(crate) fn tables_hint(tables: &[(String, SchemaRef)]) -> String {
    if tables.is_empty() {
        return "this step has no inputs: list the steps whose outputs the query reads in `needs`; \
their tables are named df_<step id> (non-alphanumerics as _)"
            .into();
    }
    let list: Vec<String> = tables
        .iter()
        .map(|(name, schema)| {
            let cols: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            format!("{name} ({})", cols.join(", "))
        })
        .collect();
    format!(
        "available tables: {}; unquoted identifiers are lower-cased, so quote mixed-case columns (\"Name\")",
        list.join(", ")
    )
}
