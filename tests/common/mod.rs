//! Harness for end-to-end tests: runs the real `osiris` binary in a scratch project directory.
#![allow(dead_code)]

pub mod mysql;
pub mod mysql_tls;
pub mod parity;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A scratch project: a temporary working directory with its own `build/` and `run_logs/`.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Self {
        Project { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes a file (creating parent directories) and returns its path.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.file(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    pub fn read(&self, relative: &str) -> Vec<u8> {
        std::fs::read(self.file(relative)).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
    }

    /// A UTF-8 file's text (assertions on text show readable diffs).
    pub fn read_text(&self, relative: &str) -> String {
        String::from_utf8(self.read(relative)).unwrap_or_else(|e| panic!("{relative} is not UTF-8: {e}"))
    }

    /// An `osiris` command running in the project directory with a clean environment
    /// (no OSIRIS_* variables from the caller).
    pub fn osiris(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_osiris"));
        cmd.args(args).current_dir(self.path());
        for (key, _) in std::env::vars() {
            if key.starts_with("OSIRIS_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("OSIRIS_HOME", self.path());
        cmd
    }

    /// Runs `osiris` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.osiris(args).output().expect("osiris binary runs")
    }

    /// The single run-log directory under `run_logs/` (panics unless exactly one exists).
    pub fn only_run_dir(&self) -> PathBuf {
        let dirs = run_dirs(&self.file("run_logs"));
        assert_eq!(dirs.len(), 1, "expected one run directory, found {dirs:?}");
        dirs.into_iter().next().unwrap()
    }

    /// Every run-log directory, sorted.
    pub fn run_dirs(&self) -> Vec<PathBuf> {
        run_dirs(&self.file("run_logs"))
    }
}

fn run_dirs(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.join("events.jsonl").exists() {
                found.push(path);
            } else if path.is_dir() {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Exit code, stdout and stderr, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn stdout_json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", describe(output)))
}

/// Parsed lines of a JSON-lines file.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect()
}

/// Names of the events in a run directory, in order.
pub fn event_names(run_dir: &Path) -> Vec<String> {
    jsonl(&run_dir.join("events.jsonl")).iter().map(|e| e["event"].as_str().unwrap_or_default().to_string()).collect()
}

/// The bundled sample CSV: quotes, embedded newlines, UTF-8, NULLs, mixed types.
pub fn sample_csv() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/orders.csv")).unwrap()
}

/// Polls `done` every 20 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// Whether a run of the project logged `event` for `step_id` (reads `events.jsonl` while the run
/// writes it: a line still being written is skipped).
pub fn step_event_logged(project: &Project, event: &str, step_id: &str) -> bool {
    project.run_dirs().iter().any(|dir| {
        std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default().lines().any(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .is_ok_and(|e| e["event"] == event && e["step_id"] == step_id)
        })
    })
}

/// Names of the entries of a directory (empty when it does not exist), sorted.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// Asserts that `secret` is in no output of `outputs` and in no file under `dir`.
pub fn assert_secret_absent(secret: &str, outputs: &[&Output], dir: &Path) {
    let contains = |bytes: &[u8]| bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
    for output in outputs {
        assert!(
            !contains(&output.stdout) && !contains(&output.stderr),
            "the secret was printed:\n{}",
            describe(output)
        );
    }
    let mut stack = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files += 1;
                let bytes = std::fs::read(&path).unwrap();
                assert!(!contains(&bytes), "{} contains the secret", path.display());
            }
        }
    }
    assert!(files > 0, "{} holds no file to check", dir.display());
}
