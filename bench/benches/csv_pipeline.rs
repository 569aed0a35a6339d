//! CSV → CSV through the engine, side by side with the anchor: arrow-rs's own CSV reader and
//! writer on the same file (no DAG, no step cache, no type checks beyond arrow's inference).
//! Report the ratio osiris / anchor. Run: `cargo bench -p osiris-bench --bench csv_pipeline`.

use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use osiris_engine::embed::PipelineRun;

const ROWS: u64 = 200_000;

fn pipeline(input: &Path, output: &Path) -> String {
    format!(
        "oml_version: \"0.1.0\"\nname: bench\nsteps:\n  - id: extract\n    component: filesystem.csv_extractor\n    mode: read\n    config: {{path: \"{}\"}}\n  - id: write\n    component: filesystem.csv_writer\n    mode: write\n    config: {{path: \"{}\"}}\n",
        input.display(),
        output.display()
    )
}

fn registry() -> osiris_engine::registry::Registry {
    let mut registry = osiris_engine::registry::Registry::new();
    osiris_driver_files::register(&mut registry).unwrap();
    registry
}

async fn osiris_copy(input: &Path, output: &Path, run_dir: &Path, budget: u64) {
    let run = PipelineRun::builder(registry())
        .pipeline_text("bench.yaml", pipeline(input, output))
        .run_dir(run_dir)
        .memory_budget(budget)
        .build()
        .unwrap();
    let report = run.execute().await;
    assert!(report.succeeded(), "{:?}", report.failure);
}

fn anchor_copy(input: &Path, output: &Path) {
    let format = arrow_csv::reader::Format::default().with_header(true);
    let (schema, _) = format.infer_schema(std::fs::File::open(input).unwrap(), Some(10_000)).unwrap();
    let reader = arrow_csv::ReaderBuilder::new(Arc::new(schema))
        .with_header(true)
        .with_batch_size(8192)
        .build(std::fs::File::open(input).unwrap())
        .unwrap();
    let mut writer = arrow_csv::Writer::new(BufWriter::with_capacity(1 << 20, std::fs::File::create(output).unwrap()));
    for batch in reader {
        writer.write(&batch.unwrap()).unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.csv");
    let mut file = BufWriter::new(std::fs::File::create(&input).unwrap());
    osiris_bench::datagen::write_orders_csv(&mut file, ROWS).unwrap();
    drop(file);
    let bytes = std::fs::metadata(&input).unwrap().len();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();

    let mut group = c.benchmark_group("csv_to_csv");
    group.sample_size(10).throughput(Throughput::Bytes(bytes));
    group.bench_function("anchor_arrow_csv", |b| b.iter(|| anchor_copy(&input, &dir.path().join("anchor.csv"))));
    let (out, run_dir) = (dir.path().join("osiris.csv"), dir.path().join("run"));
    group.bench_function("osiris_default_budget", |b| {
        b.to_async(&runtime).iter(|| osiris_copy(&input, &out, &run_dir, 256 << 20))
    });
    let (spill_out, spill_dir) = (dir.path().join("spill.csv"), dir.path().join("run-spill"));
    group.bench_function("osiris_spilling_64k_budget", |b| {
        b.to_async(&runtime).iter(|| osiris_copy(&input, &spill_out, &spill_dir, 64 << 10))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
