//! `filesystem.csv_writer`: writes its single input as CSV, atomically (or through a FIFO or
//! device: see [`crate::atomic`]).

use std::io::{BufWriter, Write};

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Schema, TimeUnit};
use async_trait::async_trait;
use osiris_engine::driver::{Driver, DriverError, StepContext, StepIo, parse_config};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::format::*;
use crate::atomic::{OutputTarget, io_error};
use crate::common::{Encoding, invalid, parse_delimiter};

/// How fields are quoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Quoting {
    /// Only fields containing the delimiter, a quote, CR or LF (RFC 4180).
    Minimal,
    /// Every field.
    All,
    /// Every field except non-null numbers.
    NonNumeric,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    path: String,
    #[serde(default = "default_delimiter")]
    delimiter: String,
    #[serde(default = "yes")]
    header: bool,
    #[serde(default = "default_encoding")]
    encoding: String,
    #[serde(default = "default_newline")]
    newline: String,
    #[serde(default)]
    sort_columns: bool,
    #[serde(default = "yes")]
    create_dirs: bool,
    #[serde(default = "default_quoting")]
    quoting: String,
    /// Accepted for Osiris compatibility; ignored (batches are written as they arrive).
    #[serde(default)]
    #[allow(dead_code)]
    chunk_size: Option<u64>,
}

fn default_delimiter() -> String {
    ",".into()
}
fn yes() -> bool {
    true
}
fn default_encoding() -> String {
    "utf-8".into()
}
fn default_newline() -> String {
    "lf".into()
}
fn default_quoting() -> String {
    "minimal".into()
}

/// Validated writer options.
#[derive(Clone, Debug)]
pub(crate) struct WriterOptions {
    pub path: String,
    pub delimiter: u8,
    pub header: bool,
    pub encoding: Encoding,
    pub newline: &'static [u8],
    pub sort_columns: bool,
    pub create_dirs: bool,
    pub quoting: Quoting,
}

impl WriterOptions {
    pub(crate) fn parse(config: &Map<String, Value>) -> Result<Self, DriverError> {
        let raw: RawConfig = parse_config(config)?;
        if raw.path.trim().is_empty() {
            return Err(invalid("`path` is empty").with_hint("set `path` to the CSV file to write"));
        }
        let newline: &'static [u8] = match raw.newline.as_str() {
            "lf" => b"\n",
            "crlf" => b"\r\n",
            other => {
                return Err(invalid(format!("invalid newline '{other}'"))
                    .with_hint("use `newline: lf` (default) or `newline: crlf`"));
            }
        };
        let quoting = match raw.quoting.as_str() {
            "minimal" => Quoting::Minimal,
            "all" => Quoting::All,
            "nonnumeric" => Quoting::NonNumeric,
            other => {
                return Err(invalid(format!("invalid quoting '{other}'"))
                    .with_hint("use `quoting: minimal` (default), `all` or `nonnumeric`"));
            }
        };
        Ok(WriterOptions {
            path: raw.path,
            delimiter: parse_delimiter(&raw.delimiter)?,
            header: raw.header,
            encoding: Encoding::parse(&raw.encoding)?,
            newline,
            sort_columns: raw.sort_columns,
            create_dirs: raw.create_dirs,
            quoting,
        })
    }
}

/// The CSV writer driver.
#[derive(Debug)]
pub(crate) struct CsvWriterDriver {
    pub opts: WriterOptions,
}

#[async_trait]
impl Driver for CsvWriterDriver {
    async fn run(self: Box<Self>, ctx: StepContext, mut io: StepIo) -> Result<(), DriverError> {
        let mut input = io.single_input()?;
        let schema = input.reader.schema().await?;
        let path = crate::common::resolve_data_path(&ctx, &self.opts.path);
        let (target, file) = OutputTarget::create(&path, self.opts.create_dirs)?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        let mut encoder = CsvEncoder::new(&schema, &self.opts);
        let mut buf = Vec::with_capacity(1 << 16);
        if self.opts.header {
            encoder.header(&schema, &mut buf)?;
            writer.write_all(&buf).map_err(|e| io_error(&path, "write", &e))?;
            ctx.telemetry.add_bytes_written(buf.len() as u64);
        }
        loop {
            if ctx.cancel.is_cancelled() {
                return Err(DriverError::cancelled());
            }
            let Some(batch) = input.reader.next_batch().await? else { break };
            buf.clear();
            encoder.encode(&batch, &mut buf)?;
            writer.write_all(&buf).map_err(|e| io_error(&path, "write", &e))?;
            ctx.telemetry.add_rows_written(batch.num_rows() as u64);
            ctx.telemetry.add_bytes_written(buf.len() as u64);
        }
        writer.into_inner().map_err(|e| io_error(&path, "write", e.error()))?;
        target.commit_unless_cancelled(&ctx.cancel)
    }
}

/// One column of a batch, formatted: the field texts back to back and their end offsets.
struct ColumnText {
    data: Vec<u8>,
    ends: Vec<usize>,
    /// A UTF-8 column is not formatted: its fields are copied straight from the array.
    text: Option<arrow_array::StringArray>,
    /// The text may contain a delimiter, quote or line break (so it must be checked).
    may_quote: bool,
    /// Numbers are not quoted under `quoting: nonnumeric`.
    numeric: bool,
    /// Which rows are NULL (the logical nulls of the column), to tell NULL from an empty value.
    nulls: Option<NullBuffer>,
}

/// Formats record batches as CSV rows, reusing its buffers from batch to batch: each column is
/// formatted on its own into one buffer (tight, type-specialised loops), then the rows are
/// assembled from the column buffers with RFC 4180 quoting.
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{Int64Array, RecordBatch, StringArray};
/// use arrow_schema::{DataType, Field, Schema};
/// use osiris_driver_files::csv::CsvEncoder;
///
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("id", DataType::Int64, true),
///     Field::new("name", DataType::Utf8, true),
/// ]));
/// let batch = RecordBatch::try_new(schema.clone(), vec![
///     Arc::new(Int64Array::from(vec![Some(1), None])),
///     Arc::new(StringArray::from(vec![Some("a, \"b\""), Some("")])),
/// ]).unwrap();
/// let config = serde_json::json!({"path": "out.csv"});
/// let mut encoder = CsvEncoder::from_config(&schema, config.as_object().unwrap()).unwrap();
/// let mut out = Vec::new();
/// encoder.header(&schema, &mut out).unwrap();
/// encoder.encode(&batch, &mut out).unwrap();
/// assert_eq!(out, b"id,name\n1,\"a, \"\"b\"\"\"\n,\"\"\n");
/// ```
pub struct CsvEncoder {
    delimiter: u8,
    newline: &'static [u8],
    quoting: Quoting,
    encoding: Encoding,
    /// Source column index of each output column.
    order: Vec<usize>,
    cols: Vec<ColumnText>,
    /// Whether the delimiter can appear in the text of numbers, dates or hex.
    delimiter_in_plain_text: bool,
}

impl CsvEncoder {
    /// An encoder for batches of `schema` with the options of a `filesystem.csv_writer` config.
    pub fn from_config(schema: &Schema, config: &Map<String, Value>) -> Result<Self, DriverError> {
        Ok(Self::new(schema, &WriterOptions::parse(config)?))
    }

    /// An encoder for batches of `schema`.
    pub(crate) fn new(schema: &Schema, opts: &WriterOptions) -> Self {
        let mut order: Vec<usize> = (0..schema.fields().len()).collect();
        if opts.sort_columns {
            order.sort_by(|&a, &b| schema.field(a).name().cmp(schema.field(b).name()));
        }
        let d = opts.delimiter;
        let cols = order
            .iter()
            .map(|_| ColumnText {
                data: Vec::new(),
                ends: Vec::new(),
                text: None,
                may_quote: true,
                numeric: false,
                nulls: None,
            })
            .collect();
        CsvEncoder {
            delimiter: d,
            newline: opts.newline,
            quoting: opts.quoting,
            encoding: opts.encoding,
            order,
            cols,
            delimiter_in_plain_text: d.is_ascii_alphanumeric() || b"-+.: ".contains(&d),
        }
    }

    /// Writes the header line.
    pub fn header(&mut self, schema: &Schema, out: &mut Vec<u8>) -> Result<(), DriverError> {
        if self.order.is_empty() {
            return Ok(());
        }
        let start = out.len();
        let single = self.order.len() == 1;
        for (k, &i) in self.order.iter().enumerate() {
            if k > 0 {
                out.push(self.delimiter);
            }
            let name = schema.field(i).name().as_bytes();
            let quote =
                self.quoting != Quoting::Minimal || needs_quotes(name, self.delimiter) || single && name.is_empty();
            write_field(out, name, quote);
        }
        out.extend_from_slice(self.newline);
        self.transcode(out, start, "a column name")
    }

    /// Appends the rows of `batch` to `out`.
    pub fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), DriverError> {
        if self.order.is_empty() {
            return Ok(());
        }
        let start = out.len();
        for (col, &i) in self.cols.iter_mut().zip(&self.order) {
            let array = batch.columns().get(i).ok_or_else(|| {
                DriverError::new(
                    "write.schema_mismatch",
                    format!("a batch has {} columns, expected more than {i}", batch.num_columns()),
                )
            })?;
            fill_column(col, array, self.delimiter_in_plain_text)?;
            // One scan of the whole column spares the per-field scans when nothing needs quotes.
            let text = match &col.text {
                Some(strings) => &strings.value_data()[strings.value_offsets()[0] as usize..],
                None => &col.data[..],
            };
            col.may_quote = col.may_quote && needs_quotes(text, self.delimiter);
        }
        let quote_extra: usize = self.cols.iter().filter(|c| c.may_quote).map(|c| c.data.len() / 8 + 2).sum();
        let data_len: usize =
            self.cols.iter().map(|c| c.text.as_ref().map_or(c.data.len(), |t| t.value_data().len())).sum();
        out.reserve(data_len + quote_extra + batch.num_rows() * (self.cols.len() + self.newline.len() + 2));
        let single = self.cols.len() == 1;
        let delim = self.delimiter;
        let quoting = self.quoting;
        for row in 0..batch.num_rows() {
            for (k, col) in self.cols.iter().enumerate() {
                if k > 0 {
                    out.push(delim);
                }
                let field = match &col.text {
                    // A NULL slot may hold bytes in arrays from other sources: never print them.
                    Some(strings) if strings.is_null(row) => &[],
                    Some(strings) => strings.value(row).as_bytes(),
                    None => &col.data[if row == 0 { 0 } else { col.ends[row - 1] }..col.ends[row]],
                };
                let quote = if field.is_empty() {
                    // NULL is a bare empty field in every quoting mode and a non-null empty value
                    // (empty string or binary) is `""`, so readers can tell them apart. In a
                    // one-column file a bare empty field would be a blank line, which readers
                    // skip, so NULL is `""` there too.
                    single || col.nulls.as_ref().is_none_or(|n| n.is_valid(row))
                } else {
                    match quoting {
                        Quoting::Minimal => col.may_quote && needs_quotes(field, delim),
                        Quoting::All => true,
                        // Only NULLs print empty, so a non-empty number is never NULL.
                        Quoting::NonNumeric => !col.numeric,
                    }
                };
                write_field(out, field, quote);
            }
            out.extend_from_slice(self.newline);
        }
        for col in &mut self.cols {
            col.nulls = None;
            col.text = None;
        }
        self.transcode(out, start, "a value")
    }

    /// Re-encodes `out[start..]` from UTF-8 into the target encoding.
    fn transcode(&self, out: &mut Vec<u8>, start: usize, what: &str) -> Result<(), DriverError> {
        if self.encoding == Encoding::Utf8 || out[start..].is_ascii() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out[start..]).into_owned();
        out.truncate(start);
        let max = if self.encoding == Encoding::Latin1 { 0xFF } else { 0x7F };
        for c in text.chars() {
            let code = c as u32;
            if code > max {
                return Err(DriverError::new(
                    "write.encoding_error",
                    format!(
                        "{what} contains the character {c:?} (U+{code:04X}) that {:?} cannot represent",
                        self.encoding
                    ),
                )
                .with_hint("use `encoding: utf-8`"));
            }
            out.push(code as u8);
        }
        Ok(())
    }
}

/// Whether a field must be quoted under RFC 4180: it holds the delimiter, a quote or a line break.
/// Scans 16 bytes at a time without early exit inside a block, which the compiler turns into
/// vector compares: string columns are most of a CSV's bytes.
#[inline]
fn needs_quotes(field: &[u8], delim: u8) -> bool {
    let special = |b: u8| (b == delim) | (b == b'"') | (b == b'\n') | (b == b'\r');
    let mut blocks = field.chunks_exact(16);
    for block in &mut blocks {
        if block.iter().fold(false, |acc, &b| acc | special(b)) {
            return true;
        }
    }
    blocks.remainder().iter().any(|&b| special(b))
}

#[inline]
fn write_field(out: &mut Vec<u8>, field: &[u8], quote: bool) {
    if quote {
        out.push(b'"');
        let mut rest = field;
        while let Some(i) = memchr::memchr(b'"', rest) {
            out.extend_from_slice(&rest[..=i]);
            out.push(b'"');
            rest = &rest[i + 1..];
        }
        out.extend_from_slice(rest);
        out.push(b'"');
    } else {
        out.extend_from_slice(field);
    }
}

macro_rules! each_value {
    ($col:expr, $arr:expr, |$out:ident, $v:ident| $body:expr) => {{
        let arr = $arr;
        let out = &mut $col.data;
        for i in 0..arr.len() {
            if arr.is_valid(i) {
                let $v = arr.value(i);
                let $out = &mut *out;
                $body;
            }
            $col.ends.push(out.len());
        }
    }};
}

fn fill_column(col: &mut ColumnText, array: &ArrayRef, delim_in_plain: bool) -> Result<(), DriverError> {
    col.data.clear();
    col.ends.clear();
    col.text = None;
    col.ends.reserve(array.len());
    col.may_quote = delim_in_plain;
    col.numeric = false;
    col.nulls = None;
    match array.data_type() {
        DataType::Null => col.ends.extend(std::iter::repeat_n(0, array.len())),
        DataType::Boolean => {
            each_value!(col, array.as_boolean(), |o, v| o.extend_from_slice(if v { b"true" } else { b"false" }))
        }
        DataType::Int8 => each_value!(col, array.as_primitive::<Int8Type>(), |o, v| write_i64(o, v as i64)),
        DataType::Int16 => each_value!(col, array.as_primitive::<Int16Type>(), |o, v| write_i64(o, v as i64)),
        DataType::Int32 => each_value!(col, array.as_primitive::<Int32Type>(), |o, v| write_i64(o, v as i64)),
        DataType::Int64 => each_value!(col, array.as_primitive::<Int64Type>(), |o, v| write_i64(o, v)),
        DataType::UInt8 => each_value!(col, array.as_primitive::<UInt8Type>(), |o, v| write_u64(o, v as u64)),
        DataType::UInt16 => each_value!(col, array.as_primitive::<UInt16Type>(), |o, v| write_u64(o, v as u64)),
        DataType::UInt32 => each_value!(col, array.as_primitive::<UInt32Type>(), |o, v| write_u64(o, v as u64)),
        DataType::UInt64 => each_value!(col, array.as_primitive::<UInt64Type>(), |o, v| write_u64(o, v)),
        DataType::Float16 => each_value!(col, array.as_primitive::<Float16Type>(), |o, v| write_f32(o, v.to_f32())),
        DataType::Float32 => each_value!(col, array.as_primitive::<Float32Type>(), |o, v| write_f32(o, v)),
        DataType::Float64 => each_value!(col, array.as_primitive::<Float64Type>(), |o, v| write_f64(o, v)),
        DataType::Decimal32(_, s) => {
            let s = *s;
            each_value!(col, array.as_primitive::<Decimal32Type>(), |o, v| write_decimal128(o, v as i128, s))
        }
        DataType::Decimal64(_, s) => {
            let s = *s;
            each_value!(col, array.as_primitive::<Decimal64Type>(), |o, v| write_decimal128(o, v as i128, s))
        }
        DataType::Decimal128(_, s) => {
            let s = *s;
            each_value!(col, array.as_primitive::<Decimal128Type>(), |o, v| write_decimal128(o, v, s))
        }
        DataType::Decimal256(_, s) => {
            let s = *s;
            each_value!(col, array.as_primitive::<Decimal256Type>(), |o, v| write_decimal_text(o, &v.to_string(), s))
        }
        DataType::Date32 => each_value!(col, array.as_primitive::<Date32Type>(), |o, v| write_date(o, v as i64)),
        DataType::Date64 => {
            each_value!(col, array.as_primitive::<Date64Type>(), |o, v| write_date(o, v.div_euclid(86_400_000)))
        }
        DataType::Timestamp(unit, tz) => {
            let zulu = tz.is_some();
            let put = |o: &mut Vec<u8>, v: i64, per_sec: i64| {
                let (s, n) = split_units(v, per_sec);
                write_timestamp(o, s, n);
                if zulu {
                    o.push(b'Z');
                }
            };
            match unit {
                TimeUnit::Second => each_value!(col, array.as_primitive::<TimestampSecondType>(), |o, v| put(o, v, 1)),
                TimeUnit::Millisecond => {
                    each_value!(col, array.as_primitive::<TimestampMillisecondType>(), |o, v| put(o, v, 1000))
                }
                TimeUnit::Microsecond => {
                    each_value!(col, array.as_primitive::<TimestampMicrosecondType>(), |o, v| put(o, v, 1_000_000))
                }
                TimeUnit::Nanosecond => {
                    each_value!(col, array.as_primitive::<TimestampNanosecondType>(), |o, v| put(o, v, 1_000_000_000))
                }
            }
        }
        DataType::Time32(TimeUnit::Second) => {
            each_value!(col, array.as_primitive::<Time32SecondType>(), |o, v| write_time(
                o,
                v.rem_euclid(86_400) as u32,
                0
            ))
        }
        DataType::Time32(_) => each_value!(col, array.as_primitive::<Time32MillisecondType>(), |o, v| {
            let (s, n) = split_units(v as i64, 1000);
            write_time(o, s.rem_euclid(86_400) as u32, n)
        }),
        DataType::Time64(TimeUnit::Microsecond) => {
            each_value!(col, array.as_primitive::<Time64MicrosecondType>(), |o, v| {
                let (s, n) = split_units(v, 1_000_000);
                write_time(o, s.rem_euclid(86_400) as u32, n)
            })
        }
        DataType::Time64(_) => each_value!(col, array.as_primitive::<Time64NanosecondType>(), |o, v| {
            let (s, n) = split_units(v, 1_000_000_000);
            write_time(o, s.rem_euclid(86_400) as u32, n)
        }),
        DataType::Duration(unit) => {
            // MySQL's TIME text (`-838:59:59.000000`), not ISO 8601 (`PT45296S`).
            match unit {
                TimeUnit::Second => {
                    each_value!(col, array.as_primitive::<DurationSecondType>(), |o, v| write_duration(o, v, 0))
                }
                TimeUnit::Millisecond => {
                    each_value!(col, array.as_primitive::<DurationMillisecondType>(), |o, v| write_duration(o, v, 3))
                }
                TimeUnit::Microsecond => {
                    each_value!(col, array.as_primitive::<DurationMicrosecondType>(), |o, v| write_duration(o, v, 6))
                }
                TimeUnit::Nanosecond => {
                    each_value!(col, array.as_primitive::<DurationNanosecondType>(), |o, v| write_duration(o, v, 9))
                }
            }
        }
        DataType::Utf8 => {
            col.may_quote = true;
            col.text = Some(array.as_string::<i32>().clone());
        }
        DataType::LargeUtf8 => {
            col.may_quote = true;
            each_value!(col, array.as_string::<i64>(), |o, v| o.extend_from_slice(v.as_bytes()))
        }
        DataType::Utf8View => {
            col.may_quote = true;
            each_value!(col, array.as_string_view(), |o, v| o.extend_from_slice(v.as_bytes()))
        }
        DataType::Binary => each_value!(col, array.as_binary::<i32>(), |o, v| write_hex(o, v)),
        DataType::LargeBinary => each_value!(col, array.as_binary::<i64>(), |o, v| write_hex(o, v)),
        DataType::BinaryView => each_value!(col, array.as_binary_view(), |o, v| write_hex(o, v)),
        DataType::FixedSizeBinary(_) => each_value!(col, array.as_fixed_size_binary(), |o, v| write_hex(o, v)),
        DataType::Dictionary(_, value_type) => {
            let plain = arrow_cast::cast(array, value_type).map_err(|e| {
                DriverError::new("write.unsupported_type", format!("cannot decode a dictionary column: {e}"))
            })?;
            return fill_column(col, &plain, delim_in_plain);
        }
        _ => {
            col.may_quote = true;
            let opts = arrow_cast::display::FormatOptions::default();
            let formatter = arrow_cast::display::ArrayFormatter::try_new(array.as_ref(), &opts).map_err(|e| {
                DriverError::new(
                    "write.unsupported_type",
                    format!("cannot format a {} column as text: {e}", array.data_type()),
                )
                .with_hint("cast the column to a string in a transform before writing CSV")
            })?;
            for i in 0..array.len() {
                if array.is_valid(i) {
                    let _ = write!(col.data, "{}", formatter.value(i));
                }
                col.ends.push(col.data.len());
            }
        }
    }
    col.numeric = array.data_type().is_numeric();
    // Logical nulls: a `Null` column (no validity buffer) is all NULL.
    col.nulls = array.logical_nulls();
    Ok(())
}
