//! Live per-step progress on a terminal: rows and rows/s, redrawn in place on stderr.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use osiris_engine::runtime::{StepProgress, StepStatus};
use osiris_engine::spec::Mode;
use osiris_engine::telemetry::StepCounters;

/// Redraws the progress table until dropped.
pub struct ProgressDisplay {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressDisplay {
    /// Whether progress should be shown at all (stderr is a terminal).
    pub fn wanted() -> bool {
        std::io::stderr().is_terminal()
    }

    pub fn start(steps: Vec<StepProgress>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut drawn = 0;
            let mut frozen: Vec<Option<f64>> = vec![None; steps.len()];
            loop {
                let finished = flag.load(Ordering::Relaxed);
                drawn = draw(&steps, &mut frozen, drawn);
                if finished {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        ProgressDisplay { stop, thread: Some(thread) }
    }
}

impl Drop for ProgressDisplay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Draws one line per step; `frozen` keeps the elapsed time of steps that have ended.
fn draw(steps: &[StepProgress], frozen: &mut [Option<f64>], previously_drawn: usize) -> usize {
    let width = steps.iter().map(|s| s.step_id.len()).max().unwrap_or(4).min(40);
    let mut out = String::new();
    if previously_drawn > 0 {
        out.push_str(&format!("\x1b[{previously_drawn}A"));
    }
    for (step, frozen) in steps.iter().zip(frozen.iter_mut()) {
        let rows = match step.mode {
            Mode::Write => StepCounters::get(&step.counters.rows_in),
            _ => StepCounters::get(&step.counters.rows_out),
        };
        let status = *step.status.borrow();
        let running = matches!(status, StepStatus::Pending | StepStatus::Running);
        let elapsed = match *frozen {
            Some(elapsed) => elapsed,
            None => step.started.get().map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0),
        };
        if !running && frozen.is_none() {
            *frozen = Some(elapsed);
        }
        let rate = if elapsed > 0.0 { rows as f64 / elapsed } else { 0.0 };
        let label = match status {
            StepStatus::Pending => "waiting ",
            StepStatus::Running => "running ",
            StepStatus::Succeeded => "done    ",
            StepStatus::Failed => "FAILED  ",
            StepStatus::Cancelled => "cancelled",
        };
        out.push_str(&format!(
            "\x1b[2K  {:<width$}  {label}  {:>14} rows  {:>12} rows/s  {:>7.1}s\n",
            truncate(&step.step_id, width),
            group_thousands(rows),
            group_thousands(rate as u64),
            elapsed,
        ));
    }
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(out.as_bytes());
    let _ = stderr.flush();
    steps.len()
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width { text.to_string() } else { text.chars().take(width - 1).chain(['…']).collect() }
}

/// `1234567` → `1,234,567`.
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
