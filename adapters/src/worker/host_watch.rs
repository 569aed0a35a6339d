//! How a worker notices that its host is gone, and stops before it commits anything.
//!
//! A worker must never outlive its host: a host that was killed, lost its network or reported
//! the run failed must not find the rows committed afterwards. Two signals cancel the run:
//!
//! - **the telemetry stream breaks**: a write to the host fails (its end of the ipc channel or
//!   of envd's stdout pipe is gone) — checked on every frame, so within a progress interval;
//! - **the heartbeat stops**: a host that runs the worker remotely writes a line to the worker's
//!   stdin every [`HEARTBEAT_INTERVAL`] (envd's `Process.SendInput`). When none arrives for the
//!   timeout the host asked for (`osiris worker --heartbeat-timeout`, [`HEARTBEAT_TIMEOUT`] by
//!   default), or stdin reaches its end, the host is taken for lost.
//!
//! Cancelling rolls every writer back (drivers check the token right before their commit
//! point). The host, for its part, reports a lost worker only once the worker's heartbeat
//! timeout has run out since the last heartbeat it delivered, so by then the worker has stopped.

use std::io::{Read, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often a host sends a heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// How long a worker waits for a heartbeat before it cancels: five missed heartbeats, which
/// rides out a slow request or two but stops a worker within seconds of losing its host.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);

/// The heartbeat line a host writes to the worker's stdin.
pub const HEARTBEAT: &[u8] = b"heartbeat\n";

/// Cancels a worker's run when its host is gone, saying why (once) on stderr.
#[derive(Clone)]
pub struct HostWatch {
    cancel: CancellationToken,
    reason: Arc<OnceLock<String>>,
}

impl HostWatch {
    pub fn new(cancel: CancellationToken) -> Self {
        HostWatch { cancel, reason: Arc::default() }
    }

    /// Cancels the run: the host is gone because of `reason`. The first reason wins.
    pub fn lost(&self, reason: String) {
        if self.reason.set(reason).is_ok()
            && let Some(reason) = self.reason.get()
        {
            // Not eprintln!: stderr may be a pipe to the very host that is gone.
            let _ = writeln!(
                std::io::stderr(),
                "{} - osiris - worker - WARNING - lost the host: {reason}; cancelling the run (writers roll back, nothing is committed)",
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            );
        }
        self.cancel.cancel();
    }

    /// The token this watch cancels.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Why the host was taken for lost, if it was.
    pub fn reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }

    /// Watches `input` (the worker's stdin) for heartbeats on two threads of its own, which the
    /// run cannot starve: any bytes count as a heartbeat; silence for `timeout` or the end of
    /// `input` means the host is lost.
    pub fn watch_heartbeats(&self, input: impl Read + Send + 'static, timeout: Duration) {
        let (beats, received) = mpsc::channel::<()>();
        std::thread::spawn(move || read_beats(input, beats));
        let watch = self.clone();
        std::thread::spawn(move || {
            let reason = loop {
                match received.recv_timeout(timeout) {
                    Ok(()) => {}
                    Err(RecvTimeoutError::Timeout) => break no_heartbeat(timeout),
                    Err(RecvTimeoutError::Disconnected) => break input_closed(),
                }
            };
            watch.lost(reason);
        });
    }
}

fn no_heartbeat(timeout: Duration) -> String {
    format!("no heartbeat from the host for {} s (it was killed, or the network to it is down)", timeout.as_secs())
}

fn input_closed() -> String {
    "the host closed the worker's input (stdin ended)".to_string()
}

/// One message per read: the watchdog only cares that something arrived. Returns (closing the
/// channel) at the end of the input.
fn read_beats(mut input: impl Read, beats: mpsc::Sender<()>) {
    let mut buffer = [0u8; 256];
    loop {
        match input.read(&mut buffer) {
            Ok(0) => return,
            Ok(_) => {
                if beats.send(()).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn silence_cancels_after_the_timeout_and_says_so() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let cancel = CancellationToken::new();
        let watch = HostWatch::new(cancel.clone());
        let started = Instant::now();
        watch.watch_heartbeats(reader, Duration::from_millis(300));
        for _ in 0..5 {
            writer.write_all(HEARTBEAT).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!cancel.is_cancelled(), "heartbeats keep the run going");
        while !cancel.is_cancelled() {
            assert!(started.elapsed() < Duration::from_secs(10), "never cancelled");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(watch.reason().unwrap().contains("no heartbeat"), "{:?}", watch.reason());
        drop(writer);
    }

    #[test]
    fn the_end_of_the_input_cancels_at_once() {
        let (reader, writer) = std::io::pipe().unwrap();
        let cancel = CancellationToken::new();
        let watch = HostWatch::new(cancel.clone());
        watch.watch_heartbeats(reader, Duration::from_secs(60));
        drop(writer);
        let started = Instant::now();
        while !cancel.is_cancelled() {
            assert!(started.elapsed() < Duration::from_secs(10), "never cancelled");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(watch.reason().unwrap().contains("stdin ended"), "{:?}", watch.reason());
    }
}
