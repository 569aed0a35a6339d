//! Arrow values → MySQL SQL literals (and `LOAD DATA` fields, [`RowPrinter::tsv_row`]), exactly.
//!
//! The writer's session runs with `NO_BACKSLASH_ESCAPES` (checked after connecting), so inside a
//! `'…'` literal only the quote itself is special and is doubled; every other byte (backslash,
//! NUL, newline, tab, any UTF-8) stands for itself. Binary values are hex literals (`X'00ff'`).
//!
//! | Arrow | literal |
//! |---|---|
//! | Int*/UInt* | decimal digits |
//! | Boolean | `1` / `0` |
//! | Float64 | shortest round-trip text (`1.7976931348623157e308`); NaN/±inf are refused |
//! | Float32/Float16 | shortest text whose nearest f32 is the value, via f64 parsing (so the server's double parse lands on it) |
//! | Decimal32…256(p,s) | exact decimal text (`-1234.500`) |
//! | Date32/Date64 | `'YYYY-MM-DD'` |
//! | Timestamp(unit, tz) | `'YYYY-MM-DD HH:MM:SS.ffffff'` in UTC; nanoseconds must be whole microseconds |
//! | Duration/Time32/Time64 | `'[-]H:MM:SS.ffffff'` (hours may exceed 24) |
//! | Utf8/LargeUtf8/Utf8View | `'…'` with `'` doubled |
//! | Binary/LargeBinary/BinaryView/FixedSizeBinary | `X'…'` |
//! | Null | `NULL` |
//! | Dictionary | its values' literal |

use osiris_engine::calendar::civil_from_days;
use std::io::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{
    Array, ArrayRef, BinaryArray, BinaryViewArray, BooleanArray, FixedSizeBinaryArray, Float16Array, Float32Array,
    Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, LargeBinaryArray, LargeStringArray, PrimitiveArray,
    StringArray, StringViewArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow_buffer::i256;
use arrow_schema::{DataType, TimeUnit};

/// Whether the writer can print values of `dt` (`Err` says why not).
pub fn check_type(dt: &DataType) -> Result<(), String> {
    match dt {
        DataType::Null
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..)
        | DataType::Date32
        | DataType::Date64
        | DataType::Timestamp(..)
        | DataType::Duration(..)
        | DataType::Time32(..)
        | DataType::Time64(..)
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Ok(()),
        DataType::Dictionary(_, value) => check_type(value),
        other => Err(format!("Arrow type {other} has no MySQL mapping")),
    }
}

/// A value that cannot be written exactly.
#[derive(Debug)]
pub struct ValueError {
    /// Index of the column among the written columns.
    pub column: usize,
    pub message: String,
}

fn units_per_sec(unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// One column of a batch, downcast once.
enum Col {
    Null,
    Bool(BooleanArray),
    I8(Int8Array),
    I16(Int16Array),
    I32(Int32Array),
    I64(Int64Array),
    U8(UInt8Array),
    U16(UInt16Array),
    U32(UInt32Array),
    U64(UInt64Array),
    F16(Float16Array),
    F32(Float32Array),
    F64(Float64Array),
    Dec32(PrimitiveArray<Decimal32Type>, i8),
    Dec64(PrimitiveArray<Decimal64Type>, i8),
    Dec128(PrimitiveArray<Decimal128Type>, i8),
    Dec256(PrimitiveArray<Decimal256Type>, i8),
    /// Days since the epoch.
    Date32(Int32Array),
    /// Milliseconds since the epoch.
    Date64(Int64Array),
    /// Units since the epoch, `per_sec` units a second.
    Timestamp(Int64Array, i64),
    /// A signed interval (Duration, Time32, Time64) in units, `per_sec` a second.
    Interval64(Int64Array, i64),
    Interval32(Int32Array, i64),
    Utf8(StringArray),
    LargeUtf8(LargeStringArray),
    Utf8View(StringViewArray),
    Binary(BinaryArray),
    LargeBinary(LargeBinaryArray),
    BinaryView(BinaryViewArray),
    FixedBinary(FixedSizeBinaryArray),
}

fn as_i64<T: ArrowPrimitiveType<Native = i64>>(a: &ArrayRef) -> Int64Array {
    let p = a.as_primitive::<T>();
    Int64Array::new(p.values().clone(), p.nulls().cloned())
}

fn as_i32<T: ArrowPrimitiveType<Native = i32>>(a: &ArrayRef) -> Int32Array {
    let p = a.as_primitive::<T>();
    Int32Array::new(p.values().clone(), p.nulls().cloned())
}

impl Col {
    fn new(a: &ArrayRef) -> Result<Col, String> {
        Ok(match a.data_type() {
            DataType::Null => Col::Null,
            DataType::Boolean => Col::Bool(a.as_boolean().clone()),
            DataType::Int8 => Col::I8(a.as_primitive::<Int8Type>().clone()),
            DataType::Int16 => Col::I16(a.as_primitive::<Int16Type>().clone()),
            DataType::Int32 => Col::I32(a.as_primitive::<Int32Type>().clone()),
            DataType::Int64 => Col::I64(a.as_primitive::<Int64Type>().clone()),
            DataType::UInt8 => Col::U8(a.as_primitive::<UInt8Type>().clone()),
            DataType::UInt16 => Col::U16(a.as_primitive::<UInt16Type>().clone()),
            DataType::UInt32 => Col::U32(a.as_primitive::<UInt32Type>().clone()),
            DataType::UInt64 => Col::U64(a.as_primitive::<UInt64Type>().clone()),
            DataType::Float16 => Col::F16(a.as_primitive::<Float16Type>().clone()),
            DataType::Float32 => Col::F32(a.as_primitive::<Float32Type>().clone()),
            DataType::Float64 => Col::F64(a.as_primitive::<Float64Type>().clone()),
            DataType::Decimal32(_, s) => Col::Dec32(a.as_primitive::<Decimal32Type>().clone(), *s),
            DataType::Decimal64(_, s) => Col::Dec64(a.as_primitive::<Decimal64Type>().clone(), *s),
            DataType::Decimal128(_, s) => Col::Dec128(a.as_primitive::<Decimal128Type>().clone(), *s),
            DataType::Decimal256(_, s) => Col::Dec256(a.as_primitive::<Decimal256Type>().clone(), *s),
            DataType::Date32 => Col::Date32(as_i32::<Date32Type>(a)),
            DataType::Date64 => Col::Date64(as_i64::<Date64Type>(a)),
            DataType::Timestamp(unit, _) => {
                let values = match unit {
                    TimeUnit::Second => as_i64::<TimestampSecondType>(a),
                    TimeUnit::Millisecond => as_i64::<TimestampMillisecondType>(a),
                    TimeUnit::Microsecond => as_i64::<TimestampMicrosecondType>(a),
                    TimeUnit::Nanosecond => as_i64::<TimestampNanosecondType>(a),
                };
                Col::Timestamp(values, units_per_sec(unit))
            }
            DataType::Duration(unit) => {
                let values = match unit {
                    TimeUnit::Second => as_i64::<DurationSecondType>(a),
                    TimeUnit::Millisecond => as_i64::<DurationMillisecondType>(a),
                    TimeUnit::Microsecond => as_i64::<DurationMicrosecondType>(a),
                    TimeUnit::Nanosecond => as_i64::<DurationNanosecondType>(a),
                };
                Col::Interval64(values, units_per_sec(unit))
            }
            DataType::Time32(unit) => {
                let values = match unit {
                    TimeUnit::Second => as_i32::<Time32SecondType>(a),
                    _ => as_i32::<Time32MillisecondType>(a),
                };
                Col::Interval32(values, units_per_sec(unit))
            }
            DataType::Time64(unit) => {
                let values = match unit {
                    TimeUnit::Nanosecond => as_i64::<Time64NanosecondType>(a),
                    _ => as_i64::<Time64MicrosecondType>(a),
                };
                Col::Interval64(values, units_per_sec(unit))
            }
            DataType::Utf8 => Col::Utf8(a.as_string::<i32>().clone()),
            DataType::LargeUtf8 => Col::LargeUtf8(a.as_string::<i64>().clone()),
            DataType::Utf8View => Col::Utf8View(a.as_string_view().clone()),
            DataType::Binary => Col::Binary(a.as_binary::<i32>().clone()),
            DataType::LargeBinary => Col::LargeBinary(a.as_binary::<i64>().clone()),
            DataType::BinaryView => Col::BinaryView(a.as_binary_view().clone()),
            DataType::FixedSizeBinary(_) => Col::FixedBinary(a.as_fixed_size_binary().clone()),
            DataType::Dictionary(_, value) => {
                let plain =
                    arrow_cast::cast(a, value).map_err(|e| format!("cannot decode a dictionary column: {e}"))?;
                return Col::new(&plain);
            }
            other => return Err(format!("Arrow type {other} has no MySQL mapping")),
        })
    }
}

/// The columns of one batch, printed row by row as `(v1,v2,…)`.
pub struct RowPrinter {
    cols: Vec<Col>,
    nulls: Vec<Option<arrow_buffer::NullBuffer>>,
}

impl RowPrinter {
    /// Prints the columns `order` of `batch` (in that order).
    pub fn new(columns: &[ArrayRef]) -> Result<RowPrinter, ValueError> {
        let mut cols = Vec::with_capacity(columns.len());
        let mut nulls = Vec::with_capacity(columns.len());
        for (i, a) in columns.iter().enumerate() {
            cols.push(Col::new(a).map_err(|message| ValueError { column: i, message })?);
            nulls.push(a.logical_nulls());
        }
        Ok(RowPrinter { cols, nulls })
    }

    /// Appends `(v1,v2,…)` for `row`.
    pub fn row(&self, row: usize, out: &mut Vec<u8>) -> Result<(), ValueError> {
        out.push(b'(');
        for (i, (col, nulls)) in self.cols.iter().zip(&self.nulls).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                out.extend_from_slice(b"NULL");
                continue;
            }
            value(col, row, out, Style::Sql).map_err(|message| ValueError { column: i, message })?;
        }
        out.push(b')');
        Ok(())
    }

    /// Appends `row` as one line of `LOAD DATA` input in its default format (fields separated
    /// by a tab, lines ended by a newline, `\` escaping tab, newline, carriage return, NUL and
    /// itself, `\N` for NULL). Binary values are hex, for `UNHEX()` in the statement.
    pub fn tsv_row(&self, row: usize, out: &mut Vec<u8>) -> Result<(), ValueError> {
        for (i, (col, nulls)) in self.cols.iter().zip(&self.nulls).enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                out.extend_from_slice(b"\\N");
                continue;
            }
            value(col, row, out, Style::Tsv).map_err(|message| ValueError { column: i, message })?;
        }
        out.push(b'\n');
        Ok(())
    }
}

/// Whether binary data types print as hex for `LOAD DATA` (see [`RowPrinter::tsv_row`]).
pub fn is_binary_type(dt: &DataType) -> bool {
    match dt {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => true,
        DataType::Dictionary(_, v) => is_binary_type(v),
        _ => false,
    }
}

/// How values are spelled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// SQL literals: quoted strings and temporal values, `X'…'` binary.
    Sql,
    /// `LOAD DATA` fields: bare text with backslash escapes, bare hex binary.
    Tsv,
}

impl Style {
    fn quote(self, out: &mut Vec<u8>) {
        if self == Style::Sql {
            out.push(b'\'');
        }
    }
}

fn value(col: &Col, row: usize, out: &mut Vec<u8>, style: Style) -> Result<(), String> {
    // Writing into a Vec<u8> cannot fail.
    match col {
        Col::Null => out.extend_from_slice(b"NULL"),
        Col::Bool(a) => out.push(if a.value(row) { b'1' } else { b'0' }),
        Col::I8(a) => _ = write!(out, "{}", a.value(row)),
        Col::I16(a) => _ = write!(out, "{}", a.value(row)),
        Col::I32(a) => _ = write!(out, "{}", a.value(row)),
        Col::I64(a) => _ = write!(out, "{}", a.value(row)),
        Col::U8(a) => _ = write!(out, "{}", a.value(row)),
        Col::U16(a) => _ = write!(out, "{}", a.value(row)),
        Col::U32(a) => _ = write!(out, "{}", a.value(row)),
        Col::U64(a) => _ = write!(out, "{}", a.value(row)),
        Col::F16(a) => write_f32(out, a.value(row).to_f32())?,
        Col::F32(a) => write_f32(out, a.value(row))?,
        Col::F64(a) => write_f64(out, a.value(row))?,
        Col::Dec32(a, s) => write_decimal(out, &a.value(row).to_string(), *s),
        Col::Dec64(a, s) => write_decimal(out, &a.value(row).to_string(), *s),
        Col::Dec128(a, s) => write_decimal(out, &a.value(row).to_string(), *s),
        Col::Dec256(a, s) => write_decimal(out, &i256::to_string(&a.value(row)), *s),
        Col::Date32(a) => {
            style.quote(out);
            write_date(out, i64::from(a.value(row)))?;
            style.quote(out);
        }
        Col::Date64(a) => {
            style.quote(out);
            write_date(out, a.value(row).div_euclid(86_400_000))?;
            style.quote(out);
        }
        Col::Timestamp(a, per_sec) => write_timestamp(out, a.value(row), *per_sec, style)?,
        Col::Interval64(a, per_sec) => write_interval(out, i128::from(a.value(row)), *per_sec, style)?,
        Col::Interval32(a, per_sec) => write_interval(out, i128::from(a.value(row)), *per_sec, style)?,
        Col::Utf8(a) => write_text(out, a.value(row), style),
        Col::LargeUtf8(a) => write_text(out, a.value(row), style),
        Col::Utf8View(a) => write_text(out, a.value(row), style),
        Col::Binary(a) => write_binary(out, a.value(row), style),
        Col::LargeBinary(a) => write_binary(out, a.value(row), style),
        Col::BinaryView(a) => write_binary(out, a.value(row), style),
        Col::FixedBinary(a) => write_binary(out, a.value(row), style),
    }
    Ok(())
}

fn write_text(out: &mut Vec<u8>, s: &str, style: Style) {
    match style {
        Style::Sql => write_str(out, s),
        Style::Tsv => write_escaped(out, s.as_bytes()),
    }
}

fn write_binary(out: &mut Vec<u8>, b: &[u8], style: Style) {
    match style {
        Style::Sql => write_hex(out, b),
        Style::Tsv => push_hex(out, b),
    }
}

/// A `LOAD DATA` field: the bytes with `\`, tab, newline, carriage return and NUL escaped.
pub fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len());
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = match b {
            b'\\' => b'\\',
            b'\t' => b't',
            b'\n' => b'n',
            b'\r' => b'r',
            0 => b'0',
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.push(b'\\');
        out.push(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// `'…'` with every `'` doubled (the session has `NO_BACKSLASH_ESCAPES`).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'\'');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\'' {
            out.extend_from_slice(&bytes[start..=i]);
            out.push(b'\'');
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'\'');
}

/// `X'…'` (lowercase hex).
pub fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() * 2 + 3);
    out.extend_from_slice(b"X'");
    push_hex(out, bytes);
    out.push(b'\'');
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

fn write_f64(out: &mut Vec<u8>, v: f64) -> Result<(), String> {
    if !v.is_finite() {
        return Err(format!("{v} cannot be stored in MySQL (it has no NaN or infinity)"));
    }
    // Rust prints the shortest text that parses back to the same double; the server's
    // correctly rounded parser gets the same double from it.
    _ = write!(out, "{v:e}");
    Ok(())
}

fn write_f32(out: &mut Vec<u8>, v: f32) -> Result<(), String> {
    if !v.is_finite() {
        return Err(format!("{v} cannot be stored in MySQL (it has no NaN or infinity)"));
    }
    // The server parses a literal as a double and then rounds it to FLOAT. The shortest f32 text
    // round-trips through that unless it sits right at a rounding boundary; then print the
    // double holding the f32 exactly, which converts without rounding.
    let short = format!("{v:e}");
    if short.parse::<f64>().map(|d| d as f32) == Ok(v) {
        out.extend_from_slice(short.as_bytes());
    } else {
        _ = write!(out, "{:e}", f64::from(v));
    }
    Ok(())
}

/// An unscaled integer text with `scale` digits after the point (negative scale: zeros appended).
fn write_decimal(out: &mut Vec<u8>, unscaled: &str, scale: i8) {
    let (neg, digits) = match unscaled.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, unscaled),
    };
    if neg {
        out.push(b'-');
    }
    if scale <= 0 {
        out.extend_from_slice(digits.as_bytes());
        if digits != "0" {
            out.extend(std::iter::repeat_n(b'0', usize::from(scale.unsigned_abs())));
        }
        return;
    }
    let scale = scale as usize;
    if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int.as_bytes());
        out.push(b'.');
        out.extend_from_slice(frac.as_bytes());
    } else {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        out.extend_from_slice(digits.as_bytes());
    }
}

fn write_date(out: &mut Vec<u8>, days: i64) -> Result<(), String> {
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return Err(format!("the date with year {y} is outside MySQL's range (years 0000 to 9999)"));
    }
    _ = write!(out, "{y:04}-{m:02}-{d:02}");
    Ok(())
}

/// Splits units into whole seconds and microseconds; sub-microsecond digits are refused.
fn split_micros(v: i128, per_sec: i64) -> Result<(i128, u32), String> {
    let per_sec = i128::from(per_sec);
    let secs = v.div_euclid(per_sec);
    let rest = v.rem_euclid(per_sec);
    let micros = if per_sec >= 1_000_000 {
        let per_micro = per_sec / 1_000_000;
        if rest % per_micro != 0 {
            return Err("the value has nanoseconds, and MySQL keeps at most microseconds".into());
        }
        rest / per_micro
    } else {
        rest * (1_000_000 / per_sec)
    };
    Ok((secs, micros as u32))
}

fn write_fraction(out: &mut Vec<u8>, micros: u32) {
    if micros > 0 {
        _ = write!(out, ".{micros:06}");
    }
}

fn write_timestamp(out: &mut Vec<u8>, v: i64, per_sec: i64, style: Style) -> Result<(), String> {
    let (secs, micros) = split_micros(i128::from(v), per_sec)?;
    let secs = i64::try_from(secs).map_err(|_| "the timestamp is out of range".to_string())?;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    style.quote(out);
    write_date(out, days)?;
    _ = write!(out, " {:02}:{:02}:{:02}", sod / 3600, sod / 60 % 60, sod % 60);
    write_fraction(out, micros);
    style.quote(out);
    Ok(())
}

/// `'[-]H:MM:SS[.ffffff]'`: a TIME literal (hours may exceed 24; the server checks its range).
fn write_interval(out: &mut Vec<u8>, v: i128, per_sec: i64, style: Style) -> Result<(), String> {
    let (secs, micros) = split_micros(v.abs(), per_sec)?;
    style.quote(out);
    if v < 0 {
        out.push(b'-');
    }
    _ = write!(out, "{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    write_fraction(out, micros);
    style.quote(out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use arrow_array::builder::{Decimal128Builder, StringDictionaryBuilder};
    use arrow_array::{DurationNanosecondArray, TimestampNanosecondArray};

    fn print(a: ArrayRef) -> Vec<String> {
        let p = RowPrinter::new(std::slice::from_ref(&a)).unwrap();
        (0..a.len())
            .map(|r| {
                let mut out = Vec::new();
                match p.row(r, &mut out) {
                    Ok(()) => String::from_utf8(out).unwrap(),
                    Err(e) => format!("ERR {}", e.message),
                }
            })
            .collect()
    }

    #[test]
    fn strings_double_quotes_only() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("it's"), Some("a\\b\0\n\t😀"), Some(""), None]));
        assert_eq!(print(a), vec!["('it''s')", "('a\\b\0\n\t😀')", "('')", "(NULL)"]);
    }

    #[test]
    fn numbers_are_exact() {
        let a: ArrayRef = Arc::new(Float64Array::from(vec![0.1, -1.7976931348623157e308, 5e-324, 1.0, f64::NAN]));
        assert_eq!(
            print(a),
            vec![
                "(1e-1)",
                "(-1.7976931348623157e308)",
                "(5e-324)",
                "(1e0)",
                "ERR NaN cannot be stored in MySQL (it has no NaN or infinity)"
            ]
        );
        let a: ArrayRef = Arc::new(Float32Array::from(vec![0.1f32, 3.40282e38, f32::MIN_POSITIVE]));
        assert_eq!(print(a), vec!["(1e-1)", "(3.40282e38)", "(1.1754944e-38)"]);
        let mut b = Decimal128Builder::new().with_precision_and_scale(10, 3).unwrap();
        b.append_value(-1_234_500);
        b.append_value(5);
        b.append_value(0);
        assert_eq!(print(Arc::new(b.finish())), vec!["(-1234.500)", "(0.005)", "(0.000)"]);
        let mut b = Decimal128Builder::new().with_precision_and_scale(5, -2).unwrap();
        b.append_value(123);
        assert_eq!(print(Arc::new(b.finish())), vec!["(12300)"]);
        let a: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX]));
        assert_eq!(print(a), vec!["(18446744073709551615)"]);
    }

    #[test]
    fn every_f32_round_trips_through_a_double_parse() {
        // Walk a spread of bit patterns; the printed text, parsed as f64 and rounded to f32
        // (what the server does), must give the value back.
        let mut bits: u32 = 1;
        while bits < 0x7f80_0000 {
            let v = f32::from_bits(bits);
            let mut out = Vec::new();
            write_f32(&mut out, v).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert_eq!(text.parse::<f64>().unwrap() as f32, v, "{text}");
            bits = bits.wrapping_add(7919 * 13);
        }
    }

    #[test]
    fn dates_times_and_intervals() {
        let a: ArrayRef = Arc::new(arrow_array::Date32Array::from(vec![0, -354_285, 2_932_896, 2_932_897]));
        assert_eq!(
            print(a),
            vec![
                "('1970-01-01')",
                "('1000-01-01')",
                "('9999-12-31')",
                "ERR the date with year 10000 is outside MySQL's range (years 0000 to 9999)"
            ]
        );
        let a: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![1_000, -1_000, 1]).with_timezone("+00:00"));
        assert_eq!(
            print(a),
            vec![
                "('1970-01-01 00:00:00.000001')",
                "('1969-12-31 23:59:59.999999')",
                "ERR the value has nanoseconds, and MySQL keeps at most microseconds"
            ]
        );
        let a: ArrayRef = Arc::new(DurationNanosecondArray::from(vec![-3_723_250_000_000, 0, 3_020_399_999_999_000]));
        assert_eq!(print(a), vec!["('-01:02:03.250000')", "('00:00:00')", "('838:59:59.999999')"]);
    }

    #[test]
    fn load_data_lines_escape_and_spell_null() {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("a\tb\nc\rd\\e\0f 'g' \\N"), Some(""), None])),
            Arc::new(BinaryArray::from(vec![Some(&b"\x00\t"[..]), Some(&b""[..]), None])),
            Arc::new(arrow_array::Date32Array::from(vec![Some(0), Some(1), None])),
            Arc::new(DurationNanosecondArray::from(vec![Some(-1_500_000_000), Some(0), None])),
        ];
        let p = RowPrinter::new(&cols).unwrap();
        let mut out = Vec::new();
        for r in 0..3 {
            p.tsv_row(r, &mut out).unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a\\tb\\nc\\rd\\\\e\\0f 'g' \\\\N\t0009\t1970-01-01\t-00:00:01.500000\n\
             \t\t1970-01-02\t00:00:00\n\
             \\N\t\\N\t\\N\t\\N\n"
        );
        assert!(is_binary_type(cols[1].data_type()) && !is_binary_type(cols[0].data_type()));
    }

    #[test]
    fn binary_dictionary_and_null() {
        let a: ArrayRef = Arc::new(BinaryArray::from(vec![Some(&b"\x00\xff"[..]), Some(&b""[..]), None]));
        assert_eq!(print(a), vec!["(X'00ff')", "(X'')", "(NULL)"]);
        let mut d = StringDictionaryBuilder::<Int32Type>::new();
        d.append_value("x'y");
        d.append_null();
        assert_eq!(print(Arc::new(d.finish())), vec!["('x''y')", "(NULL)"]);
        let a: ArrayRef = Arc::new(arrow_array::NullArray::new(1));
        assert_eq!(print(a), vec!["(NULL)"]);
    }
}
