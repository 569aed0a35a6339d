//! `process.Process`: starting processes in a sandbox home and streaming their output as
//! Connect envelopes, as envd does.

use std::collections::BTreeMap;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::paths;
use super::state::{RunningProcess, SandboxEntry, StdinPipe, kill_group, lock};
use crate::e2b::envelope::{encode_json, end_of_stream};
use crate::e2b::protocol::{
    CloseStdinRequest, Code, ConnectError, DataEvent, EndEvent, KeepAlive, ListResponse, ProcessEvent, ProcessInfo,
    ProcessInput, ProcessSelector, SendInputRequest, SendSignalRequest, Signal, StartEvent, StartRequest,
    StartResponse,
};

/// envd reads output in chunks of up to 32 KiB.
const CHUNK: usize = 32 * 1024;

/// How long output of an exited process is still read: a background child that inherited the
/// pipes must not hold the stream open forever.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How a `Start` stream is to be run.
pub(crate) struct StartParams {
    pub request: StartRequest,
    /// `Connect-Timeout-Ms`: the process is killed when it expires.
    pub deadline: Option<Duration>,
    /// `Keepalive-Ping-Interval`.
    pub keepalive: Option<Duration>,
}

/// Starts the process and returns the channel its envelopes (start, data…, end, end-of-stream)
/// arrive on. Errors before the process runs are Connect errors.
pub(crate) fn start(sandbox: Arc<SandboxEntry>, params: StartParams) -> Result<mpsc::Receiver<Bytes>, ConnectError> {
    let config = &params.request.process;
    let cwd = match config.cwd.as_deref() {
        None | Some("") => sandbox.home.clone(),
        Some(cwd) => paths::resolve(&sandbox.home, cwd).map_err(|m| ConnectError::new(Code::InvalidArgument, m))?.host,
    };
    if !cwd.is_dir() {
        let shown = config.cwd.clone().unwrap_or_default();
        return Err(ConnectError::new(Code::InvalidArgument, format!("cwd '{shown}' does not exist")));
    }
    // envd opens a stdin pipe unless told `stdin: false`.
    let with_stdin = params.request.stdin != Some(false);
    let mut child = command(&sandbox, config, &cwd, with_stdin)
        .spawn()
        .map_err(|e| ConnectError::new(Code::Internal, format!("error starting process '{}': {e}", config.cmd)))?;
    let pid = child.id().unwrap_or_default();
    let stdin = child.stdin.take().map(|pipe| Arc::new(tokio::sync::Mutex::new(Some(pipe))));
    let running = RunningProcess { config: config.clone(), tag: params.request.tag.clone(), stdin };
    lock(&sandbox.processes).insert(pid, running);
    let (tx, rx) = mpsc::channel(64);
    // The channel is empty: the start event is always first.
    let _ = tx.try_send(event(ProcessEvent::Start(StartEvent { pid })));
    let stdout = child.stdout.take().map(|out| tokio::spawn(pump(out, tx.clone(), DataEvent::Stdout)));
    let stderr = child.stderr.take().map(|err| tokio::spawn(pump(err, tx.clone(), DataEvent::Stderr)));
    tokio::spawn(async move {
        let keepalive = params.keepalive.map(|every| tokio::spawn(keepalives(tx.clone(), every)));
        let (status, timed_out) = supervise(&mut child, pid, &sandbox, params.deadline).await;
        for reader in [stdout, stderr].into_iter().flatten() {
            let _ = tokio::time::timeout(DRAIN_GRACE, reader).await;
        }
        if let Some(keepalive) = keepalive {
            keepalive.abort();
        }
        lock(&sandbox.processes).remove(&pid);
        let _ = tx.send(event(ProcessEvent::End(end_event(status)))).await;
        let error = timed_out.map(|after| {
            ConnectError::new(
                Code::DeadlineExceeded,
                format!("the process ran past its deadline (Connect-Timeout-Ms {}) and was killed", after.as_millis()),
            )
        });
        let _ = tx.send(end_of_stream(error)).await;
    });
    Ok(rx)
}

/// The command with envd's environment: PATH, HOME, USER, LOGNAME, then the sandbox's
/// variables and `E2B_SANDBOX=true`, then the request's (later wins); stdin is a pipe fed by
/// `SendInput` when asked for, else `/dev/null`.
fn command(
    sandbox: &SandboxEntry,
    config: &crate::e2b::protocol::ProcessConfig,
    cwd: &std::path::Path,
    with_stdin: bool,
) -> tokio::process::Command {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()));
    env.insert("HOME".into(), sandbox.home.to_string_lossy().into_owned());
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "user".into());
    env.insert("USER".into(), user.clone());
    env.insert("LOGNAME".into(), user);
    env.extend(sandbox.env_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.insert("E2B_SANDBOX".into(), "true".into());
    env.extend(config.envs.iter().map(|(k, v)| (k.clone(), v.clone())));
    // A program named by its sandbox path (`/home/user/bin/x`, `~/bin/x`) runs from the home.
    let program = match paths::resolve(&sandbox.home, &config.cmd) {
        Ok(p) if config.cmd.starts_with('/') || config.cmd.starts_with("~/") => p.host.into_os_string(),
        _ => config.cmd.clone().into(),
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(&config.args)
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .stdin(if with_stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // Closing the HTTP stream only detaches, as with envd: the process lives on.
        .kill_on_drop(false);
    command
}

/// Waits for the process; kills its group at the deadline or when the sandbox dies. Returns the
/// exit status and, when the deadline killed it, the deadline.
async fn supervise(
    child: &mut tokio::process::Child,
    pid: u32,
    sandbox: &SandboxEntry,
    deadline: Option<Duration>,
) -> (std::io::Result<ExitStatus>, Option<Duration>) {
    let expiry = async {
        match deadline {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let mut timed_out = None;
    tokio::select! {
        status = child.wait() => return (status, None),
        _ = expiry => timed_out = deadline,
        _ = sandbox.killed.cancelled() => {}
    }
    kill_group(pid, rustix::process::Signal::KILL);
    (child.wait().await, timed_out)
}

/// Forwards one pipe as data events. Keeps reading after the client left, so the process never
/// blocks on a full pipe.
async fn pump(mut pipe: impl AsyncRead + Unpin, tx: mpsc::Sender<Bytes>, wrap: fn(Vec<u8>) -> DataEvent) {
    let mut buffer = vec![0u8; CHUNK];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let _ = tx.send(event(ProcessEvent::Data(wrap(buffer[..n].to_vec())))).await;
            }
        }
    }
}

async fn keepalives(tx: mpsc::Sender<Bytes>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if tx.send(event(ProcessEvent::Keepalive(KeepAlive {}))).await.is_err() {
            return;
        }
    }
}

fn event(event: ProcessEvent) -> Bytes {
    // Serializing these plain structs cannot fail.
    encode_json(&StartResponse { event }).unwrap_or_default()
}

/// The end event in Go's terms: `exit status 3`, `signal: killed`.
pub(crate) fn end_event(status: std::io::Result<ExitStatus>) -> EndEvent {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => {
                let text = format!("exit status {code}");
                EndEvent { exit_code: code, exited: true, status: text.clone(), error: (code != 0).then_some(text) }
            }
            (None, Some(signal)) => {
                let text = format!("signal: {}", signal_name(signal));
                EndEvent { exit_code: -1, exited: false, status: text.clone(), error: Some(text) }
            }
            (None, None) => EndEvent { exit_code: -1, status: "unknown".into(), ..Default::default() },
        },
        Err(e) => {
            EndEvent { exit_code: -1, status: "unknown".into(), error: Some(e.to_string()), ..Default::default() }
        }
    }
}

/// Go's names for the usual signals.
fn signal_name(signal: i32) -> String {
    let name = match signal {
        1 => "hangup",
        2 => "interrupt",
        3 => "quit",
        6 => "aborted",
        9 => "killed",
        11 => "segmentation fault",
        13 => "broken pipe",
        15 => "terminated",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}

/// `Process.SendSignal`.
pub(crate) fn send_signal(sandbox: &SandboxEntry, request: &SendSignalRequest) -> Result<(), ConnectError> {
    let signal = match request.signal {
        Signal::Sigkill => rustix::process::Signal::KILL,
        Signal::Sigterm => rustix::process::Signal::TERM,
        Signal::Unspecified => return Err(ConnectError::new(Code::InvalidArgument, "no signal given")),
    };
    let pid = find(sandbox, &request.process)?;
    kill_group(pid, signal);
    Ok(())
}

/// `Process.SendInput`: writes the bytes to the process's stdin pipe, as envd does.
pub(crate) async fn send_input(sandbox: &SandboxEntry, request: SendInputRequest) -> Result<(), ConnectError> {
    let bytes = match request.input {
        ProcessInput::Stdin(bytes) => bytes,
        ProcessInput::Pty(_) => {
            return Err(ConnectError::new(
                Code::FailedPrecondition,
                "tty not assigned to process — input should be written to the stdin, not the tty",
            ));
        }
    };
    let pipe = stdin_of(sandbox, &request.process)?;
    let mut pipe = pipe.lock().await;
    let stdin = pipe.as_mut().ok_or_else(stdin_unavailable)?;
    let written = async {
        stdin.write_all(&bytes).await?;
        stdin.flush().await
    };
    written.await.map_err(|e| {
        // The process exited (its read end is gone): a state, not an envd fault.
        let code = if e.kind() == std::io::ErrorKind::BrokenPipe { Code::FailedPrecondition } else { Code::Internal };
        ConnectError::new(code, format!("error writing to stdin: {e}"))
    })
}

/// `Process.CloseStdin`: the process reads the end of its input.
pub(crate) async fn close_stdin(sandbox: &SandboxEntry, request: &CloseStdinRequest) -> Result<(), ConnectError> {
    let pipe = stdin_of(sandbox, &request.process)?;
    pipe.lock().await.take();
    Ok(())
}

fn stdin_of(sandbox: &SandboxEntry, selector: &ProcessSelector) -> Result<StdinPipe, ConnectError> {
    let pid = find(sandbox, selector)?;
    lock(&sandbox.processes).get(&pid).and_then(|p| p.stdin.clone()).ok_or_else(stdin_unavailable)
}

fn stdin_unavailable() -> ConnectError {
    ConnectError::new(Code::FailedPrecondition, "stdin not enabled or closed")
}

fn find(sandbox: &SandboxEntry, selector: &ProcessSelector) -> Result<u32, ConnectError> {
    let processes = lock(&sandbox.processes);
    let found = match selector {
        ProcessSelector::Pid(pid) => processes.contains_key(pid).then_some(*pid),
        ProcessSelector::Tag(tag) => processes.iter().find(|(_, p)| p.tag.as_ref() == Some(tag)).map(|(pid, _)| *pid),
    };
    found.ok_or_else(|| {
        let what = match selector {
            ProcessSelector::Pid(pid) => format!("pid {pid}"),
            ProcessSelector::Tag(tag) => format!("tag '{tag}'"),
        };
        ConnectError::new(Code::NotFound, format!("process with {what} not found"))
    })
}

/// `Process.List`.
pub(crate) fn list(sandbox: &SandboxEntry) -> ListResponse {
    let mut processes: Vec<ProcessInfo> = lock(&sandbox.processes)
        .iter()
        .map(|(pid, p)| ProcessInfo { config: p.config.clone(), pid: *pid, tag: p.tag.clone() })
        .collect();
    processes.sort_by_key(|p| p.pid);
    ListResponse { processes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn end_events_read_like_go() {
        let exit3 = end_event(Ok(ExitStatus::from_raw(3 << 8)));
        assert_eq!(
            exit3,
            EndEvent {
                exit_code: 3,
                exited: true,
                status: "exit status 3".into(),
                error: Some("exit status 3".into())
            }
        );
        let clean = end_event(Ok(ExitStatus::from_raw(0)));
        assert_eq!(clean.error, None);
        assert!(clean.exited);
        let killed = end_event(Ok(ExitStatus::from_raw(9)));
        assert_eq!((killed.exit_code, killed.exited, killed.status.as_str()), (-1, false, "signal: killed"));
    }
}
