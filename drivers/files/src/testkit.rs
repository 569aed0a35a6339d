//! Test harness: runs drivers against a real step cache and real files.

use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use osiris_engine::driver::{DriverError, StepContext, StepInput, StepIo};
use osiris_engine::registry::Component;
use osiris_engine::runtime::budget::MemoryBudget;
use osiris_engine::runtime::cache::{CacheError, StepOutput};
use osiris_engine::telemetry::{StepTelemetry, Telemetry};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

pub fn config(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("config must be an object"),
    }
}

pub fn ctx(base: &Path, telemetry: StepTelemetry) -> StepContext {
    StepContext {
        step_id: "s".into(),
        component: "test".into(),
        connection: None,
        cancel: CancellationToken::new(),
        telemetry,
        artifacts_dir: base.join("artifacts"),
        base_dir: base.to_path_buf(),
        memory_budget: 64 << 20,
        batch_size: 1000,
    }
}

/// Runs an extractor; returns its schema, batches and telemetry.
pub async fn extract(
    component: &dyn Component,
    cfg: Value,
    base: &Path,
) -> Result<(SchemaRef, Vec<RecordBatch>, StepTelemetry), DriverError> {
    let driver = component.create(&config(cfg))?;
    let out = StepOutput::new("s", Arc::new(MemoryBudget::new(64 << 20)), base.join("s.arrows"));
    let tel = Telemetry::disabled().step("s");
    let cancel = CancellationToken::new();
    let mut reader = out.reader(cancel.clone(), tel.counters().clone());
    let sink = out.sink(cancel.clone(), tel.clone());
    let io = StepIo { inputs: vec![], output: Some(sink) };
    let c = ctx(base, tel.clone());
    let run = async {
        let r = driver.run(c, io).await;
        out.finish(r.is_ok());
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
    let (r, data) = tokio::join!(run, read);
    r?;
    let (schema, batches) = data.map_err(DriverError::from)?;
    Ok((schema, batches, tel))
}

/// Runs a writer fed with `batches` under `schema`; the upstream finishes with `ok`.
pub async fn write(
    component: &dyn Component,
    cfg: Value,
    base: &Path,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    ok: bool,
) -> Result<StepTelemetry, DriverError> {
    let driver = component.create(&config(cfg))?;
    let out = StepOutput::new("up", Arc::new(MemoryBudget::new(64 << 20)), base.join("up.arrows"));
    let up_tel = Telemetry::disabled().step("up");
    let tel = Telemetry::disabled().step("s");
    let cancel = CancellationToken::new();
    let reader = out.reader(cancel.clone(), tel.counters().clone());
    let mut sink = out.sink(cancel.clone(), up_tel);
    let io =
        StepIo { inputs: vec![StepInput { step_id: "up".into(), table_name: "df_up".into(), reader }], output: None };
    let produce = async {
        sink.set_schema(schema);
        let mut fine = ok;
        for b in batches {
            if sink.send(b).await.is_err() {
                fine = false;
                break;
            }
        }
        out.finish(fine);
    };
    let (r, ()) = tokio::join!(driver.run(ctx(base, tel.clone()), io), produce);
    r.map(|()| tel)
}
