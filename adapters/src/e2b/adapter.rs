//! The E2B adapter: a transparent proxy that runs `osiris worker` in an E2B sandbox.
//!
//! - **prepare** checks the key, and that every file the run reads or writes can travel
//!   (relative paths only: a sandbox has no host paths).
//! - **execute** creates the sandbox and checks it is as large as asked, ships this binary unless
//!   the sandbox has it already (content-addressed), uploads the prepared run and the input files,
//!   starts the worker through envd's process API with secrets in its environment only, and feeds
//!   its stdout — the Arrow IPC telemetry stream — into the host's run log as it arrives.
//! - **collect** downloads the outputs of succeeded steps and the artifacts, then kills the
//!   sandbox. It runs on every path: success, failure, timeout, Ctrl-C.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use osiris_driver_files::atomic::OutputTarget;
use osiris_engine::prepared::PreparedRun;
use osiris_engine::telemetry::{Metric, MetricName, Telemetry, Unit};
use serde_json::{Map, Value, json};

use crate::binary::ShippedBinary;
use crate::e2b::client::{E2bClient, E2bError, Sandbox, StartOptions};
use crate::e2b::protocol::{DataEvent, EndEvent, NewSandbox, ProcessConfig, ProcessEvent, Signal};
use crate::process::secret_env;
use crate::worker::host_watch::{HEARTBEAT, HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT};
use crate::worker::stream::FrameDecoder;
use crate::worker::{self, HostMirror};
use crate::{AdapterError, Executed, ExecutionAdapter, ExecutionContext, FailureSource};

/// Where a run lives in the sandbox home.
const REMOTE_RUNS: &str = "osiris-runs";

/// How long a cancelled worker gets before SIGKILL.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// How long the host waits beyond the worker's heartbeat timeout before it reports a lost
/// worker: clocks and schedulers are not exact.
const HEARTBEAT_MARGIN: Duration = Duration::from_secs(1);

/// How long a signal to a lost worker, or a look at whether it still runs, may take.
const KILL_TIMEOUT: Duration = Duration::from_secs(3);

/// How many of the worker's last stderr lines a failure quotes.
const LAST_WORDS: usize = 12;

/// What the user asked of the sandbox.
#[derive(Clone, Debug)]
pub struct E2bOptions {
    pub template: String,
    /// Sandbox lifetime.
    pub timeout: Duration,
    pub min_cpu: Option<u32>,
    pub min_memory_bytes: Option<u64>,
    /// Sandbox-wide environment (not secrets).
    pub env: Vec<(String, String)>,
    /// Host variables handed to the worker process.
    pub pass_env: Vec<String>,
    /// Copy the worker's log lines to stderr as they arrive.
    pub echo_stderr: bool,
}

impl Default for E2bOptions {
    fn default() -> Self {
        E2bOptions {
            template: "base".into(),
            timeout: Duration::from_secs(900),
            min_cpu: None,
            min_memory_bytes: None,
            env: Vec::new(),
            pass_env: Vec::new(),
            echo_stderr: false,
        }
    }
}

/// Runs prepared runs in E2B sandboxes (or anything speaking E2B's API, such as
/// `osiris sandbox serve`).
pub struct E2bAdapter {
    client: E2bClient,
    options: E2bOptions,
    binary: Option<ShippedBinary>,
    binary_path: PathBuf,
    /// The sandbox of the current run, until collect kills it.
    sandbox: Option<Sandbox>,
    /// Remote paths of this run.
    layout: Option<RemoteLayout>,
    /// Artifacts the worker reported (relative to the run dir), to download.
    artifacts: Vec<String>,
    /// Steps that succeeded, whose outputs are downloaded.
    succeeded: Vec<String>,
    details: Map<String, Value>,
    telemetry: Option<Telemetry>,
}

#[derive(Clone, Debug)]
struct RemoteLayout {
    run_dir: String,
    base_dir: String,
    prepared: String,
}

impl RemoteLayout {
    fn of(run: &PreparedRun) -> Self {
        let root = format!("{REMOTE_RUNS}/{}", run.run_id());
        RemoteLayout {
            run_dir: format!("{root}/run"),
            base_dir: format!("{root}/work"),
            prepared: format!("{root}/prepared_run.json"),
        }
    }
}

impl E2bAdapter {
    /// `binary_path` is the `osiris` executable to ship (normally the running one).
    pub fn new(client: E2bClient, options: E2bOptions, binary_path: impl Into<PathBuf>) -> Self {
        E2bAdapter {
            client,
            options,
            binary: None,
            binary_path: binary_path.into(),
            sandbox: None,
            layout: None,
            artifacts: Vec::new(),
            succeeded: Vec::new(),
            details: Map::new(),
            telemetry: None,
        }
    }

    fn metric(&self, name: MetricName, value: f64, unit: Unit) {
        if let Some(t) = &self.telemetry {
            t.metric(Metric { name, value: value.into(), step_id: None, unit });
        }
    }

    /// Creates the sandbox and checks its size against what was asked.
    async fn create_sandbox(&mut self, run: &PreparedRun) -> Result<Sandbox, AdapterError> {
        let started = Instant::now();
        let request = NewSandbox {
            template_id: self.options.template.clone(),
            timeout: self.options.timeout.as_secs() as u32,
            metadata: [("osiris_session".to_string(), run.run_id().to_string())].into(),
            env_vars: self.options.env.iter().cloned().collect(),
        };
        let sandbox = self.client.create_sandbox(&request).await.map_err(remote_err)?;
        // Held from here on, so that collect kills it whatever fails next.
        self.sandbox = Some(sandbox.clone());
        self.details.insert("sandbox_id".into(), json!(sandbox.id()));
        self.metric(MetricName::E2bSandboxCreate, started.elapsed().as_secs_f64(), Unit::Seconds);
        if self.options.min_cpu.is_some() || self.options.min_memory_bytes.is_some() {
            self.check_size(&sandbox).await?;
        }
        Ok(sandbox)
    }

    async fn check_size(&self, sandbox: &Sandbox) -> Result<(), AdapterError> {
        let info = self.client.sandbox_info(sandbox.id()).await.map_err(remote_err)?;
        let too_small = |what: String| {
            AdapterError::Worker {
            message: format!("sandbox template '{}' is too small: {what}", self.options.template),
            hint: Some(
                "E2B sizes sandboxes by template: build one with more resources (`e2b template build --cpu-count N --memory-mb M`) and pass it with --e2b-template".into(),
            ),
        }
        };
        if let Some(cpu) = self.options.min_cpu.filter(|&c| info.cpu_count < c) {
            return Err(too_small(format!("{} vCPU, --e2b-cpu asks for {cpu}", info.cpu_count)));
        }
        if let Some(bytes) = self.options.min_memory_bytes.filter(|&b| info.memory_mb * 1024 * 1024 < b) {
            return Err(too_small(format!("{} MiB, --e2b-mem asks for {} MiB", info.memory_mb, bytes >> 20)));
        }
        Ok(())
    }

    /// Uploads the binary unless the sandbox has it; returns its absolute path in the sandbox.
    async fn ship_binary(&self, sandbox: &Sandbox, binary: &ShippedBinary) -> Result<(String, u64), AdapterError> {
        let remote = binary.remote_path();
        if let Some(entry) = sandbox.stat(&remote).await.map_err(remote_err)? {
            return Ok((entry.path, 0));
        }
        // Uploaded under a temporary name and moved into place once executable, so a sandbox
        // never holds a half-uploaded binary under the name that says it is complete.
        let partial = format!("{remote}.part-{}", std::process::id());
        sandbox.upload_file(&partial, &binary.path).await.map_err(remote_err)?;
        let install = format!("chmod 755 '{partial}' && mv '{partial}' '{remote}' && '{remote}' --version");
        let (code, stderr) = run_to_end(sandbox, "/bin/sh", &["-c", &install]).await?;
        if code != 0 {
            return Err(binary_refused(&stderr));
        }
        let entry = sandbox.stat(&remote).await.map_err(remote_err)?.ok_or_else(|| AdapterError::Worker {
            message: format!("the sandbox lost the uploaded binary {remote}"),
            hint: None,
        })?;
        Ok((entry.path, binary.len))
    }

    async fn upload_run(
        &self,
        sandbox: &Sandbox,
        run: &PreparedRun,
        ctx: &ExecutionContext,
    ) -> Result<u64, AdapterError> {
        let layout = RemoteLayout::of(run);
        let prepared = serde_json::to_vec(run).map_err(|e| AdapterError::Worker {
            message: format!("cannot serialize the prepared run: {e}"),
            hint: None,
        })?;
        let mut bytes = prepared.len() as u64;
        sandbox.upload_bytes(&layout.prepared, prepared).await.map_err(remote_err)?;
        for input in &run.io_layout.inputs {
            let local = ctx.base_dir.join(&input.path);
            if !local.is_file() {
                // The step itself reports a missing input, exactly as it would locally.
                continue;
            }
            bytes += std::fs::metadata(&local).map(|m| m.len()).unwrap_or(0);
            let remote = format!("{}/{}", layout.base_dir, input.path);
            sandbox.upload_file(&remote, &local).await.map_err(remote_err)?;
        }
        Ok(bytes)
    }
}

#[async_trait::async_trait]
impl ExecutionAdapter for E2bAdapter {
    fn name(&self) -> &'static str {
        "e2b"
    }

    fn failure_source(&self) -> FailureSource {
        FailureSource::Remote
    }

    async fn prepare(&mut self, run: &PreparedRun, _ctx: &ExecutionContext) -> Result<(), AdapterError> {
        run.steps()?;
        for file in run.io_layout.inputs.iter().chain(&run.io_layout.outputs) {
            let path = Path::new(&file.path);
            if path.is_absolute() || path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(AdapterError::Preflight {
                    message: format!(
                        "step '{}' uses the file {}, which a sandbox cannot reach: remote runs move files by their path relative to the project",
                        file.step_id, file.path
                    ),
                    hint: Some("use a path relative to the working directory (or a relative base_dir in the connection), or run with --target local".into()),
                });
            }
        }
        for name in &self.options.pass_env {
            if std::env::var_os(name).is_none() {
                return Err(AdapterError::Preflight {
                    message: format!("--e2b-pass-env {name}: {name} is not set in this environment"),
                    hint: Some(format!("export {name}, or drop --e2b-pass-env {name}")),
                });
            }
        }
        let binary = ShippedBinary::of(&self.binary_path)
            .map_err(|e| AdapterError::Preflight { message: e.to_string(), hint: Some("reinstall osiris".into()) })?;
        self.binary = Some(binary);
        Ok(())
    }

    async fn execute(&mut self, run: &PreparedRun, ctx: &mut ExecutionContext) -> Result<Executed, AdapterError> {
        let mut sinks = worker::run_log_sinks(ctx.run_dir.path())?;
        sinks.append(&mut ctx.extra_sinks);
        self.telemetry = Some(Telemetry::new(run.run_id(), sinks.clone()));
        let mut mirror = HostMirror::new(run, sinks)?;
        if let Some(on_start) = ctx.on_start.take() {
            on_start(mirror.progress());
        }
        let binary = self
            .binary
            .clone()
            .ok_or_else(|| AdapterError::Worker { message: "execute called before prepare".into(), hint: None })?;
        // Not raced against Ctrl-C: a create abandoned halfway would leave a sandbox nobody
        // knows to kill. It takes a moment; the cancellation is honoured right after.
        let sandbox = self.create_sandbox(run).await?;
        let sandbox_created = Instant::now();
        if ctx.cancel.is_cancelled() {
            return Err(cancelled_before_start());
        }
        let layout = RemoteLayout::of(run);
        self.layout = Some(layout.clone());
        let upload_started = Instant::now();
        let (remote_binary, binary_bytes) = self.ship_binary(&sandbox, &binary).await?;
        let run_bytes = self.upload_run(&sandbox, run, ctx).await?;
        self.metric(MetricName::E2bUpload, upload_started.elapsed().as_secs_f64(), Unit::Seconds);
        self.metric(MetricName::E2bUploadBytes, (binary_bytes + run_bytes) as f64, Unit::Bytes);
        self.details.insert("binary_uploaded".into(), json!(binary_bytes > 0));

        let mut envs: BTreeMap<String, String> = secret_env(run, ctx).into_iter().collect();
        for name in &self.options.pass_env {
            if let Ok(value) = std::env::var(name) {
                envs.insert(name.clone(), value);
            }
        }
        let process = ProcessConfig {
            cmd: remote_binary,
            args: vec![
                "worker".into(),
                "--prepared".into(),
                layout.prepared.clone(),
                "--run-dir".into(),
                layout.run_dir.clone(),
                "--base-dir".into(),
                layout.base_dir.clone(),
                "--heartbeat-timeout".into(),
                HEARTBEAT_TIMEOUT.as_secs().to_string(),
            ],
            envs,
            cwd: None,
        };
        let outcome = stream_worker(
            &sandbox,
            process,
            &mut mirror,
            &ctx.cancel,
            self.options.echo_stderr,
            self.options.timeout,
            sandbox_created,
        )
        .await?;
        self.succeeded = mirror.succeeded_steps();
        self.artifacts = mirror.artifacts().to_vec();
        let report = mirror.finish(|| outcome.describe());
        let sandbox_id = sandbox.id().to_string();
        Ok(Executed { report, sandbox_id, details: std::mem::take(&mut self.details) })
    }

    async fn collect(&mut self, run: &PreparedRun, ctx: &ExecutionContext) -> Result<(), AdapterError> {
        let Some(sandbox) = self.sandbox.take() else { return Ok(()) };
        let started = Instant::now();
        let downloaded = self.download_results(&sandbox, run, ctx).await;
        let killed = self.client.kill_sandbox(sandbox.id()).await;
        self.metric(MetricName::E2bCollect, started.elapsed().as_secs_f64(), Unit::Seconds);
        downloaded?;
        killed.map(|_| ()).map_err(remote_err)
    }
}

impl E2bAdapter {
    async fn download_results(
        &self,
        sandbox: &Sandbox,
        run: &PreparedRun,
        ctx: &ExecutionContext,
    ) -> Result<(), AdapterError> {
        let Some(layout) = &self.layout else { return Ok(()) };
        for output in run.io_layout.outputs.iter().filter(|o| self.succeeded.contains(&o.step_id)) {
            let remote = format!("{}/{}", layout.base_dir, output.path);
            download_output(sandbox, &remote, &ctx.base_dir.join(&output.path)).await?;
        }
        for artifact in &self.artifacts {
            let remote = format!("{}/{artifact}", layout.run_dir);
            let local = ctx.run_dir.path().join(artifact);
            if let Some(parent) = local.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|source| AdapterError::RunLog { path: parent.to_path_buf(), source })?;
            }
            sandbox.download_file(&remote, &local).await.map_err(remote_err)?;
        }
        Ok(())
    }
}

/// Brings one output home as a local run's writer would have written it: atomically into a
/// regular file (a symlink's target), straight through into a FIFO or a device — never replacing
/// what is not a regular file.
async fn download_output(sandbox: &Sandbox, remote: &str, local: &Path) -> Result<(), AdapterError> {
    let output_err = |e: osiris_engine::driver::DriverError| AdapterError::Worker {
        message: format!("cannot bring the output {} home: {}", local.display(), e.message),
        hint: e.hint,
    };
    let (target, file) = OutputTarget::create(local, true).map_err(output_err)?;
    sandbox.download_into(remote, tokio::fs::File::from_std(file), local).await.map_err(remote_err)?;
    target.commit().map_err(output_err)
}

/// How the worker process ended, as seen through envd.
#[derive(Default)]
struct WorkerOutcome {
    end: Option<EndEvent>,
    /// The stream broke off (sandbox gone, network) before the end event.
    lost: Option<String>,
    last_words: VecDeque<String>,
    timed_out_after: Option<Duration>,
    /// What became of a worker whose stream was lost.
    stopped: Option<String>,
}

impl WorkerOutcome {
    fn describe(&self) -> String {
        let how = match (&self.end, &self.lost, self.timed_out_after) {
            (_, _, Some(t)) => {
                format!("was stopped when the sandbox reached its timeout ({} s, --e2b-timeout)", t.as_secs())
            }
            (Some(end), _, _) if end.status.contains("killed") => {
                "was killed in the sandbox (out of memory, or the sandbox was killed)".to_string()
            }
            (Some(end), _, _) => format!(
                "ended ({}) without a report",
                if end.status.is_empty() { "exit status 0" } else { &end.status }
            ),
            (None, Some(lost), _) => match &self.stopped {
                Some(stopped) => format!("could no longer be followed ({lost}); {stopped}"),
                None => format!("could no longer be followed ({lost})"),
            },
            (None, None, _) => "ended its output without an exit status".to_string(),
        };
        if self.last_words.is_empty() {
            format!("the worker in the sandbox {how}; it wrote nothing to stderr")
        } else {
            let quoted: Vec<&str> = self.last_words.iter().map(String::as_str).collect();
            format!("the worker in the sandbox {how}; its last words:\n  {}", quoted.join("\n  "))
        }
    }
}

/// Splits stderr chunks into lines, keeps the last few, echoes them when asked.
struct StderrLines {
    pending: Vec<u8>,
    echo: bool,
}

impl StderrLines {
    fn push(&mut self, bytes: &[u8], tail: &mut VecDeque<String>) {
        self.pending.extend_from_slice(bytes);
        while let Some(newline) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=newline).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if self.echo {
                eprintln!("{line}");
            }
            if tail.len() == LAST_WORDS {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}

/// Starts the worker and applies its telemetry until its process ends. Ctrl-C sends SIGTERM (the
/// worker cancels and still reports), then SIGKILL after [`CANCEL_GRACE`]. Heartbeats go to the
/// worker's stdin all along; when the stream is lost the worker is killed through envd, or, when
/// envd is out of reach too, this waits until the worker has surely missed its heartbeat and
/// cancelled itself — so no commit follows the failure this host reports.
async fn stream_worker(
    sandbox: &Sandbox,
    process: ProcessConfig,
    mirror: &mut HostMirror,
    cancel: &tokio_util::sync::CancellationToken,
    echo_stderr: bool,
    sandbox_timeout: Duration,
    sandbox_created: Instant,
) -> Result<WorkerOutcome, AdapterError> {
    // No Connect deadline: the sandbox's own timeout bounds the run.
    let options = StartOptions { stdin: true, ..Default::default() };
    let mut events = sandbox.start_process(process, options).await.map_err(remote_err)?;
    let pid = events.pid();
    let heartbeat = Heartbeat::start(sandbox.clone(), pid);
    let mut decoder = FrameDecoder::new();
    let mut outcome = WorkerOutcome::default();
    let mut stderr = StderrLines { pending: Vec::new(), echo: echo_stderr };
    let kill_at = tokio::time::sleep(Duration::from_secs(86_400 * 365));
    tokio::pin!(kill_at);
    let mut cancelling = false;
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(ProcessEvent::Start(_))) => {}
                Some(Ok(ProcessEvent::Data(DataEvent::Stdout(bytes)))) => match decoder.feed(&bytes) {
                    Ok(frames) => frames.into_iter().for_each(|f| mirror.apply(f)),
                    Err(e) => {
                        outcome.lost = Some(format!("its telemetry stream is garbled ({e})"));
                        break;
                    }
                },
                Some(Ok(ProcessEvent::Data(DataEvent::Stderr(bytes) | DataEvent::Pty(bytes)))) => {
                    stderr.push(&bytes, &mut outcome.last_words)
                }
                Some(Ok(ProcessEvent::Keepalive(_))) => {}
                Some(Ok(ProcessEvent::End(end))) => {
                    outcome.end = Some(end);
                    break;
                }
                Some(Err(e)) => {
                    outcome.lost = Some(e.to_string());
                    break;
                }
                None => break,
            },
            _ = cancel.cancelled(), if !cancelling => {
                cancelling = true;
                let _ = sandbox.send_signal(pid, Signal::Sigterm).await;
                kill_at.as_mut().reset(tokio::time::Instant::now() + CANCEL_GRACE);
            }
            _ = &mut kill_at, if cancelling => {
                let _ = sandbox.send_signal(pid, Signal::Sigkill).await;
                kill_at.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(86_400 * 365));
            }
        }
    }
    heartbeat.stop();
    stderr.push(b"\n", &mut outcome.last_words);
    if outcome.end.is_none() {
        outcome.stopped = Some(give_up_on(sandbox, pid, &heartbeat).await);
    }
    // A worker that ended without its report at about the sandbox's deadline was stopped by it.
    let clean_exit = outcome.end.as_ref().is_some_and(|e| e.exited && e.exit_code == 0);
    // (The sandbox's lifetime runs from its creation, uploads included.)
    if !clean_exit && sandbox_created.elapsed() + Duration::from_secs(1) >= sandbox_timeout {
        outcome.timed_out_after = Some(sandbox_timeout);
    }
    Ok(outcome)
}

/// Heartbeats to the worker's stdin, once a [`HEARTBEAT_INTERVAL`], from a task of its own.
struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    /// When envd last took a heartbeat: the worker's timeout runs from there at the latest.
    last_delivered: std::sync::Arc<std::sync::Mutex<Instant>>,
}

impl Heartbeat {
    fn start(sandbox: Sandbox, pid: u32) -> Self {
        let last_delivered = std::sync::Arc::new(std::sync::Mutex::new(Instant::now()));
        let delivered = last_delivered.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if sandbox.send_input(pid, HEARTBEAT, HEARTBEAT_INTERVAL * 2).await.is_ok() {
                    *delivered.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                }
            }
        });
        Heartbeat { task, last_delivered }
    }

    fn stop(&self) {
        self.task.abort();
    }

    /// When the worker has surely noticed the missing heartbeats and cancelled.
    fn worker_gives_up_at(&self) -> Instant {
        *self.last_delivered.lock().unwrap_or_else(|p| p.into_inner()) + HEARTBEAT_TIMEOUT + HEARTBEAT_MARGIN
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The worker's stream was lost while it ran: stop it through envd as Ctrl-C does — SIGTERM, so
/// that it rolls back and drops its staging tables, and SIGKILL if it is still there after
/// [`CANCEL_GRACE`]. When envd cannot be reached either, wait until the worker has cancelled
/// itself for want of heartbeats. Returns what became of the worker, for the failure message.
async fn give_up_on(sandbox: &Sandbox, pid: u32, heartbeat: &Heartbeat) -> String {
    let unreachable = || async {
        tokio::time::sleep_until(heartbeat.worker_gives_up_at().into()).await;
        format!(
            "envd cannot be reached to stop it; it has cancelled itself after {} s without a heartbeat",
            HEARTBEAT_TIMEOUT.as_secs()
        )
    };
    match signal_worker(sandbox, pid, Signal::Sigterm).await {
        Signalled::Gone => return "it is no longer running".to_string(),
        Signalled::Unreachable => return unreachable().await,
        Signalled::Delivered => {}
    }
    if ended_within(sandbox, pid, CANCEL_GRACE).await {
        return "it was stopped through envd (SIGTERM) and rolled back".to_string();
    }
    match signal_worker(sandbox, pid, Signal::Sigkill).await {
        Signalled::Delivered | Signalled::Gone => {
            format!("it was killed through envd (SIGKILL) after {} s", CANCEL_GRACE.as_secs())
        }
        Signalled::Unreachable => unreachable().await,
    }
}

enum Signalled {
    Delivered,
    /// envd knows no such process, or E2B no such sandbox (its timeout expired): it ended.
    Gone,
    Unreachable,
}

/// Sends `signal` to the worker, trying [`SIGNAL_ATTEMPTS`] times: the first request after a
/// lost stream often goes out on a pooled connection that died with it, and a signal is safe to
/// repeat.
async fn signal_worker(sandbox: &Sandbox, pid: u32, signal: Signal) -> Signalled {
    for attempt in 1..=SIGNAL_ATTEMPTS {
        match tokio::time::timeout(KILL_TIMEOUT, sandbox.send_signal(pid, signal)).await {
            Ok(Ok(())) => return Signalled::Delivered,
            Ok(Err(
                E2bError::Rpc { code: crate::e2b::protocol::Code::NotFound, .. } | E2bError::SandboxGone { .. },
            )) => {
                return Signalled::Gone;
            }
            _ if attempt < SIGNAL_ATTEMPTS => tokio::time::sleep(SIGNAL_RETRY_PAUSE).await,
            _ => {}
        }
    }
    Signalled::Unreachable
}

/// How often, and how far apart, the host tries to signal a worker whose stream it lost.
const SIGNAL_ATTEMPTS: u32 = 3;
const SIGNAL_RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Whether envd stops listing the process `pid` within `grace`.
async fn ended_within(sandbox: &Sandbox, pid: u32, grace: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        let listed = tokio::time::timeout(KILL_TIMEOUT, sandbox.list_processes()).await;
        if let Ok(Ok(processes)) = listed
            && !processes.iter().any(|p| p.pid == pid)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Runs a short command in the sandbox to its end; returns its exit code and stderr.
async fn run_to_end(sandbox: &Sandbox, cmd: &str, args: &[&str]) -> Result<(i32, String), AdapterError> {
    let process =
        ProcessConfig { cmd: cmd.into(), args: args.iter().map(|a| a.to_string()).collect(), ..Default::default() };
    let options = StartOptions { timeout: Some(Duration::from_secs(120)), ..Default::default() };
    let output =
        sandbox.start_process(process, options).await.map_err(remote_err)?.into_output().await.map_err(remote_err)?;
    Ok((output.end.exit_code, String::from_utf8_lossy(&output.stderr).into_owned()))
}

/// E2B errors carry their own advice in the message (which key, which variable, what to do).
fn remote_err(e: E2bError) -> AdapterError {
    AdapterError::Worker { message: format!("E2B: {e}"), hint: None }
}

/// The sandbox could not run the shipped binary: name the usual cause.
fn binary_refused(stderr: &str) -> AdapterError {
    let hint = if stderr.contains("GLIBC_") {
        "the sandbox's C library is older than this binary needs (glibc 2.35 or newer): use a Debian 12 / Ubuntu 22.04 based template, or a static (musl) build of osiris"
    } else {
        "check that the sandbox template is x86_64 Linux"
    };
    AdapterError::Worker {
        message: format!("the sandbox cannot run the uploaded osiris binary: {}", stderr.trim()),
        hint: Some(hint.into()),
    }
}

fn cancelled_before_start() -> AdapterError {
    AdapterError::Worker { message: "cancelled while the sandbox was being created".into(), hint: None }
}
