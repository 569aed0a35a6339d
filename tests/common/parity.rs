//! The adapter conformance harness: runs one pipeline through several execution targets, each
//! in its own copy of the same project, and reduces every run to what must not differ between
//! adapters — events, metrics, run-log inventory, artifacts, status and output bytes.
//!
//! Masked, because they differ between any two runs: timestamps, session ids, durations (any
//! field or metric measured in seconds), the adapter name in `run_start` and `status.json`, and
//! the step cache's peak memory (it depends on how fast concurrent consumers read); the E2B
//! adapter's own `e2b_*` metrics are left out. Events are
//! compared per step and in run order for run-level events: concurrent branches interleave
//! differently in any two runs, even two local ones, but each step's own sequence is fixed.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use super::{Project, describe, jsonl};

/// An execution target and how to select it.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Target {
    pub fn local() -> Self {
        Target { name: "local".into(), args: vec!["--target".into(), "local".into()], env: vec![] }
    }

    pub fn process() -> Self {
        Target { name: "process".into(), args: vec!["--target".into(), "process".into()], env: vec![] }
    }

    /// `--e2b` against `server`.
    pub fn e2b(server: &LocalSandboxServer) -> Self {
        Target {
            name: "e2b".into(),
            args: vec!["--e2b".into()],
            env: vec![
                ("E2B_API_KEY".into(), server.api_key.clone()),
                ("E2B_API_URL".into(), server.api_url.clone()),
                ("E2B_SANDBOX_URL".into(), server.envd_url.clone()),
            ],
        }
    }
}

/// The local E2B-compatible sandbox server, in this test process on ephemeral loopback ports;
/// stops when dropped. Sandbox directories stay under `root` (`keep`) for inspection.
pub struct LocalSandboxServer {
    pub api_key: String,
    pub api_url: String,
    pub envd_url: String,
    pub root: tempfile::TempDir,
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<osiris_adapters::sandbox::RunningServer>,
}

impl LocalSandboxServer {
    pub fn start() -> Self {
        Self::start_with_templates(&[])
    }

    /// With template directories (`name`, files every sandbox of it starts with).
    pub fn start_with_templates(templates: &[(&str, &Path)]) -> Self {
        let root = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let api_key = "parity-test-key".to_string();
        let mut builder = osiris_adapters::sandbox::SandboxServer::builder()
            .api_key(api_key.clone())
            .root(root.path())
            .keep(true)
            .api_addr("127.0.0.1:0".parse().unwrap())
            .envd_addr("127.0.0.1:0".parse().unwrap());
        for (name, dir) in templates {
            builder = builder.template_dir(*name, *dir);
        }
        let server = runtime.block_on(builder.bind()).expect("the local sandbox server starts");
        LocalSandboxServer {
            api_key,
            api_url: server.api_url(),
            envd_url: server.envd_url(),
            root,
            runtime: Some(runtime),
            server: Some(server),
        }
    }

    /// Sandboxes still alive.
    pub fn sandbox_count(&self) -> usize {
        self.server.as_ref().map_or(0, |s| s.sandbox_count())
    }
}

impl Drop for LocalSandboxServer {
    fn drop(&mut self) {
        if let (Some(runtime), Some(server)) = (self.runtime.take(), self.server.take()) {
            runtime.block_on(server.shutdown());
        }
    }
}

/// One run of a pipeline through one target.
pub struct Capture {
    pub target: String,
    pub output: Output,
    pub run_dir: PathBuf,
    pub normalized: NormalizedRun,
}

/// What must be identical across adapters.
#[derive(Debug, PartialEq)]
pub struct NormalizedRun {
    pub exit_code: Option<i32>,
    /// Run-level events (no `step_id`), in order.
    pub run_events: Vec<Value>,
    /// Each step's events, in order.
    pub step_events: BTreeMap<String, Vec<Value>>,
    /// Metrics per step (run-level under ""), in order.
    pub metrics: BTreeMap<String, Vec<Value>>,
    /// Every file of the run directory (relative path), except the per-adapter `prepared_run.json`
    /// content, which is checked separately.
    pub inventory: Vec<String>,
    /// `artifacts/**` relative path → content.
    pub artifacts: BTreeMap<String, String>,
    pub status: Value,
    /// Output path → bytes.
    pub outputs: BTreeMap<String, Vec<u8>>,
    /// `--json`'s error code and failed step, when the run failed.
    pub failure: Option<(Value, Value, Value)>,
}

/// Sets up a project (inputs, pipeline, connections) — called once per target.
pub type Setup<'a> = &'a dyn Fn(&Project);

/// Runs `args` (e.g. `["run", "pipeline.yaml"]`) through every target, each in a fresh project
/// prepared by `setup`, and returns the captures. `outputs` are the files to compare.
pub fn run_everywhere(
    targets: &[Target],
    setup: Setup,
    args: &[&str],
    env: &[(&str, &str)],
    outputs: &[&str],
) -> Vec<(Project, Capture)> {
    targets
        .iter()
        .map(|target| {
            let project = Project::new();
            setup(&project);
            let mut cmd: Command = project.osiris(args);
            cmd.args(&target.args).arg("--json");
            cmd.envs(env.iter().copied());
            cmd.envs(target.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let output = cmd.output().expect("osiris runs");
            let run_dir = project.only_run_dir();
            let normalized = normalize(&output, &run_dir, &project, outputs);
            let capture = Capture { target: target.name.clone(), output, run_dir, normalized };
            (project, capture)
        })
        .collect()
}

/// Asserts that every capture equals the first, field by field (readable failures).
pub fn assert_same(captures: &[(Project, Capture)]) {
    let (_, first) = &captures[0];
    for (_, other) in &captures[1..] {
        let (a, b) = (&first.normalized, &other.normalized);
        let ctx = || {
            format!(
                "{} vs {}:\n{}\n---\n{}",
                first.target,
                other.target,
                describe(&first.output),
                describe(&other.output)
            )
        };
        assert_eq!(a.exit_code, b.exit_code, "exit codes differ: {}", ctx());
        assert_eq!(a.run_events, b.run_events, "run-level events differ: {}", ctx());
        assert_eq!(a.step_events, b.step_events, "step events differ: {}", ctx());
        assert_eq!(a.metrics, b.metrics, "metrics differ: {}", ctx());
        assert_eq!(a.inventory, b.inventory, "run directories differ: {}", ctx());
        assert_eq!(a.artifacts, b.artifacts, "artifacts differ: {}", ctx());
        assert_eq!(a.status, b.status, "status.json differs: {}", ctx());
        assert_eq!(a.failure, b.failure, "the reported failure differs: {}", ctx());
        assert_eq!(a.outputs.keys().collect::<Vec<_>>(), b.outputs.keys().collect::<Vec<_>>(), "outputs differ");
        for (path, bytes) in &a.outputs {
            assert!(
                bytes == &b.outputs[path],
                "{path}: output bytes differ between {} and {}",
                first.target,
                other.target
            );
        }
        let adapter = other.normalized_adapter();
        assert_eq!(adapter.as_deref(), Some(other.target.as_str()), "run_start names the adapter");
    }
}

impl Capture {
    /// The unmasked `run_start.adapter`.
    pub fn normalized_adapter(&self) -> Option<String> {
        jsonl(&self.run_dir.join("events.jsonl"))
            .into_iter()
            .find(|e| e["event"] == "run_start")
            .and_then(|e| e["adapter"].as_str().map(str::to_string))
    }
}

fn normalize(output: &Output, run_dir: &Path, project: &Project, outputs: &[&str]) -> NormalizedRun {
    let mut run_events = Vec::new();
    let mut step_events: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for event in jsonl(&run_dir.join("events.jsonl")).into_iter().map(mask) {
        match event.get("step_id").and_then(Value::as_str).filter(|_| event["event"] != "run_error") {
            Some(step) => step_events.entry(step.to_string()).or_default().push(event),
            None => run_events.push(event),
        }
    }
    let mut metrics: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    // The adapter's own metrics (`e2b_*`) describe the transport, not the pipeline.
    let pipeline_metrics = jsonl(&run_dir.join("metrics.jsonl"))
        .into_iter()
        .filter(|m| !m["metric"].as_str().is_some_and(|name| name.starts_with("e2b_")));
    for metric in pipeline_metrics.map(mask) {
        let step = metric.get("step_id").and_then(Value::as_str).unwrap_or_default().to_string();
        metrics.entry(step).or_default().push(metric);
    }
    let inventory = files_under(run_dir);
    let artifacts = inventory
        .iter()
        .filter(|p| p.starts_with("artifacts/"))
        .map(|p| (p.clone(), std::fs::read_to_string(run_dir.join(p)).unwrap_or_default()))
        .collect();
    let mut status: Value = serde_json::from_slice(&std::fs::read(run_dir.join("status.json")).unwrap()).unwrap();
    for key in ["sandbox_id", "session_path"] {
        status[key] = Value::String("<adapter>".into());
    }
    let outputs =
        outputs.iter().filter(|p| project.file(p).exists()).map(|p| (p.to_string(), project.read(p))).collect();
    let failure = (output.status.code() != Some(0)).then(|| {
        let json: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        (json["error_code"].clone(), json["failed_step"].clone(), json["message"].clone())
    });
    NormalizedRun {
        exit_code: output.status.code(),
        run_events,
        step_events,
        metrics,
        inventory,
        artifacts,
        status,
        outputs,
        failure,
    }
}

/// Masks what differs between any two runs (see the module docs).
fn mask(mut line: Value) -> Value {
    let Some(obj) = line.as_object_mut() else { return line };
    obj.remove("ts");
    obj.remove("session");
    for key in ["duration", "duration_seconds"] {
        if obj.contains_key(key) {
            obj.insert(key.into(), Value::from(0));
        }
    }
    if obj.get("event").and_then(Value::as_str) == Some("run_start") {
        obj.insert("adapter".into(), Value::String("<adapter>".into()));
    }
    let timing = obj.get("unit").and_then(Value::as_str) == Some("seconds")
        || obj.get("metric").and_then(Value::as_str) == Some("cache_peak_bytes");
    if timing {
        obj.insert("value".into(), Value::String("<masked>".into()));
    }
    line
}

/// Relative paths of every file under `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found
}
