//! Where telemetry records go.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use super::events::{Record, RecordBody};

/// Receives every record of a run. Implementations must not block for long: they are called
/// from the steps' tasks.
pub trait TelemetrySink: Send + Sync {
    fn record(&self, record: &Record);
}

/// Appends events to `events.jsonl` and metrics to `metrics.jsonl`, one compact JSON object per
/// line, flushed after every line so a crashed run still leaves its log.
pub struct JsonlSink {
    files: Mutex<(BufWriter<File>, BufWriter<File>)>,
}

impl JsonlSink {
    /// Creates (or appends to) `events.jsonl` and `metrics.jsonl` in `dir`.
    pub fn create(dir: &Path) -> io::Result<Self> {
        let open = |name: &str| OpenOptions::new().create(true).append(true).open(dir.join(name));
        Ok(JsonlSink {
            files: Mutex::new((BufWriter::new(open("events.jsonl")?), BufWriter::new(open("metrics.jsonl")?))),
        })
    }
}

impl TelemetrySink for JsonlSink {
    fn record(&self, record: &Record) {
        let Ok(line) = serde_json::to_string(record) else { return };
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let file = match record.body {
            RecordBody::Event(_) => &mut files.0,
            RecordBody::Metric(_) => &mut files.1,
        };
        // A full disk must not take the run down with it; the step that writes data will fail
        // on its own and report the cause.
        let _ = writeln!(file, "{line}").and_then(|_| file.flush());
    }
}

/// Keeps every record in memory (tests, embedding applications).
#[derive(Default)]
pub struct MemorySink {
    records: Mutex<Vec<Record>>,
}

impl MemorySink {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the records so far.
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl TelemetrySink for MemorySink {
    fn record(&self, record: &Record) {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).push(record.clone());
    }
}
