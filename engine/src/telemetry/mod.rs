//! Telemetry: one typed definition of every event and metric, and the sinks that record them.
//!
//! Events and metrics are plain serde values, so they can be written as Osiris-shaped JSON lines
//! (`{ts, session, event, ...}` / `{ts, session, metric, value, ...}`), shown as progress, or
//! carried across a process boundary unchanged. `docs/events.md` is the catalogue.

mod events;
mod sinks;

pub use events::{Event, Metric, MetricName, MetricValue, Record, RecordBody, Unit};
pub use sinks::{JsonlSink, MemorySink, TelemetrySink};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

/// The run's telemetry handle: stamps records with time and session and fans them out to sinks.
#[derive(Clone)]
pub struct Telemetry {
    session: Arc<str>,
    sinks: Arc<Vec<Arc<dyn TelemetrySink>>>,
}

impl Telemetry {
    pub fn new(session: impl Into<String>, sinks: Vec<Arc<dyn TelemetrySink>>) -> Self {
        Telemetry { session: Arc::from(session.into()), sinks: Arc::new(sinks) }
    }

    /// A handle that records nothing.
    pub fn disabled() -> Self {
        Self::new("", Vec::new())
    }

    /// The session id written into every line (the run id).
    pub fn session(&self) -> &str {
        &self.session
    }

    pub fn event(&self, event: Event) {
        self.record(RecordBody::Event(event));
    }

    pub fn metric(&self, metric: Metric) {
        self.record(RecordBody::Metric(metric));
    }

    fn record(&self, body: RecordBody) {
        let record = Record { ts: now(), session: self.session.to_string(), body };
        for sink in self.sinks.iter() {
            sink.record(&record);
        }
    }

    /// A per-step handle with live counters.
    pub fn step(&self, step_id: &str) -> StepTelemetry {
        StepTelemetry { telemetry: self.clone(), step_id: Arc::from(step_id), counters: Arc::default() }
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("session", &self.session).finish_non_exhaustive()
    }
}

/// Live counters of one step, readable while it runs (progress) and turned into metrics at its end.
#[derive(Debug, Default)]
pub struct StepCounters {
    /// Rows the driver read from an external source (extractors).
    pub rows_read: AtomicU64,
    /// Rows the driver wrote to an external target (writers).
    pub rows_written: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Rows the step took from its inputs (counted by the step cache).
    pub rows_in: AtomicU64,
    /// Rows the step sent to its output (counted by the step cache).
    pub rows_out: AtomicU64,
    /// How many of the step's input readers are waiting for their upstream right now. The step
    /// cache uses it to tell a consumer that is blocked on another input (waiting for it could
    /// deadlock the DAG) from one that is merely slow.
    pub waiting_for_input: std::sync::atomic::AtomicU32,
}

impl StepCounters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Telemetry of one step, handed to its driver.
#[derive(Clone, Debug)]
pub struct StepTelemetry {
    telemetry: Telemetry,
    step_id: Arc<str>,
    counters: Arc<StepCounters>,
}

impl StepTelemetry {
    pub fn step_id(&self) -> &str {
        &self.step_id
    }

    pub fn counters(&self) -> &Arc<StepCounters> {
        &self.counters
    }

    pub fn add_rows_read(&self, rows: u64) {
        self.counters.rows_read.fetch_add(rows, Ordering::Relaxed);
    }

    pub fn add_rows_written(&self, rows: u64) {
        self.counters.rows_written.fetch_add(rows, Ordering::Relaxed);
    }

    pub fn add_bytes_read(&self, bytes: u64) {
        self.counters.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn add_bytes_written(&self, bytes: u64) {
        self.counters.bytes_written.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records an event (drivers use this for their own events, e.g. `artifact_created`).
    pub fn event(&self, event: Event) {
        self.telemetry.event(event);
    }

    /// Records a metric tagged with this step.
    pub fn metric(&self, name: MetricName, value: impl Into<MetricValue>, unit: Unit) {
        self.telemetry.metric(Metric { name, value: value.into(), step_id: Some(self.step_id.to_string()), unit });
    }

    /// The run-level handle.
    pub fn run(&self) -> &Telemetry {
        &self.telemetry
    }
}

fn now() -> DateTime<Utc> {
    Utc::now()
}
