//! `filesystem.csv_extractor`: streams a CSV file as record batches of inferred (lossless) types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::{Field, Schema, SchemaRef};
use async_trait::async_trait;
use osiris_engine::driver::{Driver, DriverError, StepContext, StepIo, parse_config};
use osiris_engine::telemetry::StepTelemetry;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::compression::{Compression, DecodedInput, open_decoded};
use super::infer::*;
use super::reader::{ReadError, Record, RecordReader};
use crate::common::{Emitter, Encoding, invalid, parse_delimiter, run_producer};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    path: String,
    #[serde(default = "default_delimiter")]
    delimiter: String,
    #[serde(default = "default_encoding")]
    encoding: String,
    /// `true` (the first record), a record number (pandas: `header: 2` skips two records
    /// first), or `false`/`null` for no header.
    #[serde(default = "first_record")]
    header: Value,
    #[serde(default)]
    columns: Option<Vec<String>>,
    #[serde(default)]
    skip_rows: u64,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    na_values: Option<Vec<String>>,
    #[serde(default = "default_rows")]
    chunk_size: u64,
    #[serde(default = "yes")]
    skip_blank_lines: bool,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    dtype: Option<BTreeMap<String, String>>,
    #[serde(default = "default_rows")]
    infer_rows: u64,
    /// `true`/`false` (ISO dates and timestamps are always recognised), or the columns to read as
    /// dates or timestamps.
    #[serde(default)]
    parse_dates: Value,
    #[serde(default = "infer")]
    compression: String,
}

fn first_record() -> Value {
    Value::Bool(true)
}

/// `header`: the record (after `skip_rows`) with the column names, `None` without a header.
fn parse_header(value: &Value) -> Result<Option<u64>, DriverError> {
    match value {
        Value::Bool(true) => Ok(Some(0)),
        Value::Bool(false) | Value::Null => Ok(None),
        Value::Number(n) if n.as_u64().is_some() => Ok(n.as_u64()),
        other => Err(invalid(format!("invalid header {other}")).with_hint(
            "use `header: true` (the first record), a record number (0 is the first), or `false`/`null` for no header",
        )),
    }
}

/// `parse_dates`: a list of column names; `true`/`false` name none (ISO-8601 dates and
/// timestamps are always recognised).
fn parse_date_columns(value: &Value) -> Result<Vec<String>, DriverError> {
    let bad = || {
        invalid(format!("invalid parse_dates {value}"))
            .with_hint("use a list of column names, e.g. `parse_dates: [created_at]`, or true/false")
    };
    match value {
        Value::Bool(_) | Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(bad)).collect(),
        _ => Err(bad()),
    }
}
fn infer() -> String {
    "infer".into()
}

fn default_delimiter() -> String {
    ",".into()
}
fn default_encoding() -> String {
    "utf-8".into()
}
fn yes() -> bool {
    true
}
fn default_rows() -> u64 {
    10_000
}

/// Validated extractor options.
#[derive(Debug, Clone)]
pub(crate) struct ExtractOptions {
    pub path: String,
    pub delimiter: u8,
    pub encoding: Encoding,
    /// The record (after `skip_rows`) holding the column names; `None` without a header.
    pub header: Option<u64>,
    pub columns: Option<Vec<String>>,
    pub skip_rows: u64,
    pub limit: Option<u64>,
    pub na_values: Vec<String>,
    pub chunk_size: usize,
    pub comment: Option<u8>,
    pub dtype: BTreeMap<String, ColType>,
    pub infer_rows: u64,
    /// Columns read as dates or timestamps (`parse_dates` as a list).
    pub date_columns: Vec<String>,
    pub compression: Compression,
}

impl ExtractOptions {
    pub(crate) fn parse(config: &Map<String, Value>) -> Result<Self, DriverError> {
        let raw: RawConfig = parse_config(config)?;
        if raw.path.trim().is_empty() {
            return Err(invalid("`path` is empty").with_hint("set `path` to the CSV file to read"));
        }
        if raw.chunk_size == 0 || raw.chunk_size > 10_000_000 {
            return Err(invalid(format!("invalid chunk_size {}", raw.chunk_size))
                .with_hint("use a number of rows per batch between 1 and 10000000 (default 10000)"));
        }
        if !raw.skip_blank_lines {
            // Blank lines carry no fields; the CSV reader always skips them (documented).
        }
        let comment = match raw.comment.as_deref() {
            None | Some("") => None,
            Some(c) if c.len() == 1 && c.is_ascii() && !matches!(c, "\"" | "\r" | "\n") => Some(c.as_bytes()[0]),
            Some(c) => {
                return Err(invalid(format!("invalid comment {c:?}: it must be a single ASCII character"))
                    .with_hint("use e.g. `comment: \"#\"`"));
            }
        };
        let delimiter = parse_delimiter(&raw.delimiter)?;
        if comment == Some(delimiter) {
            return Err(
                invalid("`comment` and `delimiter` are the same character").with_hint("choose different characters")
            );
        }
        let mut dtype = BTreeMap::new();
        for (column, spec) in raw.dtype.unwrap_or_default() {
            let t = ColType::parse(&column, &spec)?;
            dtype.insert(column, t);
        }
        let header = parse_header(&raw.header)?;
        let date_columns = parse_date_columns(&raw.parse_dates)?;
        let compression = Compression::parse(&raw.compression)?;
        Ok(ExtractOptions {
            compression,
            date_columns,
            path: raw.path,
            delimiter,
            encoding: Encoding::parse(&raw.encoding)?,
            header,
            columns: raw.columns,
            skip_rows: raw.skip_rows,
            limit: raw.limit,
            na_values: raw.na_values.unwrap_or_default(),
            chunk_size: raw.chunk_size as usize,
            comment,
            dtype,
            infer_rows: raw.infer_rows,
        })
    }
}

/// The CSV extractor driver.
#[derive(Debug)]
pub(crate) struct CsvExtractorDriver {
    pub opts: ExtractOptions,
}

#[async_trait]
impl Driver for CsvExtractorDriver {
    async fn run(self: Box<Self>, ctx: StepContext, mut io: StepIo) -> Result<(), DriverError> {
        let output = io.take_output()?;
        let path = crate::common::resolve_data_path(&ctx, &self.opts.path);
        let telemetry = ctx.telemetry.clone();
        let opts = self.opts;
        run_producer(&ctx, output, move |em| extract(&opts, &path, &telemetry, em)).await
    }
}

/// The open CSV file, after `skip_rows`, with one record of look-ahead.
struct Source {
    reader: RecordReader<DecodedInput>,
    pending: Option<Record>,
    path: PathBuf,
    reported_bytes: u64,
}

impl Source {
    /// Opens the file and reads the column names (`None` for a file without records).
    fn open(opts: &ExtractOptions, path: &Path) -> Result<(Source, Option<Vec<String>>), DriverError> {
        let input = open_decoded(path, opts.compression)?;
        let reader = RecordReader::new(input, opts.delimiter, opts.comment, 1 << 16);
        let mut src = Source { reader, pending: None, path: path.to_path_buf(), reported_bytes: 0 };
        let mut rec = Record::default();
        let before_first = opts.skip_rows + opts.header.unwrap_or(0);
        for _ in 0..before_first {
            if !src.next(&mut rec)? {
                return Ok((src, None));
            }
        }
        if !src.next(&mut rec)? {
            return Ok((src, None));
        }
        let names = if opts.header.is_some() {
            let mut decoder = Decoder::new(opts.encoding);
            let mut names = Vec::with_capacity(rec.len());
            for (i, raw) in rec.iter().enumerate() {
                let name = decoder.decode(raw).ok_or_else(|| {
                    encoding_error(&src.path, line_of(&rec), &format!("header field {}", i + 1), opts.encoding)
                })?;
                names.push(name.to_string());
            }
            mangle_duplicates(&mut names);
            names
        } else {
            let names = (0..rec.len()).map(|i| i.to_string()).collect();
            src.pending = Some(rec);
            names
        };
        Ok((src, Some(names)))
    }

    /// Reads the next record into `rec`; `false` at the end of the file.
    fn next(&mut self, rec: &mut Record) -> Result<bool, DriverError> {
        if let Some(p) = self.pending.take() {
            *rec = p;
            return Ok(true);
        }
        self.reader.read_record(rec).map_err(|e| self.read_error(e))
    }

    fn read_error(&self, e: ReadError) -> DriverError {
        let path = self.path.display();
        match e {
            ReadError::Io(e) => {
                let line = self.reader.line();
                DriverError::new("extract.io_error", format!("{path}: line {line}: cannot read CSV: {e}"))
                    .with_hint("check that the file is readable (and, when compressed, not truncated)")
                    .with_source(e)
            }
            ReadError::UnterminatedQuote { .. } => DriverError::new("extract.parse_error", format!("{path}: {e}"))
                .with_hint(
                    "close the quote (a quote inside a quoted field is written twice: \"\"), or remove the stray quote",
                ),
            ReadError::RecordTooLong { .. } => DriverError::new("extract.parse_error", format!("{path}: {e}"))
                .with_hint("check the quoting of that line"),
        }
    }

    /// Bytes consumed since the last call.
    fn take_bytes(&mut self) -> u64 {
        let now = self.reader.offset();
        let delta = now.saturating_sub(self.reported_bytes);
        self.reported_bytes = now;
        delta
    }
}

/// Renames repeated header names like pandas: `a`, `a.1`, `a.2`.
fn mangle_duplicates(names: &mut [String]) {
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for i in 0..names.len() {
        if seen.contains(&names[i]) {
            let base = names[i].clone();
            let mut n = 1;
            while seen.contains(&format!("{base}.{n}")) || names.contains(&format!("{base}.{n}")) {
                n += 1;
            }
            names[i] = format!("{base}.{n}");
        }
        seen.insert(names[i].clone());
    }
}

fn line_of(rec: &Record) -> u64 {
    rec.line()
}

fn encoding_error(path: &Path, line: u64, what: &str, enc: Encoding) -> DriverError {
    DriverError::new(
        "extract.encoding_error",
        format!("{}: line {line}: {what} is not valid {enc:?} text", path.display()),
    )
    .with_hint("set `encoding` to the file's encoding (utf-8, latin-1 or ascii)")
}

/// Decodes field bytes in the configured encoding.
struct Decoder {
    encoding: Encoding,
    buf: String,
}

impl Decoder {
    fn new(encoding: Encoding) -> Self {
        Decoder { encoding, buf: String::new() }
    }

    fn decode<'a>(&'a mut self, bytes: &'a [u8]) -> Option<&'a str> {
        match self.encoding {
            Encoding::Utf8 => std::str::from_utf8(bytes).ok(),
            Encoding::Ascii => bytes.is_ascii().then(|| std::str::from_utf8(bytes).ok()).flatten(),
            Encoding::Latin1 => {
                if bytes.is_ascii() {
                    return std::str::from_utf8(bytes).ok();
                }
                self.buf.clear();
                self.buf.extend(bytes.iter().map(|&b| b as char));
                Some(&self.buf)
            }
        }
    }
}

/// Which source fields become which output columns, with their types.
struct Plan {
    source_columns: usize,
    src_idx: Vec<usize>,
    names: Vec<String>,
    explicit: Vec<Option<ColType>>,
    /// Named in `parse_dates`: a date or timestamp column even when inference says otherwise.
    dates: Vec<bool>,
}

impl Plan {
    fn new(opts: &ExtractOptions, names: &[String], path: &Path) -> Result<Plan, DriverError> {
        let src_idx: Vec<usize> = match &opts.columns {
            None => (0..names.len()).collect(),
            Some(wanted) => {
                let mut idx = Vec::with_capacity(wanted.len());
                for w in wanted {
                    let i =
                        names.iter().position(|n| n == w).ok_or_else(|| missing_column(w, names, path, "columns"))?;
                    idx.push(i);
                }
                idx
            }
        };
        let out_names: Vec<String> = src_idx.iter().map(|&i| names[i].clone()).collect();
        for column in opts.dtype.keys() {
            if !out_names.contains(column) {
                return Err(missing_column(column, &out_names, path, "dtype"));
            }
        }
        for column in &opts.date_columns {
            if !out_names.contains(column) {
                return Err(missing_column(column, &out_names, path, "parse_dates"));
            }
        }
        let explicit = out_names.iter().map(|n| opts.dtype.get(n).copied()).collect();
        let dates = out_names.iter().map(|n| opts.date_columns.contains(n)).collect();
        Ok(Plan { source_columns: names.len(), src_idx, names: out_names, explicit, dates })
    }

    /// The type of output column `k` and whether it was inferred (strict parsing): an explicit
    /// `dtype`, else the inferred type, except that a `parse_dates` column that does not infer as
    /// a date or timestamp is a timestamp parsed leniently (`2024-01-31 10:00`, `2024-01-31`).
    fn column_type(&self, k: usize, inference: &Inference) -> (ColType, bool) {
        if let Some(t) = self.explicit[k] {
            return (t, false);
        }
        let inferred = inference.result();
        let temporal = matches!(inferred, ColType::Date | ColType::Timestamp | ColType::TimestampUtc);
        if self.dates[k] && !temporal { (ColType::Timestamp, false) } else { (inferred, true) }
    }
}

fn missing_column(name: &str, available: &[String], path: &Path, key: &str) -> DriverError {
    let mut list = available.iter().take(20).map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
    if available.len() > 20 {
        list.push_str(", ...");
    }
    DriverError::new(
        "extract.column_not_found",
        format!("column '{name}' named in `{key}` is not in {} (columns: {list})", path.display()),
    )
    .with_hint(format!("fix `{key}` to use the file's column names"))
}

/// Shared per-row state: decoding, NULL detection, error context.
struct RowCtx<'a> {
    opts: &'a ExtractOptions,
    plan: &'a Plan,
    path: &'a Path,
    decoder: Decoder,
    scratch: Vec<u8>,
}

impl RowCtx<'_> {
    /// Every row has as many fields as the header (or, without a header, the first row): a
    /// short or long row is an error, never padded with NULLs or cut, since it usually means a
    /// truncated file, a wrong delimiter or broken quoting.
    fn check_width(&self, rec: &Record) -> Result<(), DriverError> {
        let (got, want) = (rec.len(), self.plan.source_columns);
        if got != want {
            let what = if self.opts.header.is_some() { "the header has" } else { "the first row has" };
            return Err(DriverError::new(
                "extract.parse_error",
                format!(
                    "{}: line {}: the row has {got} field{} but {what} {want}",
                    self.path.display(),
                    line_of(rec),
                    if got == 1 { "" } else { "s" },
                ),
            )
            .with_hint(if got < want {
                "a row is missing fields: is the file truncated, or a value's quoting broken on that line?"
            } else {
                "a row has extra fields: check the delimiter and the quoting of that line"
            }));
        }
        Ok(())
    }

    fn observe(&mut self, rec: &Record, inference: &mut [Inference]) -> Result<(), DriverError> {
        self.check_width(rec)?;
        for (k, inf) in inference.iter_mut().enumerate() {
            if self.plan.explicit[k].is_some() {
                continue;
            }
            let i = self.plan.src_idx[k];
            let raw = rec.get(i).unwrap_or(b"");
            // An unquoted empty field is NULL; `""` is an empty string, a value no other type
            // prints, so it makes the column a string column.
            if raw.is_empty() && !rec.is_quoted(i) {
                continue;
            }
            let Some(value) = self.decoder.decode(raw) else {
                return Err(encoding_error(
                    self.path,
                    line_of(rec),
                    &format!("a value of column '{}'", self.plan.names[k]),
                    self.opts.encoding,
                ));
            };
            if self.opts.na_values.iter().any(|n| n == value) {
                continue;
            }
            inf.observe(value, &mut self.scratch);
        }
        Ok(())
    }
}

enum ColBuilder {
    Utf8(StringBuilder),
    Int64(Int64Builder),
    UInt64(UInt64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    TimestampUtc(TimestampMicrosecondBuilder),
    Decimal(Decimal128Builder, u8, i8),
}

impl ColBuilder {
    fn new(t: ColType, cap: usize) -> Result<ColBuilder, DriverError> {
        Ok(match t {
            ColType::Utf8 => ColBuilder::Utf8(StringBuilder::with_capacity(cap, cap * 8)),
            ColType::Int64 => ColBuilder::Int64(Int64Builder::with_capacity(cap)),
            ColType::UInt64 => ColBuilder::UInt64(UInt64Builder::with_capacity(cap)),
            ColType::Float64 => ColBuilder::Float64(Float64Builder::with_capacity(cap)),
            ColType::Boolean => ColBuilder::Boolean(BooleanBuilder::with_capacity(cap)),
            ColType::Date => ColBuilder::Date(Date32Builder::with_capacity(cap)),
            ColType::Timestamp => ColBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(cap)),
            ColType::TimestampUtc => {
                ColBuilder::TimestampUtc(TimestampMicrosecondBuilder::with_capacity(cap).with_timezone(UTC))
            }
            ColType::Decimal(p, s) => ColBuilder::Decimal(
                Decimal128Builder::with_capacity(cap)
                    .with_precision_and_scale(p, s)
                    .map_err(|e| invalid(format!("invalid decimal({p},{s}): {e}")))?,
                p,
                s,
            ),
        })
    }

    /// Appends a value (`None` = NULL); `false` when it does not parse.
    fn append(&mut self, value: Option<&str>, strict: bool, scratch: &mut Vec<u8>) -> bool {
        macro_rules! put {
            ($b:expr, $parse:expr) => {{
                match value {
                    None => $b.append_null(),
                    Some(v) => match $parse(v) {
                        Some(x) => $b.append_value(x),
                        None => return false,
                    },
                }
                true
            }};
        }
        match self {
            ColBuilder::Utf8(b) => {
                b.append_option(value);
                true
            }
            ColBuilder::Int64(b) => put!(b, |v: &str| if strict { canonical_i64(v) } else { v.trim().parse().ok() }),
            ColBuilder::UInt64(b) => put!(b, |v: &str| if strict { canonical_u64(v) } else { v.trim().parse().ok() }),
            ColBuilder::Float64(b) => {
                put!(b, |v: &str| if strict { canonical_f64(v, scratch) } else { v.trim().parse().ok() })
            }
            ColBuilder::Boolean(b) => put!(b, |v: &str| if strict { canonical_bool(v) } else { lenient_bool(v) }),
            ColBuilder::Date(b) => put!(b, |v: &str| if strict { canonical_date(v) } else { lenient_date(v) }),
            ColBuilder::Timestamp(b) => {
                put!(b, |v: &str| if strict { canonical_timestamp(v) } else { lenient_timestamp(v) })
            }
            ColBuilder::TimestampUtc(b) => {
                put!(b, |v: &str| if strict { zoned_timestamp(v) } else { lenient_zoned_timestamp(v) })
            }
            ColBuilder::Decimal(b, p, s) => {
                let (p, s) = (*p, *s);
                put!(b, |v: &str| if strict { canonical_decimal(v, p, s) } else { parse_decimal(v, p, s) })
            }
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColBuilder::Utf8(b) => Arc::new(b.finish()),
            ColBuilder::Int64(b) => Arc::new(b.finish()),
            ColBuilder::UInt64(b) => Arc::new(b.finish()),
            ColBuilder::Float64(b) => Arc::new(b.finish()),
            ColBuilder::Boolean(b) => Arc::new(b.finish()),
            ColBuilder::Date(b) => Arc::new(b.finish()),
            ColBuilder::Timestamp(b) | ColBuilder::TimestampUtc(b) => Arc::new(b.finish()),
            ColBuilder::Decimal(b, _, _) => Arc::new(b.finish()),
        }
    }
}

struct Batcher {
    schema: SchemaRef,
    types: Vec<ColType>,
    strict: Vec<bool>,
    /// A quoted empty field is a value (not NULL): string columns and inferred (strict) types.
    keep_empty: Vec<bool>,
    builders: Vec<ColBuilder>,
    rows: usize,
}

impl Batcher {
    fn push(&mut self, rc: &mut RowCtx<'_>, rec: &Record) -> Result<(), DriverError> {
        rc.check_width(rec)?;
        for (k, builder) in self.builders.iter_mut().enumerate() {
            let i = rc.plan.src_idx[k];
            let raw = rec.get(i).unwrap_or(b"");
            // Unquoted empty: NULL. Quoted empty (`""`): the empty string in a string column, NULL
            // in a column of an explicit `dtype`, and a value that does not fit an inferred type.
            let value = if raw.is_empty() && !(self.keep_empty[k] && rec.is_quoted(i)) {
                None
            } else {
                let Some(v) = rc.decoder.decode(raw) else {
                    return Err(encoding_error(
                        rc.path,
                        line_of(rec),
                        &format!("a value of column '{}'", rc.plan.names[k]),
                        rc.opts.encoding,
                    ));
                };
                if rc.opts.na_values.iter().any(|n| n == v) { None } else { Some(v) }
            };
            if !builder.append(value, self.strict[k], &mut rc.scratch) {
                let shown: String = value.unwrap_or("").chars().take(80).collect();
                let column = &rc.plan.names[k];
                let t = self.types[k].name();
                let hint = if self.strict[k] {
                    format!(
                        "the type was inferred from the first rows; set `dtype: {{\"{column}\": string}}` (or the right type) for this column, or `infer_rows: 0` to infer from the whole file"
                    )
                } else {
                    format!("fix the value or change `dtype` of column '{column}'")
                };
                return Err(DriverError::new(
                    "extract.parse_error",
                    format!(
                        "{}: line {}: column '{column}': value {shown:?} is not a {t}",
                        rc.path.display(),
                        line_of(rec)
                    ),
                )
                .with_hint(hint));
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>, DriverError> {
        if self.rows == 0 {
            return Ok(None);
        }
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(ColBuilder::finish).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
            .map(Some)
            .map_err(|e| DriverError::new("extract.internal_error", format!("cannot build a batch: {e}")))
    }
}

/// A file without records (0 bytes, or only blank, comment or skipped lines): no rows, and the
/// columns named in `columns` (typed by `dtype`, else strings) or none, so a pipeline that reads
/// an export which happens to be empty still sees the columns it selects.
fn empty_input(
    opts: &ExtractOptions,
    path: &Path,
    src: &mut Source,
    telemetry: &StepTelemetry,
    em: &Emitter,
) -> Result<(), DriverError> {
    telemetry.add_bytes_read(src.take_bytes());
    let Some(names) = &opts.columns else {
        return em.schema(Arc::new(Schema::empty()));
    };
    let plan = Plan::new(opts, names, path)?;
    let fields: Vec<Field> = plan
        .names
        .iter()
        .enumerate()
        .map(|(k, n)| Field::new(n.clone(), plan.column_type(k, &Inference::default()).0.data_type(), true))
        .collect();
    em.schema(Arc::new(Schema::new(fields)))
}

/// Reads the whole extraction on a blocking thread.
fn extract(opts: &ExtractOptions, path: &Path, telemetry: &StepTelemetry, em: &Emitter) -> Result<(), DriverError> {
    let (mut src, names) = Source::open(opts, path)?;
    let Some(names) = names else {
        return empty_input(opts, path, &mut src, telemetry, em);
    };
    let plan = Plan::new(opts, &names, path)?;
    let limit = opts.limit.unwrap_or(u64::MAX);
    let mut rc =
        RowCtx { opts, plan: &plan, path, decoder: Decoder::new(opts.encoding), scratch: Vec::with_capacity(32) };
    let mut inference = vec![Inference::default(); plan.names.len()];
    let mut sample: Vec<Record> = Vec::new();
    let mut rec = Record::default();
    let needs_inference = plan.explicit.iter().any(Option::is_none);
    if needs_inference && opts.infer_rows == 0 {
        // Pass 1 over the whole file for the types, then start again.
        let mut n = 0u64;
        while n < limit && src.next(&mut rec)? {
            rc.observe(&rec, &mut inference)?;
            n += 1;
            if n.is_multiple_of(10_000) {
                em.check_cancel()?;
            }
        }
        src = Source::open(opts, path)?.0;
    } else if needs_inference {
        let want = opts.infer_rows.min(limit);
        while (sample.len() as u64) < want && src.next(&mut rec)? {
            rc.observe(&rec, &mut inference)?;
            sample.push(rec.clone());
        }
    }
    let (types, strict): (Vec<ColType>, Vec<bool>) =
        inference.iter().enumerate().map(|(k, inf)| plan.column_type(k, inf)).unzip();
    let fields: Vec<Field> =
        plan.names.iter().zip(&types).map(|(n, t)| Field::new(n.clone(), t.data_type(), true)).collect();
    let schema = Arc::new(Schema::new(fields));
    em.schema(schema.clone())?;
    let cap = opts.chunk_size.min(1 << 16);
    let mut batcher = Batcher {
        schema,
        keep_empty: types.iter().zip(&strict).map(|(&t, &s)| s || t == ColType::Utf8).collect(),
        strict,
        builders: types.iter().map(|&t| ColBuilder::new(t, cap)).collect::<Result<_, _>>()?,
        types,
        rows: 0,
    };
    let mut emitted = 0u64;
    let emit = |batcher: &mut Batcher, src: &mut Source| -> Result<(), DriverError> {
        if let Some(batch) = batcher.flush()? {
            telemetry.add_rows_read(batch.num_rows() as u64);
            telemetry.add_bytes_read(src.take_bytes());
            em.batch(batch)?;
        }
        Ok(())
    };
    for r in &sample {
        batcher.push(&mut rc, r)?;
        emitted += 1;
        if batcher.rows >= opts.chunk_size {
            emit(&mut batcher, &mut src)?;
        }
    }
    drop(sample);
    while emitted < limit && src.next(&mut rec)? {
        batcher.push(&mut rc, &rec)?;
        emitted += 1;
        if batcher.rows >= opts.chunk_size {
            emit(&mut batcher, &mut src)?;
        }
    }
    emit(&mut batcher, &mut src)?;
    telemetry.add_bytes_read(src.take_bytes());
    Ok(())
}
