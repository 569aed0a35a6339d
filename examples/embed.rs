//! Embedding Osiris in a Rust program: compile the bundled pipeline, run it, and read the rows of
//! its extract step as a stream of Arrow `RecordBatch`es while the writers write them.
//!
//! ```sh
//! cargo run --example embed
//! ```

use std::error::Error;
use std::path::Path;

use futures::StreamExt;
use osiris_engine::embed::PipelineRun;

/// Runs `examples/pipelines/orders_fanout.yaml` writing into `out_dir`; returns the rows seen on
/// the stream of step `extract-orders`.
pub async fn run_orders_example(project_root: &Path, out_dir: &Path) -> Result<usize, Box<dyn Error>> {
    let registry = osiris_adapters::components::builtin_registry();
    let mut run = PipelineRun::builder(registry)
        .pipeline_file(project_root.join("examples/pipelines/orders_fanout.yaml"))
        .base_dir(project_root)
        .param("out_dir", out_dir.display().to_string())
        .run_dir(out_dir.join("run"))
        .memory_budget(16 << 20)
        .build()?;

    let mut rows = run.stream("extract-orders")?;
    let execution = tokio::spawn(run.execute());
    let mut seen = 0;
    while let Some(batch) = rows.next().await {
        let batch = batch?;
        println!(
            "extract-orders: batch of {} rows, columns {:?}",
            batch.num_rows(),
            batch.schema().fields().iter().map(|f| f.name()).collect::<Vec<_>>()
        );
        seen += batch.num_rows();
    }
    let report = execution.await?;
    match &report.failure {
        None => println!("run succeeded: {} rows written in {:.3}s", report.total_rows, report.duration_seconds),
        Some(failure) => return Err(format!("step {} failed: {}", failure.step_id, failure.message).into()),
    }
    Ok(seen)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = std::env::temp_dir().join("osiris-embed-example");
    let rows = run_orders_example(root, &out_dir).await?;
    println!("{rows} rows streamed; outputs in {}", out_dir.display());
    Ok(())
}
