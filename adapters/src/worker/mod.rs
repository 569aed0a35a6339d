//! The worker side of out-of-process adapters, and the host side of its telemetry stream.
//!
//! `osiris worker` runs a [`PreparedRun`] with exactly the scheduler and drivers of the local
//! adapter ([`run`]); instead of writing `events.jsonl` itself it sends every event and metric,
//! live progress and the final report home as an Arrow IPC stream ([`stream`]). The host feeds
//! the stream into a [`HostMirror`], which writes the run log as a local run would and keeps the
//! progress display live.

pub mod host_watch;
pub mod stream;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use osiris_engine::connections::SecretSource;
use osiris_engine::prepared::{PreparedRun, PreparedStep};
use osiris_engine::registry::Registry;
use osiris_engine::runlog::TextLogSink;
use osiris_engine::runtime::{Execution, RunEnv, RunReport, StepFailure, StepProgress, StepReport, StepStatus};
use osiris_engine::telemetry::{Event, JsonlSink, Record, RecordBody, StepCounters, Telemetry, TelemetrySink};
use tokio::sync::watch;

use self::host_watch::HostWatch;
use self::stream::{Frame, FrameEncoder, StepSnapshot, StreamError};
use crate::AdapterError;

/// How often a worker sends live step counters.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// The run-log sinks of a host: `events.jsonl`, `metrics.jsonl` and `osiris.log` in `dir`.
pub fn run_log_sinks(dir: &Path) -> Result<Vec<Arc<dyn TelemetrySink>>, AdapterError> {
    let log_err = |source| AdapterError::RunLog { path: dir.to_path_buf(), source };
    Ok(vec![Arc::new(JsonlSink::create(dir).map_err(log_err)?), Arc::new(TextLogSink::create(dir).map_err(log_err)?)])
}

/// Where the worker runs.
pub struct WorkerEnv {
    pub registry: Registry,
    pub secrets: Arc<dyn SecretSource>,
    /// Artifacts and spill files go here (no run log: that is the host's).
    pub run_dir: PathBuf,
    /// Relative paths in step configs resolve against this directory.
    pub base_dir: PathBuf,
    /// The run's cancellation: the host asks for it, or is found gone (a broken telemetry
    /// stream reports here too).
    pub host: HostWatch,
}

/// Sends each chunk of the telemetry stream home (ipc-channel, stdout).
pub type Transport = Box<dyn FnMut(&[u8]) -> std::io::Result<()> + Send>;

/// Runs `run` and streams its telemetry through `transport`; human-readable log lines go to
/// `log`. Returns the report (also the stream's last frame).
pub async fn run(
    prepared: PreparedRun,
    env: WorkerEnv,
    transport: Transport,
    log: impl Write + Send + 'static,
) -> Result<RunReport, AdapterError> {
    let (frames, pending) = mpsc::channel::<Frame>();
    let frames = FrameQueue(Arc::new(std::sync::Mutex::new(Some(frames))));
    let host = env.host.clone();
    let sender = std::thread::spawn(move || {
        let sent = send_frames(pending, transport);
        if let Err(e) = &sent {
            // Nobody is listening any more: stop before anything is committed.
            host.lost(format!("cannot send telemetry home ({e})"));
        }
        sent
    });
    let sinks: Vec<Arc<dyn TelemetrySink>> = vec![Arc::new(frames.clone()), Arc::new(TextLogSink::to_writer(log))];
    std::fs::create_dir_all(&env.run_dir)
        .map_err(|source| AdapterError::RunLog { path: env.run_dir.clone(), source })?;
    let run_env = RunEnv {
        registry: env.registry,
        telemetry: Telemetry::new(prepared.run_id(), sinks),
        secrets: env.secrets,
        run_dir: env.run_dir,
        base_dir: env.base_dir,
        cancel: env.host.cancel_token().clone(),
    };
    let execution = Execution::new(prepared, run_env)?;
    let steps = execution.progress();
    let ticker = ProgressTicker::start(steps.clone(), frames.clone());
    let report = execution.run().await;
    ticker.stop();
    // The last counters, so that the host's display ends on the totals, not on the last tick.
    frames.send(Frame::Progress(steps.iter().map(snapshot).collect()));
    frames.send(Frame::Report(Box::new(report.clone())));
    // Closing the queue ends the sender thread once every frame is out, whoever still holds a
    // telemetry handle.
    frames.close();
    match sender.join() {
        Ok(Ok(())) => Ok(report),
        Ok(Err(e)) => Err(AdapterError::Worker { message: format!("cannot send telemetry home: {e}"), hint: None }),
        Err(_) => Err(AdapterError::Worker { message: "the telemetry sender panicked".into(), hint: None }),
    }
}

/// The queue of frames for the stream; also the telemetry sink that feeds it.
#[derive(Clone)]
struct FrameQueue(Arc<std::sync::Mutex<Option<mpsc::Sender<Frame>>>>);

impl FrameQueue {
    /// Queues `frame`; false once the queue is closed.
    fn send(&self, frame: Frame) -> bool {
        let queue = self.0.lock().unwrap_or_else(|p| p.into_inner());
        queue.as_ref().is_some_and(|q| q.send(frame).is_ok())
    }

    fn close(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl TelemetrySink for FrameQueue {
    fn record(&self, record: &Record) {
        self.send(Frame::Record(record.clone()));
    }
}

/// Encodes whatever frames are queued into one batch and sends it, as soon as frames arrive:
/// batches grow by themselves when the sender is slower than the run.
fn send_frames(pending: mpsc::Receiver<Frame>, mut transport: Transport) -> Result<(), SendError> {
    let mut encoder = FrameEncoder::new()?;
    transport(&encoder.encode(&[])?)?;
    while let Ok(first) = pending.recv() {
        let mut batch = vec![first];
        batch.extend(pending.try_iter());
        transport(&encoder.encode(&batch)?)?;
    }
    transport(&encoder.finish()?)?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Sends the live counters every [`PROGRESS_INTERVAL`] from a thread of its own: drivers that
/// keep the runtime's threads busy cannot starve it, so the host's display moves all run long.
struct ProgressTicker {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl ProgressTicker {
    fn start(steps: Vec<StepProgress>, frames: FrameQueue) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(PROGRESS_INTERVAL) {
                if !frames.send(Frame::Progress(steps.iter().map(snapshot).collect())) {
                    return;
                }
            }
        });
        ProgressTicker { stop, thread }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

fn snapshot(step: &StepProgress) -> StepSnapshot {
    let c = &step.counters;
    StepSnapshot {
        step_id: step.step_id.clone(),
        status: *step.status.borrow(),
        rows_read: StepCounters::get(&c.rows_read),
        rows_written: StepCounters::get(&c.rows_written),
        rows_in: StepCounters::get(&c.rows_in),
        rows_out: StepCounters::get(&c.rows_out),
    }
}

/// The host's copy of a worker's run: writes records to the host's sinks, mirrors live counters
/// for the progress display, and keeps the report.
pub struct HostMirror {
    telemetry_sinks: Vec<Arc<dyn TelemetrySink>>,
    session: String,
    steps: Vec<MirroredStep>,
    index: HashMap<String, usize>,
    report: Option<RunReport>,
    run_ended: bool,
    /// Artifact files the worker wrote, relative to its run directory.
    artifacts: Vec<String>,
}

struct MirroredStep {
    step: PreparedStep,
    counters: Arc<StepCounters>,
    status: watch::Sender<StepStatus>,
    started: Arc<OnceLock<Instant>>,
}

impl MirroredStep {
    fn raise(&self, rows_read: u64, rows_written: u64, rows_in: u64, rows_out: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.counters;
        c.rows_read.fetch_max(rows_read, Relaxed);
        c.rows_written.fetch_max(rows_written, Relaxed);
        c.rows_in.fetch_max(rows_in, Relaxed);
        c.rows_out.fetch_max(rows_out, Relaxed);
    }

    fn store(&self, rows_read: u64, rows_written: u64, rows_in: u64, rows_out: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.counters;
        c.rows_read.store(rows_read, Relaxed);
        c.rows_written.store(rows_written, Relaxed);
        c.rows_in.store(rows_in, Relaxed);
        c.rows_out.store(rows_out, Relaxed);
    }
}

impl HostMirror {
    pub fn new(run: &PreparedRun, sinks: Vec<Arc<dyn TelemetrySink>>) -> Result<Self, AdapterError> {
        let steps: Vec<MirroredStep> = run
            .steps()?
            .into_iter()
            .map(|step| MirroredStep {
                step,
                counters: Arc::default(),
                status: watch::channel(StepStatus::Pending).0,
                started: Arc::default(),
            })
            .collect();
        let index = steps.iter().enumerate().map(|(i, s)| (s.step.id.clone(), i)).collect();
        Ok(HostMirror {
            telemetry_sinks: sinks,
            session: run.run_id().to_string(),
            steps,
            index,
            report: None,
            run_ended: false,
            artifacts: Vec::new(),
        })
    }

    /// Live views of every step, for a progress display.
    pub fn progress(&self) -> Vec<StepProgress> {
        self.steps
            .iter()
            .map(|s| StepProgress {
                step_id: s.step.id.clone(),
                mode: s.step.mode,
                counters: s.counters.clone(),
                status: s.status.subscribe(),
                started: s.started.clone(),
            })
            .collect()
    }

    /// Artifact files the worker reported (`artifacts/<step>/<file>`, relative to its run dir).
    pub fn artifacts(&self) -> &[String] {
        &self.artifacts
    }

    /// Whether the worker's report arrived.
    pub fn has_report(&self) -> bool {
        self.report.is_some()
    }

    /// Ids of the steps that succeeded so far.
    pub fn succeeded_steps(&self) -> Vec<String> {
        self.steps.iter().filter(|s| *s.status.borrow() == StepStatus::Succeeded).map(|s| s.step.id.clone()).collect()
    }

    pub fn apply(&mut self, frame: Frame) {
        match frame {
            Frame::Record(record) => {
                if let RecordBody::Event(event) = &record.body {
                    self.follow(event);
                }
                for sink in &self.telemetry_sinks {
                    sink.record(&record);
                }
            }
            Frame::Progress(snapshots) => {
                for snap in snapshots {
                    let Some(&i) = self.index.get(&snap.step_id) else { continue };
                    // A tick taken just before a step ended may arrive after its end event:
                    // counters only grow, and an ended step stays ended.
                    self.steps[i].raise(snap.rows_read, snap.rows_written, snap.rows_in, snap.rows_out);
                    if matches!(*self.steps[i].status.borrow(), StepStatus::Pending | StepStatus::Running) {
                        self.set_status(i, snap.status);
                    }
                }
            }
            Frame::Report(report) => {
                for step in &report.steps {
                    if let Some(&i) = self.index.get(&step.step_id) {
                        self.steps[i].store(step.rows_read, step.rows_written, step.rows_in, step.rows_out);
                    }
                }
                self.report = Some(*report);
            }
        }
    }

    /// Step status from the events, so the display moves even between progress frames.
    fn follow(&mut self, event: &Event) {
        let status = match event {
            Event::StepStart { .. } => StepStatus::Running,
            Event::StepComplete { step_id, rows_in, rows_out, .. } => {
                // A step's final counts, not the last progress tick's.
                if let Some(&i) = self.index.get(step_id) {
                    let c = &self.steps[i].counters;
                    c.rows_in.store(*rows_in, std::sync::atomic::Ordering::Relaxed);
                    c.rows_out.store(*rows_out, std::sync::atomic::Ordering::Relaxed);
                }
                StepStatus::Succeeded
            }
            Event::StepError { .. } => StepStatus::Failed,
            Event::StepCancelled { .. } => StepStatus::Cancelled,
            Event::RunEnd { .. } => {
                self.run_ended = true;
                return;
            }
            Event::ArtifactCreated { path, .. } => {
                self.artifacts.push(path.clone());
                return;
            }
            _ => return,
        };
        if let Some(&i) = event.step_id().and_then(|id| self.index.get(id)) {
            self.set_status(i, status);
        }
    }

    fn set_status(&self, i: usize, status: StepStatus) {
        let step = &self.steps[i];
        if status != StepStatus::Pending {
            step.started.get_or_init(Instant::now);
        }
        step.status.send_if_modified(|s| std::mem::replace(s, status) != status);
    }

    /// The worker's report; when the worker died before sending one, a failed report naming
    /// the step that was running and `why` — and the run log gets the `run_error` and `run_end`
    /// the worker could not write.
    pub fn finish(self, why: impl FnOnce() -> String) -> RunReport {
        if let Some(report) = self.report {
            return report;
        }
        let running = self.steps.iter().find(|s| *s.status.borrow() == StepStatus::Running);
        let culprit = running.or_else(|| self.steps.iter().find(|s| *s.status.borrow() == StepStatus::Pending));
        let message = why();
        let failure = StepFailure {
            step_id: culprit.map_or_else(|| "(worker)".into(), |s| s.step.id.clone()),
            component: culprit.map_or_else(|| "osiris worker".into(), |s| s.step.component.clone()),
            code: "worker.crashed".into(),
            message: message.clone(),
            hint: Some("see the worker's last lines above; rerun with --target local to rule out the worker".into()),
        };
        let steps: Vec<StepReport> = self
            .steps
            .iter()
            .map(|s| {
                let status = match *s.status.borrow() {
                    StepStatus::Succeeded => StepStatus::Succeeded,
                    StepStatus::Running => StepStatus::Failed,
                    _ => StepStatus::Cancelled,
                };
                let c = &s.counters;
                StepReport {
                    step_id: s.step.id.clone(),
                    component: s.step.component.clone(),
                    mode: s.step.mode,
                    status,
                    duration_seconds: s.started.get().map_or(0.0, |t| t.elapsed().as_secs_f64()),
                    rows_in: StepCounters::get(&c.rows_in),
                    rows_out: StepCounters::get(&c.rows_out),
                    rows_read: StepCounters::get(&c.rows_read),
                    rows_written: StepCounters::get(&c.rows_written),
                }
            })
            .collect();
        if !self.run_ended {
            let telemetry = Telemetry::new(self.session.clone(), self.telemetry_sinks.clone());
            telemetry.event(Event::RunError {
                step_id: failure.step_id.clone(),
                error_code: failure.code.clone(),
                message,
            });
            let count = |st| steps.iter().filter(|s| s.status == st).count();
            telemetry.event(Event::RunEnd {
                status: "failed".into(),
                duration_seconds: 0.0,
                steps_completed: count(StepStatus::Succeeded),
                steps_failed: count(StepStatus::Failed),
                steps_cancelled: count(StepStatus::Cancelled),
            });
        }
        RunReport { steps, failure: Some(failure), duration_seconds: 0.0, cache_peak_bytes: 0, total_rows: 0 }
    }
}
