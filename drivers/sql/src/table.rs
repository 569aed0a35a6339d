//! A DataFusion table over a retained step-cache input.
//!
//! [`CachedInputTable`] is a [`TableProvider`] whose scan is a one-partition
//! [`StreamingTableExec`]; every `execute` of that plan starts a fresh
//! [`RetainedInput::scan`] from the input's first batch, so a plan may read the input any number
//! of times (a self-join, a subquery) while the producer runs once and nothing is copied into a
//! `MemTable`. Projection is applied by the exec on each batch.

use std::sync::Arc;

use arrow_schema::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use futures::StreamExt;
use osiris_engine::runtime::cache::RetainedInput;

/// One upstream output as a SQL table.
#[derive(Debug)]
pub(crate) struct CachedInputTable {
    partition: Arc<CachedInputPartition>,
}

impl CachedInputTable {
    pub(crate) fn new(schema: SchemaRef, input: RetainedInput) -> Self {
        CachedInputTable { partition: Arc::new(CachedInputPartition { schema, input }) }
    }
}

#[async_trait]
impl TableProvider for CachedInputTable {
    fn schema(&self) -> SchemaRef {
        self.partition.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let partitions: Vec<Arc<dyn PartitionStream>> = vec![self.partition.clone()];
        let exec =
            StreamingTableExec::try_new(self.partition.schema.clone(), partitions, projection, [], false, limit)?;
        Ok(Arc::new(exec))
    }
}

/// The single partition of a [`CachedInputTable`]: each `execute` is a new scan of the input.
struct CachedInputPartition {
    schema: SchemaRef,
    input: RetainedInput,
}

impl std::fmt::Debug for CachedInputPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedInputPartition").field("step_id", &self.input.step_id()).finish_non_exhaustive()
    }
}

impl PartitionStream for CachedInputPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let stream = self.input.scan().map(|r| r.map_err(|e| DataFusionError::External(Box::new(e))));
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}
