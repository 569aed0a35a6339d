//! The E2B adapter against the local E2B-compatible sandbox server (in this test process): the
//! sandbox's lifecycle on every path, the options, and actionable errors. The sandbox server runs
//! each sandbox as local processes, so the tests can look at the worker from outside.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::mysql::{self, MysqlConnection, ScratchDb};
use common::parity::{LocalSandboxServer, Target};
use common::{Project, describe, jsonl, stdout_json};

const ORDERS: &str = "order_id,amount\n1,2.5\n2,10.0\n";

fn csv_project(output_path: &str) -> Project {
    let project = Project::new();
    project.write("data/orders.csv", ORDERS);
    project.write(
        "p.yaml",
        format!(
            "oml_version: \"0.1.0\"\nname: e2b\nsteps:\n  - id: extract\n    component: filesystem.csv_extractor\n    mode: read\n    config: {{path: data/orders.csv}}\n  - id: write\n    component: filesystem.csv_writer\n    mode: write\n    needs: [extract]\n    config: {{path: {output_path}}}\n"
        ),
    );
    project
}

fn e2b_run(project: &Project, server: &LocalSandboxServer, extra: &[&str]) -> std::process::Output {
    let target = Target::e2b(server);
    project
        .osiris(&["run", "p.yaml", "--json"])
        .args(&target.args)
        .args(extra)
        .envs(target.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap()
}

#[test]
fn a_run_ships_the_binary_streams_its_log_and_leaves_no_sandbox() {
    let server = LocalSandboxServer::start();
    let project = csv_project("out/orders.csv");
    let output = e2b_run(&project, &server, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(project.read_text("out/orders.csv"), ORDERS);
    let result = stdout_json(&output);
    assert_eq!(result["execution_type"], "e2b", "{result}");
    let sandbox_id = result["adapter"]["sandbox_id"].as_str().expect("the sandbox id is reported").to_string();
    assert_eq!(result["adapter"]["binary_uploaded"], true);
    assert_eq!(server.sandbox_count(), 0, "the sandbox was killed");
    let run_dir = project.only_run_dir();
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["sandbox_id"], sandbox_id.as_str());
    let metrics: Vec<String> =
        jsonl(&run_dir.join("metrics.jsonl")).iter().map(|m| m["metric"].as_str().unwrap().to_string()).collect();
    for name in ["e2b_sandbox_create", "e2b_upload", "e2b_upload_bytes", "e2b_collect"] {
        assert!(metrics.iter().any(|m| m == name), "{name} missing from {metrics:?}");
    }
    assert!(run_dir.join("artifacts/extract/cleaned_config.json").is_file(), "artifacts came home");
    // The sandbox's home (kept by the test server) holds the binary under its content hash.
    let home = server.root.path().join(&sandbox_id);
    let bins = common::dir_entries(&home.join(".osiris/bin"));
    assert_eq!(bins.len(), 1, "{bins:?}");
    assert!(bins[0].starts_with("osiris-") && bins[0].len() == "osiris-".len() + 16, "{bins:?}");
}

#[test]
fn outputs_come_home_through_a_symlink_and_into_a_fifo_without_replacing_them() {
    use std::os::unix::fs::FileTypeExt;
    let server = LocalSandboxServer::start();
    // A symlink: its target is replaced, the link stays.
    let project = csv_project("out/latest.csv");
    project.write("out/data/x.csv", "old contents\n");
    std::os::unix::fs::symlink("data/x.csv", project.file("out/latest.csv")).unwrap();
    let output = e2b_run(&project, &server, &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let link = project.file("out/latest.csv");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
    assert_eq!(project.read_text("out/data/x.csv"), ORDERS);
    // A FIFO on the host: written through to its reader.
    let project = csv_project("out/pipe.csv");
    std::fs::create_dir_all(project.file("out")).unwrap();
    let fifo = project.file("out/pipe.csv");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let output = e2b_run(&project, &server, &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(reader.join().unwrap(), ORDERS);
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO stays a FIFO");
    assert_eq!(common::dir_entries(&project.file("out")), ["pipe.csv"], "no temporary file");
}

#[test]
fn a_sandbox_whose_template_carries_the_binary_gets_no_upload() {
    let template = tempfile::tempdir().unwrap();
    let binary =
        osiris_adapters::binary::ShippedBinary::of(std::path::Path::new(env!("CARGO_BIN_EXE_osiris"))).unwrap();
    binary.stage_into(template.path()).unwrap();
    let server = LocalSandboxServer::start_with_templates(&[("osiris-staged", template.path())]);
    let project = csv_project("out/orders.csv");
    let output = e2b_run(&project, &server, &["--e2b-template", "osiris-staged"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(stdout_json(&output)["adapter"]["binary_uploaded"], false, "{}", describe(&output));
    let uploaded = jsonl(&project.only_run_dir().join("metrics.jsonl"))
        .into_iter()
        .find(|m| m["metric"] == "e2b_upload_bytes")
        .unwrap();
    assert!(uploaded["value"].as_f64().unwrap() < 100_000.0, "only the run travelled: {uploaded}");
    assert_eq!(project.read_text("out/orders.csv"), ORDERS);
}

#[test]
fn a_failed_run_kills_the_sandbox_and_reports_a_remote_failure() {
    let server = LocalSandboxServer::start();
    let project = csv_project("out/orders.csv");
    std::fs::remove_file(project.file("data/orders.csv")).unwrap();
    let output = e2b_run(&project, &server, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let result = stdout_json(&output);
    assert_eq!(
        (result["failed_step"].as_str(), result["source"].as_str()),
        (Some("extract"), Some("remote")),
        "{result}"
    );
    assert_eq!(server.sandbox_count(), 0);
    assert!(!project.file("out/orders.csv").exists());
}

#[test]
fn files_outside_the_project_cannot_travel_and_fail_before_anything_starts() {
    let server = LocalSandboxServer::start();
    let project = csv_project("/tmp/osiris-e2b-absolute.csv");
    let output = e2b_run(&project, &server, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let message = stdout_json(&output)["message"].as_str().unwrap().to_string();
    assert!(message.contains("step 'write'") && message.contains("/tmp/osiris-e2b-absolute.csv"), "{message}");
    assert_eq!(server.sandbox_count(), 0);
}

#[test]
fn credentials_problems_are_named_without_showing_the_key() {
    let server = LocalSandboxServer::start();
    let project = csv_project("out/orders.csv");
    let wrong_key = "e2b_wrong_key_6d1f0c";
    let output = project
        .osiris(&["run", "p.yaml", "--e2b"])
        .env("E2B_API_KEY", wrong_key)
        .env("E2B_API_URL", &server.api_url)
        .env("E2B_SANDBOX_URL", &server.envd_url)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("rejected the API key") && stderr.contains("E2B_API_KEY"), "{stderr}");
    common::assert_secret_absent(wrong_key, &[&output], &project.file("run_logs"));

    let missing = project.osiris(&["run", "p.yaml", "--e2b"]).env_remove("E2B_API_KEY").output().unwrap();
    assert_eq!(missing.status.code(), Some(2), "{}", describe(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("E2B_API_KEY is not set"), "{}", describe(&missing));

    let unreachable = project
        .osiris(&["run", "p.yaml", "--e2b"])
        .env("E2B_API_KEY", "k")
        .env("E2B_API_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(1), "{}", describe(&unreachable));
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(stderr.contains("http://127.0.0.1:9") && stderr.contains("E2B_API_URL"), "{stderr}");
}

#[test]
fn e2b_options_are_used_or_refused() {
    let server = LocalSandboxServer::start();
    let project = csv_project("out/orders.csv");
    // A sandbox smaller than asked fails before the upload, and is killed.
    let output = e2b_run(&project, &server, &["--e2b-cpu", "64"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let message = stdout_json(&output)["message"].as_str().unwrap().to_string();
    assert!(message.contains("too small") && message.contains("--e2b-cpu asks for 64"), "{message}");
    assert_eq!(server.sandbox_count(), 0);
    // A sandbox as large as asked runs (the local server reports this machine's size).
    let output = e2b_run(&project, &server, &["--e2b-cpu", "1", "--e2b-mem", "64MiB", "--e2b-timeout", "120"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    // An unset --e2b-pass-env variable is a usage error.
    let output = e2b_run(&project, &server, &["--e2b-pass-env", "OSIRIS_TEST_SURELY_UNSET"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    // E2B options without --e2b are refused, not ignored.
    let output = project.run(&["run", "p.yaml", "--e2b-timeout", "60"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--e2b-timeout only apply to E2B runs"));
}

/// A MySQL pipeline whose query sleeps, to catch the worker while it runs.
fn sleepy_project(db: &ScratchDb, seconds: u32) -> Project {
    let project = Project::new();
    project.write(
        "osiris_connections.yaml",
        mysql::connections_yaml(&[MysqlConnection::new("db", &db.name, "SLEEPY_PW")]),
    );
    project.write(
        "p.yaml",
        format!("oml_version: \"0.1.0\"\nname: sleepy\nsteps:\n  - id: extract\n    component: mysql.extractor\n    mode: read\n    config: {{connection: \"@mysql.db\", query: \"SELECT SLEEP({seconds}) AS slept\"}}\n  - id: write\n    component: filesystem.csv_writer\n    mode: write\n    needs: [extract]\n    config: {{path: out/slow.csv}}\n"),
    );
    project
}

/// The worker processes the sandbox server started for a run, found by their command line.
/// The worker processes of `server`'s sandboxes (they run in directories under its root; other
/// tests' servers run theirs concurrently).
fn sandbox_workers(server: &LocalSandboxServer) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&str> = cmdline.split('\0').collect();
        let ours = std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(server.root.path()))
            || cmdline.contains(&*server.root.path().to_string_lossy());
        if args.contains(&"worker") && args.contains(&"--prepared") && ours {
            found.push(pid);
        }
    }
    found
}

fn spawn_sleepy(project: &Project, server: &LocalSandboxServer, extra: &[&str]) -> std::process::Child {
    let target = Target::e2b(server);
    project
        .osiris(&["run", "p.yaml", "--json"])
        .args(&target.args)
        .args(extra)
        .envs(target.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("SLEEPY_PW", mysql::password())
        .env("PASSED_THROUGH", "passed-value-1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn ctrl_c_cancels_the_remote_run_and_kills_the_sandbox() {
    let db = ScratchDb::create(&[]);
    let server = LocalSandboxServer::start();
    let project = sleepy_project(&db, 30);
    let host = spawn_sleepy(&project, &server, &["--e2b-pass-env", "PASSED_THROUGH", "--e2b-env", "SANDBOX_WIDE=yes"]);
    common::wait_until("the worker runs the step", Duration::from_secs(60), || {
        common::step_event_logged(&project, "step_start", "extract")
    });
    let workers = sandbox_workers(&server);
    assert_eq!(workers.len(), 1, "one worker in the sandbox");
    // The worker's environment: the connection secret and the passed variables, nothing asked
    // for in its command line.
    let environ = std::fs::read(format!("/proc/{}/environ", workers[0])).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    for var in
        [format!("SLEEPY_PW={}", mysql::password()), "PASSED_THROUGH=passed-value-1".into(), "SANDBOX_WIDE=yes".into()]
    {
        assert!(environ.split('\0').any(|e| e == var), "{var} not in the worker's environment");
    }
    let cmdline = std::fs::read_to_string(format!("/proc/{}/cmdline", workers[0])).unwrap();
    assert!(!cmdline.contains(&mysql::password()) || mysql::password().len() < 4, "a secret in the command line");

    let interrupted = Instant::now();
    let status = std::process::Command::new("kill").args(["-INT", &host.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = host.wait_with_output().unwrap();
    assert!(interrupted.elapsed() < Duration::from_secs(10), "exit took {:?}", interrupted.elapsed());
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_eq!(stdout_json(&output)["error_code"], "run.cancelled", "{}", describe(&output));
    let events = jsonl(&project.only_run_dir().join("events.jsonl"));
    assert_eq!(events.last().unwrap()["status"], "cancelled", "{events:?}");
    assert_status_cancelled(&project);
    assert_eq!(server.sandbox_count(), 0, "the sandbox was killed");
    common::wait_until("the worker is gone", Duration::from_secs(5), || {
        !sandbox_workers(&server).contains(&workers[0])
    });
}

/// `status.json` of the project's only run says `cancelled`.
fn assert_status_cancelled(project: &Project) {
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.only_run_dir().join("status.json")).unwrap()).unwrap();
    assert_eq!((status["status"].as_str(), status["ok"].as_bool()), (Some("cancelled"), Some(false)), "{status}");
}

#[test]
fn sigterm_cancels_the_remote_run_like_ctrl_c() {
    let db = ScratchDb::create(&[]);
    let server = LocalSandboxServer::start();
    let project = sleepy_project(&db, 30);
    let host = spawn_sleepy(&project, &server, &[]);
    common::wait_until("the worker runs the step", Duration::from_secs(60), || {
        common::step_event_logged(&project, "step_start", "extract")
    });
    let terminated = Instant::now();
    let status = std::process::Command::new("kill").args(["-TERM", &host.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = host.wait_with_output().unwrap();
    assert!(terminated.elapsed() < Duration::from_secs(10), "exit took {:?}", terminated.elapsed());
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let result = stdout_json(&output);
    assert_eq!(result["error_code"], "run.cancelled", "{}", describe(&output));
    assert!(result["message"].as_str().unwrap().contains("cancelled by SIGTERM"), "{result}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("SIGTERM received: cancelling… (steps: extract"),
        "{}",
        describe(&output)
    );
    let events = jsonl(&project.only_run_dir().join("events.jsonl"));
    assert_eq!(events.last().unwrap()["status"], "cancelled", "{events:?}");
    assert_status_cancelled(&project);
    assert_eq!(server.sandbox_count(), 0, "the sandbox was killed");
    assert!(!project.file("out/slow.csv").exists());
}

#[test]
fn the_sandbox_timeout_ends_the_run_with_a_clear_message() {
    let db = ScratchDb::create(&[]);
    let server = LocalSandboxServer::start();
    let project = sleepy_project(&db, 60);
    let started = Instant::now();
    let output = spawn_sleepy(&project, &server, &["--e2b-timeout", "4"]).wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let result = stdout_json(&output);
    let message = result["message"].as_str().unwrap();
    assert!(message.contains("--e2b-timeout"), "{message}");
    assert_eq!(result["failed_step"], "extract", "{result}");
    assert_eq!(server.sandbox_count(), 0);
    assert!(!project.file("out/slow.csv").exists());
}
