//! The columnar step cache: the edge between a producing step and its consumers.
//!
//! Each producing step writes its batches into one [`OutputSink`]; every consumer (a downstream
//! step, or a tap of an embedding application) reads them through its own [`InputReader`] at its
//! own pace. A batch is dropped as soon as every consumer has read it. Batches that do not fit the
//! run's [`MemoryBudget`] are written to an Arrow IPC spill file in the run directory and read back
//! from there, so results are identical with and without spilling.
//!
//! Backpressure: a producer waits while its slowest consumer lags by more than the high-water
//! mark. A slow consumer is waited for however long it takes. A consumer that is itself waiting
//! for *another* input (a join draining one side first) may never come back to this one; if it
//! stays so for [`STALL_TIMEOUT`], waiting could deadlock the DAG, so the producer goes on and its
//! batches spill once the budget is used up.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Cursor, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, Schema, SchemaRef};
use futures::stream::BoxStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::budget::MemoryBudget;
use crate::telemetry::{Event, StepCounters, StepTelemetry};

/// How long a producer waits for a lagging consumer to make progress before treating it as
/// blocked elsewhere.
pub const STALL_TIMEOUT: Duration = Duration::from_millis(250);

/// Upper bound of the per-output high-water mark.
const MAX_HIGH_WATER: u64 = 64 * 1024 * 1024;

/// What a consumer of a failed step's output is told (also the reason it is cancelled with).
pub fn upstream_failed_message(step_id: &str) -> String {
    CacheError::UpstreamFailed { step_id: step_id.to_string() }.to_string()
}

/// Step cache errors.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cancelled")]
    Cancelled,
    #[error("upstream step '{step_id}' failed")]
    UpstreamFailed { step_id: String },
    #[error("step '{step_id}': cannot use spill file {path}: {source}")]
    SpillIo { step_id: String, path: PathBuf, source: std::io::Error },
    #[error("step '{step_id}': cannot encode or decode spilled batch in {path}: {source}")]
    SpillArrow { step_id: String, path: PathBuf, source: ArrowError },
    #[error("step '{step_id}' sent a batch whose columns ({found}) differ from its declared schema ({expected})")]
    SchemaMismatch { step_id: String, expected: String, found: String },
    #[error("every step reading the output of '{step_id}' has stopped")]
    NoConsumers { step_id: String },
}

enum Entry {
    Memory { batch: RecordBatch, bytes: u64 },
    Spilled { offset: u64, len: u64 },
}

impl Entry {
    fn bytes(&self) -> u64 {
        match self {
            Entry::Memory { bytes, .. } => *bytes,
            Entry::Spilled { len, .. } => *len,
        }
    }
}

enum Done {
    Ok,
    Failed,
}

struct State {
    schema: Option<SchemaRef>,
    entries: VecDeque<Entry>,
    /// Index of `entries[0]`.
    first: u64,
    /// Next read position of each consumer; `None` once the consumer is gone.
    cursors: Vec<Option<u64>>,
    /// The live counters of each consumer's step (parallel to `cursors`).
    consumers: Vec<Arc<StepCounters>>,
    /// Consumers that keep every batch to scan it several times (parallel to `cursors`). They
    /// hold batches back from release but not the producer: it must be able to finish.
    retaining: Vec<bool>,
    /// Bytes of the entries still held (in memory or in the spill file).
    held_bytes: u64,
    done: Option<Done>,
}

impl State {
    fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// Position of the slowest live consumer that reads once (the one backpressure waits for).
    fn slowest_cursor(&self) -> Option<u64> {
        self.cursors.iter().zip(&self.retaining).filter(|(_, r)| !**r).filter_map(|(c, _)| *c).min()
    }

    /// Whether any consumer is still there.
    fn has_live_consumer(&self) -> bool {
        self.cursors.iter().any(Option::is_some)
    }

    /// The entry at `index`, if it has been produced.
    fn next_at(&self, index: u64, step_id: &str) -> Result<Next, CacheError> {
        if let Some(Done::Failed) = self.done {
            return Err(CacheError::UpstreamFailed { step_id: step_id.to_string() });
        }
        if index >= self.end() {
            return Ok(if self.done.is_some() { Next::End } else { Next::Wait });
        }
        Ok(match &self.entries[(index - self.first) as usize] {
            Entry::Memory { batch, .. } => Next::Batch(batch.clone()),
            Entry::Spilled { offset, len } => Next::Spilled { offset: *offset, len: *len },
        })
    }

    /// Whether a consumer at `cursor` is waiting for one of its other inputs.
    fn lagging_consumer_blocked(&self, cursor: u64) -> bool {
        self.cursors
            .iter()
            .zip(&self.consumers)
            .any(|(c, counters)| *c == Some(cursor) && counters.waiting_for_input.load(Ordering::Relaxed) > 0)
    }

    /// Drops every entry that all live consumers have read.
    fn release_read(&mut self, budget: &MemoryBudget) {
        let keep_from = self.cursors.iter().flatten().copied().min().unwrap_or_else(|| self.end());
        while self.first < keep_from {
            let Some(entry) = self.entries.pop_front() else { break };
            self.first += 1;
            self.held_bytes -= entry.bytes();
            if let Entry::Memory { bytes, .. } = entry {
                budget.release(bytes);
            }
        }
    }
}

enum Next {
    Batch(RecordBatch),
    Spilled { offset: u64, len: u64 },
    End,
    Wait,
}

/// One producing step's output, shared by its sink and its readers.
struct Shared {
    step_id: String,
    state: Mutex<State>,
    version: watch::Sender<u64>,
    budget: Arc<MemoryBudget>,
    spill_path: PathBuf,
    /// Holds the spill file's lock (see [`crate::scratch`]) until the output is gone, so that no
    /// other run takes the file for a crashed run's leftover while readers still need it.
    spill_lock: OnceLock<File>,
    high_water: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        for entry in state.entries.drain(..) {
            if let Entry::Memory { bytes, .. } = entry {
                self.budget.release(bytes);
            }
        }
        let _ = std::fs::remove_file(&self.spill_path);
    }
}

/// Creates the cache edge of one producing step.
pub struct StepOutput {
    shared: Arc<Shared>,
}

impl StepOutput {
    /// An output without consumers yet (add them with [`StepOutput::reader`] before the producer
    /// starts), spilling to `spill_path` (which no other output may use).
    pub fn new(step_id: &str, budget: Arc<MemoryBudget>, spill_path: PathBuf) -> Self {
        let high_water = (budget.limit() / 4).clamp(1, MAX_HIGH_WATER);
        let state = State {
            schema: None,
            entries: VecDeque::new(),
            first: 0,
            cursors: Vec::new(),
            consumers: Vec::new(),
            retaining: Vec::new(),
            held_bytes: 0,
            done: None,
        };
        let shared = Shared {
            step_id: step_id.to_string(),
            state: Mutex::new(state),
            version: watch::channel(0).0,
            budget,
            spill_path,
            spill_lock: OnceLock::new(),
            high_water,
        };
        StepOutput { shared: Arc::new(shared) }
    }

    /// Adds a consumer. A consumer added after the producer started sees only the batches that
    /// are still held.
    pub fn reader(&self, cancel: CancellationToken, counters: Arc<StepCounters>) -> InputReader {
        let consumer = {
            let mut state = self.shared.lock();
            let first = state.first;
            state.cursors.push(Some(first));
            state.consumers.push(counters.clone());
            state.retaining.push(false);
            state.cursors.len() - 1
        };
        InputReader { shared: self.shared.clone(), consumer, cancel, counters, spill_file: None, failed: false }
    }

    /// The producer's sink.
    pub fn sink(&self, cancel: CancellationToken, telemetry: StepTelemetry) -> OutputSink {
        OutputSink {
            shared: self.shared.clone(),
            cancel,
            telemetry,
            spill: None,
            stalled_at: None,
            spill_stats: SpillStats::default(),
        }
    }

    /// Marks the output complete (`ok`) or failed; readers see the end or an upstream failure.
    pub fn finish(&self, ok: bool) {
        self.shared.lock().done = Some(if ok { Done::Ok } else { Done::Failed });
        self.shared.bump();
    }
}

impl Drop for StepOutput {
    /// An output dropped without [`StepOutput::finish`] (its step panicked) fails, so its readers
    /// stop instead of waiting forever.
    fn drop(&mut self) {
        let unfinished = self.shared.lock().done.is_none();
        if unfinished {
            self.finish(false);
        }
    }
}

#[derive(Default)]
struct SpillStats {
    batches: u64,
    rows: u64,
    bytes: u64,
}

/// Where a producing step sends its batches.
pub struct OutputSink {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    telemetry: StepTelemetry,
    spill: Option<(File, u64)>,
    /// Slowest cursor position at which the consumer was found stalled.
    stalled_at: Option<u64>,
    spill_stats: SpillStats,
}

impl OutputSink {
    /// Declares the output schema before (or without) any batch, so consumers can write a
    /// header for an empty result.
    pub fn set_schema(&mut self, schema: SchemaRef) {
        let mut state = self.shared.lock();
        if state.schema.is_none() {
            state.schema = Some(schema);
            drop(state);
            self.shared.bump();
        }
    }

    /// Sends one batch, waiting while the consumers lag too far behind.
    pub async fn send(&mut self, batch: RecordBatch) -> Result<(), CacheError> {
        self.check_schema(&batch)?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let rows = batch.num_rows() as u64;
        self.wait_for_consumers().await?;
        {
            let state = self.shared.lock();
            if state.cursors.is_empty() {
                // Nothing reads this output (a pipeline that only extracts): count and drop.
                self.telemetry.counters().rows_out.fetch_add(rows, Ordering::Relaxed);
                return Ok(());
            }
            if !state.has_live_consumer() {
                // Every consumer failed or was cancelled: producing more is wasted work.
                return Err(CacheError::NoConsumers { step_id: self.shared.step_id.clone() });
            }
        }
        let bytes = batch.get_array_memory_size() as u64;
        let entry =
            if self.shared.budget.try_reserve(bytes) { Entry::Memory { batch, bytes } } else { self.spill(&batch)? };
        {
            let mut state = self.shared.lock();
            state.held_bytes += entry.bytes();
            state.entries.push_back(entry);
        }
        self.telemetry.counters().rows_out.fetch_add(rows, Ordering::Relaxed);
        self.shared.bump();
        Ok(())
    }

    fn check_schema(&mut self, batch: &RecordBatch) -> Result<(), CacheError> {
        let mut state = self.shared.lock();
        match &state.schema {
            None => {
                state.schema = Some(batch.schema());
                drop(state);
                self.shared.bump();
                Ok(())
            }
            Some(schema) if schema.fields() == batch.schema().fields() => Ok(()),
            Some(schema) => Err(CacheError::SchemaMismatch {
                step_id: self.shared.step_id.clone(),
                expected: describe_fields(schema),
                found: describe_fields(&batch.schema()),
            }),
        }
    }

    async fn wait_for_consumers(&mut self) -> Result<(), CacheError> {
        let mut changes = self.shared.version.subscribe();
        loop {
            changes.borrow_and_update();
            let slowest = {
                let state = self.shared.lock();
                match state.slowest_cursor() {
                    Some(cursor) if state.held_bytes >= self.shared.high_water => {
                        if self.stalled_at == Some(cursor) && state.lagging_consumer_blocked(cursor) {
                            // Still blocked on its other input: keep going without waiting.
                            return Ok(());
                        }
                        cursor
                    }
                    _ => return Ok(()),
                }
            };
            self.stalled_at = None;
            tokio::select! {
                _ = self.cancel.cancelled() => return Err(CacheError::Cancelled),
                changed = tokio::time::timeout(STALL_TIMEOUT, changes.changed()) => {
                    let state = self.shared.lock();
                    if changed.is_err()
                        && state.slowest_cursor() == Some(slowest)
                        && state.lagging_consumer_blocked(slowest)
                    {
                        self.stalled_at = Some(slowest);
                        return Ok(());
                    }
                }
            }
        }
    }

    fn spill(&mut self, batch: &RecordBatch) -> Result<Entry, CacheError> {
        let path = &self.shared.spill_path;
        let io_err = |source| CacheError::SpillIo { step_id: self.shared.step_id.clone(), path: path.clone(), source };
        let arrow_err =
            |source| CacheError::SpillArrow { step_id: self.shared.step_id.clone(), path: path.clone(), source };
        if self.spill.is_none() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io_err)?;
            }
            let file = create_spill_file(path).map_err(io_err)?;
            let _ = self.shared.spill_lock.set(file.try_clone().map_err(io_err)?);
            self.spill = Some((file, 0));
            self.telemetry.event(Event::CacheSpillStart {
                step_id: self.shared.step_id.clone(),
                // Relative to the run directory, like artifact paths: the same on every adapter.
                path: format!("spill/{}", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()),
                budget_bytes: self.shared.budget.limit(),
                used_bytes: self.shared.budget.used(),
            });
        }
        let mut encoded = Vec::new();
        {
            let mut writer = StreamWriter::try_new(&mut encoded, &batch.schema()).map_err(arrow_err)?;
            writer.write(batch).map_err(arrow_err)?;
            writer.finish().map_err(arrow_err)?;
        }
        let (file, offset) = self.spill.as_mut().expect("spill file opened above");
        file.write_all(&encoded).map_err(io_err)?;
        let entry = Entry::Spilled { offset: *offset, len: encoded.len() as u64 };
        *offset += encoded.len() as u64;
        self.spill_stats.batches += 1;
        self.spill_stats.rows += batch.num_rows() as u64;
        self.spill_stats.bytes += encoded.len() as u64;
        Ok(entry)
    }
}

impl Drop for OutputSink {
    fn drop(&mut self) {
        if self.spill_stats.batches > 0 {
            self.telemetry.event(Event::CacheSpillComplete {
                step_id: self.shared.step_id.clone(),
                batches: self.spill_stats.batches,
                rows: self.spill_stats.rows,
                bytes: self.spill_stats.bytes,
            });
            self.telemetry.metric(
                crate::telemetry::MetricName::CacheSpilledBytes,
                self.spill_stats.bytes,
                crate::telemetry::Unit::Bytes,
            );
        }
    }
}

/// A consumer's view of one upstream output.
pub struct InputReader {
    shared: Arc<Shared>,
    consumer: usize,
    cancel: CancellationToken,
    counters: Arc<StepCounters>,
    spill_file: Option<File>,
    /// A stream built by [`InputReader::into_stream`] ends after its first error.
    failed: bool,
}

impl InputReader {
    /// The upstream step id.
    pub fn step_id(&self) -> &str {
        &self.shared.step_id
    }

    /// The output schema; waits until the producer declares it (or sends its first batch).
    /// An upstream that ends without declaring one yields an empty schema.
    pub async fn schema(&mut self) -> Result<SchemaRef, CacheError> {
        let mut changes = self.shared.version.subscribe();
        loop {
            changes.borrow_and_update();
            {
                let state = self.shared.lock();
                if let Some(Done::Failed) = state.done {
                    return Err(CacheError::UpstreamFailed { step_id: self.shared.step_id.clone() });
                }
                if let Some(schema) = &state.schema {
                    return Ok(schema.clone());
                }
                if state.done.is_some() {
                    return Ok(Arc::new(Schema::empty()));
                }
            }
            self.wait(&mut changes).await?;
        }
    }

    /// The next batch, or `None` at the end of the upstream output.
    pub async fn next_batch(&mut self) -> Result<Option<RecordBatch>, CacheError> {
        let mut changes = self.shared.version.subscribe();
        loop {
            changes.borrow_and_update();
            match self.take_next()? {
                Next::Batch(batch) => return Ok(Some(self.count(batch))),
                Next::Spilled { offset, len } => {
                    let batch = self.read_spilled(offset, len)?;
                    return Ok(Some(self.count(batch)));
                }
                Next::End => return Ok(None),
                Next::Wait => self.wait(&mut changes).await?,
            }
        }
    }

    /// Advances this consumer's cursor if a batch is available.
    fn take_next(&self) -> Result<Next, CacheError> {
        let mut state = self.shared.lock();
        let cursor = state.cursors[self.consumer].expect("a live reader has a cursor");
        let next = state.next_at(cursor, &self.shared.step_id)?;
        if matches!(next, Next::Batch(_) | Next::Spilled { .. }) {
            state.cursors[self.consumer] = Some(cursor + 1);
            state.release_read(&self.shared.budget);
            drop(state);
            self.shared.bump();
        }
        Ok(next)
    }

    /// Keeps every batch of this input from now on, so that it can be scanned any number of
    /// times (a SQL step joining an input with itself, or reading it once to plan and once to
    /// run). The producer is not held back by a retained input; its batches stay in memory up to
    /// the run's budget and spill past it. Call before reading any batch.
    pub fn retain(self) -> RetainedInput {
        let mut state = self.shared.lock();
        state.retaining[self.consumer] = true;
        drop(state);
        self.shared.bump();
        RetainedInput { reader: Arc::new(self), counted: Arc::default() }
    }

    /// Turns the reader into a `Stream` of batches.
    pub fn into_stream(self) -> BoxStream<'static, Result<RecordBatch, CacheError>> {
        Box::pin(futures::stream::unfold(self, |mut reader| async move {
            if reader.failed {
                return None;
            }
            match reader.next_batch().await {
                Ok(Some(batch)) => Some((Ok(batch), reader)),
                Ok(None) => None,
                Err(e) => {
                    reader.failed = true;
                    Some((Err(e), reader))
                }
            }
        }))
    }

    fn count(&self, batch: RecordBatch) -> RecordBatch {
        self.counters.rows_in.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        batch
    }

    async fn wait(&self, changes: &mut watch::Receiver<u64>) -> Result<(), CacheError> {
        let _waiting = WaitingForInput::new(&self.counters);
        tokio::select! {
            _ = self.cancel.cancelled() => Err(CacheError::Cancelled),
            _ = changes.changed() => Ok(()),
        }
    }

    fn read_spilled(&mut self, offset: u64, len: u64) -> Result<RecordBatch, CacheError> {
        read_spilled(&self.shared, &mut self.spill_file, offset, len)
    }
}

/// Creates a spill file, locked as a scratch file. A file of that name left by an earlier run in
/// the same directory is replaced if no live run holds it.
fn create_spill_file(path: &Path) -> std::io::Result<File> {
    if path.exists() && crate::scratch::is_abandoned(path) {
        std::fs::remove_file(path)?;
    }
    crate::scratch::create_locked(path)
}

/// Removes the spill files that crashed runs left in the run directories beside `run_dir` (in
/// the run-log layout, the earlier runs of the same pipeline and profile), and their then empty
/// `spill/` directories. Only directories that are run logs (they hold `events.jsonl`) are
/// looked into; spill files of runs still going are locked and stay. The CLI calls it before a
/// run; an embedding application that keeps run directories side by side may too.
pub fn remove_abandoned_spills(run_dir: &Path) {
    let Some(Ok(siblings)) = run_dir.parent().map(std::fs::read_dir) else { return };
    for sibling in siblings.flatten() {
        let spill_dir = sibling.path().join("spill");
        if spill_dir.is_dir() && sibling.path().join("events.jsonl").is_file() {
            crate::scratch::remove_abandoned(&spill_dir, |name| name.ends_with(".arrows"));
            let _ = std::fs::remove_dir(&spill_dir);
        }
    }
}

/// Reads one spilled batch back (opening the spill file on first use).
fn read_spilled(shared: &Shared, file: &mut Option<File>, offset: u64, len: u64) -> Result<RecordBatch, CacheError> {
    let path = &shared.spill_path;
    let step_id = &shared.step_id;
    let io_err = |source| CacheError::SpillIo { step_id: step_id.clone(), path: path.clone(), source };
    let arrow_err = |source| CacheError::SpillArrow { step_id: step_id.clone(), path: path.clone(), source };
    if file.is_none() {
        *file = Some(File::open(path).map_err(io_err)?);
    }
    let file = file.as_ref().expect("opened above");
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, offset).map_err(io_err)?;
    let mut reader = StreamReader::try_new(Cursor::new(bytes), None).map_err(arrow_err)?;
    match reader.next() {
        Some(batch) => batch.map_err(arrow_err),
        None => Err(arrow_err(ArrowError::IpcError("spilled segment holds no batch".into()))),
    }
}

/// An input kept whole in the step cache, for consumers that read it more than once. Each
/// [`RetainedInput::scan`] reads it from the first batch, waiting for the producer as needed.
#[derive(Clone)]
pub struct RetainedInput {
    reader: Arc<InputReader>,
    /// Batches already counted into the consumer's `rows_in` (the first scan to reach a batch
    /// counts it).
    counted: Arc<std::sync::atomic::AtomicU64>,
}

impl RetainedInput {
    /// The upstream step id.
    pub fn step_id(&self) -> &str {
        self.reader.step_id()
    }

    /// The output schema; waits until the producer declares it.
    pub async fn schema(&self) -> Result<SchemaRef, CacheError> {
        let shared = &self.reader.shared;
        let mut changes = shared.version.subscribe();
        loop {
            changes.borrow_and_update();
            {
                let state = shared.lock();
                if let Some(Done::Failed) = state.done {
                    return Err(CacheError::UpstreamFailed { step_id: shared.step_id.clone() });
                }
                if let Some(schema) = &state.schema {
                    return Ok(schema.clone());
                }
                if state.done.is_some() {
                    return Ok(Arc::new(Schema::empty()));
                }
            }
            self.reader.wait(&mut changes).await?;
        }
    }

    /// A stream over every batch of the input, from the first.
    pub fn scan(&self) -> BoxStream<'static, Result<RecordBatch, CacheError>> {
        let start = self.reader.shared.lock().cursors[self.reader.consumer].unwrap_or(0);
        let scan = Scan { input: self.clone(), index: start, spill_file: None, failed: false };
        Box::pin(futures::stream::unfold(scan, |mut scan| async move {
            if scan.failed {
                return None;
            }
            match scan.next_batch().await {
                Ok(Some(batch)) => Some((Ok(batch), scan)),
                Ok(None) => None,
                Err(e) => {
                    scan.failed = true;
                    Some((Err(e), scan))
                }
            }
        }))
    }
}

/// One pass over a [`RetainedInput`].
struct Scan {
    input: RetainedInput,
    index: u64,
    spill_file: Option<File>,
    failed: bool,
}

impl Scan {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>, CacheError> {
        let reader = self.input.reader.clone();
        let shared = &reader.shared;
        let mut changes = shared.version.subscribe();
        loop {
            changes.borrow_and_update();
            let next = shared.lock().next_at(self.index, &shared.step_id)?;
            let batch = match next {
                Next::Batch(batch) => batch,
                Next::Spilled { offset, len } => read_spilled(shared, &mut self.spill_file, offset, len)?,
                Next::End => return Ok(None),
                Next::Wait => {
                    reader.wait(&mut changes).await?;
                    continue;
                }
            };
            if self.input.counted.fetch_max(self.index + 1, Ordering::Relaxed) <= self.index {
                reader.counters.rows_in.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            }
            self.index += 1;
            return Ok(Some(batch));
        }
    }
}

impl Drop for InputReader {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            state.cursors[self.consumer] = None;
            state.release_read(&self.shared.budget);
        }
        self.shared.bump();
    }
}

/// Counts a reader as waiting for its upstream for as long as it lives (also when the waiting
/// future is dropped).
struct WaitingForInput<'a>(&'a StepCounters);

impl<'a> WaitingForInput<'a> {
    fn new(counters: &'a StepCounters) -> Self {
        counters.waiting_for_input.fetch_add(1, Ordering::Relaxed);
        WaitingForInput(counters)
    }
}

impl Drop for WaitingForInput<'_> {
    fn drop(&mut self) {
        self.0.waiting_for_input.fetch_sub(1, Ordering::Relaxed);
    }
}

fn describe_fields(schema: &Schema) -> String {
    schema.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", ")
}
