//! A worker never outlives its host: kill the sandbox server, SIGKILL the host or cut the network
//! to the sandbox while a `mysql.writer` (mode `replace`) loads 400,000 rows, and the target
//! table keeps its old contents, no staging table is left and no worker process survives. The
//! same for the process adapter with its host SIGKILLed. Everything runs as real processes: the
//! `osiris` host, `osiris sandbox serve`, the worker it starts, MariaDB, and a TCP proxy this
//! test owns.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::mysql::{self, MysqlConnection, ScratchDb};
use common::{Project, describe, stdout_json};

/// The server pauses 1 s every 20,000 rows: 400,000 rows take 20 s on any machine, so a kill
/// that lands once the writer has started is always mid-run, well before its commit point.
/// (`seq_1_to_N` is MariaDB's SEQUENCE engine, on by default in the server of scripts/services.sh.)
const SLOW_ROWS: &str = "SELECT seq AS id, CONCAT('name-', seq) AS name, seq * 1.5 AS amount FROM seq_1_to_400000 WHERE seq % 20000 <> 0 OR SLEEP(1) = 0";

/// How long a worker may take to notice its host is gone and roll back (the heartbeat timeout
/// is 5 s), with room for a loaded machine.
const NOTICE_WITHIN: Duration = Duration::from_secs(20);

const PASSWORD_VAR: &str = "FAULTS_PW";

/// A project whose pipeline replaces table `target` with 400,000 slowly generated rows, and
/// the old contents of that table.
struct Fixture {
    db: ScratchDb,
    project: Project,
    checksum: String,
}

impl Fixture {
    fn new() -> Self {
        let db = ScratchDb::create(&[
            "CREATE TABLE target (id BIGINT PRIMARY KEY, name VARCHAR(64), amount DOUBLE)",
            "INSERT INTO target VALUES (1, 'old one', 1.5), (2, 'old two', 3.0), (3, 'old three', 4.5)",
        ]);
        let project = Project::new();
        project.write(
            "osiris_connections.yaml",
            mysql::connections_yaml(&[MysqlConnection::new("db", &db.name, PASSWORD_VAR)]),
        );
        project.write(
            "p.yaml",
            format!(
                "oml_version: \"0.1.0\"\nname: faults\nsteps:\n  - id: extract\n    component: mysql.extractor\n    mode: read\n    config: {{connection: \"@mysql.db\", query: \"{SLOW_ROWS}\"}}\n  - id: write\n    component: mysql.writer\n    mode: write\n    needs: [extract]\n    config: {{connection: \"@mysql.db\", table: target, mode: replace}}\n"
            ),
        );
        let checksum = checksum(&db);
        Fixture { db, project, checksum }
    }

    /// Starts `osiris run p.yaml --json` with `args` and `env`.
    fn spawn_host(&self, args: &[&str], env: &[(&str, &str)]) -> Child {
        self.project
            .osiris(&["run", "p.yaml", "--json"])
            .args(args)
            .envs(env.iter().copied())
            .env(PASSWORD_VAR, mysql::password())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Waits until the writer is loading: its `step_start` is in the host's run log and its
    /// staging table exists.
    fn wait_until_writing(&self, host: &mut Child) {
        common::wait_until("the writer loads its staging table", Duration::from_secs(120), || {
            if let Some(status) = host.try_wait().unwrap() {
                panic!("the host ended before the writer started: {status}");
            }
            common::step_event_logged(&self.project, "step_start", "write") && !self.staging_tables().is_empty()
        });
    }

    fn tables(&self) -> Vec<String> {
        mysql::query(&format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = '{}' ORDER BY table_name",
            self.db.name
        ))
        .into_iter()
        .filter_map(|row| row.into_iter().next().flatten())
        .collect()
    }

    fn staging_tables(&self) -> Vec<String> {
        self.tables().into_iter().filter(|t| t.contains("__osiris_")).collect()
    }

    /// The table has its old rows, and nothing of the write is left.
    fn assert_untouched(&self) {
        assert_eq!(checksum(&self.db), self.checksum, "the target table changed");
        let rows = mysql::query(&format!("SELECT COUNT(*) FROM `{}`.target", self.db.name));
        assert_eq!(rows[0][0].as_deref(), Some("3"), "the target table changed");
        assert_eq!(self.tables(), ["target"], "a staging table is left");
    }
}

fn checksum(db: &ScratchDb) -> String {
    let rows = mysql::query(&format!("CHECKSUM TABLE `{}`.target", db.name));
    rows[0][1].clone().expect("a checksum")
}

/// `osiris worker` processes whose command line mentions `marker` (the sandbox root, or the
/// project directory).
fn workers_under(marker: &Path) -> Vec<u32> {
    let marker = marker.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.iter().any(|a| a == "worker") && args.iter().any(|a| a.contains(&marker)) {
            found.push(pid);
        }
    }
    found
}

/// Waits until no worker under `marker` runs; the workers seen first prove the test saw one.
fn assert_workers_end(marker: &Path, what: &str) {
    common::wait_until(what, NOTICE_WITHIN, || workers_under(marker).is_empty());
}

/// `osiris sandbox serve` as a process of its own, on ephemeral loopback ports.
struct SandboxServe {
    child: Child,
    root: tempfile::TempDir,
    api_url: String,
    envd_url: String,
}

const API_KEY: &str = "faults-test-key";

impl SandboxServe {
    fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_osiris"))
            .args(["sandbox", "serve", "--api-key", API_KEY, "--api-addr", "127.0.0.1:0", "--envd-addr", "127.0.0.1:0"])
            .arg("--root")
            .arg(root.path())
            .args(["--keep", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let started: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("sandbox serve printed {line:?}: {e}"));
        SandboxServe {
            child,
            root,
            api_url: started["api_url"].as_str().unwrap().to_string(),
            envd_url: started["envd_url"].as_str().unwrap().to_string(),
        }
    }

    fn env<'a>(&'a self, api_url: &'a str, envd_url: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![("E2B_API_KEY", API_KEY), ("E2B_API_URL", api_url), ("E2B_SANDBOX_URL", envd_url)]
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SandboxServe {
    fn drop(&mut self) {
        let _ = signal_quietly(self.child.id(), "TERM");
        let _ = self.child.wait();
        // Whatever a failed test left behind must not outlive it.
        for pid in workers_under(self.root.path()) {
            let _ = signal_quietly(pid, "KILL");
        }
    }
}

fn signal_quietly(pid: u32, signal: &str) -> std::io::Result<std::process::ExitStatus> {
    Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).stderr(Stdio::null()).status()
}

/// A TCP proxy to `upstream` on an ephemeral loopback port; [`TcpProxy::cut`] drops every
/// connection and refuses new ones, as a network that went away.
struct TcpProxy {
    url: String,
    addr: std::net::SocketAddr,
    cut: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
}

impl TcpProxy {
    /// Proxies the host and port of `upstream_url` (`http://127.0.0.1:PORT`).
    fn to(upstream_url: &str) -> Self {
        let upstream = upstream_url.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (is_cut, open) = (cut.clone(), connections.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if is_cut.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                let mut open = open.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        TcpProxy { url: format!("http://{addr}"), addr, cut, connections }
    }

    /// Drops every open connection; new ones still go through (a proxy that restarted).
    fn drop_connections(&self) {
        for stream in self.connections.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.drop_connections();
        // Wakes the accepting thread, which then drops the listener: new connections are refused.
        let _ = TcpStream::connect(self.addr);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// The host's `--json` answer and exit code once it ended.
fn finished(host: Child) -> (std::process::Output, serde_json::Value) {
    let output = host.wait_with_output().unwrap();
    let result = stdout_json(&output);
    (output, result)
}

#[test]
fn killing_the_sandbox_server_stops_the_worker_before_it_commits() {
    let fixture = Fixture::new();
    let mut server = SandboxServe::start();
    let mut host = fixture.spawn_host(&["--e2b"], &server.env(&server.api_url, &server.envd_url));
    fixture.wait_until_writing(&mut host);
    assert_eq!(workers_under(server.root.path()).len(), 1, "one worker runs in the sandbox");
    server.kill();

    let (output, result) = finished(host);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_eq!(result["error_code"], "worker.crashed", "{result}");
    assert_workers_end(server.root.path(), "the orphaned worker notices its broken stream and stops");
    fixture.assert_untouched();
}

#[test]
fn a_sigkilled_e2b_host_leaves_no_worker_and_no_commit() {
    let fixture = Fixture::new();
    let server = SandboxServe::start();
    let mut host = fixture.spawn_host(&["--e2b"], &server.env(&server.api_url, &server.envd_url));
    fixture.wait_until_writing(&mut host);
    assert_eq!(workers_under(server.root.path()).len(), 1, "one worker runs in the sandbox");
    host.kill().unwrap();
    host.wait().unwrap();

    // envd keeps the worker's pipes open: only the missing heartbeats can tell it.
    assert_workers_end(server.root.path(), "the worker misses its heartbeats and stops");
    fixture.assert_untouched();
}

#[test]
fn cutting_the_network_to_the_sandbox_stops_the_worker_before_it_commits() {
    let fixture = Fixture::new();
    let server = SandboxServe::start();
    let (api, envd) = (TcpProxy::to(&server.api_url), TcpProxy::to(&server.envd_url));
    let mut host = fixture.spawn_host(&["--e2b"], &server.env(&api.url, &envd.url));
    fixture.wait_until_writing(&mut host);
    assert_eq!(workers_under(server.root.path()).len(), 1, "one worker runs in the sandbox");
    api.cut();
    envd.cut();

    let (output, result) = finished(host);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let message = result["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("without a heartbeat"), "the failure says what became of the worker: {message}");
    assert_workers_end(server.root.path(), "the cut-off worker misses its heartbeats and stops");
    fixture.assert_untouched();
}

#[test]
fn a_lost_stream_gets_the_worker_stopped_through_envd() {
    let fixture = Fixture::new();
    let server = SandboxServe::start();
    let envd = TcpProxy::to(&server.envd_url);
    let mut host = fixture.spawn_host(&["--e2b"], &server.env(&server.api_url, &envd.url));
    fixture.wait_until_writing(&mut host);
    assert_eq!(workers_under(server.root.path()).len(), 1, "one worker runs in the sandbox");
    // The worker's output stream breaks, envd stays reachable.
    envd.drop_connections();

    let (output, result) = finished(host);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let message = result["message"].as_str().unwrap_or_default().to_string();
    // Either the host's SIGTERM through envd stopped the worker, or the worker, its own output
    // stream broken too, had already cancelled itself and exited when the signal came: both
    // before the host reported, and the table check below tells either from a commit.
    assert!(
        message.contains("stopped through envd (SIGTERM) and rolled back")
            || message.contains("it is no longer running"),
        "{message}"
    );
    assert!(workers_under(server.root.path()).is_empty(), "the host reported once the worker was gone");
    fixture.assert_untouched();
}

#[test]
fn a_sigkilled_process_host_leaves_no_worker_and_no_commit() {
    let fixture = Fixture::new();
    let mut host = fixture.spawn_host(&["--target", "process"], &[]);
    fixture.wait_until_writing(&mut host);
    let marker: PathBuf = fixture.project.path().to_path_buf();
    assert_eq!(workers_under(&marker).len(), 1, "one worker process runs");
    host.kill().unwrap();
    host.wait().unwrap();

    // No PR_SET_PDEATHSIG: the ipc channel closing with the host is the heartbeat.
    assert_workers_end(&marker, "the worker sees the host's channel close and stops");
    fixture.assert_untouched();
}

/// A prepared run of the fixture's pipeline, from a run that fails at once (a wrong password).
fn prepared_run(fixture: &Fixture) -> PathBuf {
    let failed = fixture.project.osiris(&["run", "p.yaml", "--json"]).env(PASSWORD_VAR, "wrong").output().unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", describe(&failed));
    fixture.project.only_run_dir().join("prepared_run.json")
}

/// `osiris worker --prepared …` for the fixture's pipeline, with piped stdin and stdout.
fn spawn_worker(fixture: &Fixture, extra: &[&str], run_dir: &Path) -> Child {
    let prepared = prepared_run(fixture);
    fixture
        .project
        .osiris(&["worker"])
        .args(extra)
        .arg("--prepared")
        .arg(&prepared)
        .arg("--run-dir")
        .arg(run_dir)
        .arg("--base-dir")
        .arg(fixture.project.path())
        .env(PASSWORD_VAR, mysql::password())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_worker_without_heartbeats_cancels_and_says_why() {
    let fixture = Fixture::new();
    let run_dir = tempfile::tempdir().unwrap();
    let mut worker = spawn_worker(&fixture, &["--heartbeat-timeout", "2"], run_dir.path());
    // stdin stays open and silent: a host that holds the pipe but sends nothing.
    let stdin = worker.stdin.take();
    let output = worker.wait_with_output().unwrap();
    drop(stdin);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(stderr.contains("lost the host: no heartbeat from the host for 2 s"), "{stderr}");
    assert!(stderr.contains("cancelled"), "the steps were cancelled: {stderr}");
    fixture.assert_untouched();
}

#[test]
fn a_worker_whose_telemetry_cannot_go_home_cancels_at_once() {
    let fixture = Fixture::new();
    let run_dir = tempfile::tempdir().unwrap();
    let mut worker = spawn_worker(&fixture, &[], run_dir.path());
    let stdin = worker.stdin.take();
    // Nobody reads the telemetry: the first write fails.
    drop(worker.stdout.take());
    let output = worker.wait_with_output().unwrap();
    drop(stdin);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(stderr.contains("lost the host: cannot send telemetry home"), "{stderr}");
    fixture.assert_untouched();
}
