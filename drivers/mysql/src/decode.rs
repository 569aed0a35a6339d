//! Binary-protocol rows → Arrow arrays, without an intermediate value per cell.
//!
//! A binary row packet is `0x00`, a NULL bitmap (offset by two bits), then each non-NULL value in
//! column order: fixed-width little-endian integers and floats, length-prefixed dates and times,
//! and length-encoded bytes for everything else (strings, DECIMAL as text, BIT, JSON…). Each
//! column's decoder knows its wire layout and its Arrow builder, so a value goes from the packet
//! into the builder in one step; text columns are validated as UTF-8 once per batch.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    DurationMicrosecondBuilder, DurationMillisecondBuilder, DurationSecondBuilder, Float32Builder, Float64Builder,
    Int8Builder, Int16Builder, Int32Builder, Int64Builder, NullBuilder, TimestampMicrosecondBuilder, UInt8Builder,
    UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, StringArray};
use arrow_schema::TimeUnit;
use mysql_common::constants::ColumnType;
use mysql_common::packets::Column;

use crate::types::{Kind, ZeroDates, days_from_civil, parse_decimal128, parse_decimal256};
use crate::wire::lenenc_int;

/// Why a row could not be decoded; `column` is the index of the offending column.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A zero date met `zero_dates: error`.
    ZeroDate { column: usize },
    /// A value that does not fit its Arrow type, or a malformed packet.
    Invalid { column: usize, message: String },
}

/// One column: its wire layout and the builder its values go to.
enum ColumnDecoder {
    Null(NullBuilder),
    Int8(Int8Builder),
    UInt8(UInt8Builder),
    Int16(Int16Builder),
    UInt16(UInt16Builder),
    Int32(Int32Builder),
    UInt32(UInt32Builder),
    Int64(Int64Builder),
    UInt64(UInt64Builder),
    /// BIT(1): length-encoded bytes, true when any bit is set.
    BitBool(BooleanBuilder),
    /// BIT(n>1): length-encoded big-endian bytes.
    BitUInt64(UInt64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal128(Decimal128Builder, i8),
    Decimal256(Decimal256Builder, i8),
    Date32(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    DurationSecond(DurationSecondBuilder),
    DurationMillisecond(DurationMillisecondBuilder),
    DurationMicrosecond(DurationMicrosecondBuilder),
    /// Text: raw bytes now, validated as UTF-8 when the batch is finished.
    Utf8(BinaryBuilder),
    Binary(BinaryBuilder),
}

/// Decodes the rows of one result set into Arrow arrays, batch after batch.
pub struct RowDecoder {
    columns: Vec<ColumnDecoder>,
    /// What each decoder is rebuilt from after a batch.
    definitions: Vec<(Column, Kind)>,
    capacity: usize,
    bitmap_len: usize,
    zero_dates: ZeroDates,
}

/// The outcome of reading a DATE/DATETIME/TIMESTAMP value.
enum Temporal {
    Zero,
    Value { days: i64, micros: i64 },
}

impl RowDecoder {
    /// A decoder for rows of `columns`, mapped to `kinds` (see [`Kind::of`]), whose builders
    /// start with room for `capacity` rows.
    pub fn new(columns: &[Column], kinds: &[Kind], capacity: usize, zero_dates: ZeroDates) -> Self {
        let decoders = columns.iter().zip(kinds).map(|(c, &k)| ColumnDecoder::new(c, k, capacity, 16)).collect();
        RowDecoder {
            columns: decoders,
            definitions: columns.iter().cloned().zip(kinds.iter().copied()).collect(),
            capacity,
            bitmap_len: (columns.len() + 9) / 8,
            zero_dates,
        }
    }

    /// Appends one binary row (the packet payload, starting with its 0x00 header).
    #[inline]
    pub fn append_row(&mut self, row: &[u8]) -> Result<(), DecodeError> {
        let bitmap = row.get(1..1 + self.bitmap_len).ok_or_else(|| malformed(0))?;
        let mut pos = 1 + self.bitmap_len;
        for (i, column) in self.columns.iter_mut().enumerate() {
            let bit = i + 2;
            if bitmap[bit / 8] & (1 << (bit % 8)) != 0 {
                column.append_null();
            } else {
                column.append(row, &mut pos, self.zero_dates).map_err(|e| e.at(i))?;
            }
        }
        Ok(())
    }

    /// Takes the arrays built so far, leaving the decoder empty and reusable. The next batch's
    /// builders start with the room this one needed: growing from nothing by doubling would copy
    /// every buffer several times per batch.
    pub fn finish(&mut self) -> Result<Vec<ArrayRef>, DecodeError> {
        let mut arrays = Vec::with_capacity(self.columns.len());
        for (i, ((column, kind), decoder)) in self.definitions.iter().zip(&mut self.columns).enumerate() {
            let bytes_per_row = decoder.bytes_per_row();
            let fresh = ColumnDecoder::new(column, *kind, self.capacity, bytes_per_row);
            arrays.push(std::mem::replace(decoder, fresh).finish().map_err(|e| e.at(i))?);
        }
        Ok(arrays)
    }
}

/// A column-less error, placed by [`ValueError::at`].
enum ValueError {
    ZeroDate,
    Invalid(String),
}

impl ValueError {
    fn at(self, column: usize) -> DecodeError {
        match self {
            ValueError::ZeroDate => DecodeError::ZeroDate { column },
            ValueError::Invalid(message) => DecodeError::Invalid { column, message },
        }
    }
}

fn malformed(column: usize) -> DecodeError {
    DecodeError::Invalid { column, message: "the server sent a malformed row".into() }
}

fn truncated() -> ValueError {
    ValueError::Invalid("the server sent a truncated value".into())
}

#[inline]
fn take<'a>(row: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], ValueError> {
    let bytes = row.get(*pos..*pos + n).ok_or_else(truncated)?;
    *pos += n;
    Ok(bytes)
}

#[inline]
fn take_array<const N: usize>(row: &[u8], pos: &mut usize) -> Result<[u8; N], ValueError> {
    let bytes = take(row, pos, N)?;
    Ok(bytes.try_into().expect("take returned N bytes"))
}

#[inline]
fn take_lenenc<'a>(row: &'a [u8], pos: &mut usize) -> Result<&'a [u8], ValueError> {
    let len = lenenc_int(row, pos).ok_or_else(truncated)?;
    take(row, pos, usize::try_from(len).map_err(|_| truncated())?)
}

/// DATE / DATETIME / TIMESTAMP: a length byte (0, 4, 7 or 11), then year, month, day, hour,
/// minute, second, microseconds.
#[inline]
fn take_temporal(row: &[u8], pos: &mut usize) -> Result<Temporal, ValueError> {
    let len = take(row, pos, 1)?[0] as usize;
    let b = take(row, pos, len)?;
    if len == 0 {
        return Ok(Temporal::Zero);
    }
    if len < 4 {
        return Err(truncated());
    }
    let year = i64::from(u16::from_le_bytes([b[0], b[1]]));
    let (month, day) = (u32::from(b[2]), u32::from(b[3]));
    let (hour, minute, second) = if len >= 7 { (i64::from(b[4]), i64::from(b[5]), i64::from(b[6])) } else { (0, 0, 0) };
    let micros = if len >= 11 { i64::from(u32::from_le_bytes([b[7], b[8], b[9], b[10]])) } else { 0 };
    if month == 0 || day == 0 {
        return Ok(Temporal::Zero);
    }
    if month > 12 || day > 31 || hour > 23 || minute > 59 || second > 59 || micros > 999_999 {
        return Err(ValueError::Invalid(format!(
            "invalid date {year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{micros:06}"
        )));
    }
    let days = days_from_civil(year, month, day);
    Ok(Temporal::Value { days, micros: (days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000 + micros })
}

/// TIME: a length byte (0, 8 or 12), then sign, days, hours, minutes, seconds, microseconds.
#[inline]
fn take_time(row: &[u8], pos: &mut usize) -> Result<i64, ValueError> {
    let len = take(row, pos, 1)?[0] as usize;
    let b = take(row, pos, len)?;
    if len == 0 {
        return Ok(0);
    }
    if len < 8 {
        return Err(truncated());
    }
    let negative = b[0] == 1;
    let days = i64::from(u32::from_le_bytes([b[1], b[2], b[3], b[4]]));
    let secs = ((days * 24 + i64::from(b[5])) * 60 + i64::from(b[6])) * 60 + i64::from(b[7]);
    let micros = if len >= 12 { i64::from(u32::from_le_bytes([b[8], b[9], b[10], b[11]])) } else { 0 };
    let total = secs * 1_000_000 + micros;
    Ok(if negative { -total } else { total })
}

fn out_of_range(what: &str) -> ValueError {
    ValueError::Invalid(format!("value out of range for {what}"))
}

/// Fixed-width values: the server sends an integer in its column type's width, which
/// [`Kind::of`] always maps to an Arrow type of the same width (YEAR → UInt16, MEDIUMINT → Int32).
macro_rules! append_le {
    ($builder:expr, $row:expr, $pos:expr, $t:ty) => {
        $builder.append_value(<$t>::from_le_bytes(take_array($row, $pos)?))
    };
}

impl ColumnDecoder {
    /// `bytes_per_row` sizes the value buffer of text and binary columns.
    fn new(column: &Column, kind: Kind, capacity: usize, bytes_per_row: usize) -> ColumnDecoder {
        match kind {
            Kind::Null => ColumnDecoder::Null(NullBuilder::new()),
            Kind::Int8 => ColumnDecoder::Int8(Int8Builder::with_capacity(capacity)),
            Kind::UInt8 => ColumnDecoder::UInt8(UInt8Builder::with_capacity(capacity)),
            Kind::Int16 => ColumnDecoder::Int16(Int16Builder::with_capacity(capacity)),
            Kind::UInt16 => ColumnDecoder::UInt16(UInt16Builder::with_capacity(capacity)),
            Kind::Int32 => ColumnDecoder::Int32(Int32Builder::with_capacity(capacity)),
            Kind::UInt32 => ColumnDecoder::UInt32(UInt32Builder::with_capacity(capacity)),
            Kind::Int64 => ColumnDecoder::Int64(Int64Builder::with_capacity(capacity)),
            Kind::UInt64 if column.column_type() != ColumnType::MYSQL_TYPE_BIT => {
                ColumnDecoder::UInt64(UInt64Builder::with_capacity(capacity))
            }
            Kind::UInt64 => ColumnDecoder::BitUInt64(UInt64Builder::with_capacity(capacity)),
            Kind::Bool => ColumnDecoder::BitBool(BooleanBuilder::with_capacity(capacity)),
            Kind::Float32 => ColumnDecoder::Float32(Float32Builder::with_capacity(capacity)),
            Kind::Float64 => ColumnDecoder::Float64(Float64Builder::with_capacity(capacity)),
            Kind::Decimal128(p, s) => ColumnDecoder::Decimal128(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(p, s)
                    .expect("precision and scale are clamped to Decimal128's range"),
                s,
            ),
            Kind::Decimal256(p, s) => ColumnDecoder::Decimal256(
                Decimal256Builder::with_capacity(capacity)
                    .with_precision_and_scale(p, s)
                    .expect("precision and scale are clamped to Decimal256's range"),
                s,
            ),
            Kind::Date32 => ColumnDecoder::Date32(Date32Builder::with_capacity(capacity)),
            Kind::Timestamp => ColumnDecoder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity)),
            Kind::TimestampUtc => {
                ColumnDecoder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("+00:00"))
            }
            Kind::Duration(TimeUnit::Second) => {
                ColumnDecoder::DurationSecond(DurationSecondBuilder::with_capacity(capacity))
            }
            Kind::Duration(TimeUnit::Millisecond) => {
                ColumnDecoder::DurationMillisecond(DurationMillisecondBuilder::with_capacity(capacity))
            }
            Kind::Duration(_) => {
                ColumnDecoder::DurationMicrosecond(DurationMicrosecondBuilder::with_capacity(capacity))
            }
            Kind::Utf8 => ColumnDecoder::Utf8(BinaryBuilder::with_capacity(capacity, capacity * bytes_per_row)),
            Kind::Binary => ColumnDecoder::Binary(BinaryBuilder::with_capacity(capacity, capacity * bytes_per_row)),
        }
    }

    #[inline]
    fn append(&mut self, row: &[u8], pos: &mut usize, zero_dates: ZeroDates) -> Result<(), ValueError> {
        match self {
            ColumnDecoder::Null(_) => return Err(ValueError::Invalid("a value in a NULL-typed column".into())),
            ColumnDecoder::Int8(b) => append_le!(b, row, pos, i8),
            ColumnDecoder::UInt8(b) => append_le!(b, row, pos, u8),
            ColumnDecoder::Int16(b) => append_le!(b, row, pos, i16),
            ColumnDecoder::UInt16(b) => append_le!(b, row, pos, u16),
            ColumnDecoder::Int32(b) => append_le!(b, row, pos, i32),
            ColumnDecoder::UInt32(b) => append_le!(b, row, pos, u32),
            ColumnDecoder::Int64(b) => append_le!(b, row, pos, i64),
            ColumnDecoder::UInt64(b) => append_le!(b, row, pos, u64),
            ColumnDecoder::BitBool(b) => b.append_value(take_lenenc(row, pos)?.iter().any(|&x| x != 0)),
            ColumnDecoder::BitUInt64(b) => {
                let bytes = take_lenenc(row, pos)?;
                if bytes.len() > 8 {
                    return Err(out_of_range("u64"));
                }
                b.append_value(bytes.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
            }
            ColumnDecoder::Float32(b) => append_le!(b, row, pos, f32),
            ColumnDecoder::Float64(b) => append_le!(b, row, pos, f64),
            ColumnDecoder::Decimal128(b, scale) => {
                let text = take_lenenc(row, pos)?;
                let v = parse_decimal128(text, *scale).ok_or_else(|| bad_decimal(text))?;
                b.append_value(v)
            }
            ColumnDecoder::Decimal256(b, scale) => {
                let text = take_lenenc(row, pos)?;
                let v = parse_decimal256(text, *scale).ok_or_else(|| bad_decimal(text))?;
                b.append_value(v)
            }
            ColumnDecoder::Date32(b) => match take_temporal(row, pos)? {
                Temporal::Value { days, .. } => b.append_value(i32::try_from(days).map_err(|_| out_of_range("date"))?),
                Temporal::Zero => zero_date(zero_dates, || b.append_null())?,
            },
            ColumnDecoder::Timestamp(b) => match take_temporal(row, pos)? {
                Temporal::Value { micros, .. } => b.append_value(micros),
                Temporal::Zero => zero_date(zero_dates, || b.append_null())?,
            },
            // The server sends no more fractional digits than the column has, so the division is exact.
            ColumnDecoder::DurationSecond(b) => b.append_value(take_time(row, pos)? / 1_000_000),
            ColumnDecoder::DurationMillisecond(b) => b.append_value(take_time(row, pos)? / 1000),
            ColumnDecoder::DurationMicrosecond(b) => b.append_value(take_time(row, pos)?),
            ColumnDecoder::Utf8(b) | ColumnDecoder::Binary(b) => b.append_value(take_lenenc(row, pos)?),
        }
        Ok(())
    }

    /// Average value bytes per row so far (text and binary columns), rounded up, with a little
    /// headroom; at least 16.
    fn bytes_per_row(&self) -> usize {
        match self {
            ColumnDecoder::Utf8(b) | ColumnDecoder::Binary(b) if !b.is_empty() => {
                (b.values_slice().len() * 9 / 8).div_ceil(b.len()).max(16)
            }
            _ => 16,
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnDecoder::Null(b) => b.append_null(),
            ColumnDecoder::Int8(b) => b.append_null(),
            ColumnDecoder::UInt8(b) => b.append_null(),
            ColumnDecoder::Int16(b) => b.append_null(),
            ColumnDecoder::UInt16(b) => b.append_null(),
            ColumnDecoder::Int32(b) => b.append_null(),
            ColumnDecoder::UInt32(b) => b.append_null(),
            ColumnDecoder::Int64(b) => b.append_null(),
            ColumnDecoder::UInt64(b) | ColumnDecoder::BitUInt64(b) => b.append_null(),
            ColumnDecoder::BitBool(b) => b.append_null(),
            ColumnDecoder::Float32(b) => b.append_null(),
            ColumnDecoder::Float64(b) => b.append_null(),
            ColumnDecoder::Decimal128(b, _) => b.append_null(),
            ColumnDecoder::Decimal256(b, _) => b.append_null(),
            ColumnDecoder::Date32(b) => b.append_null(),
            ColumnDecoder::Timestamp(b) => b.append_null(),
            ColumnDecoder::DurationSecond(b) => b.append_null(),
            ColumnDecoder::DurationMillisecond(b) => b.append_null(),
            ColumnDecoder::DurationMicrosecond(b) => b.append_null(),
            ColumnDecoder::Utf8(b) | ColumnDecoder::Binary(b) => b.append_null(),
        }
    }

    fn finish(mut self) -> Result<ArrayRef, ValueError> {
        Ok(match &mut self {
            ColumnDecoder::Null(b) => Arc::new(b.finish()),
            ColumnDecoder::Int8(b) => Arc::new(b.finish()),
            ColumnDecoder::UInt8(b) => Arc::new(b.finish()),
            ColumnDecoder::Int16(b) => Arc::new(b.finish()),
            ColumnDecoder::UInt16(b) => Arc::new(b.finish()),
            ColumnDecoder::Int32(b) => Arc::new(b.finish()),
            ColumnDecoder::UInt32(b) => Arc::new(b.finish()),
            ColumnDecoder::Int64(b) => Arc::new(b.finish()),
            ColumnDecoder::UInt64(b) | ColumnDecoder::BitUInt64(b) => Arc::new(b.finish()),
            ColumnDecoder::BitBool(b) => Arc::new(b.finish()),
            ColumnDecoder::Float32(b) => Arc::new(b.finish()),
            ColumnDecoder::Float64(b) => Arc::new(b.finish()),
            ColumnDecoder::Decimal128(b, _) => Arc::new(b.finish()),
            ColumnDecoder::Decimal256(b, _) => Arc::new(b.finish()),
            ColumnDecoder::Date32(b) => Arc::new(b.finish()),
            ColumnDecoder::Timestamp(b) => Arc::new(b.finish()),
            ColumnDecoder::DurationSecond(b) => Arc::new(b.finish()),
            ColumnDecoder::DurationMillisecond(b) => Arc::new(b.finish()),
            ColumnDecoder::DurationMicrosecond(b) => Arc::new(b.finish()),
            ColumnDecoder::Utf8(b) => {
                let (offsets, values, nulls) = b.finish().into_parts();
                // One validation pass over the whole batch (whole buffer plus value boundaries).
                let text = StringArray::try_new(offsets, values, nulls)
                    .map_err(|e| ValueError::Invalid(format!("text column holds invalid utf-8: {e}")))?;
                Arc::new(text)
            }
            ColumnDecoder::Binary(b) => Arc::new(b.finish()),
        })
    }
}

fn bad_decimal(text: &[u8]) -> ValueError {
    ValueError::Invalid(format!("DECIMAL value '{}' does not fit the column's type", String::from_utf8_lossy(text)))
}

fn zero_date(policy: ZeroDates, null: impl FnOnce()) -> Result<(), ValueError> {
    match policy {
        ZeroDates::Null => {
            null();
            Ok(())
        }
        ZeroDates::Error => Err(ValueError::ZeroDate),
    }
}
