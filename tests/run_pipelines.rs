//! End-to-end runs of the real `osiris` binary: fan-out, spilling, failures, round trips.

mod common;

use common::{Project, describe, event_names, jsonl, sample_csv, stdout_json};

const FAN_OUT: &str = r#"
oml_version: "0.1.0"
name: fan-out
steps:
  - id: extract
    component: filesystem.csv_extractor
    mode: read
    config: {path: data/in.csv}
  - id: write-a
    component: filesystem.csv_writer
    mode: write
    needs: [extract]
    config: {path: out/a.csv}
  - id: write-b
    component: filesystem.csv_writer
    mode: write
    needs: [extract]
    config: {path: out/b.csv}
"#;

/// A CSV big enough for many batches: quoting, NULLs and UTF-8 on every few rows.
fn big_csv(rows: usize) -> Vec<u8> {
    let mut out = String::from("id,name,score,day\n");
    for i in 0..rows {
        let name = match i % 5 {
            0 => format!("\"Name, {i}\""),
            1 => format!("\"multi\nline {i}\""),
            2 => String::new(),
            3 => format!("Žluťoučký {i}"),
            _ => format!("plain{i}"),
        };
        let score = if i % 7 == 0 { String::new() } else { format!("{}.5", i % 1000) };
        out.push_str(&format!("{i},{name},{score},2024-01-{:02}\n", i % 28 + 1));
    }
    out.into_bytes()
}

#[test]
fn fan_out_writes_both_outputs_equal_to_the_input_and_a_full_run_log() {
    let project = Project::new();
    project.write("data/in.csv", sample_csv());
    project.write("fan_out.yaml", FAN_OUT);
    let output = project.run(&["run", "fan_out.yaml"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(project.read_text("out/a.csv"), sample_csv());
    assert_eq!(project.read_text("out/b.csv"), sample_csv());

    let run_dir = project.only_run_dir();
    let relative = run_dir.strip_prefix(project.path()).unwrap().to_string_lossy().to_string();
    assert!(relative.starts_with("run_logs/dev/fan-out/"), "{relative}");
    for file in [
        "events.jsonl",
        "metrics.jsonl",
        "osiris.log",
        "status.json",
        "manifest.yaml",
        "cfg/extract.json",
        "cfg/write-a.json",
    ] {
        assert!(run_dir.join(file).is_file(), "missing {file} in {relative}");
    }
    let cleaned: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("artifacts/write-a/cleaned_config.json")).unwrap()).unwrap();
    assert_eq!(cleaned["path"], "out/a.csv");

    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["ok"], true);
    assert_eq!(status["exit_code"], 0);
    assert_eq!(status["steps_completed"], 3);

    let events = event_names(&run_dir);
    assert_eq!(events.first().map(String::as_str), Some("run_start"));
    assert_eq!(events.last().map(String::as_str), Some("run_end"));
    assert_eq!(events.iter().filter(|e| *e == "step_complete").count(), 3);
    assert_eq!(events.iter().filter(|e| *e == "inputs_resolved").count(), 2);
    let metrics = jsonl(&run_dir.join("metrics.jsonl"));
    let rows_written: Vec<_> =
        metrics.iter().filter(|m| m["metric"] == "rows_written").map(|m| m["value"].as_u64().unwrap()).collect();
    assert_eq!(rows_written, vec![6, 6]);
    let rows_read = metrics.iter().find(|m| m["metric"] == "rows_read").unwrap();
    assert_eq!((rows_read["value"].as_u64(), rows_read["step_id"].as_str()), (Some(6), Some("extract")));
    let line = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert!(first["ts"].as_str().unwrap().ends_with("+00:00"));
    assert!(first["session"].as_str().unwrap().contains("Z_"));
}

#[test]
fn a_tiny_memory_budget_spills_and_gives_byte_identical_outputs() {
    let project = Project::new();
    let input = big_csv(30_000);
    project.write("data/in.csv", &input);
    project.write("fan_out.yaml", FAN_OUT);

    let roomy = project.run(&["run", "fan_out.yaml", "--json"]);
    assert!(roomy.status.success(), "{}", describe(&roomy));
    let roomy_a = project.read("out/a.csv");
    assert_eq!(roomy_a, input);
    let roomy_dir = stdout_json(&roomy)["session_dir"].as_str().unwrap().to_string();
    assert!(!event_names(std::path::Path::new(&roomy_dir)).contains(&"cache_spill_start".to_string()));

    let tiny = project.run(&["run", "fan_out.yaml", "--json", "--memory-budget", "4KiB"]);
    assert!(tiny.status.success(), "{}", describe(&tiny));
    assert_eq!(project.read("out/a.csv"), roomy_a);
    assert_eq!(project.read("out/b.csv"), roomy_a);
    let tiny_dir = std::path::PathBuf::from(stdout_json(&tiny)["session_dir"].as_str().unwrap());
    let events = event_names(&tiny_dir);
    assert!(events.contains(&"cache_spill_start".to_string()), "{events:?}");
    assert!(events.contains(&"cache_spill_complete".to_string()), "{events:?}");
    let metrics = jsonl(&tiny_dir.join("metrics.jsonl"));
    let spilled = metrics.iter().find(|m| m["metric"] == "cache_spilled_bytes").expect("cache_spilled_bytes metric");
    assert!(spilled["value"].as_u64().unwrap() > 0);
    assert!(!tiny_dir.join("spill").exists(), "spill files are removed after the run");

    // The budget can also come from osiris.yaml.
    project.write("osiris.yaml", "runtime:\n  memory_budget: 4KiB\n");
    let configured = project.run(&["run", "fan_out.yaml", "--json"]);
    assert!(configured.status.success(), "{}", describe(&configured));
    let configured_dir = std::path::PathBuf::from(stdout_json(&configured)["session_dir"].as_str().unwrap());
    assert!(event_names(&configured_dir).contains(&"cache_spill_start".to_string()));
    assert_eq!(project.read("out/a.csv"), roomy_a);
}

#[test]
fn a_failing_branch_fails_the_run_while_the_other_branch_completes() {
    let project = Project::new();
    project.write("data/in.csv", sample_csv());
    // A regular file where the failing writer expects a directory: the path cannot be created.
    project.write("blocked", "not a directory");
    project.write(
        "branches.yaml",
        r#"
oml_version: "0.1.0"
name: branches
steps:
  - id: extract-good
    component: filesystem.csv_extractor
    mode: read
    config: {path: data/in.csv}
  - id: write-good
    component: filesystem.csv_writer
    mode: write
    config: {path: out/good.csv}
  - id: extract-bad
    component: filesystem.csv_extractor
    mode: read
    needs: []
    config: {path: data/in.csv}
  - id: write-bad
    component: filesystem.csv_writer
    mode: write
    config: {path: blocked/bad.csv}
"#,
    );
    let output = project.run(&["run", "branches.yaml"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("write-bad"), "the error names the failed step:\n{stderr}");
    assert!(stderr.contains("blocked/bad.csv"), "the error names the path:\n{stderr}");
    assert_eq!(project.read_text("out/good.csv"), sample_csv());
    let out_files: Vec<_> = std::fs::read_dir(project.file("out")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(out_files, vec!["good.csv"], "no temporary files are left behind");

    let run_dir = project.only_run_dir();
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["ok"], false);
    assert_eq!(status["failed_step"], "write-bad");
    let events = jsonl(&run_dir.join("events.jsonl"));
    let error = events.iter().find(|e| e["event"] == "step_error").expect("step_error event");
    assert_eq!(error["step_id"], "write-bad");
    assert_eq!(error["error_code"], "write.io_error");
    assert!(events.iter().any(|e| e["event"] == "step_complete" && e["step_id"] == "write-good"));
    assert_eq!(events.last().unwrap()["event"], "run_end");
}

#[test]
fn an_unwritable_output_path_fails_cleanly_without_partial_files() {
    let project = Project::new();
    project.write("data/in.csv", big_csv(20_000));
    project.write(
        "p.yaml",
        r#"
oml_version: "0.1.0"
name: unwritable
steps:
  - id: extract
    component: filesystem.csv_extractor
    mode: read
    config: {path: data/in.csv}
  - id: write
    component: filesystem.csv_writer
    mode: write
    config: {path: /proc/osiris-cannot-write-here/out.csv}
"#,
    );
    let output = project.run(&["run", "p.yaml", "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let result = stdout_json(&output);
    assert_eq!(result["status"], "error");
    assert_eq!(result["phase"], "execute");
    let message = result["message"].as_str().unwrap();
    assert!(message.contains("write") && message.contains("/proc/osiris-cannot-write-here/out.csv"), "{message}");
}

/// NULL (an unquoted empty field) and the empty string (`""`) stay apart through CSV → CSV and
/// CSV → Parquet → CSV, like the `coupon_code` column of the benchmark's orders data.
#[test]
fn null_and_empty_string_survive_csv_and_parquet_round_trips_byte_for_byte() {
    let mut csv = String::from("id,quantity,coupon_code,notes\n");
    for i in 0..3000 {
        let quantity = if i % 7 == 0 { String::new() } else { (i % 50).to_string() };
        let coupon = match i % 5 {
            0 => String::new(),
            1 => "\"\"".to_string(),
            2 => format!("CPN{:04}", i % 100),
            3 => "\"a,b\"".to_string(),
            _ => format!("\"say \"\"{i}\"\"\""),
        };
        let notes = if i % 3 == 0 { "\"\"" } else { "" };
        csv.push_str(&format!("{i},{quantity},{coupon},{notes}\n"));
    }
    let project = Project::new();
    project.write("data/in.csv", &csv);
    project.write(
        "p.yaml",
        r#"
oml_version: "0.1.0"
name: null-vs-empty
steps:
  - id: extract-csv
    component: filesystem.csv_extractor
    mode: read
    config: {path: data/in.csv, chunk_size: 1000}
  - id: write-csv
    component: filesystem.csv_writer
    mode: write
    needs: [extract-csv]
    config: {path: out/direct.csv}
  - id: write-parquet
    component: filesystem.parquet_writer
    mode: write
    needs: [extract-csv]
    config: {path: out/orders.parquet}
  - id: extract-parquet
    component: filesystem.parquet_extractor
    mode: read
    needs: [write-parquet]
    config: {path: out/orders.parquet}
  - id: write-csv-again
    component: filesystem.csv_writer
    mode: write
    needs: [extract-parquet]
    config: {path: out/via_parquet.csv}
"#,
    );
    let output = project.run(&["run", "p.yaml"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(project.read("out/direct.csv") == csv.as_bytes(), "CSV → CSV changed the bytes");
    assert!(project.read("out/via_parquet.csv") == csv.as_bytes(), "CSV → Parquet → CSV changed the bytes");
}

#[test]
fn csv_survives_a_csv_parquet_csv_round_trip_unchanged() {
    let project = Project::new();
    project.write("data/in.csv", sample_csv());
    project.write(
        "roundtrip.yaml",
        r#"
oml_version: "0.1.0"
name: roundtrip
steps:
  - id: extract-csv
    component: filesystem.csv_extractor
    mode: read
    config: {path: data/in.csv}
  - id: write-parquet
    component: filesystem.parquet_writer
    mode: write
    config: {path: out/orders.parquet}
  - id: extract-parquet
    component: filesystem.parquet_extractor
    mode: read
    needs: [write-parquet]
    config: {path: out/orders.parquet}
  - id: write-csv
    component: filesystem.csv_writer
    mode: write
    config: {path: out/orders.csv}
"#,
    );
    let output = project.run(&["run", "roundtrip.yaml"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(project.read_text("out/orders.csv"), sample_csv());
}

#[test]
fn an_interrupted_run_exits_1_and_leaves_no_partial_output() {
    let project = Project::new();
    project.write("data/in.csv", big_csv(600_000));
    project.write("fan_out.yaml", FAN_OUT);
    let child = project
        .osiris(&["run", "fan_out.yaml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the steps are running (the Ctrl-C handler is installed by then).
    let started = std::time::Instant::now();
    while !project.run_dirs().iter().any(|d| event_names(d).contains(&"step_start".to_string())) {
        assert!(started.elapsed().as_secs() < 30, "the run did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let leftovers: Vec<_> = std::fs::read_dir(project.file("out"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "no output or temporary file may remain: {leftovers:?}");
    let run_dir = project.only_run_dir();
    let events = jsonl(&run_dir.join("events.jsonl"));
    assert_eq!(events.last().unwrap()["status"], "cancelled");
    assert!(events.iter().any(|e| e["event"] == "step_cancelled"));
}
