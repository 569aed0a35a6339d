//! SIGINT (Ctrl-C), SIGTERM (`docker stop`, systemd, `timeout`) and SIGHUP (a closed terminal or
//! SSH session) during `osiris run`: the first one cancels the run cleanly — steps roll back,
//! temporary files and staging tables go, `run_end` and `status.json` say `cancelled`, exit 1 —
//! and a second one exits at once with 128 + the signal number (130, 143, 129), leaving whatever
//! the steps had not cleaned up yet for the next run to remove.

use std::sync::{Arc, OnceLock};

use osiris_engine::runtime::{StepProgress, StepStatus};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::CliError;

/// A signal that cancels a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancellation {
    Interrupt,
    Terminate,
    Hangup,
}

impl Cancellation {
    const ALL: [Cancellation; 3] = [Cancellation::Interrupt, Cancellation::Terminate, Cancellation::Hangup];

    fn kind(self) -> SignalKind {
        match self {
            Cancellation::Interrupt => SignalKind::interrupt(),
            Cancellation::Terminate => SignalKind::terminate(),
            Cancellation::Hangup => SignalKind::hangup(),
        }
    }

    /// `Ctrl-C`, `SIGTERM`, `SIGHUP`.
    pub fn name(self) -> &'static str {
        match self {
            Cancellation::Interrupt => "Ctrl-C",
            Cancellation::Terminate => "SIGTERM",
            Cancellation::Hangup => "SIGHUP",
        }
    }

    /// The exit code of a second signal: 128 + its number (SIGINT 2, SIGTERM 15, SIGHUP 1), as
    /// shells report a death by signal.
    fn abort_code(self) -> i32 {
        match self {
            Cancellation::Interrupt => 130,
            Cancellation::Terminate => 143,
            Cancellation::Hangup => 129,
        }
    }
}

/// What the signal handler knows about the run: its steps (once wired) and the signal that
/// cancelled it, shared with the progress display and the final report.
#[derive(Clone, Default)]
pub struct RunWatch {
    pub steps: Arc<OnceLock<Vec<StepProgress>>>,
    pub cancelled_by: Arc<OnceLock<Cancellation>>,
    /// The steps that were running when the signal came (they are soon all cancelled).
    running_when_cancelled: Arc<OnceLock<Vec<String>>>,
}

impl RunWatch {
    /// The ids of the steps running now.
    fn running(&self) -> Vec<String> {
        let Some(steps) = self.steps.get() else { return Vec::new() };
        steps.iter().filter(|s| *s.status.borrow() == StepStatus::Running).map(|s| s.step_id.clone()).collect()
    }

    /// Records the cancelling signal and the steps running at that moment.
    fn cancel_by(&self, signal: Cancellation) {
        let _ = self.running_when_cancelled.set(self.running());
        let _ = self.cancelled_by.set(signal);
    }

    /// `cancelling… (steps: a, b)`: the steps running when the run was cancelled, each id cut to
    /// `max_id` characters when given.
    pub fn cancelling_line(&self, max_id: Option<usize>) -> String {
        let shorten = |id: &String| match max_id {
            Some(max) if id.chars().count() > max => id.chars().take(max.saturating_sub(1)).chain(['…']).collect(),
            _ => id.clone(),
        };
        let running: Vec<String> =
            self.running_when_cancelled.get().map(|ids| ids.iter().map(shorten).collect()).unwrap_or_default();
        let again = self.cancelled_by.get().map_or("Ctrl-C", |c| c.name());
        let steps = if running.is_empty() { "no step running".to_string() } else { running.join(", ") };
        format!("cancelling… (steps: {steps}); {again} again to abort at once")
    }
}

/// Installs the handlers (inside the runtime, before any step starts, so that an early signal
/// cancels cleanly too). The first signal records itself in `watch`, cancels `cancel` and prints
/// the cancelling line on stderr, unless `display_draws` it (a live progress display that is
/// already on screen: its steps are in `watch`).
pub fn install(cancel: CancellationToken, watch: RunWatch, display_draws: bool) -> Result<(), CliError> {
    let (tx, mut received) = mpsc::unbounded_channel();
    for which in Cancellation::ALL {
        let mut stream = signal(which.kind())
            .map_err(|e| CliError::run_failed(format!("cannot install the {} handler: {e}", which.name()), None))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(which).is_err() {
                    return;
                }
            }
        });
    }
    tokio::spawn(async move {
        let Some(first) = received.recv().await else { return };
        watch.cancel_by(first);
        if !display_draws || watch.steps.get().is_none() {
            super::emit(
                &mut std::io::stderr(),
                &format!("\n{} received: {}\n", first.name(), watch.cancelling_line(None)),
            );
        }
        cancel.cancel();
        if let Some(second) = received.recv().await {
            super::emit(&mut std::io::stderr(), &format!("{} received again: aborted\n", second.name()));
            std::process::exit(second.abort_code());
        }
    });
    Ok(())
}
