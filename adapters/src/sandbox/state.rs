//! The server's sandboxes: their homes, secrets, lifetimes and running processes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::e2b::protocol::{CreatedSandbox, ENVD_VERSION, ProcessConfig, SandboxDetail};

/// The longest sandbox lifetime accepted (E2B's Pro cap).
pub const MAX_TIMEOUT_SECS: u64 = 24 * 3600;

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the maps stay
/// consistent: every critical section is a single insert, remove or read).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Compares secrets without an early exit on the first differing byte.
pub(crate) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// `n` random lowercase alphanumerics (ids, tokens).
pub(crate) fn random_id(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; n];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: ids stay unique through the clock; tokens would be guessable, so
        // make them unusable instead of weak.
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        return format!("{nanos:0>n$}").chars().take(n).collect();
    }
    bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

/// The write end of a process's stdin pipe; `None` once closed (`CloseStdin`).
pub(crate) type StdinPipe = Arc<tokio::sync::Mutex<Option<tokio::process::ChildStdin>>>;

/// A process started through `Process.Start` and not yet reaped.
#[derive(Clone, Debug)]
pub(crate) struct RunningProcess {
    pub config: ProcessConfig,
    pub tag: Option<String>,
    /// Its stdin, when started with one (`stdin` true or absent, as envd does).
    pub stdin: Option<StdinPipe>,
}

/// One sandbox: a directory and the processes running in it.
pub(crate) struct SandboxEntry {
    pub id: String,
    pub template_id: String,
    pub client_id: String,
    pub token: String,
    pub env_vars: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
    /// `<root>/<id>`: the sandbox's `/home/user`.
    pub home: PathBuf,
    pub started_at: DateTime<Utc>,
    deadline: Mutex<(Instant, DateTime<Utc>)>,
    deadline_moved: Notify,
    /// Cancelled when the sandbox is killed or expires: every process task kills its group.
    pub killed: CancellationToken,
    /// Running processes by pid (= process group id).
    pub processes: Mutex<HashMap<u32, RunningProcess>>,
}

impl SandboxEntry {
    /// Moves the expiry to `timeout` from now.
    pub fn set_timeout(&self, timeout: Duration) {
        *lock(&self.deadline) = (Instant::now() + timeout, Utc::now() + timeout);
        self.deadline_moved.notify_one();
    }

    pub fn end_at(&self) -> DateTime<Utc> {
        lock(&self.deadline).1
    }

    fn deadline(&self) -> Instant {
        lock(&self.deadline).0
    }

    /// SIGKILLs every process group of the sandbox (synchronous: usable from `Drop`).
    pub fn kill_processes(&self) {
        for pid in lock(&self.processes).keys() {
            kill_group(*pid, rustix::process::Signal::KILL);
        }
    }

    pub fn created(&self) -> CreatedSandbox {
        CreatedSandbox {
            sandbox_id: self.id.clone(),
            template_id: self.template_id.clone(),
            client_id: self.client_id.clone(),
            envd_version: ENVD_VERSION.to_string(),
            envd_access_token: Some(self.token.clone()),
            domain: None,
            alias: None,
        }
    }

    /// The `GET /sandboxes/{id}` answer; the size is this machine's.
    pub fn detail(&self, with_token: bool) -> SandboxDetail {
        let host = HostSize::get();
        SandboxDetail {
            sandbox_id: self.id.clone(),
            template_id: self.template_id.clone(),
            client_id: self.client_id.clone(),
            alias: None,
            started_at: self.started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            end_at: self.end_at().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            cpu_count: host.cpus,
            memory_mb: host.memory_mb,
            disk_size_mb: host.disk_mb(&self.home),
            envd_version: ENVD_VERSION.to_string(),
            state: "running".into(),
            metadata: self.metadata.clone(),
            envd_access_token: with_token.then(|| self.token.clone()),
            domain: None,
        }
    }
}

/// Sends `signal` to the process group `pid` (each sandbox process leads its own group, so its
/// children go too). A group that is already gone is not an error.
pub(crate) fn kill_group(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// This machine's size, reported as the sandbox's.
struct HostSize {
    cpus: u32,
    memory_mb: u64,
}

impl HostSize {
    fn get() -> Self {
        let cpus = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
        let memory_mb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("MemTotal:"))?.to_string();
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .map(|kib| kib / 1024)
            .unwrap_or(0);
        HostSize { cpus, memory_mb }
    }

    fn disk_mb(&self, path: &std::path::Path) -> u64 {
        rustix::fs::statvfs(path).map(|s| s.f_blocks.saturating_mul(s.f_frsize) / (1024 * 1024)).unwrap_or(0)
    }
}

/// All sandboxes of one server.
pub(crate) struct State {
    pub api_key: String,
    pub root: PathBuf,
    pub keep: bool,
    /// Template id → directory whose files every sandbox of that template starts with.
    pub templates: HashMap<String, PathBuf>,
    pub sandboxes: Mutex<HashMap<String, Arc<SandboxEntry>>>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
}

/// What a create asked for, validated.
pub(crate) struct NewEntry {
    pub template_id: String,
    pub timeout: Duration,
    pub env_vars: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
}

impl State {
    pub fn get(&self, id: &str) -> Option<Arc<SandboxEntry>> {
        lock(&self.sandboxes).get(id).cloned()
    }

    /// Creates a sandbox with its home directory and arms its expiry.
    pub fn create(self: &Arc<Self>, new: NewEntry) -> std::io::Result<Arc<SandboxEntry>> {
        let id = format!("i{}", random_id(19));
        let home = self.root.join(&id);
        std::fs::create_dir_all(&home)?;
        if let Some(template) = self.templates.get(&new.template_id) {
            populate(template, &home)?;
        }
        let entry = Arc::new(SandboxEntry {
            id: id.clone(),
            template_id: new.template_id,
            client_id: "osiris-local".into(),
            token: random_id(40),
            env_vars: new.env_vars,
            metadata: new.metadata,
            home,
            started_at: Utc::now(),
            deadline: Mutex::new((Instant::now() + new.timeout, Utc::now() + new.timeout)),
            deadline_moved: Notify::new(),
            killed: CancellationToken::new(),
            processes: Mutex::new(HashMap::new()),
        });
        lock(&self.sandboxes).insert(id, entry.clone());
        tokio::spawn(expire(Arc::downgrade(self), entry.clone()));
        Ok(entry)
    }

    /// Kills a sandbox: its processes, then (unless `--keep`) its directory. `false` when there
    /// was no such sandbox.
    pub async fn kill(&self, id: &str) -> bool {
        let Some(entry) = lock(&self.sandboxes).remove(id) else { return false };
        entry.killed.cancel();
        entry.kill_processes();
        if !self.keep {
            remove_home(&entry.home).await;
        }
        true
    }

    /// Kills every sandbox (shutdown).
    pub async fn kill_all(&self) {
        let ids: Vec<String> = lock(&self.sandboxes).keys().cloned().collect();
        for id in ids {
            self.kill(&id).await;
        }
    }
}

/// Removes a home; a process dying of SIGKILL may still have created a file, so try twice.
async fn remove_home(home: &std::path::Path) {
    for _ in 0..2 {
        match tokio::fs::remove_dir_all(home).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => return,
        }
    }
}

/// Kills the sandbox when its deadline passes (the deadline moves with `set_timeout`).
async fn expire(state: Weak<State>, entry: Arc<SandboxEntry>) {
    loop {
        let deadline = entry.deadline();
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                if Instant::now() >= entry.deadline() {
                    if let Some(state) = state.upgrade() {
                        state.kill(&entry.id).await;
                    }
                    return;
                }
            }
            _ = entry.deadline_moved.notified() => {}
            _ = entry.killed.cancelled() => return,
        }
    }
}

/// Gives a new sandbox home the files of its template directory: hard links where the file
/// system allows (a 100 MB binary costs nothing), copies elsewhere.
fn populate(template: &Path, home: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(template)? {
        let entry = entry?;
        let (from, to) = (entry.path(), home.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&to)?;
            populate(&from, &to)?;
        } else if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}
