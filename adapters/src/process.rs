//! The process adapter: runs `osiris worker` as a child process and talks to it over
//! ipc-channel.
//!
//! The host opens a one-shot ipc server and starts the child with its name. The child connects
//! and hands over a sender; the host sends the [`PreparedRun`] and a byte channel on which the
//! child streams its telemetry ([`crate::worker::stream`]). Secrets reach the child only as
//! environment variables. A child that crashes, panics or is killed (out of memory) before its
//! report arrives ends as a failed run quoting the child's last stderr lines — never a hang.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipc_channel::ipc::{self, IpcBytesSender, IpcOneShotServer, IpcReceiver, IpcSender};
use osiris_engine::prepared::PreparedRun;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::worker::host_watch::HostWatch;
use crate::worker::stream::FrameDecoder;
use crate::worker::{self, HostMirror, Transport};
use crate::{AdapterError, Executed, ExecutionAdapter, ExecutionContext};

/// How long a cancelled worker gets to wind down (roll back, remove temp files) before it is
/// killed.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// How many of the child's last stderr lines a crash report quotes.
const LAST_WORDS: usize = 12;

/// Host-to-worker messages.
#[derive(Serialize, Deserialize)]
pub enum HostMessage {
    /// Run this prepared run (JSON) and stream telemetry on `telemetry`.
    Start { prepared: String, telemetry: IpcBytesSender },
    /// Cancel the run (Ctrl-C on the host).
    Cancel,
}

/// Environment variables a worker inherits besides the secrets it needs: enough to behave like
/// the host (locale, time zone, temp dir, logging), nothing else.
const INHERITED_ENV: &[&str] =
    &["PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR", "RUST_LOG", "RUST_BACKTRACE"];

/// Runs prepared runs in a child `osiris worker` process.
pub struct ProcessAdapter {
    program: PathBuf,
    echo_stderr: bool,
}

impl ProcessAdapter {
    /// Runs `program worker …` (the `osiris` binary).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        ProcessAdapter { program: program.into(), echo_stderr: false }
    }

    /// Copies the worker's log lines to this process's stderr as they come (`--verbose`).
    pub fn echo_stderr(mut self, echo: bool) -> Self {
        self.echo_stderr = echo;
        self
    }

    fn spawn(&self, server_name: &str, ctx: &ExecutionContext, run: &PreparedRun) -> Result<Child, AdapterError> {
        let mut command = Command::new(&self.program);
        command
            .arg("worker")
            .arg("--ipc")
            .arg(server_name)
            .arg("--run-dir")
            .arg(ctx.run_dir.path())
            .arg("--base-dir")
            .arg(&ctx.base_dir)
            .env_clear()
            .envs(INHERITED_ENV.iter().filter_map(|k| std::env::var_os(k).map(|v| (k, v))))
            .envs(secret_env(run, ctx))
            .stdin(Stdio::null())
            // The host's stdout: a step writing `/dev/stdout` writes there, as in a local run
            // (the worker itself prints nothing on stdout in `--ipc` mode).
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command.spawn().map_err(|e| AdapterError::Worker {
            message: format!("cannot start the worker {}: {e}", self.program.display()),
            hint: Some("check that the osiris binary is still in place and executable".into()),
        })
    }
}

/// The values of every secret variable the run's connections name, read on the host.
pub(crate) fn secret_env(run: &PreparedRun, ctx: &ExecutionContext) -> Vec<(String, String)> {
    let names: BTreeSet<&String> =
        run.resolved_connections.values().flat_map(|c| c.descriptor.secrets.values()).collect();
    names.into_iter().filter_map(|name| ctx.secrets.get(name).map(|v| (name.clone(), v))).collect()
}

#[async_trait::async_trait]
impl ExecutionAdapter for ProcessAdapter {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn prepare(&mut self, run: &PreparedRun, _ctx: &ExecutionContext) -> Result<(), AdapterError> {
        run.steps()?;
        if !self.program.is_file() {
            return Err(AdapterError::Preflight {
                message: format!("the worker binary {} does not exist", self.program.display()),
                hint: Some("reinstall osiris or run with --target local".into()),
            });
        }
        Ok(())
    }

    async fn execute(&mut self, run: &PreparedRun, ctx: &mut ExecutionContext) -> Result<Executed, AdapterError> {
        let mut sinks = worker::run_log_sinks(ctx.run_dir.path())?;
        sinks.append(&mut ctx.extra_sinks);
        let mut mirror = HostMirror::new(run, sinks)?;
        if let Some(on_start) = ctx.on_start.take() {
            on_start(mirror.progress());
        }
        let (server, name) = IpcOneShotServer::<IpcSender<HostMessage>>::new().map_err(ipc_err)?;
        let mut child = self.spawn(&name, ctx, run)?;
        let last_words = collect_stderr(&mut child, self.echo_stderr);

        let connected = tokio::task::spawn_blocking(move || server.accept());
        let to_worker = tokio::select! {
            accepted = connected => match accepted {
                Ok(Ok((_, sender))) => Some(sender),
                _ => None,
            },
            _ = child.wait() => None,
        };
        let Some(to_worker) = to_worker else {
            // The worker never connected (it failed at start); unblock the accepting thread.
            unblock_accept(name);
            let status = child.wait().await.ok();
            let report = mirror.finish(|| exit_message(status, &last_words));
            return Ok(Executed { report, sandbox_id: self.name().into(), details: Default::default() });
        };
        let (telemetry, from_worker) = ipc::bytes_channel().map_err(ipc_err)?;
        let prepared = serde_json::to_string(run).map_err(|e| AdapterError::Worker {
            message: format!("cannot serialize the prepared run: {e}"),
            hint: None,
        })?;
        to_worker.send(HostMessage::Start { prepared, telemetry }).map_err(ipc_err)?;

        let chunks = forward_chunks(from_worker);
        stream_into(&mut mirror, chunks, &to_worker, &mut child, &ctx.cancel).await?;
        if !mirror.has_report() {
            // The stream ended or broke before the report: whatever the worker still does, it
            // must not commit after this host reports the failure.
            let _ = to_worker.send(HostMessage::Cancel);
        }
        let status = match tokio::time::timeout(CANCEL_GRACE, child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                let _ = child.kill().await;
                child.wait().await.ok()
            }
        };
        let report = mirror.finish(|| exit_message(status, &last_words));
        Ok(Executed { report, sandbox_id: self.name().into(), details: Default::default() })
    }
}

/// Connects to our own one-shot server so that its blocked `accept` returns.
fn unblock_accept(name: String) {
    if let (Ok((sender, _)), Ok(server)) =
        (ipc::channel::<HostMessage>(), IpcSender::<IpcSender<HostMessage>>::connect(name))
    {
        let _ = server.send(sender);
    }
}

fn ipc_err(e: impl std::fmt::Display) -> AdapterError {
    AdapterError::Worker { message: format!("ipc with the worker failed: {e}"), hint: None }
}

/// Keeps the child's last stderr lines (its last words, should it die) and echoes them if asked.
fn collect_stderr(child: &mut Child, echo: bool) -> Arc<Mutex<VecDeque<String>>> {
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(LAST_WORDS)));
    if let Some(stderr) = child.stderr.take() {
        let tail = tail.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if echo {
                    eprintln!("{line}");
                }
                let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                if tail.len() == LAST_WORDS {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
    }
    tail
}

/// Why a worker ended without a report, in words.
fn exit_message(status: Option<std::process::ExitStatus>, last_words: &Mutex<VecDeque<String>>) -> String {
    use std::os::unix::process::ExitStatusExt;
    let how = match status {
        Some(s) if s.signal() == Some(libc::SIGKILL) => {
            "was killed by SIGKILL (out of memory, or killed by hand)".to_string()
        }
        Some(s) if s.signal() == Some(libc::SIGABRT) => "aborted (SIGABRT)".to_string(),
        Some(s) if s.signal().is_some() => format!("was killed by signal {}", s.signal().unwrap_or_default()),
        Some(s) => format!("exited with code {} before reporting", s.code().unwrap_or(-1)),
        None => "vanished".to_string(),
    };
    let words = last_words.lock().unwrap_or_else(|p| p.into_inner());
    if words.is_empty() {
        format!("the worker process {how}; it wrote nothing to stderr")
    } else {
        let quoted: Vec<&str> = words.iter().map(String::as_str).collect();
        format!("the worker process {how}; its last words:\n  {}", quoted.join("\n  "))
    }
}

/// Moves telemetry chunks from the blocking ipc receiver into the async world; the channel
/// closes when the worker's sender goes away (it finished or died).
fn forward_chunks(from_worker: ipc::IpcBytesReceiver) -> mpsc::UnboundedReceiver<Vec<u8>> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while let Ok(chunk) = from_worker.recv() {
            if tx.send(chunk).is_err() {
                return;
            }
        }
    });
    rx
}

/// Applies the worker's telemetry until its stream ends; on Ctrl-C asks the worker to cancel and
/// kills it if it does not finish within [`CANCEL_GRACE`].
async fn stream_into(
    mirror: &mut HostMirror,
    mut chunks: mpsc::UnboundedReceiver<Vec<u8>>,
    to_worker: &IpcSender<HostMessage>,
    child: &mut Child,
    cancel: &CancellationToken,
) -> Result<(), AdapterError> {
    let mut decoder = FrameDecoder::new();
    // Armed on cancellation only.
    let kill_at = tokio::time::sleep(Duration::from_secs(86_400 * 365));
    tokio::pin!(kill_at);
    let mut cancelling = false;
    loop {
        tokio::select! {
            chunk = chunks.recv() => match chunk {
                Some(bytes) => match decoder.feed(&bytes) {
                    Ok(frames) => frames.into_iter().for_each(|f| mirror.apply(f)),
                    // A garbled stream ends like a crash: the report says what was missing.
                    Err(_) => return Ok(()),
                },
                None => return Ok(()),
            },
            _ = cancel.cancelled(), if !cancelling => {
                let _ = to_worker.send(HostMessage::Cancel);
                cancelling = true;
                kill_at.as_mut().reset(tokio::time::Instant::now() + CANCEL_GRACE);
            }
            _ = &mut kill_at, if cancelling => {
                let _ = child.start_kill();
                return Ok(());
            }
        }
    }
}

/// The worker's end of the ipc connection, set up by `osiris worker --ipc NAME`.
pub struct WorkerConnection {
    pub prepared: PreparedRun,
    pub transport: Transport,
    /// Cancels the run when the host asks, or when the host goes away.
    pub host: HostWatch,
}

/// Connects to the host's one-shot server `name`, receives the run and the telemetry channel.
pub fn connect_to_host(name: &str) -> Result<WorkerConnection, AdapterError> {
    let (to_me, from_host): (IpcSender<HostMessage>, IpcReceiver<HostMessage>) = ipc::channel().map_err(ipc_err)?;
    IpcSender::<IpcSender<HostMessage>>::connect(name.to_string()).map_err(ipc_err)?.send(to_me).map_err(ipc_err)?;
    let HostMessage::Start { prepared, telemetry } = from_host.recv().map_err(ipc_err)? else {
        return Err(AdapterError::Worker { message: "the host cancelled before the run started".into(), hint: None });
    };
    let prepared: PreparedRun = serde_json::from_str(&prepared).map_err(|e| AdapterError::Worker {
        message: format!("the host sent an unreadable prepared run: {e}"),
        hint: Some("the host and the worker must be the same osiris version".into()),
    })?;
    let cancel = CancellationToken::new();
    let host = HostWatch::new(cancel.clone());
    let watch = host.clone();
    // Any message, or the host going away, cancels: there is nothing else it could say. The
    // channel closes with the host's process, however it died: this is the heartbeat here.
    std::thread::spawn(move || match from_host.recv() {
        Ok(_) => cancel.cancel(),
        Err(e) => watch.lost(format!("the host's ipc channel closed ({e:?})")),
    });
    let transport: Transport = Box::new(move |bytes| telemetry.send(bytes));
    Ok(WorkerConnection { prepared, transport, host })
}
