//! Adapter parity and the process adapter's failure paths, through the real `osiris` binary.
//!
//! The same pipelines — MySQL → CSV (the golden path), a fan-out, a SQL join, a failing step and
//! a run that spills — go through every execution target; the conformance harness
//! (`common/parity.rs`) requires identical events, metrics, run-log inventories, artifacts,
//! status and output bytes.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::mysql::{self, MysqlConnection, ScratchDb};
use common::parity::{LocalSandboxServer, Target, assert_same, run_everywhere};
use common::{Project, describe, jsonl, stdout_json};

/// Every target; E2B against a local sandbox server that lives as long as the returned guard.
fn targets() -> (Vec<Target>, LocalSandboxServer) {
    let server = LocalSandboxServer::start();
    (vec![Target::local(), Target::process(), Target::e2b(&server)], server)
}

const ORDERS: &str = "order_id,customer_id,amount\n1,1,2.5\n2,2,10.0\n3,1,1.25\n4,3,7.0\n5,2,0.5\n6,9,100.0\n";
const CUSTOMERS: &str = "id,name,country\n1,Ada,NO\n2,Bob,IT\n3,\"Lee, Jr.\",PE\n4,Zoë,DE\n";

fn join_pipeline(query: &str) -> String {
    format!(
        r#"oml_version: "0.1.0"
name: join
steps:
  - id: extract-orders
    component: filesystem.csv_extractor
    mode: read
    config: {{path: data/orders.csv}}
  - id: extract-customers
    component: filesystem.csv_extractor
    mode: read
    needs: []
    config: {{path: data/customers.csv}}
  - id: totals
    component: sql.processor
    mode: transform
    needs: [extract-orders, extract-customers]
    config:
      query: "{query}"
  - id: write
    component: filesystem.csv_writer
    mode: write
    needs: [totals]
    config: {{path: out/totals.csv}}
"#
    )
}

fn join_setup(query: &'static str) -> impl Fn(&Project) {
    move |p: &Project| {
        p.write("data/orders.csv", ORDERS);
        p.write("data/customers.csv", CUSTOMERS);
        p.write("pipeline.yaml", join_pipeline(query));
    }
}

const FANOUT: &str = r#"oml_version: "0.1.0"
name: fanout
steps:
  - id: extract
    component: filesystem.csv_extractor
    mode: read
    config: {path: data/orders.csv}
  - id: write-csv
    component: filesystem.csv_writer
    mode: write
    needs: [extract]
    config: {path: out/orders.csv}
  - id: write-parquet
    component: filesystem.parquet_writer
    mode: write
    needs: [extract]
    config: {path: out/orders.parquet}
"#;

#[test]
fn a_fan_out_is_identical_through_every_adapter() {
    let setup = |p: &Project| {
        p.write("data/orders.csv", common::sample_csv());
        p.write("pipeline.yaml", FANOUT);
    };
    let (targets, _server) = targets();
    let runs =
        run_everywhere(&targets, &setup, &["run", "pipeline.yaml"], &[], &["out/orders.csv", "out/orders.parquet"]);
    assert_eq!(runs[0].1.output.status.code(), Some(0), "{}", describe(&runs[0].1.output));
    assert_eq!(runs[0].1.normalized.outputs.len(), 2);
    assert_same(&runs);
}

#[test]
fn a_sql_join_is_identical_through_every_adapter() {
    let query = "SELECT c.name, COUNT(o.order_id) AS orders, SUM(o.amount) AS total \
        FROM df_extract_customers c LEFT JOIN df_extract_orders o ON o.customer_id = c.id \
        GROUP BY c.name ORDER BY c.name";
    let (targets, _server) = targets();
    let runs = run_everywhere(&targets, &join_setup(query), &["run", "pipeline.yaml"], &[], &["out/totals.csv"]);
    assert_eq!(runs[0].1.output.status.code(), Some(0), "{}", describe(&runs[0].1.output));
    assert_eq!(
        String::from_utf8_lossy(&runs[0].1.normalized.outputs["out/totals.csv"]),
        "name,orders,total\nAda,2,3.75\nBob,2,10.5\n\"Lee, Jr.\",1,7.0\nZoë,0,\n"
    );
    assert_same(&runs);
}

/// A SQL step that fails while it is planned, beside a writer of the same input. The writer keeps
/// the extractor reading to its end: were the failing step its only consumer, how many rows the
/// extractor sent before the failure dropped its input would depend on the machine's load, and
/// the runs would differ for a reason that is not the adapter.
const FAILING: &str = r#"oml_version: "0.1.0"
name: failing
steps:
  - id: extract-orders
    component: filesystem.csv_extractor
    mode: read
    config: {path: data/orders.csv}
  - id: keep
    component: filesystem.csv_writer
    mode: write
    needs: [extract-orders]
    config: {path: out/orders.csv}
  - id: totals
    component: sql.processor
    mode: transform
    needs: [extract-orders]
    config:
      query: "SELECT no_such_column FROM df_extract_orders"
  - id: write
    component: filesystem.csv_writer
    mode: write
    needs: [totals]
    config: {path: out/totals.csv}
"#;

#[test]
fn a_failing_step_fails_the_same_way_through_every_adapter() {
    let setup = |p: &Project| {
        p.write("data/orders.csv", ORDERS);
        p.write("pipeline.yaml", FAILING);
    };
    let (targets, _server) = targets();
    let runs = run_everywhere(&targets, &setup, &["run", "pipeline.yaml"], &[], &["out/totals.csv"]);
    let (_, first) = &runs[0];
    assert_eq!(first.output.status.code(), Some(1), "{}", describe(&first.output));
    let (code, step, _) = first.normalized.failure.clone().unwrap();
    assert_eq!(
        (code.as_str(), step.as_str()),
        (Some("transform.sql_error"), Some("totals")),
        "{}",
        describe(&first.output)
    );
    assert!(first.normalized.outputs.is_empty(), "no output file after a failed run");
    assert_same(&runs);
    for (_, capture) in &runs {
        let json = stdout_json(&capture.output);
        let source = if capture.target == "e2b" { "remote" } else { "local" };
        assert_eq!(json["source"], source, "{json}");
    }
}

#[test]
fn a_run_that_spills_is_identical_through_every_adapter() {
    let mut csv = String::from("id,name,amount\n");
    for i in 0..20_000 {
        csv.push_str(&format!("{i},name-{},{}.{:02}\n", i % 97, i * 3, i % 100));
    }
    let setup = move |p: &Project| {
        p.write("data/orders.csv", &csv);
        p.write("pipeline.yaml", FANOUT);
    };
    let args = ["run", "pipeline.yaml", "--memory-budget", "1KiB"];
    let (targets, _server) = targets();
    let runs = run_everywhere(&targets, &setup, &args, &[], &["out/orders.csv", "out/orders.parquet"]);
    let (_, first) = &runs[0];
    assert_eq!(first.output.status.code(), Some(0), "{}", describe(&first.output));
    let spilled = first.normalized.step_events["extract"].iter().any(|e| e["event"] == "cache_spill_start");
    assert!(spilled, "the run did not spill: {:?}", first.normalized.step_events["extract"]);
    assert_same(&runs);
}

#[test]
fn the_mysql_golden_path_is_identical_through_every_adapter() {
    let db = ScratchDb::create(&[
        "CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(40), amount DECIMAL(10,2), placed DATE, note TEXT)",
        "INSERT INTO orders VALUES (1,'Ada',12.50,'2024-01-02','first'),(2,'Bob',NULL,'2024-02-29',''),\
         (3,'Zoë',7.25,NULL,NULL),(4,'Lee, Jr.',100.00,'2023-12-31','line\\nbreak')",
    ]);
    let connections = mysql::connections_yaml(&[MysqlConnection::new("db", &db.name, "PARITY_DB_PASSWORD")]);
    let pipeline = r#"oml_version: "0.1.0"
name: golden
steps:
  - id: extract
    component: mysql.extractor
    mode: read
    config: {connection: "@mysql.db", query: "SELECT * FROM orders ORDER BY id"}
  - id: write
    component: filesystem.csv_writer
    mode: write
    needs: [extract]
    config: {path: out/orders.csv}
"#;
    let setup = move |p: &Project| {
        p.write("osiris_connections.yaml", &connections);
        p.write("pipeline.yaml", pipeline);
    };
    let password = mysql::password();
    let env = [("PARITY_DB_PASSWORD", password.as_str())];
    let (targets, _server) = targets();
    let runs = run_everywhere(&targets, &setup, &["run", "pipeline.yaml"], &env, &["out/orders.csv"]);
    let (_, first) = &runs[0];
    assert_eq!(first.output.status.code(), Some(0), "{}", describe(&first.output));
    assert_eq!(
        String::from_utf8_lossy(&first.normalized.outputs["out/orders.csv"]),
        "id,customer,amount,placed,note\n1,Ada,12.50,2024-01-02,first\n2,Bob,,2024-02-29,\"\"\n3,Zoë,7.25,,\n4,\"Lee, Jr.\",100.00,2023-12-31,\"line\nbreak\"\n"
    );
    assert_same(&runs);
}

/// A long-running MySQL pipeline (the query sleeps) for the failure-path tests.
fn sleeping_project(marker: &str, db: &ScratchDb) -> Project {
    let project = Project::new();
    let connections = mysql::connections_yaml(&[MysqlConnection::new("db", &db.name, "SLEEPY_PASSWORD")]);
    project.write("osiris_connections.yaml", connections);
    project.write(
        "p.yaml",
        format!(
            "oml_version: \"0.1.0\"\nname: sleepy\nsteps:\n  - id: extract\n    component: mysql.extractor\n    mode: read\n    config: {{connection: \"@mysql.db\", query: \"SELECT SLEEP(30) AS slept, '{marker}' AS marker\"}}\n  - id: write\n    component: filesystem.csv_writer\n    mode: write\n    needs: [extract]\n    config: {{path: out/slow.csv}}\n"
        ),
    );
    project
}

/// The pids of the `osiris worker` children of `parent`.
fn worker_children(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid …: comm may hold spaces, so split after the last ')'.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        let cmdline = std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
        if ppid == Some(parent) && cmdline.split('\0').any(|a| a == "worker") {
            found.push(pid);
        }
    }
    found
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

/// Starts the sleepy pipeline with `--target process` and waits until its query runs.
fn start_sleepy(project: &Project) -> std::process::Child {
    let child = project
        .osiris(&["run", "p.yaml", "--json", "--target", "process"])
        .env("SLEEPY_PASSWORD", mysql::password())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_until("the extract step starts in the worker", Duration::from_secs(60), || {
        common::step_event_logged(project, "step_start", "extract")
    });
    child
}

#[test]
fn a_worker_killed_mid_run_is_a_failed_run_not_a_hang() {
    let db = ScratchDb::create(&[]);
    let project = sleeping_project("killed-worker", &db);
    let host = start_sleepy(&project);
    let workers = worker_children(host.id());
    assert_eq!(workers.len(), 1, "one worker process under the host");
    let killed = Instant::now();
    signal(workers[0], "-KILL");
    let output = host.wait_with_output().unwrap();
    assert!(killed.elapsed() < Duration::from_secs(10), "the host took {:?} to notice", killed.elapsed());
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let result = stdout_json(&output);
    assert_eq!(
        (result["error_code"].as_str(), result["failed_step"].as_str()),
        (Some("worker.crashed"), Some("extract")),
        "{result}"
    );
    let message = result["message"].as_str().unwrap();
    assert!(message.contains("killed by SIGKILL"), "{message}");
    let events = jsonl(&project.only_run_dir().join("events.jsonl"));
    let last = events.last().unwrap();
    assert_eq!((last["event"].as_str(), last["status"].as_str()), (Some("run_end"), Some("failed")), "{events:?}");
    assert!(events.iter().any(|e| e["event"] == "run_error" && e["error_code"] == "worker.crashed"));
    assert!(!project.file("out/slow.csv").exists(), "no output under its final name");
}

#[test]
fn ctrl_c_cancels_the_worker_and_leaves_no_process_behind() {
    let db = ScratchDb::create(&[]);
    let project = sleeping_project("cancelled-worker", &db);
    let host = start_sleepy(&project);
    let workers = worker_children(host.id());
    assert_eq!(workers.len(), 1);
    let interrupted = Instant::now();
    signal(host.id(), "-INT");
    let output = host.wait_with_output().unwrap();
    assert!(interrupted.elapsed() < Duration::from_secs(8), "exit took {:?}", interrupted.elapsed());
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_eq!(stdout_json(&output)["error_code"], "run.cancelled", "{}", describe(&output));
    let events = jsonl(&project.only_run_dir().join("events.jsonl"));
    let last = events.last().unwrap();
    assert_eq!((last["event"].as_str(), last["status"].as_str()), (Some("run_end"), Some("cancelled")), "{events:?}");
    let gone = !std::path::Path::new(&format!("/proc/{}", workers[0])).exists()
        || std::fs::read_to_string(format!("/proc/{}/stat", workers[0])).unwrap_or_default().contains(") Z");
    assert!(gone, "the worker {} outlived the host", workers[0]);
    assert!(!project.file("out/slow.csv").exists());
}

#[test]
fn the_process_adapter_is_the_default_when_osiris_yaml_says_so() {
    let project = Project::new();
    project.write("data/orders.csv", ORDERS);
    project.write("pipeline.yaml", FANOUT);
    project.write("osiris.yaml", "runner:\n  executor: process\n");
    let output = project.run(&["run", "pipeline.yaml", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(stdout_json(&output)["execution_type"], "process");
    // The environment overrides the file, the command line overrides both.
    let output =
        project.osiris(&["run", "pipeline.yaml", "--json"]).env("OSIRIS_EXECUTION_TARGET", "local").output().unwrap();
    assert_eq!(stdout_json(&output)["execution_type"], "local", "{}", describe(&output));
    let output = project
        .osiris(&["run", "pipeline.yaml", "--json", "--target", "process"])
        .env("OSIRIS_EXECUTION_TARGET", "local")
        .output()
        .unwrap();
    assert_eq!(stdout_json(&output)["execution_type"], "process", "{}", describe(&output));
    let output = project.osiris(&["run", "pipeline.yaml"]).env("OSIRIS_EXECUTION_TARGET", "cloud").output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("OSIRIS_EXECUTION_TARGET=cloud"));
}

#[test]
fn osiris_worker_streams_arrow_ipc_telemetry_on_stdout_and_logs_on_stderr() {
    use osiris_adapters::worker::stream::{Frame, FrameDecoder};
    // Prepare a run with the local target, then hand its prepared_run.json to a worker.
    let project = Project::new();
    project.write("data/orders.csv", ORDERS);
    project.write("pipeline.yaml", FANOUT);
    let output = project.run(&["run", "pipeline.yaml", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let prepared = project.only_run_dir().join("prepared_run.json");
    std::fs::remove_dir_all(project.file("out")).unwrap();
    let worker = project
        .osiris(&["worker", "--prepared", prepared.to_str().unwrap(), "--run-dir", "worker-run"])
        .output()
        .unwrap();
    assert_eq!(worker.status.code(), Some(0), "{}", describe(&worker));
    let mut decoder = FrameDecoder::new();
    let frames = decoder.feed(&worker.stdout).expect("stdout is an Arrow IPC stream");
    decoder.finish().expect("the stream ends cleanly");
    let events: Vec<String> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Record(r) => serde_json::to_value(r).ok()?["event"].as_str().map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(events.first().map(String::as_str), Some("run_start"));
    assert_eq!(events.last().map(String::as_str), Some("run_end"));
    let Some(Frame::Report(report)) = frames.last() else { panic!("the last frame is the report: {frames:?}") };
    assert!(report.succeeded());
    assert_eq!(project.read_text("out/orders.csv"), ORDERS, "the worker wrote the outputs");
    assert!(project.file("worker-run/artifacts/extract/cleaned_config.json").exists());
    assert!(!project.file("worker-run/events.jsonl").exists(), "the run log is the host's to write");
    let stderr = String::from_utf8_lossy(&worker.stderr);
    assert!(stderr.contains("step write-csv started"), "human-readable log lines on stderr: {stderr}");
    // A prepared run it cannot read is a usage error naming the file.
    project.write("bad.json", "{}");
    let bad = project.run(&["worker", "--prepared", "bad.json", "--run-dir", "x"]);
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad.json is not a prepared run"), "{}", describe(&bad));
}
