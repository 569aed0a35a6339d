//! The event and metric catalogue. Every name a run can emit is a variant here.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// A timestamped event or metric of a session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// ISO-8601 UTC with microseconds and `+00:00`, as Osiris writes it.
    #[serde(with = "osiris_ts")]
    pub ts: DateTime<Utc>,
    pub session: String,
    #[serde(flatten)]
    pub body: RecordBody,
}

/// Either an event line or a metric line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecordBody {
    Event(Event),
    Metric(Metric),
}

/// Every event a run emits. Serialized as `"event": "<snake_case name>"` plus the fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run begins (after compilation, before any step).
    RunStart {
        pipeline_id: String,
        profile: String,
        manifest_hash: String,
        manifest_short: String,
        adapter: String,
        steps_total: usize,
        memory_budget_bytes: u64,
    },
    /// A step's driver starts.
    StepStart { step_id: String, driver: String },
    /// A step is wired to the output of one of its `needs`.
    InputsResolved { step_id: String, from_step: String, key: String, from_memory: bool },
    /// A step's connection is about to be bound.
    ConnectionResolveStart { step_id: String, family: String, alias: String },
    /// A step's connection was bound (secrets read from the environment) or failed to bind.
    ConnectionResolveComplete {
        step_id: String,
        family: String,
        alias: String,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A file was written into the step's artifacts directory.
    ArtifactCreated { step_id: String, artifact_type: String, path: String },
    /// The step cache began spilling a step's output to disk (budget exhausted).
    CacheSpillStart { step_id: String, path: String, budget_bytes: u64, used_bytes: u64 },
    /// A step's output is complete; how much of it went through the spill file.
    CacheSpillComplete { step_id: String, batches: u64, rows: u64, bytes: u64 },
    /// A step finished successfully.
    StepComplete { step_id: String, driver: String, duration: f64, rows_in: u64, rows_out: u64 },
    /// A step failed.
    StepError {
        step_id: String,
        driver: String,
        duration: f64,
        error: String,
        error_code: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hint: Option<String>,
    },
    /// A step did not run to completion because an upstream step failed or the run was aborted.
    StepCancelled { step_id: String, driver: String, reason: String },
    /// The run failed; names the first failed step.
    RunError { step_id: String, error_code: String, message: String },
    /// All steps have ended.
    CleanupComplete { steps_executed: usize, total_rows: u64 },
    /// The run ends; `status` is `success`, `failed` (a step failed) or `cancelled` (interrupted).
    RunEnd {
        status: String,
        duration_seconds: f64,
        steps_completed: usize,
        steps_failed: usize,
        steps_cancelled: usize,
    },
}

impl Event {
    /// Every event name, for the catalogue in `docs/events.md`.
    pub const NAMES: &'static [&'static str] = &[
        "run_start",
        "step_start",
        "inputs_resolved",
        "connection_resolve_start",
        "connection_resolve_complete",
        "artifact_created",
        "cache_spill_start",
        "cache_spill_complete",
        "step_complete",
        "step_error",
        "step_cancelled",
        "run_error",
        "cleanup_complete",
        "run_end",
    ];

    /// The event name as written in `events.jsonl`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::RunStart { .. } => "run_start",
            Event::StepStart { .. } => "step_start",
            Event::InputsResolved { .. } => "inputs_resolved",
            Event::ConnectionResolveStart { .. } => "connection_resolve_start",
            Event::ConnectionResolveComplete { .. } => "connection_resolve_complete",
            Event::ArtifactCreated { .. } => "artifact_created",
            Event::CacheSpillStart { .. } => "cache_spill_start",
            Event::CacheSpillComplete { .. } => "cache_spill_complete",
            Event::StepComplete { .. } => "step_complete",
            Event::StepError { .. } => "step_error",
            Event::StepCancelled { .. } => "step_cancelled",
            Event::RunError { .. } => "run_error",
            Event::CleanupComplete { .. } => "cleanup_complete",
            Event::RunEnd { .. } => "run_end",
        }
    }

    /// The step the event is about, if any.
    pub fn step_id(&self) -> Option<&str> {
        match self {
            Event::StepStart { step_id, .. }
            | Event::InputsResolved { step_id, .. }
            | Event::ConnectionResolveStart { step_id, .. }
            | Event::ConnectionResolveComplete { step_id, .. }
            | Event::ArtifactCreated { step_id, .. }
            | Event::CacheSpillStart { step_id, .. }
            | Event::CacheSpillComplete { step_id, .. }
            | Event::StepComplete { step_id, .. }
            | Event::StepError { step_id, .. }
            | Event::StepCancelled { step_id, .. }
            | Event::RunError { step_id, .. } => Some(step_id),
            Event::RunStart { .. } | Event::CleanupComplete { .. } | Event::RunEnd { .. } => None,
        }
    }
}

/// Metric names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    /// Rows an extractor read from its source.
    RowsRead,
    /// Rows a writer wrote to its target.
    RowsWritten,
    BytesRead,
    BytesWritten,
    /// Rows a step consumed from its inputs.
    RowsIn,
    /// Rows a step produced.
    RowsOut,
    /// Wall time of a step.
    StepDuration,
    /// Bytes of a step's output that went through the spill file.
    CacheSpilledBytes,
    /// Highest step-cache memory use during the run.
    CachePeakBytes,
    /// Wall time of all steps.
    ExecutionDuration,
    /// E2B adapter: time to create the sandbox.
    E2bSandboxCreate,
    /// E2B adapter: time to upload the binary (when the sandbox lacks it), the prepared run and
    /// the input files.
    E2bUpload,
    /// E2B adapter: bytes uploaded.
    E2bUploadBytes,
    /// E2B adapter: time to download outputs and artifacts and kill the sandbox.
    E2bCollect,
}

impl MetricName {
    /// Every metric name, for the catalogue in `docs/events.md`.
    pub const ALL: &'static [MetricName] = &[
        MetricName::RowsRead,
        MetricName::RowsWritten,
        MetricName::BytesRead,
        MetricName::BytesWritten,
        MetricName::RowsIn,
        MetricName::RowsOut,
        MetricName::StepDuration,
        MetricName::CacheSpilledBytes,
        MetricName::CachePeakBytes,
        MetricName::ExecutionDuration,
        MetricName::E2bSandboxCreate,
        MetricName::E2bUpload,
        MetricName::E2bUploadBytes,
        MetricName::E2bCollect,
    ];

    /// The name as written in `metrics.jsonl`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricName::RowsRead => "rows_read",
            MetricName::RowsWritten => "rows_written",
            MetricName::BytesRead => "bytes_read",
            MetricName::BytesWritten => "bytes_written",
            MetricName::RowsIn => "rows_in",
            MetricName::RowsOut => "rows_out",
            MetricName::StepDuration => "step_duration",
            MetricName::CacheSpilledBytes => "cache_spilled_bytes",
            MetricName::CachePeakBytes => "cache_peak_bytes",
            MetricName::ExecutionDuration => "execution_duration",
            MetricName::E2bSandboxCreate => "e2b_sandbox_create",
            MetricName::E2bUpload => "e2b_upload",
            MetricName::E2bUploadBytes => "e2b_upload_bytes",
            MetricName::E2bCollect => "e2b_collect",
        }
    }
}

/// Unit of a metric value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Rows,
    Bytes,
    Seconds,
}

/// A metric value: integers stay integers in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetricValue {
    Int(u64),
    Float(f64),
}

impl From<u64> for MetricValue {
    fn from(v: u64) -> Self {
        MetricValue::Int(v)
    }
}

impl From<f64> for MetricValue {
    fn from(v: f64) -> Self {
        MetricValue::Float(v)
    }
}

/// A metric line: `{"metric": name, "value": v, "step_id"?: id, "unit": unit}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    #[serde(rename = "metric")]
    pub name: MetricName,
    pub value: MetricValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    pub unit: Unit,
}

mod osiris_ts {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        // Osiris writes `2025-10-07T14:22:21.532114+00:00`.
        s.serialize_str(&ts.to_rfc3339_opts(SecondsFormat::Micros, false))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serialized_tags() {
        let event = Event::StepStart { step_id: "a".into(), driver: "d".into() };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event"], event.name());
        for metric in MetricName::ALL {
            assert_eq!(serde_json::to_value(metric).unwrap(), metric.as_str());
        }
    }

    #[test]
    fn records_have_osiris_line_shape() {
        let ts = DateTime::parse_from_rfc3339("2025-10-07T14:22:21.532114+00:00").unwrap().with_timezone(&Utc);
        let record = Record {
            ts,
            session: "s1".into(),
            body: RecordBody::Metric(Metric {
                name: MetricName::RowsRead,
                value: 14u64.into(),
                step_id: Some("x".into()),
                unit: Unit::Rows,
            }),
        };
        let line = serde_json::to_string(&record).unwrap();
        assert_eq!(
            line,
            r#"{"ts":"2025-10-07T14:22:21.532114+00:00","session":"s1","metric":"rows_read","value":14,"step_id":"x","unit":"rows"}"#
        );
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(back, record);
        let event = Record {
            ts,
            session: "s1".into(),
            body: RecordBody::Event(Event::StepStart { step_id: "a".into(), driver: "d".into() }),
        };
        let line = serde_json::to_string(&event).unwrap();
        assert_eq!(
            line,
            r#"{"ts":"2025-10-07T14:22:21.532114+00:00","session":"s1","event":"step_start","step_id":"a","driver":"d"}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), event);
    }
}

#[cfg(test)]
mod catalogue_tests {
    use super::*;

    /// `docs/events.md` documents every event and metric name.
    #[test]
    fn catalogue_documents_every_name() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/events.md")).unwrap();
        for name in Event::NAMES {
            assert!(doc.contains(&format!("| `{name}` |")), "docs/events.md lacks event {name}");
        }
        for metric in MetricName::ALL {
            assert!(
                doc.contains(&format!("| `{}` |", metric.as_str())),
                "docs/events.md lacks metric {}",
                metric.as_str()
            );
        }
    }
}
