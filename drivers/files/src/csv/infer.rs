//! Column types of the CSV extractor: lossless inference and value parsing.
//!
//! Inference is lossless: a type is chosen only when every sampled value is exactly the text the
//! CSV writer prints for the parsed value, so CSV → CSV (or → Parquet → CSV) reproduces the input.
//! The one exception is a timestamp with a UTC offset (`+02:00`): it is read as the same instant
//! in UTC, which the writer prints with `Z`.
//! A quoted empty field (`""`, the empty string) is observed as the value `""`, which no type but
//! string accepts; an unquoted empty field is NULL and is not observed.
//!
//! Candidates, in the order they win when several fit every value: int64; uint64 (non-negative
//! integers, some above i64::MAX); decimal(p,0) (integers beyond 64 bits, up to 38 digits);
//! float64 (the shortest float text: `1.5`, `100.0`, `1e-05`, `nan`); decimal(p,s) (every value
//! with the same number s ≥ 1 of decimals, as DECIMAL prints: `12.50`, `-0.05`); boolean; date;
//! timestamp; timestamp with zone (`…Z` or `…+HH:MM`, stored in UTC). A decimal's precision is
//! the larger of 18 and the digits the sample needs, so later rows have room (at most 38).

use arrow_schema::{DataType, TimeUnit};
use osiris_engine::driver::DriverError;

use super::format::{days_from_civil, days_in_month, write_f64};
use crate::common::invalid;

/// The Arrow type of an extracted column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColType {
    Utf8,
    Int64,
    UInt64,
    Float64,
    Boolean,
    Date,
    Timestamp,
    /// A timestamp in UTC (`Timestamp(Microsecond, "+00:00")`).
    TimestampUtc,
    Decimal(u8, i8),
}

/// The zone of [`ColType::TimestampUtc`], spelled as an offset like the MySQL extractor's.
pub(crate) const UTC: &str = "+00:00";

/// The smallest precision an inferred decimal gets (the widest that fits 64 bits), so values
/// after the sample with a few more digits still fit.
const MIN_INFERRED_PRECISION: usize = 18;

impl ColType {
    /// Parses a `dtype` value: `string`, `int64`, `uint64`, `float64`, `boolean`, `date`, `timestamp`,
    /// `timestamptz`, `decimal(p,s)`.
    pub(crate) fn parse(column: &str, spec: &str) -> Result<ColType, DriverError> {
        let s = spec.trim().to_ascii_lowercase();
        let t = match s.as_str() {
            "string" | "str" | "utf8" | "text" | "object" => ColType::Utf8,
            "int64" | "int" | "integer" | "bigint" => ColType::Int64,
            "uint64" | "ubigint" => ColType::UInt64,
            "float64" | "float" | "double" => ColType::Float64,
            "boolean" | "bool" => ColType::Boolean,
            "date" => ColType::Date,
            "timestamp" | "datetime" | "datetime64" => ColType::Timestamp,
            "timestamptz" | "timestamp_tz" | "timestamp with time zone" => ColType::TimestampUtc,
            _ => {
                let inner = s.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')'));
                let parsed = inner.and_then(|inner| {
                    let (p, sc) = inner.split_once(',')?;
                    Some((p.trim().parse::<u8>().ok()?, sc.trim().parse::<i8>().ok()?))
                });
                match parsed {
                    Some((p, sc)) if (1..=38).contains(&p) && (0..=p as i8).contains(&sc) => ColType::Decimal(p, sc),
                    _ => {
                        return Err(invalid(format!("invalid dtype '{spec}' for column '{column}'")).with_hint(
                            "use one of string, int64, uint64, float64, boolean, date, timestamp, timestamptz, decimal(p,s) with 1 <= p <= 38 and 0 <= s <= p",
                        ));
                    }
                }
            }
        };
        Ok(t)
    }

    /// The Arrow data type.
    pub(crate) fn data_type(self) -> DataType {
        match self {
            ColType::Utf8 => DataType::Utf8,
            ColType::Int64 => DataType::Int64,
            ColType::UInt64 => DataType::UInt64,
            ColType::Float64 => DataType::Float64,
            ColType::Boolean => DataType::Boolean,
            ColType::Date => DataType::Date32,
            ColType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColType::TimestampUtc => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            ColType::Decimal(p, s) => DataType::Decimal128(p, s),
        }
    }

    /// Lower-case name for messages.
    pub(crate) fn name(self) -> String {
        match self {
            ColType::Utf8 => "string".into(),
            ColType::Int64 => "int64".into(),
            ColType::UInt64 => "uint64".into(),
            ColType::Float64 => "float64".into(),
            ColType::Boolean => "boolean".into(),
            ColType::Date => "date".into(),
            ColType::Timestamp => "timestamp".into(),
            ColType::TimestampUtc => "timestamp with zone".into(),
            ColType::Decimal(p, s) => format!("decimal({p},{s})"),
        }
    }
}

const INT: u16 = 1;
const UINT: u16 = 2;
const FLOAT: u16 = 4;
const BOOL: u16 = 8;
const DATE: u16 = 16;
const TS: u16 = 32;
const TSZ: u16 = 64;
const DEC: u16 = 128;
const ALL: u16 = INT | UINT | FLOAT | BOOL | DATE | TS | TSZ | DEC;

/// Whether a value has a candidate type's text.
type Fits = fn(&str) -> bool;

/// Per-column inference state.
#[derive(Clone, Debug)]
pub(crate) struct Inference {
    candidates: u16,
    seen_value: bool,
    /// The decimals every value had so far (for `DEC`).
    scale: Option<usize>,
    /// The most integer digits a value had so far (for `DEC`).
    int_digits: usize,
}

impl Default for Inference {
    fn default() -> Self {
        Inference { candidates: ALL, seen_value: false, scale: None, int_digits: 0 }
    }
}

impl Inference {
    /// Observes one non-null value.
    pub(crate) fn observe(&mut self, value: &str, scratch: &mut Vec<u8>) {
        self.seen_value = true;
        let checks: [(u16, Fits); 6] = [
            (INT, |v| canonical_i64(v).is_some()),
            (UINT, |v| canonical_u64(v).is_some()),
            (BOOL, |v| canonical_bool(v).is_some()),
            (DATE, |v| canonical_date(v).is_some()),
            (TS, |v| canonical_timestamp(v).is_some()),
            (TSZ, |v| zoned_timestamp(v).is_some()),
        ];
        for (bit, fits) in checks {
            if self.candidates & bit != 0 && !fits(value) {
                self.candidates &= !bit;
            }
        }
        if self.candidates & FLOAT != 0 && canonical_f64(value, scratch).is_none() {
            self.candidates &= !FLOAT;
        }
        if self.candidates & DEC != 0 {
            self.observe_decimal(value);
        }
    }

    fn observe_decimal(&mut self, value: &str) {
        match decimal_shape(value) {
            Some((int_digits, scale)) if self.scale.is_none_or(|s| s == scale) => {
                self.scale = Some(scale);
                self.int_digits = self.int_digits.max(int_digits);
                if self.int_digits + scale > 38 {
                    self.candidates &= !DEC;
                }
            }
            _ => self.candidates &= !DEC,
        }
    }

    /// The inferred type (`Utf8` for a column without values).
    pub(crate) fn result(&self) -> ColType {
        if !self.seen_value {
            return ColType::Utf8;
        }
        let c = self.candidates;
        let scale = self.scale.unwrap_or(0);
        let decimal = || {
            let precision = (self.int_digits + scale).clamp(MIN_INFERRED_PRECISION, 38);
            ColType::Decimal(precision as u8, scale as i8)
        };
        if c & INT != 0 {
            ColType::Int64
        } else if c & UINT != 0 {
            ColType::UInt64
        } else if c & DEC != 0 && scale == 0 {
            decimal()
        } else if c & FLOAT != 0 {
            ColType::Float64
        } else if c & DEC != 0 {
            decimal()
        } else if c & BOOL != 0 {
            ColType::Boolean
        } else if c & DATE != 0 {
            ColType::Date
        } else if c & TS != 0 {
            ColType::Timestamp
        } else if c & TSZ != 0 {
            ColType::TimestampUtc
        } else {
            ColType::Utf8
        }
    }
}

/// An integer in the writer's form: optional `-`, no `+`, no leading zeros, fits i64.
pub(crate) fn canonical_i64(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits[0] == b'0' && (digits.len() > 1 || digits.len() < b.len()) {
        return None; // leading zero, or "-0"
    }
    s.parse().ok()
}

/// A non-negative integer in the writer's form that fits u64.
pub(crate) fn canonical_u64(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) || (b[0] == b'0' && b.len() > 1) {
        return None;
    }
    s.parse().ok()
}

/// A decimal in the writer's form (`12.50`, `-0.05`, `7`: no `+`, no leading zeros, no `-0`,
/// digits on both sides of a point) → (integer digits, decimals). `0.5` has no integer digits.
pub(crate) fn decimal_shape(s: &str) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let negative = b.first() == Some(&b'-');
    let body = &b[usize::from(negative)..];
    let (int_part, frac) = match body.iter().position(|&c| c == b'.') {
        Some(k) => (&body[..k], Some(&body[k + 1..])),
        None => (body, None),
    };
    let digits = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_digit);
    if !digits(int_part) || frac.is_some_and(|f| !digits(f)) || (int_part[0] == b'0' && int_part.len() > 1) {
        return None;
    }
    let frac = frac.unwrap_or(b"");
    let zero = int_part == b"0" && frac.iter().all(|&c| c == b'0');
    if negative && zero {
        return None;
    }
    let int_digits = if int_part == b"0" { 0 } else { int_part.len() };
    Some((int_digits, frac.len()))
}

/// A decimal in the writer's form with exactly `scale` decimals, fitting `precision`.
pub(crate) fn canonical_decimal(s: &str, precision: u8, scale: i8) -> Option<i128> {
    let (_, decimals) = decimal_shape(s)?;
    if decimals != scale.max(0) as usize {
        return None;
    }
    parse_decimal(s, precision, scale)
}

/// A float in the writer's form (Python `repr` style, shortest round trip).
pub(crate) fn canonical_f64(s: &str, scratch: &mut Vec<u8>) -> Option<f64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 32 || !b.iter().all(|c| c.is_ascii_digit() || b"-+.eainf".contains(c)) {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    scratch.clear();
    write_f64(scratch, v);
    (scratch.as_slice() == b).then_some(v)
}

/// `true` or `false`, exactly.
pub(crate) fn canonical_bool(s: &str) -> Option<bool> {
    match s {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn digits_at(b: &[u8], start: usize, len: usize) -> Option<u32> {
    let mut v = 0u32;
    for &c in b.get(start..start + len)? {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

fn ymd(b: &[u8]) -> Option<i64> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = digits_at(b, 0, 4)? as i64;
    let m = digits_at(b, 5, 2)?;
    let d = digits_at(b, 8, 2)?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// `YYYY-MM-DD` → days since the epoch.
pub(crate) fn canonical_date(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 {
        return None;
    }
    ymd(b).and_then(|d| i32::try_from(d).ok())
}

/// `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]` as the writer prints it → microseconds since the epoch.
pub(crate) fn canonical_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if !matches!(b.len(), 19 | 23 | 26) || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let days = ymd(b)?;
    let (h, mi, se) = (digits_at(b, 11, 2)?, digits_at(b, 14, 2)?, digits_at(b, 17, 2)?);
    if h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let micros = match b.len() {
        19 => 0,
        23 if b[19] == b'.' => {
            let ms = digits_at(b, 20, 3)?;
            if ms == 0 {
                return None;
            }
            ms as i64 * 1000
        }
        26 if b[19] == b'.' => {
            let us = digits_at(b, 20, 6)?;
            if us % 1000 == 0 {
                return None;
            }
            us as i64
        }
        _ => return None,
    };
    let secs = days * 86_400 + (h * 3600 + mi * 60 + se) as i64;
    Some(secs * 1_000_000 + micros)
}

/// A timestamp with a zone: the writer's form followed by `Z`, or by a `+HH:MM`/`-HH:MM`
/// offset → microseconds since the epoch in UTC.
pub(crate) fn zoned_timestamp(s: &str) -> Option<i64> {
    if let Some(local) = s.strip_suffix('Z') {
        return canonical_timestamp(local);
    }
    let b = s.as_bytes();
    let k = b.len().checked_sub(6)?;
    if !matches!(b[k], b'+' | b'-') || b[k + 3] != b':' {
        return None;
    }
    let (h, m) = (digits_at(b, k + 1, 2)?, digits_at(b, k + 4, 2)?);
    if h > 23 || m > 59 {
        return None;
    }
    let offset = i64::from(h * 3600 + m * 60) * 1_000_000;
    let local = canonical_timestamp(s.get(..k)?)?;
    Some(if b[k] == b'+' { local - offset } else { local + offset })
}

/// Lenient parsing for an explicit `dtype: timestamptz`: any timestamp with a zone, or a naive
/// one taken as UTC.
pub(crate) fn lenient_zoned_timestamp(s: &str) -> Option<i64> {
    let t = s.trim();
    zoned_timestamp(t)
        .or_else(|| chrono::DateTime::parse_from_rfc3339(t).ok().map(|dt| dt.timestamp_micros()))
        .or_else(|| chrono::DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z").ok().map(|dt| dt.timestamp_micros()))
        .or_else(|| lenient_timestamp(t))
}

/// Lenient timestamp parsing for an explicit `dtype: timestamp`.
pub(crate) fn lenient_timestamp(s: &str) -> Option<i64> {
    if let Some(v) = canonical_timestamp(s) {
        return Some(v);
    }
    let t = s.trim();
    let t = t.strip_suffix('Z').unwrap_or(t);
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(t, fmt) {
            return Some(dt.and_utc().timestamp_micros());
        }
    }
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_micros())
}

/// Lenient date parsing for an explicit `dtype: date`.
pub(crate) fn lenient_date(s: &str) -> Option<i32> {
    canonical_date(s).or_else(|| {
        let d = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
        i32::try_from((d - epoch).num_days()).ok()
    })
}

/// Lenient boolean parsing for an explicit `dtype: boolean`.
pub(crate) fn lenient_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" | "y" => Some(true),
        "false" | "f" | "0" | "no" | "n" => Some(false),
        _ => None,
    }
}

/// Parses a decimal with at most `scale` fractional digits (more are accepted only if they are
/// zeros) into its unscaled i128, checking the precision.
pub(crate) fn parse_decimal(s: &str, precision: u8, scale: i8) -> Option<i128> {
    let t = s.trim();
    let (neg, body) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().all(|c| c.is_ascii_digit()) || !frac_part.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let scale = scale.max(0) as usize;
    let (kept, dropped) = if frac_part.len() > scale { frac_part.split_at(scale) } else { (frac_part, "") };
    if dropped.bytes().any(|c| c != b'0') {
        return None;
    }
    let mut v: i128 = 0;
    let mut digits = 0usize;
    for c in int_part.bytes().chain(kept.bytes()).chain(std::iter::repeat_n(b'0', scale - kept.len())) {
        v = v.checked_mul(10)?.checked_add((c - b'0') as i128)?;
        if v != 0 {
            digits += 1;
        }
    }
    if digits > precision as usize {
        return None;
    }
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical_i64("0"), Some(0));
        assert_eq!(canonical_i64("-12"), Some(-12));
        assert_eq!(canonical_i64("007"), None);
        assert_eq!(canonical_i64("-0"), None);
        assert_eq!(canonical_i64("+1"), None);
        assert_eq!(canonical_i64("99999999999999999999"), None);
        let mut s = Vec::new();
        assert_eq!(canonical_f64("1.5", &mut s), Some(1.5));
        assert_eq!(canonical_f64("1.50", &mut s), None);
        assert_eq!(canonical_f64("1", &mut s), None);
        assert_eq!(canonical_f64("1e-05", &mut s), Some(1e-5));
        assert_eq!(canonical_f64("1e-5", &mut s), None);
        assert!(canonical_f64("nan", &mut s).is_some());
        assert_eq!(canonical_f64("NaN", &mut s), None);
        assert_eq!(canonical_date("2024-02-29"), Some(19782));
        assert_eq!(canonical_date("2023-02-29"), None);
        assert_eq!(canonical_timestamp("1970-01-01T00:00:01.500"), Some(1_500_000));
        assert_eq!(canonical_timestamp("1970-01-01T00:00:01.000"), None);
        assert_eq!(canonical_timestamp("1970-01-01T00:00:01.500000"), None);
        assert_eq!(canonical_timestamp("1970-01-01T00:00:01.000001"), Some(1_000_001));
        assert_eq!(canonical_timestamp("1970-01-01 00:00:01"), None);
        assert_eq!(parse_decimal("12.5", 5, 2), Some(1250));
        assert_eq!(parse_decimal("-0.05", 5, 2), Some(-5));
        assert_eq!(parse_decimal("1.234", 5, 2), None);
        assert_eq!(parse_decimal("1234.5", 5, 2), None);
        assert_eq!(canonical_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(canonical_u64("18446744073709551616"), None);
        assert_eq!(canonical_u64("01"), None);
        assert_eq!(decimal_shape("12.50"), Some((2, 2)));
        assert_eq!(decimal_shape("-0.05"), Some((0, 2)));
        assert_eq!(decimal_shape("7"), Some((1, 0)));
        for bad in ["-0.00", "-0", "01.5", ".5", "5.", "+1.0", "1e5", "", "-"] {
            assert_eq!(decimal_shape(bad), None, "{bad}");
        }
        assert_eq!(canonical_decimal("12.50", 18, 2), Some(1250));
        assert_eq!(canonical_decimal("12.5", 18, 2), None);
        assert_eq!(zoned_timestamp("1970-01-01T00:00:01.500Z"), Some(1_500_000));
        assert_eq!(zoned_timestamp("1970-01-01T02:00:00+02:00"), Some(0));
        assert_eq!(zoned_timestamp("1969-12-31T23:30:00-00:30"), Some(0));
        assert_eq!(zoned_timestamp("1970-01-01T00:00:00"), None);
        assert_eq!(zoned_timestamp("1970-01-01T00:00:00+2:00"), None);
    }

    fn infer(values: &[&str]) -> ColType {
        let mut inference = Inference::default();
        let mut scratch = Vec::new();
        for v in values {
            inference.observe(v, &mut scratch);
        }
        inference.result()
    }

    #[test]
    fn inference_picks_the_narrowest_exact_type() {
        assert_eq!(infer(&["1", "-2"]), ColType::Int64);
        assert_eq!(infer(&["1", "18446744073709551615"]), ColType::UInt64);
        assert_eq!(infer(&["-1", "18446744073709551615"]), ColType::Decimal(20, 0));
        assert_eq!(infer(&["1", "123456789012345678901234567890"]), ColType::Decimal(30, 0));
        assert_eq!(infer(&["1.5", "100.0", "2.5"]), ColType::Float64);
        assert_eq!(infer(&["1.50", "-0.05", "12345.67"]), ColType::Decimal(18, 2));
        assert_eq!(infer(&["1.50", "3"]), ColType::Utf8);
        assert_eq!(infer(&["1.50", "1e-05"]), ColType::Utf8);
        assert_eq!(infer(&["2024-01-01T10:00:00Z", "2024-01-01T10:00:00.123456Z"]), ColType::TimestampUtc);
        assert_eq!(infer(&["2024-01-01T10:00:00+01:00", "2024-01-01T10:00:00Z"]), ColType::TimestampUtc);
        assert_eq!(infer(&["2024-01-01T10:00:00", "2024-01-01T10:00:00Z"]), ColType::Utf8);
        assert_eq!(infer(&["2024-01-01T10:00:00"]), ColType::Timestamp);
    }
}
