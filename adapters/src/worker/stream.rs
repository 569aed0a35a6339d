//! The worker's telemetry stream: events, metrics, live progress and the final report as an
//! Arrow IPC stream of record batches.
//!
//! One schema for every frame: `kind` (`event`, `metric`, `progress`, `report`), `ts`
//! (microseconds, UTC), `name` (event or metric name), `step_id` and `payload` — the record as
//! the JSON line the run log gets, so the host writes byte-for-byte what a local run writes.
//! The same bytes travel over ipc-channel (process adapter) and a sandbox's stdout (E2B).

use std::sync::Arc;

use arrow_array::builder::{StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{Array, RecordBatch, StringArray};
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use osiris_engine::runtime::{RunReport, StepStatus};
use osiris_engine::telemetry::{Record, RecordBody};
use serde::{Deserialize, Serialize};

/// One message of the telemetry stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// An event or metric, exactly as the run log records it.
    Record(Record),
    /// Live counters of every step, sent a few times a second while steps run.
    Progress(Vec<StepSnapshot>),
    /// The run's outcome; the last frame of a run that ended (successfully or not).
    Report(Box<RunReport>),
}

/// Counters of one step at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSnapshot {
    pub step_id: String,
    pub status: StepStatus,
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_in: u64,
    pub rows_out: u64,
}

/// Errors of encoding or decoding the stream.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("telemetry stream: {0}")]
    Arrow(#[from] ArrowError),
    #[error("telemetry stream: bad {kind} payload: {source}")]
    Payload { kind: String, source: serde_json::Error },
    #[error("telemetry stream: unknown frame kind '{0}' (is the worker a different osiris version?)")]
    UnknownKind(String),
    #[error("telemetry stream: column '{0}' is missing or has the wrong type")]
    Column(&'static str),
}

/// The stream's schema.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("kind", DataType::Utf8, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())), false),
        Field::new("name", DataType::Utf8, false),
        Field::new("step_id", DataType::Utf8, true),
        Field::new("payload", DataType::Utf8, false),
    ]))
}

/// Encodes frames into Arrow IPC stream bytes, one record batch per [`FrameEncoder::encode`].
pub struct FrameEncoder {
    writer: StreamWriter<Vec<u8>>,
}

impl FrameEncoder {
    pub fn new() -> Result<Self, StreamError> {
        Ok(FrameEncoder { writer: StreamWriter::try_new(Vec::new(), &schema())? })
    }

    /// Appends `frames` as one record batch; returns the bytes to send (the schema message
    /// comes with the first call).
    pub fn encode(&mut self, frames: &[Frame]) -> Result<Vec<u8>, StreamError> {
        if !frames.is_empty() {
            self.writer.write(&to_batch(frames)?)?;
        }
        Ok(std::mem::take(self.writer.get_mut()))
    }

    /// The end-of-stream marker.
    pub fn finish(&mut self) -> Result<Vec<u8>, StreamError> {
        self.writer.finish()?;
        Ok(std::mem::take(self.writer.get_mut()))
    }
}

fn to_batch(frames: &[Frame]) -> Result<RecordBatch, StreamError> {
    let mut kind = StringBuilder::new();
    let mut ts = TimestampMicrosecondBuilder::new().with_timezone("+00:00");
    let mut name = StringBuilder::new();
    let mut step_id = StringBuilder::new();
    let mut payload = StringBuilder::new();
    for frame in frames {
        let (k, t, n, s, p) = describe(frame)?;
        kind.append_value(k);
        ts.append_value(t.timestamp_micros());
        name.append_value(n);
        step_id.append_option(s);
        payload.append_value(p);
    }
    let columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(kind.finish()),
        Arc::new(ts.finish()),
        Arc::new(name.finish()),
        Arc::new(step_id.finish()),
        Arc::new(payload.finish()),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

type Described<'a> = (&'static str, DateTime<Utc>, String, Option<String>, String);

fn describe(frame: &Frame) -> Result<Described<'_>, StreamError> {
    let json = |kind: &str, r: serde_json::Result<String>| {
        r.map_err(|source| StreamError::Payload { kind: kind.to_string(), source })
    };
    Ok(match frame {
        Frame::Record(record) => {
            let (kind, name, step) = match &record.body {
                RecordBody::Event(e) => ("event", e.name().to_string(), e.step_id().map(str::to_string)),
                RecordBody::Metric(m) => ("metric", m.name.as_str().to_string(), m.step_id.clone()),
            };
            (kind, record.ts, name, step, json(kind, serde_json::to_string(record))?)
        }
        Frame::Progress(steps) => {
            ("progress", Utc::now(), "progress".into(), None, json("progress", serde_json::to_string(steps))?)
        }
        Frame::Report(report) => {
            ("report", Utc::now(), "report".into(), None, json("report", serde_json::to_string(report))?)
        }
    })
}

/// Decodes Arrow IPC stream bytes, fed in chunks of any size, into frames.
#[derive(Default)]
pub struct FrameDecoder {
    decoder: StreamDecoder,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes every complete batch in `bytes`; a partial message waits for the next chunk.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Frame>, StreamError> {
        let mut buffer = Buffer::from(bytes.to_vec());
        let mut frames = Vec::new();
        while !buffer.is_empty() {
            match self.decoder.decode(&mut buffer)? {
                Some(batch) => frames.extend(from_batch(&batch)?),
                None => continue,
            }
        }
        Ok(frames)
    }

    /// Checks that the stream ended on a message boundary.
    pub fn finish(&mut self) -> Result<(), StreamError> {
        Ok(self.decoder.finish()?)
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &'static str) -> Result<&'a StringArray, StreamError> {
    batch.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<StringArray>()).ok_or(StreamError::Column(name))
}

fn from_batch(batch: &RecordBatch) -> Result<Vec<Frame>, StreamError> {
    let kind = column(batch, "kind")?;
    let payload = column(batch, "payload")?;
    (0..batch.num_rows())
        .map(|row| {
            let text = payload.value(row);
            let parse_err = |source| StreamError::Payload { kind: kind.value(row).to_string(), source };
            match kind.value(row) {
                "event" | "metric" => serde_json::from_str(text).map(Frame::Record).map_err(parse_err),
                "progress" => serde_json::from_str(text).map(Frame::Progress).map_err(parse_err),
                "report" => serde_json::from_str(text).map(|r| Frame::Report(Box::new(r))).map_err(parse_err),
                other => Err(StreamError::UnknownKind(other.to_string())),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use osiris_engine::telemetry::{Event, Metric, MetricName, MetricValue, Unit};

    use super::*;

    fn record(body: RecordBody) -> Record {
        Record { ts: "2025-01-02T03:04:05.123456Z".parse().unwrap(), session: "run-1".into(), body }
    }

    fn frames() -> Vec<Frame> {
        vec![
            Frame::Record(record(RecordBody::Event(Event::StepStart { step_id: "a".into(), driver: "x".into() }))),
            Frame::Record(record(RecordBody::Metric(Metric {
                name: MetricName::RowsRead,
                value: MetricValue::Int(42),
                step_id: Some("a".into()),
                unit: Unit::Rows,
            }))),
            Frame::Progress(vec![StepSnapshot {
                step_id: "a".into(),
                status: StepStatus::Running,
                rows_read: 7,
                rows_written: 0,
                rows_in: 0,
                rows_out: 7,
            }]),
        ]
    }

    #[test]
    fn frames_survive_the_stream_in_chunks_of_any_size() {
        let mut encoder = FrameEncoder::new().unwrap();
        let mut bytes = encoder.encode(&frames()).unwrap();
        bytes.extend(encoder.encode(&frames()[..1]).unwrap());
        bytes.extend(encoder.finish().unwrap());
        for chunk in [1, 7, 64, bytes.len()] {
            let mut decoder = FrameDecoder::new();
            let mut got = Vec::new();
            for piece in bytes.chunks(chunk) {
                got.extend(decoder.feed(piece).unwrap());
            }
            decoder.finish().unwrap();
            let mut want = frames();
            want.push(frames()[0].clone());
            assert_eq!(got, want, "chunk size {chunk}");
        }
    }

    #[test]
    fn the_payload_is_the_run_log_line() {
        let frame = &frames()[0];
        let batch = to_batch(std::slice::from_ref(frame)).unwrap();
        let Frame::Record(r) = frame else { unreachable!() };
        assert_eq!(column(&batch, "payload").unwrap().value(0), serde_json::to_string(r).unwrap());
        assert_eq!(column(&batch, "name").unwrap().value(0), "step_start");
        assert_eq!(column(&batch, "step_id").unwrap().value(0), "a");
    }

    #[test]
    fn a_truncated_stream_is_an_error_not_a_frame() {
        let mut encoder = FrameEncoder::new().unwrap();
        let bytes = encoder.encode(&frames()).unwrap();
        let mut decoder = FrameDecoder::new();
        assert!(decoder.feed(&bytes[..bytes.len() - 10]).unwrap().is_empty());
        assert!(decoder.finish().is_err());
    }
}
