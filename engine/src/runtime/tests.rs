//! Runtime tests with small in-memory drivers: fan-out, spilling, failures, deadlock freedom.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::connections::ProcessEnv;
use crate::driver::{Driver, parse_config};
use crate::manifest::{Fingerprints, Manifest, ManifestMeta, ManifestPipeline, Toolchain};
use crate::prepared::{PreparedRun, PreparedStep, RunLimits, RunMetadata};
use crate::registry::Component;
use crate::spec::{ComponentSpec, ConfigField, FieldType};
use crate::telemetry::{MemorySink, RecordBody};

/// Collected batches per collector name.
fn collected() -> &'static Mutex<HashMap<String, Vec<RecordBatch>>> {
    static COLLECTED: OnceLock<Mutex<HashMap<String, Vec<RecordBatch>>>> = OnceLock::new();
    COLLECTED.get_or_init(Default::default)
}

fn spec(name: &str, mode: Mode) -> ComponentSpec {
    ComponentSpec {
        name: name.into(),
        version: "0.1.0".into(),
        title: name.into(),
        description: String::new(),
        modes: vec![mode],
        config: vec![ConfigField::optional("n", FieldType::Any, "")],
        connection: None,
        example: None,
    }
}

#[derive(Deserialize, Debug)]
struct GenerateConfig {
    rows: i64,
    batch: i64,
}

#[derive(Debug)]
struct Generate(GenerateConfig);

#[async_trait]
impl Driver for Generate {
    async fn run(self: Box<Self>, ctx: StepContext, mut io: StepIo) -> Result<(), DriverError> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("text", DataType::Utf8, true),
        ]));
        if !io.inputs.is_empty() {
            return Err(DriverError::new("test.unexpected_input", "an extractor was given input streams"));
        }
        let mut output = io.take_output()?;
        output.set_schema(schema.clone());
        let mut start = 0;
        while start < self.0.rows {
            let end = (start + self.0.batch).min(self.0.rows);
            let ids = Int64Array::from_iter_values(start..end);
            let texts = StringArray::from_iter(
                (start..end).map(|i| (i % 7 != 0).then(|| format!("row {i} of {}", ctx.step_id))),
            );
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(texts)]).unwrap();
            ctx.telemetry.add_rows_read((end - start) as u64);
            output.send(batch).await?;
            start = end;
        }
        Ok(())
    }
}

#[derive(Deserialize, Debug)]
struct CollectConfig {
    name: String,
    #[serde(default)]
    fail_after: Option<usize>,
    /// Sleep this long after each batch (a slow writer).
    #[serde(default)]
    delay_ms: u64,
    /// Panic after this many batches.
    #[serde(default)]
    panic_after: Option<usize>,
    /// Cancel the whole run (as Ctrl-C does) after this many batches, and stop reading.
    #[serde(default)]
    cancel_run_after: Option<usize>,
}

/// The run token of the test whose collector has `cancel_run_after`.
fn run_to_cancel() -> &'static CancellationToken {
    static TOKEN: OnceLock<CancellationToken> = OnceLock::new();
    TOKEN.get_or_init(CancellationToken::new)
}

/// Reads its inputs one after the other, each completely (like a join building its sides).
#[derive(Debug)]
struct Collect(CollectConfig);

#[async_trait]
impl Driver for Collect {
    async fn run(self: Box<Self>, ctx: StepContext, io: StepIo) -> Result<(), DriverError> {
        let mut batches = Vec::new();
        for mut input in io.inputs {
            while let Some(batch) = input.reader.next_batch().await? {
                ctx.telemetry.add_rows_written(batch.num_rows() as u64);
                batches.push(batch);
                if Some(batches.len()) == self.0.fail_after {
                    return Err(DriverError::new("write.io_error", "disk on fire").with_hint("call the fire brigade"));
                }
                assert!(Some(batches.len()) != self.0.panic_after, "collector {} gave up", self.0.name);
                if Some(batches.len()) == self.0.cancel_run_after {
                    run_to_cancel().cancel();
                    return Err(DriverError::cancelled());
                }
                if self.0.delay_ms > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(self.0.delay_ms)).await;
                }
            }
        }
        collected().lock().unwrap().insert(self.0.name.clone(), batches);
        Ok(())
    }
}

/// Copies its single input to its output.
#[derive(Debug)]
struct Pass;

#[async_trait]
impl Driver for Pass {
    async fn run(self: Box<Self>, _ctx: StepContext, mut io: StepIo) -> Result<(), DriverError> {
        let mut output = io.take_output()?;
        let mut input = io.single_input()?;
        output.set_schema(input.reader.schema().await?);
        while let Some(batch) = input.reader.next_batch().await? {
            output.send(batch).await?;
        }
        Ok(())
    }
}

type MakeDriver = fn(&Map<String, Value>) -> Result<Box<dyn Driver>, DriverError>;

struct TestComponent {
    spec: ComponentSpec,
    make: MakeDriver,
}

impl Component for TestComponent {
    fn spec(&self) -> &ComponentSpec {
        &self.spec
    }
    fn create(&self, config: &Map<String, Value>) -> Result<Box<dyn Driver>, DriverError> {
        (self.make)(config)
    }
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.register(TestComponent {
        spec: spec("test.generate", Mode::Extract),
        make: |c| Ok(Box::new(Generate(parse_config(c)?))),
    })
    .unwrap();
    r.register(TestComponent { spec: spec("test.pass", Mode::Transform), make: |_| Ok(Box::new(Pass)) }).unwrap();
    r.register(TestComponent {
        spec: spec("test.collect", Mode::Write),
        make: |c| Ok(Box::new(Collect(parse_config(c)?))),
    })
    .unwrap();
    r
}

fn step(id: &str, component: &str, mode: Mode, needs: &[&str], config: Value) -> PreparedStep {
    PreparedStep {
        id: id.into(),
        component: component.into(),
        mode,
        needs: needs.iter().map(|s| s.to_string()).collect(),
        config: config.as_object().unwrap().clone(),
        connection: None,
    }
}

fn prepared(steps: Vec<PreparedStep>, memory_budget: u64) -> PreparedRun {
    let fp = || "sha256:0".to_string();
    let plan = Manifest {
        meta: ManifestMeta {
            generated_at: String::new(),
            manifest_hash: "0".repeat(64),
            manifest_short: "0000000".into(),
            oml_version: "0.1.0".into(),
            profile: "dev".into(),
            run_id: "${run_id}".into(),
            toolchain: Toolchain { compiler: "test".into(), registry: "test".into() },
        },
        metadata: None,
        name: Some("test".into()),
        pipeline: ManifestPipeline {
            fingerprints: Fingerprints {
                compiler_fp: fp(),
                manifest_fp: fp(),
                oml_fp: fp(),
                params_fp: fp(),
                profile: "dev".into(),
                registry_fp: fp(),
            },
            id: "test".into(),
            version: "0.1.0".into(),
        },
        steps: Vec::new(),
    };
    let metadata = RunMetadata {
        session_id: "run".into(),
        pipeline_id: "test".into(),
        pipeline_slug: "test".into(),
        created_at: String::new(),
        compiler_fingerprint: fp(),
        manifest_hash: "0".repeat(64),
        adapter_target: "local".into(),
    };
    PreparedRun::from_steps(plan, steps, RunLimits { memory_budget, batch_size: 1024 }, metadata)
}

async fn run(steps: Vec<PreparedStep>, memory_budget: u64) -> (RunReport, Vec<crate::telemetry::Record>) {
    run_with(steps, memory_budget, CancellationToken::new()).await
}

async fn run_with(
    steps: Vec<PreparedStep>,
    memory_budget: u64,
    cancel: CancellationToken,
) -> (RunReport, Vec<crate::telemetry::Record>) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new());
    let env = RunEnv {
        registry: registry(),
        telemetry: Telemetry::new("run", vec![sink.clone()]),
        secrets: Arc::new(ProcessEnv),
        run_dir: dir.path().to_path_buf(),
        base_dir: dir.path().to_path_buf(),
        cancel,
    };
    let report = Execution::new(prepared(steps, memory_budget), env).unwrap().run().await;
    assert!(!dir.path().join("spill").exists(), "spill directory is removed after the run");
    (report, sink.records())
}

fn take(name: &str) -> Vec<RecordBatch> {
    collected().lock().unwrap().remove(name).unwrap_or_else(|| panic!("collector {name} did not finish"))
}

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    batches.iter().flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()).collect()
}

fn events(records: &[crate::telemetry::Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match &r.body {
            RecordBody::Event(e) => Some(e.name().to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_delivers_every_row_to_every_consumer() {
    let (report, records) = run(
        vec![
            step("gen", "test.generate", Mode::Extract, &[], json!({"rows": 10_000, "batch": 100})),
            step("a", "test.collect", Mode::Write, &["gen"], json!({"name": "fan_a"})),
            step("b", "test.collect", Mode::Write, &["gen"], json!({"name": "fan_b"})),
        ],
        64 << 20,
    )
    .await;
    assert!(report.succeeded(), "{report:?}");
    let expected: Vec<i64> = (0..10_000).collect();
    assert_eq!(ids(&take("fan_a")), expected);
    assert_eq!(ids(&take("fan_b")), expected);
    assert_eq!(report.total_rows, 20_000);
    assert!(!events(&records).contains(&"cache_spill_start".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_budget_spills_and_gives_identical_batches() {
    let steps = |name: &str| {
        vec![
            step("gen", "test.generate", Mode::Extract, &[], json!({"rows": 5_000, "batch": 128})),
            step("w", "test.collect", Mode::Write, &["gen"], json!({"name": name})),
        ]
    };
    let (report, _) = run(steps("roomy"), 64 << 20).await;
    assert!(report.succeeded());
    let (report, records) = run(steps("tiny"), 1024).await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(take("roomy"), take("tiny"));
    let names = events(&records);
    assert!(names.contains(&"cache_spill_start".to_string()), "{names:?}");
    assert!(names.contains(&"cache_spill_complete".to_string()), "{names:?}");
    assert!(report.cache_peak_bytes <= 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_branch_cancels_downstream_while_other_branch_completes() {
    let (report, records) = run(
        vec![
            step("gen_bad", "test.generate", Mode::Extract, &[], json!({"rows": 100_000, "batch": 100})),
            step("bad", "test.collect", Mode::Write, &["gen_bad"], json!({"name": "bad", "fail_after": 3})),
            step("after_bad", "test.collect", Mode::Write, &["bad"], json!({"name": "after_bad"})),
            step("gen_ok", "test.generate", Mode::Extract, &[], json!({"rows": 3_000, "batch": 100})),
            step("good", "test.collect", Mode::Write, &["gen_ok"], json!({"name": "good"})),
        ],
        64 << 20,
    )
    .await;
    assert!(!report.succeeded());
    let failure = report.failure.clone().unwrap();
    assert_eq!(failure.step_id, "bad");
    assert_eq!(failure.code, "write.io_error");
    assert_eq!(ids(&take("good")), (0..3_000).collect::<Vec<_>>());
    let status = |id: &str| report.steps.iter().find(|s| s.step_id == id).unwrap().status;
    assert_eq!(status("bad"), StepStatus::Failed);
    assert_eq!(status("after_bad"), StepStatus::Cancelled);
    assert_eq!(status("good"), StepStatus::Succeeded);
    assert_eq!(status("gen_bad"), StepStatus::Succeeded, "a producer whose every consumer stopped ends early");
    let gen_bad = report.steps.iter().find(|s| s.step_id == "gen_bad").unwrap();
    assert!(gen_bad.rows_out < 100_000, "it stopped early instead of reading everything: {}", gen_bad.rows_out);
    let names = events(&records);
    assert!(names.contains(&"step_error".to_string()));
    assert!(names.contains(&"run_error".to_string()));
    assert_eq!(names.last().unwrap(), "run_end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_whose_consumer_stopped_because_the_run_was_cancelled_is_cancelled_not_complete() {
    // The collector cancels the run and stops reading; the generator does not look at the token,
    // so its next send finds no live consumer (not a cancelled wait).
    let (report, records) = run_with(
        vec![
            step("gen", "test.generate", Mode::Extract, &[], json!({"rows": 100_000_000, "batch": 1})),
            step("stop", "test.collect", Mode::Write, &["gen"], json!({"name": "stop", "cancel_run_after": 1})),
        ],
        64 << 20,
        run_to_cancel().clone(),
    )
    .await;
    assert!(report.failure.is_none(), "{report:?}");
    let status = |id: &str| report.steps.iter().find(|s| s.step_id == id).unwrap().status;
    assert_eq!((status("gen"), status("stop")), (StepStatus::Cancelled, StepStatus::Cancelled));
    assert!(!events(&records).contains(&"step_complete".to_string()), "{:?}", events(&records));
    assert_eq!(events(&records).last().unwrap(), "run_end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_consumer_of_two_inputs_does_not_deadlock() {
    // gen → (left, right) both passing through the cache; `join` reads all of `gen` via one
    // input before touching the second one: the producer must not wait for it forever.
    let (report, _) = run(
        vec![
            step("gen", "test.generate", Mode::Extract, &[], json!({"rows": 20_000, "batch": 100})),
            step("gen2", "test.generate", Mode::Extract, &[], json!({"rows": 20_000, "batch": 100})),
            step("join", "test.collect", Mode::Write, &["gen", "gen2"], json!({"name": "join"})),
            step("side", "test.collect", Mode::Write, &["gen2"], json!({"name": "side"})),
        ],
        16 << 10,
    )
    .await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(ids(&take("join")).len(), 40_000);
    assert_eq!(ids(&take("side")).len(), 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diamond_with_a_side_read_first_does_not_deadlock() {
    // gen → left → join and gen → right → join; `join` drains `left` before it reads `right`.
    // `gen` cannot wait for `right` (whose consumer is not reading yet): it must go on and spill.
    let (report, records) = run(
        vec![
            step("gen", "test.generate", Mode::Extract, &[], json!({"rows": 20_000, "batch": 100})),
            step("left", "test.pass", Mode::Transform, &["gen"], json!({})),
            step("right", "test.pass", Mode::Transform, &["gen"], json!({})),
            step("join", "test.collect", Mode::Write, &["left", "right"], json!({"name": "diamond"})),
        ],
        16 << 10,
    )
    .await;
    assert!(report.succeeded(), "{report:?}");
    let expected: Vec<i64> = (0..20_000).chain(0..20_000).collect();
    assert_eq!(ids(&take("diamond")), expected);
    assert!(events(&records).contains(&"cache_spill_start".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_streams_a_steps_rows_to_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let env = RunEnv {
        registry: registry(),
        telemetry: Telemetry::disabled(),
        secrets: Arc::new(ProcessEnv),
        run_dir: dir.path().to_path_buf(),
        base_dir: dir.path().to_path_buf(),
        cancel: CancellationToken::new(),
    };
    let steps = vec![
        step("gen", "test.generate", Mode::Extract, &[], json!({"rows": 1_000, "batch": 64})),
        step("w", "test.collect", Mode::Write, &["gen"], json!({"name": "tap_w"})),
    ];
    let mut execution = Execution::new(prepared(steps, 1 << 20), env).unwrap();
    let mut tap = execution.tap("gen").unwrap();
    assert!(execution.tap("w").is_err(), "writers have no output to tap");
    let run = tokio::spawn(execution.run());
    let mut rows = 0;
    while let Some(batch) = tap.next_batch().await.unwrap() {
        rows += batch.num_rows();
        assert_eq!(
            batch.column(1).null_count(),
            batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .iter()
                .filter(|i| *i % 7 == 0)
                .count()
        );
    }
    assert_eq!(rows, 1_000);
    assert!(run.await.unwrap().succeeded());
    take("tap_w");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_holds_its_producer_back_instead_of_spilling() {
    // Each batch takes the writer longer than the stall timeout: the producer must still wait
    // (the writer is slow, not blocked on another input) and nothing may spill.
    let (report, records) = run(
        vec![
            step("gen", "test.generate", Mode::Extract, &[], json!({"rows": 1_200, "batch": 100})),
            step("slow", "test.collect", Mode::Write, &["gen"], json!({"name": "slow", "delay_ms": 300})),
        ],
        16 << 10,
    )
    .await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(ids(&take("slow")), (0..1_200).collect::<Vec<_>>());
    let names = events(&records);
    assert!(!names.contains(&"cache_spill_start".to_string()), "a slow consumer must not make its producer spill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extractor_that_needs_another_step_runs_after_it_without_reading_it() {
    // Osiris pipelines chain steps implicitly: `second` needs `first` only for ordering.
    let (report, records) = run(
        vec![
            step("first", "test.generate", Mode::Extract, &[], json!({"rows": 3_000, "batch": 100})),
            step("second", "test.generate", Mode::Extract, &["first"], json!({"rows": 2_000, "batch": 100})),
            step("w1", "test.collect", Mode::Write, &["first"], json!({"name": "order_w1"})),
            step("w2", "test.collect", Mode::Write, &["second"], json!({"name": "order_w2"})),
        ],
        64 << 20,
    )
    .await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(ids(&take("order_w1")).len(), 3_000);
    assert_eq!(ids(&take("order_w2")).len(), 2_000);
    let position = |event: &str, step: &str| {
        records
            .iter()
            .position(|r| {
                matches!(&r.body, RecordBody::Event(e) if e.name() == event
                    && serde_json::to_value(e).unwrap()["step_id"] == step)
            })
            .unwrap()
    };
    assert!(position("step_complete", "first") < position("step_start", "second"));
    assert!(!events(&records).contains(&"cache_spill_start".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_sanitize_alike_spill_to_separate_files() {
    let (report, _) = run(
        vec![
            step("a.b", "test.generate", Mode::Extract, &[], json!({"rows": 4_000, "batch": 100})),
            step("a_b", "test.generate", Mode::Extract, &[], json!({"rows": 4_000, "batch": 100})),
            step("w_dot", "test.collect", Mode::Write, &["a.b"], json!({"name": "dot"})),
            step("w_under", "test.collect", Mode::Write, &["a_b"], json!({"name": "under"})),
        ],
        1024,
    )
    .await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(ids(&take("dot")), (0..4_000).collect::<Vec<_>>());
    assert_eq!(ids(&take("under")), (0..4_000).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_driver_fails_its_step_and_the_run_still_ends() {
    let (report, records) = run(
        vec![
            step("gen", "test.generate", Mode::Extract, &[], json!({"rows": 10_000, "batch": 100})),
            step("boom", "test.collect", Mode::Write, &["gen"], json!({"name": "boom", "panic_after": 2})),
        ],
        64 << 20,
    )
    .await;
    let failure = report.failure.expect("the run fails");
    assert_eq!((failure.step_id.as_str(), failure.code.as_str()), ("boom", "runtime.driver_panic"));
    assert!(failure.message.contains("collector boom gave up"), "{}", failure.message);
    assert_eq!(events(&records).last().unwrap(), "run_end");
}

#[tokio::test]
async fn a_stream_ends_after_its_first_error() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let output = StepOutput::new("up", Arc::new(MemoryBudget::new(1 << 20)), dir.path().join("up.arrows"));
    let stream = output.reader(CancellationToken::new(), Arc::default()).into_stream();
    output.finish(false);
    let items: Vec<_> = stream.collect().await;
    assert_eq!(items.len(), 1);
    assert!(matches!(items[0], Err(cache::CacheError::UpstreamFailed { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_input_can_be_scanned_repeatedly_without_holding_back_its_producer() {
    use futures::TryStreamExt;
    let dir = tempfile::tempdir().unwrap();
    // A tiny budget: the retained batches spill, and the producer must still finish alone.
    let output = StepOutput::new("up", Arc::new(MemoryBudget::new(2048)), dir.path().join("up.arrows"));
    let counters: Arc<StepCounters> = Arc::default();
    let retained = output.reader(CancellationToken::new(), counters.clone()).retain();
    let telemetry = Telemetry::disabled().step("up");
    let mut sink = output.sink(CancellationToken::new(), telemetry);
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    for start in (0..5_000).step_by(100) {
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from_iter_values(start..start + 100))])
                .unwrap();
        sink.send(batch).await.unwrap();
    }
    drop(sink);
    output.finish(true);

    let first: Vec<RecordBatch> = retained.scan().try_collect().await.unwrap();
    let second: Vec<RecordBatch> = retained.scan().try_collect().await.unwrap();
    assert_eq!(ids(&first), (0..5_000).collect::<Vec<_>>());
    assert_eq!(first, second);
    assert_eq!(retained.schema().await.unwrap(), schema);
    assert_eq!(StepCounters::get(&counters.rows_in), 5_000, "rows are counted once, not per scan");
    drop(retained);
    drop(output);
    assert!(!dir.path().join("up.arrows").exists(), "the spill file goes with the output");
}

#[test]
fn abandoned_spill_files_of_earlier_runs_are_removed_and_held_ones_kept() {
    let pipeline_dir = tempfile::tempdir().unwrap();
    let crashed = pipeline_dir.path().join("run-1/spill");
    let live = pipeline_dir.path().join("run-2/spill");
    std::fs::create_dir_all(&crashed).unwrap();
    std::fs::create_dir_all(&live).unwrap();
    for run in ["run-1", "run-2"] {
        std::fs::write(pipeline_dir.path().join(run).join("events.jsonl"), "").unwrap();
    }
    // Not a run log: never looked into.
    let foreign = pipeline_dir.path().join("other-app/spill");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("0-x.arrows"), "not ours").unwrap();
    // A crashed run's file: its lock went with its process.
    drop(crate::scratch::create_locked(&crashed.join("0-extract.arrows")).unwrap());
    let held = crate::scratch::create_locked(&live.join("0-extract.arrows")).unwrap();
    let this_run = pipeline_dir.path().join("run-3");
    std::fs::create_dir_all(&this_run).unwrap();
    cache::remove_abandoned_spills(&this_run);
    assert!(!crashed.exists(), "the crashed run's spill file and its empty spill/ are gone");
    assert!(live.join("0-extract.arrows").exists(), "a live run's spill file stays");
    assert!(foreign.join("0-x.arrows").exists(), "a directory that is not a run log is left alone");
    drop(held);
}
