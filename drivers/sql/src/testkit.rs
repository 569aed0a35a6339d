//! Test harness: runs the SQL driver against real step-cache outputs fed by concurrent producers.

use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use osiris_engine::driver::{DriverError, StepContext, StepInput};
use osiris_engine::runtime::budget::MemoryBudget;
use osiris_engine::runtime::cache::{CacheError, StepOutput};
use osiris_engine::runtime::table_name_for;
use osiris_engine::telemetry::Telemetry;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::driver::{QueryStats, SqlDriver};

/// One upstream step: its id, schema and batches.
pub struct Upstream {
    pub id: &'static str,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// What a SQL step produced.
pub struct Outcome {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub stats: QueryStats,
    /// Rows the step read from its inputs (counted by the cache once per batch).
    pub rows_in: u64,
}

/// Runs `query` over `upstreams` with the run budget `budget` (bytes).
pub async fn run_sql(query: &str, upstreams: Vec<Upstream>, base: &Path, budget: u64) -> Result<Outcome, DriverError> {
    let cfg = config(query);
    let driver = SqlDriver::from_config(&cfg)?;
    let run_budget = Arc::new(MemoryBudget::new(budget));
    let cancel = CancellationToken::new();
    let tel = Telemetry::disabled().step("sql");
    let ids: Vec<String> = upstreams.iter().map(|u| u.id.to_string()).collect();

    let mut inputs = Vec::new();
    let mut producers = Vec::new();
    for up in upstreams {
        let out = StepOutput::new(up.id, run_budget.clone(), base.join(format!("{}.arrows", up.id)));
        let reader = out.reader(cancel.clone(), tel.counters().clone());
        let sink = out.sink(cancel.clone(), Telemetry::disabled().step(up.id));
        inputs.push(StepInput { step_id: up.id.into(), table_name: table_name_for(up.id, &ids), reader });
        producers.push(async move {
            let mut sink = sink;
            sink.set_schema(up.schema);
            let mut ok = true;
            for b in up.batches {
                if sink.send(b).await.is_err() {
                    ok = false;
                    break;
                }
            }
            drop(sink);
            out.finish(ok);
        });
    }

    let result = StepOutput::new("sql", run_budget.clone(), base.join("sql.arrows"));
    let mut reader = result.reader(cancel.clone(), Telemetry::disabled().step("down").counters().clone());
    let mut sink = result.sink(cancel.clone(), tel.clone());
    let ctx = StepContext {
        step_id: "sql".into(),
        component: crate::SQL_NAME.into(),
        connection: None,
        cancel: cancel.clone(),
        telemetry: tel.clone(),
        artifacts_dir: base.join("artifacts").join("sql"),
        base_dir: base.to_path_buf(),
        memory_budget: budget,
        batch_size: 1000,
    };
    let run = async {
        let r = driver.execute(&ctx, inputs, &mut sink).await;
        drop(sink);
        result.finish(r.is_ok());
        r
    };
    let read = async {
        let schema = reader.schema().await?;
        let mut batches = Vec::new();
        while let Some(b) = reader.next_batch().await? {
            batches.push(b);
        }
        Ok::<_, CacheError>((schema, batches))
    };
    let (r, data, _) = tokio::join!(run, read, futures::future::join_all(producers));
    let stats = r?;
    let (schema, batches) = data.map_err(DriverError::from)?;
    let rows_in = tel.counters().rows_in.load(std::sync::atomic::Ordering::Relaxed);
    Ok(Outcome { schema, batches, stats, rows_in })
}

pub fn config(query: &str) -> serde_json::Map<String, serde_json::Value> {
    match json!({ "query": query }) {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    }
}
