//! The SQL driver: one DataFusion session per step, inputs served from the step cache.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use datafusion::common::TableReference;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::DFParser;
use futures::StreamExt;
use osiris_engine::driver::{Driver, DriverError, StepContext, StepInput, StepIo, parse_config};
use osiris_engine::runtime::cache::{OutputSink, RetainedInput};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{self, SQL_ERROR};
use crate::table::CachedInputTable;

/// Smallest DataFusion memory pool, whatever the run's budget.
pub(crate) const MIN_POOL_BYTES: u64 = 8 << 20;
/// Partitions DataFusion plans for (the sandboxes have 2 vCPUs).
const TARGET_PARTITIONS: usize = 2;

#[derive(Debug, Deserialize)]
struct SqlConfig {
    query: String,
}

/// Runs the step's `query` over its inputs.
#[derive(Debug)]
pub struct SqlDriver {
    query: String,
}

/// What a finished query did, for tests and diagnostics.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct QueryStats {
    pub spill_count: usize,
    pub spilled_bytes: usize,
}

impl SqlDriver {
    /// Validates the config and parses the query (no I/O), so syntax errors surface at compile time.
    pub fn from_config(config: &Map<String, Value>) -> Result<Self, DriverError> {
        let cfg: SqlConfig = parse_config(config)?;
        if cfg.query.trim().is_empty() {
            return Err(DriverError::new("config.invalid", "`query` is empty").with_hint("write a SELECT statement"));
        }
        let statements = DFParser::parse_sql(&cfg.query).map_err(|e| {
            DriverError::new(SQL_ERROR, format!("SQL syntax error: {}", error::text(&e)))
                .with_hint("the query uses Apache DataFusion's SQL dialect (see docs/sql.md)")
        })?;
        if statements.len() != 1 {
            return Err(DriverError::new(
                SQL_ERROR,
                format!("`query` must hold exactly one SQL statement, found {}", statements.len()),
            )
            .with_hint("combine the steps with WITH ... AS (...) or split them into several sql.processor steps"));
        }
        Ok(SqlDriver { query: cfg.query })
    }

    /// Plans and runs the query, streaming its result into `output`.
    pub(crate) async fn execute(
        &self,
        ctx: &StepContext,
        inputs: Vec<StepInput>,
        output: &mut OutputSink,
    ) -> Result<QueryStats, DriverError> {
        // Retain every input before reading anything: the plan may scan an input several times.
        let mut tables: Vec<(String, SchemaRef)> = Vec::with_capacity(inputs.len());
        let mut retained: Vec<RetainedInput> = Vec::with_capacity(inputs.len());
        for input in inputs {
            let r = input.reader.retain();
            tables.push((input.table_name, r.schema().await?));
            retained.push(r);
        }

        let session = session(ctx)?;
        for ((name, schema), input) in tables.iter().zip(retained.iter().cloned()) {
            let table = Arc::new(CachedInputTable::new(schema.clone(), input));
            let register = |reference: String| {
                session.register_table(TableReference::bare(reference), table.clone()).map_err(|e| {
                    DriverError::new(SQL_ERROR, format!("cannot register input table {name}: {}", error::text(&e)))
                })
            };
            register(name.clone())?;
            // Unquoted identifiers are lower-cased: make `df_MyStep` reachable as written too.
            let lower = name.to_ascii_lowercase();
            if lower != *name && !tables.iter().any(|(n, _)| *n == lower) {
                register(lower)?;
            }
        }

        let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        let df = session.sql_with_options(&self.query, options).await.map_err(|e| error::planning(e, &tables))?;
        let plan = df.create_physical_plan().await.map_err(|e| error::planning(e, &tables))?;
        let schema = plan.schema();
        output.set_schema(schema.clone());

        let mut stream = execute_stream(plan.clone(), session.task_ctx()).map_err(error::execution)?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(error::execution)?;
            output.send(conform(batch, &schema)?).await?;
        }
        drop(stream);
        let stats = spill_stats(&plan);
        drop(plan);
        drop(session);
        // A query may stop reading early (LIMIT, a table it never scans): dropping the inputs
        // stops their producers, which then end normally.
        drop(retained);
        Ok(stats)
    }
}

#[async_trait]
impl Driver for SqlDriver {
    async fn run(self: Box<Self>, ctx: StepContext, mut io: StepIo) -> Result<(), DriverError> {
        let mut output = io.take_output()?;
        let inputs = std::mem::take(&mut io.inputs);
        let cancel = ctx.cancel.clone();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(DriverError::cancelled()),
            r = self.execute(&ctx, inputs, &mut output) => r.map(|_| ()),
        }
    }
}

/// The DataFusion pool size for a run budget: half of it, at least [`MIN_POOL_BYTES`].
pub(crate) fn pool_bytes(memory_budget: u64) -> u64 {
    (memory_budget / 2).max(MIN_POOL_BYTES)
}

/// A session whose operators share a spilling memory pool and spill under the artifacts directory.
fn session(ctx: &StepContext) -> Result<SessionContext, DriverError> {
    let pool = pool_bytes(ctx.memory_budget);
    let spill_root = spill_root(&ctx.artifacts_dir)?;
    let track = NonZeroUsize::new(5).expect("non-zero");
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(TrackConsumersPool::new(FairSpillPool::new(pool as usize), track)))
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Directories(vec![spill_root])),
        )
        .build_arc()
        .map_err(|e| {
            DriverError::new("transform.execution_error", format!("cannot start the SQL engine: {}", error::text(&e)))
        })?;
    let mut config = SessionConfig::new()
        .with_target_partitions(TARGET_PARTITIONS)
        .with_batch_size(ctx.batch_size.max(1))
        .with_information_schema(false);
    // The sort merge reservation defaults to 10 MiB, more than a small pool holds.
    config.options_mut().execution.sort_spill_reservation_bytes = (pool as usize / 8).min(10 << 20);
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// The directory DataFusion creates its (self-deleting) spill directory in.
fn spill_root(artifacts_dir: &Path) -> Result<std::path::PathBuf, DriverError> {
    std::fs::create_dir_all(artifacts_dir).map_err(|e| {
        DriverError::new(
            "transform.execution_error",
            format!("cannot create the SQL spill directory under {}: {e}", artifacts_dir.display()),
        )
    })?;
    Ok(artifacts_dir.to_path_buf())
}

/// Gives a result batch the plan's schema (DataFusion may differ in field metadata only).
fn conform(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, DriverError> {
    if batch.schema_ref() == schema {
        return Ok(batch);
    }
    RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).map_err(|e| {
        DriverError::new(error::EXECUTION_ERROR, format!("SQL result batch does not match the planned schema: {e}"))
    })
}

/// Spills of every operator of an executed plan.
fn spill_stats(plan: &Arc<dyn ExecutionPlan>) -> QueryStats {
    let mut stats = QueryStats::default();
    let mut stack = vec![plan.clone()];
    while let Some(node) = stack.pop() {
        if let Some(metrics) = node.metrics() {
            stats.spill_count += metrics.spill_count().unwrap_or(0);
            stats.spilled_bytes += metrics.spilled_bytes().unwrap_or(0);
        }
        stack.extend(node.children().into_iter().cloned());
    }
    stats
}
