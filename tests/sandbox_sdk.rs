//! The official E2B Python SDK (pinned 2.63.0) against `osiris sandbox serve`: proof that the
//! local server speaks E2B's real protocol. Needs the venv made by `scripts/e2b_sdk_venv.sh`
//! (`scripts/test.sh` runs it); without it this test fails, it does not skip.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const KEY: &str = "sdk-test-key-0c5e";

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("OSIRIS_E2B_VENV").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/osiris-e2b-venv")
    });
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "the E2B SDK venv is missing at {}: run `bash scripts/e2b_sdk_venv.sh` (scripts/test.sh does) and rerun",
        venv.display()
    );
    python
}

/// The server process, killed if the test fails half-way.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `osiris sandbox serve` on free ports and returns it with its URLs.
fn serve(root: &std::path::Path) -> (Server, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_osiris"))
        .args(["sandbox", "serve", "--api-addr", "127.0.0.1:0", "--envd-addr", "127.0.0.1:0", "--json", "--root"])
        .arg(root)
        .env("E2B_API_KEY", KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("osiris starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let mut server = Server(child);
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
    if line.trim().is_empty() {
        let mut stderr = String::new();
        let _ = server.0.kill();
        let _ = server.0.stderr.take().map(|mut e| e.read_to_string(&mut stderr));
        panic!("osiris sandbox serve printed no JSON line; stderr:\n{stderr}");
    }
    let ready: serde_json::Value = serde_json::from_str(&line).expect("one JSON line");
    let url = |key: &str| ready[key].as_str().unwrap_or_else(|| panic!("no {key} in {line}")).to_string();
    (server, url("api_url"), url("envd_url"))
}

#[test]
fn official_e2b_sdk_works_against_osiris_sandbox_serve() {
    let python = venv_python();
    let root = tempfile::tempdir().unwrap();
    let (mut server, api_url, envd_url) = serve(root.path());
    assert!(api_url.starts_with("http://127.0.0.1:") && envd_url.starts_with("http://127.0.0.1:"));

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2b_sdk/check_sdk.py");
    let started = Instant::now();
    let output = Command::new(&python)
        .arg(&script)
        .env_remove("E2B_DEBUG")
        .env_remove("E2B_DOMAIN")
        .env("E2B_API_URL", &api_url)
        .env("E2B_SANDBOX_URL", &envd_url)
        .env("E2B_API_KEY", KEY)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the SDK checks failed ({:?}):\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains("all SDK checks passed"), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(120));

    // A wrong key is refused with the SDK's authentication error.
    let wrong = Command::new(&python)
        .args(["-c", "from e2b import Sandbox, AuthenticationException\ntry:\n    Sandbox.create()\nexcept AuthenticationException:\n    print('refused')\n"])
        .env_remove("E2B_DEBUG")
        .env("E2B_API_URL", &api_url)
        .env("E2B_SANDBOX_URL", &envd_url)
        .env("E2B_API_KEY", "not-the-key")
        .output()
        .expect("python runs");
    assert_eq!(String::from_utf8_lossy(&wrong.stdout).trim(), "refused", "{}", String::from_utf8_lossy(&wrong.stderr));

    // SIGTERM stops the server cleanly, and the killed sandbox left no directory behind.
    let status = Command::new("kill").arg("-TERM").arg(server.0.id().to_string()).status().expect("kill runs");
    assert!(status.success());
    let exit = server.0.wait().expect("the server exits");
    assert!(exit.success(), "osiris sandbox serve exited with {exit:?}");
    let left: Vec<_> = std::fs::read_dir(root.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "sandbox directories left behind: {left:?}");
}
