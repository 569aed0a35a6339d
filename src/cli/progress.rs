//! Progress of a running pipeline on stderr.
//!
//! - On a terminal: one line per step (status, rows, rows/s, elapsed), redrawn in place five
//!   times a second, every line cut to the terminal's width (long step ids shortened with `…`,
//!   never wrapped: a wrapped line would break the redraw). The width comes from the terminal
//!   (asked again every second, for resized windows), else `$COLUMNS`, else 80.
//! - Elsewhere (a CI log, a file, a pipe): a plain line per running step every 10 s, so that a log
//!   shows the run is alive (`$OSIRIS_PROGRESS_INTERVAL` seconds instead, for tests).
//!
//! Extractors show the rows they read, writers the rows they write, transforms the rows they
//! consume and produce (`in → out`). Once the run is cancelled, a line says which steps were
//! running and are being cancelled.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use osiris_engine::runtime::{StepProgress, StepStatus};
use osiris_engine::spec::Mode;
use osiris_engine::telemetry::StepCounters;

use super::signals::RunWatch;

/// How often the terminal display redraws.
const REDRAW: Duration = Duration::from_millis(200);
/// How often it asks the terminal for its width again (the window may be resized).
const WIDTH_CHECK: Duration = Duration::from_secs(1);
/// How often plain progress lines are printed when stderr is not a terminal.
const PLAIN_INTERVAL: Duration = Duration::from_secs(10);
/// Overrides [`PLAIN_INTERVAL`] (seconds; tests use a short one).
const INTERVAL_VAR: &str = "OSIRIS_PROGRESS_INTERVAL";
/// Width when neither the terminal nor `$COLUMNS` says.
const DEFAULT_WIDTH: usize = 80;
/// The step id column is never wider than this, nor narrower than [`MIN_ID_WIDTH`].
const MAX_ID_WIDTH: usize = 40;
const MIN_ID_WIDTH: usize = 6;
/// Step ids in the display's cancelling line are cut to this, so that several fit.
const CANCEL_ID_WIDTH: usize = 16;

/// Which progress, if any, a run shows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ProgressMode {
    /// `--verbose` (every event is printed) or `--json` on a terminal.
    Off,
    /// Redrawn in place on a terminal.
    Live,
    /// A line per running step every so often.
    Plain(Duration),
}

impl ProgressMode {
    pub fn choose(json: bool, verbose: bool) -> Self {
        match (verbose, std::io::stderr().is_terminal()) {
            (true, _) => ProgressMode::Off,
            (false, true) if json => ProgressMode::Off,
            (false, true) => ProgressMode::Live,
            (false, false) => ProgressMode::Plain(plain_interval()),
        }
    }

    /// Whether the display leaves a final line per step on the screen (so the summary need not).
    pub fn draws_steps(self) -> bool {
        self == ProgressMode::Live
    }

    /// Whether the display itself shows that the run is being cancelled.
    pub fn draws_cancellation(self) -> bool {
        self == ProgressMode::Live
    }

    /// Starts showing `steps`; the display stops when the returned value is dropped.
    pub fn start(self, steps: Vec<StepProgress>, watch: RunWatch) -> Option<ProgressDisplay> {
        match self {
            ProgressMode::Off => None,
            ProgressMode::Live => Some(ProgressDisplay::spawn(move |stop| live(&steps, &watch, stop))),
            ProgressMode::Plain(every) => Some(ProgressDisplay::spawn(move |stop| plain(&steps, every, stop))),
        }
    }
}

fn plain_interval() -> Duration {
    std::env::var(INTERVAL_VAR)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(PLAIN_INTERVAL, Duration::from_secs_f64)
}

/// A running display thread; dropping it draws the last frame and stops it.
pub struct ProgressDisplay {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressDisplay {
    fn spawn(body: impl FnOnce(&AtomicBool) + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || body(&flag));
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

/// The terminal display: redraws until stopped, then draws once more.
fn live(steps: &[StepProgress], watch: &RunWatch, stop: &AtomicBool) {
    let mut drawn = 0;
    let mut frozen: Vec<Option<f64>> = vec![None; steps.len()];
    let (mut width, mut width_checked) = (terminal_width(), Instant::now());
    loop {
        let finished = stop.load(Ordering::Relaxed);
        if width_checked.elapsed() >= WIDTH_CHECK {
            (width, width_checked) = (terminal_width(), Instant::now());
        }
        let mut lines: Vec<String> = Vec::with_capacity(steps.len() + 1);
        let rows: Vec<StepRow> = steps.iter().zip(frozen.iter_mut()).map(|(s, f)| StepRow::of(s, f)).collect();
        lines.extend(layout(&rows, width));
        if watch.cancelled_by.get().is_some() {
            lines.push(fit(&format!("  {}", watch.cancelling_line(Some(CANCEL_ID_WIDTH))), width));
        }
        let mut out = String::new();
        if drawn > 0 {
            out.push_str(&format!("\x1b[{drawn}A"));
        }
        for line in &lines {
            out.push_str("\x1b[2K");
            out.push_str(line);
            out.push('\n');
        }
        drawn = lines.len();
        write_stderr(&out);
        if finished {
            break;
        }
        std::thread::sleep(REDRAW);
    }
}

/// Plain lines: every `every`, one line per running step.
fn plain(steps: &[StepProgress], every: Duration, stop: &AtomicBool) {
    let mut frozen: Vec<Option<f64>> = vec![None; steps.len()];
    let mut next = Instant::now() + every;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(REDRAW.min(every));
        if Instant::now() < next {
            continue;
        }
        next += every;
        let mut out = String::new();
        for (step, frozen) in steps.iter().zip(frozen.iter_mut()) {
            let row = StepRow::of(step, frozen);
            if row.status == StepStatus::Running {
                out.push_str(&format!(
                    "progress: {} running, {} ({} rows/s), {:.0}s\n",
                    row.id,
                    row.rows_text(),
                    group_thousands(row.rate as u64),
                    row.elapsed
                ));
            }
        }
        write_stderr(&out);
    }
}

fn write_stderr(text: &str) {
    if text.is_empty() {
        return;
    }
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

/// One step's numbers at one moment.
struct StepRow<'a> {
    id: &'a str,
    mode: Mode,
    status: StepStatus,
    rows_in: u64,
    rows_out: u64,
    /// Rows per second of what the step consumes (writers, transforms) or produces (extractors).
    rate: f64,
    elapsed: f64,
}

impl<'a> StepRow<'a> {
    /// Reads `step`'s counters; `frozen` keeps the elapsed time of a step that has ended.
    fn of(step: &'a StepProgress, frozen: &mut Option<f64>) -> Self {
        let status = *step.status.borrow();
        let elapsed = match *frozen {
            Some(elapsed) => elapsed,
            None => step.started.get().map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0),
        };
        if !matches!(status, StepStatus::Pending | StepStatus::Running) && frozen.is_none() {
            *frozen = Some(elapsed);
        }
        let rows_in = StepCounters::get(&step.counters.rows_in);
        let rows_out = StepCounters::get(&step.counters.rows_out);
        let counted = if step.mode == Mode::Extract { rows_out } else { rows_in };
        let rate = if elapsed > 0.0 { counted as f64 / elapsed } else { 0.0 };
        StepRow { id: &step.step_id, mode: step.mode, status, rows_in, rows_out, rate, elapsed }
    }

    /// `1,234 rows`, or `1,234 → 567 rows` for a transform (consumed → produced).
    fn rows_text(&self) -> String {
        match self.mode {
            Mode::Extract => format!("{} rows", group_thousands(self.rows_out)),
            Mode::Write => format!("{} rows", group_thousands(self.rows_in)),
            Mode::Transform => {
                format!("{} → {} rows", group_thousands(self.rows_in), group_thousands(self.rows_out))
            }
        }
    }

    fn label(&self) -> &'static str {
        match self.status {
            StepStatus::Pending => "waiting",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "done",
            StepStatus::Failed => "FAILED",
            StepStatus::Cancelled => "cancelled",
        }
    }
}

/// The terminal lines for `rows`, each at most `width - 1` characters (the last column is left
/// free: writing into it makes some terminals wrap). Columns are dropped from the right (rate,
/// then elapsed time) before the step ids are shortened below their natural width.
fn layout(rows: &[StepRow], width: usize) -> Vec<String> {
    let room = width.saturating_sub(1);
    let rows_w = rows.iter().map(|r| r.rows_text().chars().count()).max().unwrap_or(0).max(14);
    let natural_id = rows.iter().map(|r| r.id.chars().count()).max().unwrap_or(4).clamp(MIN_ID_WIDTH, MAX_ID_WIDTH);
    // "  <id>  <status:9>  <rows>" + "  <rate:>12> rows/s" + "  <elapsed:>7>s"
    let base = 2 + 2 + 9 + 2 + rows_w;
    let (rate_w, elapsed_w) = (2 + 12 + 7, 2 + 7 + 1);
    let (show_rate, show_elapsed) = if natural_id + base + rate_w + elapsed_w <= room {
        (true, true)
    } else if natural_id + base + elapsed_w <= room {
        (false, true)
    } else {
        (false, false)
    };
    let fixed = base + if show_rate { rate_w } else { 0 } + if show_elapsed { elapsed_w } else { 0 };
    let id_w = natural_id.min(room.saturating_sub(fixed)).max(MIN_ID_WIDTH);
    rows.iter()
        .map(|r| {
            let mut line = format!("  {:<id_w$}  {:<9}  {:>rows_w$}", shorten(r.id, id_w), r.label(), r.rows_text(),);
            if show_rate {
                line.push_str(&format!("  {:>12} rows/s", group_thousands(r.rate as u64)));
            }
            if show_elapsed {
                line.push_str(&format!("  {:>7.1}s", r.elapsed));
            }
            fit(&line, width)
        })
        .collect()
}

/// `text` cut to `width - 1` characters, ending in `…` when cut.
fn fit(text: &str, width: usize) -> String {
    shorten(text, width.saturating_sub(1).max(1))
}

/// `text` in at most `width` characters: cut with a trailing `…` when longer.
fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        text.chars().take(width.saturating_sub(1)).chain(['…']).collect()
    }
}

/// The terminal's width (of stderr, where the display draws), else `$COLUMNS`, else 80.
fn terminal_width() -> usize {
    stderr_terminal_columns()
        .or_else(|| std::env::var("COLUMNS").ok().and_then(|v| v.trim().parse().ok()).filter(|&cols| cols > 0))
        .unwrap_or(DEFAULT_WIDTH)
}

/// Asks the terminal on stderr for its size with `stty size` (rows and columns), which reads the
/// window size of its standard input: a duplicate of stderr. (The ioctl itself would take
/// `unsafe` code or a new dependency; the display asks only every [`WIDTH_CHECK`].)
fn stderr_terminal_columns() -> Option<usize> {
    use std::os::fd::AsFd;
    let tty = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let output = std::process::Command::new("stty")
        .arg("size")
        .stdin(std::process::Stdio::from(tty))
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    text.split_whitespace().nth(1)?.parse().ok().filter(|&cols: &usize| cols > 0)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, mode: Mode) -> StepRow<'_> {
        StepRow {
            id,
            mode,
            status: StepStatus::Running,
            rows_in: 123_456_789,
            rows_out: 1_234,
            rate: 98_765.0,
            elapsed: 12.5,
        }
    }

    #[test]
    fn lines_fit_every_width_and_long_ids_are_shortened() {
        let long = "extract_the_customers_of_every_region_since_the_beginning_of_time";
        let rows = [row(long, Mode::Extract), row("t", Mode::Transform), row("write", Mode::Write)];
        for width in [1, 10, 20, 40, 60, 80, 120, 300] {
            for line in layout(&rows, width) {
                assert!(line.chars().count() < width.max(2), "width {width}: {line:?}");
            }
        }
        let wide = layout(&rows, 200);
        assert!(wide[0].contains("extract_the_customers_of_every_region_s…"), "{wide:?}");
        assert!(wide[1].contains("123,456,789 → 1,234 rows") && wide[1].contains("rows/s"), "{wide:?}");
        // 60 columns: the id keeps what room is left, the rate goes first.
        let narrow = layout(&rows, 60);
        assert!(!narrow[0].contains("rows/s") && narrow[0].contains('…'), "{narrow:?}");
    }
}
