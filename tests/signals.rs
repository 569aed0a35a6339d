//! SIGTERM and SIGHUP cancel `osiris run` as Ctrl-C does, on the local and the process target:
//! `run_end` and `status.json` say `cancelled`, the exit code is 1, the cancel message names the
//! running steps, no temporary file is left, and a `mysql.writer` replace drops its staging table
//! and leaves the target untouched (real MariaDB). A run killed with SIGKILL leaves its temporary
//! file behind; the next run of the pipeline removes it, but never the temporary file of a run that
//! is still going.
//!
//! The input is a FIFO that the test feeds without end, so a run is reliably mid-way when the
//! signal comes, however fast the machine.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::mysql::{self, MysqlConnection, ScratchDb};
use common::{Project, describe, dir_entries, jsonl, stdout_json};

const CSV_TO_CSV: &str = r#"oml_version: "0.1.0"
name: endless-copy
steps:
  - id: extract
    component: filesystem.csv_extractor
    mode: read
    config: {path: data/in.csv}
  - id: write
    component: filesystem.csv_writer
    mode: write
    needs: [extract]
    config: {path: out/big.csv}
"#;

/// Makes `relative` a FIFO and feeds it CSV rows from a thread until the reader goes away.
fn endless_csv_fifo(project: &Project, relative: &str) {
    let path = project.file(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
    std::thread::spawn(move || {
        // Blocks until osiris opens the FIFO; ends with EPIPE once osiris closes it.
        let Ok(mut fifo) = std::fs::OpenOptions::new().write(true).open(&path) else { return };
        let mut chunk = String::from("id,name,score\n");
        let mut i = 0u64;
        loop {
            while chunk.len() < 1 << 16 {
                chunk.push_str(&format!("{i},name-{i},{}.5\n", i % 1000));
                i += 1;
            }
            if fifo.write_all(chunk.as_bytes()).is_err() {
                return;
            }
            chunk.clear();
        }
    });
}

/// The temporary files of the writer in `out/`.
fn temp_files(project: &Project) -> Vec<String> {
    dir_entries(&project.file("out")).into_iter().filter(|n| n.contains(".osiris-tmp-")).collect()
}

/// Waits until the writer has put more than 1 MiB into its temporary file.
fn wait_for_temp_file(project: &Project) -> String {
    common::wait_until("the writer writes its temporary file", Duration::from_secs(60), || {
        temp_files(project)
            .iter()
            .any(|name| std::fs::metadata(project.file(&format!("out/{name}"))).is_ok_and(|m| m.len() > 1 << 20))
    });
    temp_files(project).into_iter().next().unwrap()
}

fn spawn_run(project: &Project, args: &[&str], env: &[(&str, String)]) -> Child {
    let mut command = project.osiris(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn send(signal: &str, child: &Child) {
    let sent = std::process::Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status();
    assert!(sent.unwrap().success(), "kill -{signal}");
}

/// Sends `signal` and checks the clean cancellation: exit 1 soon, the message names the signal
/// and the running steps, `run_end` and `status.json` say `cancelled`.
fn cancel_and_check(project: &Project, child: Child, signal: &str, running: &[&str]) -> Output {
    send(signal, &child);
    let sent = Instant::now();
    let output = child.wait_with_output().unwrap();
    let exited = sent.elapsed();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(exited < Duration::from_secs(15), "exited {exited:?} after SIG{signal}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let announced = stderr
        .lines()
        .find(|l| l.starts_with(&format!("SIG{signal} received: cancelling… (steps: ")))
        .unwrap_or_else(|| panic!("no cancelling line: {}", describe(&output)));
    for step in running {
        assert!(announced.contains(step), "{announced}");
    }
    let result = stdout_json(&output);
    assert_eq!((result["error_code"].as_str(), result["failed_step"].as_str()), (Some("run.cancelled"), None));
    let message = result["message"].as_str().unwrap();
    assert!(message.contains(&format!("cancelled by SIG{signal}")), "{message}");
    let run_dir = project.only_run_dir();
    let events = jsonl(&run_dir.join("events.jsonl"));
    assert_eq!(events.last().unwrap()["event"], "run_end", "{events:?}");
    assert_eq!(events.last().unwrap()["status"], "cancelled", "{events:?}");
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("status.json")).unwrap()).unwrap();
    assert_eq!((status["status"].as_str(), status["ok"].as_bool()), (Some("cancelled"), Some(false)), "{status}");
    assert_eq!(status["exit_code"], 1, "{status}");
    eprintln!("SIG{signal}: exit 1 after {exited:?}");
    output
}

fn csv_run_cancelled_by(signal: &str, target: &str) {
    let project = Project::new();
    project.write("p.yaml", CSV_TO_CSV);
    endless_csv_fifo(&project, "data/in.csv");
    let child = spawn_run(&project, &["run", "p.yaml", "--json", "--target", target], &[]);
    wait_for_temp_file(&project);
    cancel_and_check(&project, child, signal, &["extract", "write"]);
    assert_eq!(dir_entries(&project.file("out")), Vec::<String>::new(), "no output and no temporary file");
    // The run directory keeps no spill directory either.
    assert!(!project.only_run_dir().join("spill").exists());
}

#[test]
fn sigterm_cancels_a_local_run_cleanly() {
    csv_run_cancelled_by("TERM", "local");
}

#[test]
fn sighup_cancels_a_local_run_cleanly() {
    csv_run_cancelled_by("HUP", "local");
}

#[test]
fn sigterm_cancels_a_process_run_cleanly() {
    csv_run_cancelled_by("TERM", "process");
}

#[test]
fn sighup_cancels_a_process_run_cleanly() {
    csv_run_cancelled_by("HUP", "process");
}

#[test]
fn a_second_signal_exits_at_once_with_128_plus_its_number() {
    let project = Project::new();
    project.write("p.yaml", CSV_TO_CSV);
    endless_csv_fifo(&project, "data/in.csv");
    let child = spawn_run(&project, &["run", "p.yaml"], &[]);
    wait_for_temp_file(&project);
    // Two different signals (the same one twice could be merged while pending), back to back:
    // the second arrives while the first cancellation is still winding down.
    let pid = child.id();
    let sent = std::process::Command::new("sh").arg("-c").arg(format!("kill -TERM {pid}; kill -HUP {pid}")).status();
    assert!(sent.unwrap().success());
    let output = child.wait_with_output().unwrap();
    assert!(matches!(output.status.code(), Some(129) | Some(143)), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("received again: aborted"), "{}", describe(&output));
}

const CSV_TO_MYSQL: &str = r#"oml_version: "0.1.0"
name: endless-load
steps:
  - id: extract
    component: filesystem.csv_extractor
    mode: read
    config: {path: data/in.csv}
  - id: load
    component: mysql.writer
    mode: write
    needs: [extract]
    config:
      connection: "@mysql.test"
      table: target
      mode: replace
      primary_key: id
"#;

fn tables(db: &ScratchDb) -> Vec<String> {
    mysql::query(&format!("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}'", db.name))
        .into_iter()
        .map(|row| row[0].clone().unwrap())
        .collect()
}

fn mysql_replace_cancelled_by(signal: &str, target: &str) {
    let db = ScratchDb::create(&[
        "CREATE TABLE target (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(64), score DOUBLE)",
        "INSERT INTO target VALUES (1, 'kept', 1.5), (2, 'kept', 2.5), (3, 'kept', 3.5)",
    ]);
    let project = Project::new();
    project.write("osiris_connections.yaml", mysql::connections_yaml(&[MysqlConnection::new("test", &db.name, "PW")]));
    project.write("p.yaml", CSV_TO_MYSQL);
    endless_csv_fifo(&project, "data/in.csv");
    let child = spawn_run(&project, &["run", "p.yaml", "--json", "--target", target], &[("PW", mysql::password())]);
    // Cancel once rows are going into the staging table.
    let stage = common::wait_until("the writer loads its staging table", Duration::from_secs(60), || {
        tables(&db).iter().any(|t| t.contains("__osiris_stage_"))
            && common::step_event_logged(&project, "step_start", "load")
    });
    std::thread::sleep(Duration::from_millis(500));
    cancel_and_check(&project, child, signal, &["extract", "load"]);
    assert_eq!(tables(&db), ["target"], "the staging table is dropped");
    let rows = mysql::query(&format!("SELECT id, name FROM `{}`.target ORDER BY id", db.name));
    let kept: Vec<(String, String)> =
        rows.into_iter().map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap())).collect();
    assert_eq!(kept, [1, 2, 3].map(|i| (i.to_string(), "kept".to_string())), "the target table is untouched");
    eprintln!("staging table appeared after {stage:?}");
}

#[test]
fn sigterm_during_a_mysql_replace_drops_the_staging_table_and_keeps_the_target() {
    mysql_replace_cancelled_by("TERM", "local");
}

#[test]
fn sighup_during_a_mysql_replace_on_the_process_target_drops_the_staging_table() {
    mysql_replace_cancelled_by("HUP", "process");
}

/// The pipeline's input becomes a small regular file (the FIFO of the killed run is replaced).
fn small_input(project: &Project) {
    let _ = std::fs::remove_file(project.file("data/in.csv"));
    project.write("data/in.csv", "id,name,score\n1,a,1.5\n2,b,2.5\n");
}

#[test]
fn a_sigkilled_runs_temporary_file_is_removed_by_the_next_run() {
    let project = Project::new();
    project.write("p.yaml", CSV_TO_CSV);
    endless_csv_fifo(&project, "data/in.csv");
    let mut child = spawn_run(&project, &["run", "p.yaml"], &[]);
    let leftover = wait_for_temp_file(&project);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(temp_files(&project), std::slice::from_ref(&leftover), "SIGKILL leaves the temporary file");
    small_input(&project);
    let output = project.run(&["run", "p.yaml"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(dir_entries(&project.file("out")), ["big.csv"], "{leftover} was removed");
    assert_eq!(project.read_text("out/big.csv"), "id,name,score\n1,a,1.5\n2,b,2.5\n");
}

#[test]
fn a_running_runs_temporary_file_is_not_removed_by_another_run() {
    let project = Project::new();
    project.write("p.yaml", CSV_TO_CSV);
    project.write("small.yaml", CSV_TO_CSV.replace("data/in.csv", "data/small.csv"));
    project.write("data/small.csv", "id,name,score\n7,z,7.5\n");
    endless_csv_fifo(&project, "data/in.csv");
    let running = spawn_run(&project, &["run", "p.yaml", "--json"], &[]);
    let theirs = wait_for_temp_file(&project);
    // Another run writing the same file finishes while the first one is still writing.
    let output = project.run(&["run", "small.yaml"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(project.read_text("out/big.csv"), "id,name,score\n7,z,7.5\n");
    assert!(temp_files(&project).contains(&theirs), "the running run's {theirs} must stay");
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let before = size(&project.file(&format!("out/{theirs}")));
    common::wait_until("the first run keeps writing", Duration::from_secs(30), || {
        size(&project.file(&format!("out/{theirs}"))) > before
    });
    send("INT", &running);
    let output = running.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_eq!(dir_entries(&project.file("out")), ["big.csv"]);
    assert_eq!(project.read_text("out/big.csv"), "id,name,score\n7,z,7.5\n", "the cancelled run replaced nothing");
}

#[test]
fn a_sigkilled_runs_spill_files_are_removed_by_the_next_run() {
    let project = Project::new();
    project.write("p.yaml", CSV_TO_CSV);
    endless_csv_fifo(&project, "data/in.csv");
    // A budget smaller than one batch: every batch spills.
    let mut child = spawn_run(&project, &["run", "p.yaml", "--memory-budget", "4KiB"], &[]);
    let spill_dir = || project.run_dirs().first().map(|d| d.join("spill"));
    common::wait_until("the run spills", Duration::from_secs(60), || {
        spill_dir().is_some_and(|d| !dir_entries(&d).is_empty())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_spill = spill_dir().unwrap();
    assert!(!dir_entries(&killed_spill).is_empty(), "SIGKILL leaves the spill file");
    small_input(&project);
    let output = project.run(&["run", "p.yaml"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(!killed_spill.exists(), "the killed run's spill files are removed: {:?}", dir_entries(&killed_spill));
}
