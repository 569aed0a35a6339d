//! MySQL/MariaDB column metadata → Arrow types, and the exact parsers the row decoder uses.
//!
//! The mapping (also documented in `docs/mysql.md`):
//!
//! | MySQL | Arrow |
//! |---|---|
//! | TINYINT / SMALLINT / MEDIUMINT / INT / BIGINT | Int8 / Int16 / Int32 / Int32 / Int64 (UInt* when UNSIGNED) |
//! | TINYINT(1) / BOOL | Int8 (like Osiris/pandas: an integer, not a boolean) |
//! | BIT(1) / BIT(n>1) | Boolean / UInt64 |
//! | YEAR | UInt16 |
//! | DECIMAL(p,s) | Decimal128(p,s) for p ≤ 38, Decimal256(p,s) above, parsed exactly from the server's text |
//! | FLOAT / DOUBLE | Float32 / Float64 |
//! | DATE | Date32 |
//! | TIME / TIME(1–3) / TIME(4–6) | Duration(Second / Millisecond / Microsecond) (TIME spans ±838:59:59, not a time of day; the unit keeps the column's fractional digits, so the CSV writer prints MySQL's own text) |
//! | DATETIME(fsp) | Timestamp(Microsecond, None) |
//! | TIMESTAMP(fsp) | Timestamp(Microsecond, "+00:00"): UTC, spelled as an offset because arrow without chrono-tz cannot display or cast named zones (the session runs with `time_zone='+00:00'`) |
//! | CHAR / VARCHAR / TEXT / ENUM / SET / JSON | Utf8 (utf8mb4 on the wire) |
//! | BINARY / VARBINARY / BLOB / GEOMETRY, or any string with the `binary` charset | Binary |
//! | NULL-typed expression (`SELECT NULL`) | Null |

use std::sync::Arc;

use arrow_buffer::i256;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use mysql_async::Column;
use mysql_async::consts::{ColumnFlags, ColumnType};

/// Charset number of `binary` (BINARY/VARBINARY/BLOB and binary strings).
const BINARY_CHARSET: u16 = 63;

/// What to do with zero dates (`0000-00-00`, `2024-00-15`, `0000-00-00 00:00:00`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZeroDates {
    /// Read them as NULL (what pandas/Osiris end up with).
    Null,
    /// Fail the step.
    Error,
}

/// The Arrow-side kind of one result column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Null,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Bool,
    Float32,
    Float64,
    Decimal128(u8, i8),
    Decimal256(u8, i8),
    Date32,
    /// TIME, in the unit of its fractional seconds.
    Duration(TimeUnit),
    Timestamp,
    TimestampUtc,
    Utf8,
    Binary,
}

impl Kind {
    /// Maps a column's metadata; `Err` names the unsupported MySQL type.
    pub fn of(col: &Column) -> Result<Kind, String> {
        let unsigned = col.flags().contains(ColumnFlags::UNSIGNED_FLAG);
        let pick = |s: Kind, u: Kind| if unsigned { u } else { s };
        use ColumnType::*;
        Ok(match col.column_type() {
            MYSQL_TYPE_NULL => Kind::Null,
            MYSQL_TYPE_TINY => pick(Kind::Int8, Kind::UInt8),
            MYSQL_TYPE_SHORT => pick(Kind::Int16, Kind::UInt16),
            MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG => pick(Kind::Int32, Kind::UInt32),
            MYSQL_TYPE_LONGLONG => pick(Kind::Int64, Kind::UInt64),
            MYSQL_TYPE_YEAR => Kind::UInt16,
            MYSQL_TYPE_BIT => {
                if col.column_length() == 1 {
                    Kind::Bool
                } else {
                    Kind::UInt64
                }
            }
            MYSQL_TYPE_FLOAT => Kind::Float32,
            MYSQL_TYPE_DOUBLE => Kind::Float64,
            MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => {
                let scale = col.decimals().min(76);
                // The display length counts the digits, a '.' when scale > 0 and a '-' when signed.
                let len = col.column_length() as i64 - i64::from(scale > 0) - i64::from(!unsigned);
                let precision = len.clamp(i64::from(scale.max(1)), 76) as u8;
                if precision <= 38 {
                    Kind::Decimal128(precision, scale as i8)
                } else {
                    Kind::Decimal256(precision, scale as i8)
                }
            }
            MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => Kind::Date32,
            MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => Kind::Duration(time_unit(col.decimals())),
            MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => Kind::Timestamp,
            MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => Kind::TimestampUtc,
            // MySQL 8 reports JSON with the binary charset, but the text is utf8mb4.
            MYSQL_TYPE_JSON => Kind::Utf8,
            MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_ENUM
            | MYSQL_TYPE_SET
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_BLOB => {
                if col.character_set() == BINARY_CHARSET {
                    Kind::Binary
                } else {
                    Kind::Utf8
                }
            }
            MYSQL_TYPE_GEOMETRY | MYSQL_TYPE_VECTOR => Kind::Binary,
            other => return Err(format!("{other:?}")),
        })
    }

    /// Whether values are integers (the kinds `partition_on` accepts).
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Kind::Int8
                | Kind::Int16
                | Kind::Int32
                | Kind::Int64
                | Kind::UInt8
                | Kind::UInt16
                | Kind::UInt32
                | Kind::UInt64
        )
    }

    pub fn data_type(self) -> DataType {
        match self {
            Kind::Null => DataType::Null,
            Kind::Int8 => DataType::Int8,
            Kind::Int16 => DataType::Int16,
            Kind::Int32 => DataType::Int32,
            Kind::Int64 => DataType::Int64,
            Kind::UInt8 => DataType::UInt8,
            Kind::UInt16 => DataType::UInt16,
            Kind::UInt32 => DataType::UInt32,
            Kind::UInt64 => DataType::UInt64,
            Kind::Bool => DataType::Boolean,
            Kind::Float32 => DataType::Float32,
            Kind::Float64 => DataType::Float64,
            Kind::Decimal128(p, s) => DataType::Decimal128(p, s),
            Kind::Decimal256(p, s) => DataType::Decimal256(p, s),
            Kind::Date32 => DataType::Date32,
            Kind::Duration(unit) => DataType::Duration(unit),
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::TimestampUtc => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            Kind::Utf8 => DataType::Utf8,
            Kind::Binary => DataType::Binary,
        }
    }
}

/// The Duration unit of a TIME column with `decimals` fractional digits: TIME → seconds,
/// TIME(3) → milliseconds, TIME(6) → microseconds (TIME(1), TIME(2) take milliseconds, TIME(4),
/// TIME(5) and an expression of unknown precision microseconds).
fn time_unit(decimals: u8) -> TimeUnit {
    match decimals {
        0 => TimeUnit::Second,
        1..=3 => TimeUnit::Millisecond,
        _ => TimeUnit::Microsecond,
    }
}

/// The Arrow schema of a result set (every field nullable: views, joins and expressions make
/// the server's NOT NULL flag unreliable).
pub fn schema_of(columns: &[Column], kinds: &[Kind]) -> SchemaRef {
    let fields: Vec<Field> =
        columns.iter().zip(kinds).map(|(c, k)| Field::new(c.name_str().as_ref(), k.data_type(), true)).collect();
    Arc::new(Schema::new(fields))
}

pub use osiris_engine::calendar::days_from_civil;

/// Parses the server's DECIMAL text (`-123.4500`) into an unscaled integer with `scale` digits
/// after the point; rejects anything that is not exactly representable.
fn parse_decimal_digits(text: &[u8], scale: i8, mut push: impl FnMut(u8) -> bool) -> Result<bool, ()> {
    let (neg, rest) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let mut frac_digits: i32 = 0;
    let mut seen_point = false;
    let mut any = false;
    for &c in rest {
        match c {
            b'0'..=b'9' => {
                if seen_point {
                    if frac_digits >= i32::from(scale) {
                        // More fraction digits than the scale: only zeros may be dropped.
                        if c != b'0' {
                            return Err(());
                        }
                        continue;
                    }
                    frac_digits += 1;
                }
                if !push(c - b'0') {
                    return Err(());
                }
                any = true;
            }
            b'.' if !seen_point => seen_point = true,
            _ => return Err(()),
        }
    }
    if !any {
        return Err(());
    }
    for _ in frac_digits..i32::from(scale) {
        if !push(0) {
            return Err(());
        }
    }
    Ok(neg)
}

pub fn parse_decimal128(text: &[u8], scale: i8) -> Option<i128> {
    // Up to 18 digits fit a u64, whose arithmetic is several times cheaper than i128's.
    if text.len() <= 19 {
        let mut acc: u64 = 0;
        if let Ok(negative) = parse_decimal_digits(text, scale, |d| match acc.checked_mul(10) {
            Some(a) if a <= u64::MAX - 9 => {
                acc = a + u64::from(d);
                true
            }
            _ => false,
        }) {
            let v = i128::from(acc);
            return Some(if negative { -v } else { v });
        }
    }
    let mut acc: i128 = 0;
    let neg = parse_decimal_digits(text, scale, |d| match acc.checked_mul(10).and_then(|a| a.checked_add(d.into())) {
        Some(a) => {
            acc = a;
            true
        }
        None => false,
    })
    .ok()?;
    Some(if neg { -acc } else { acc })
}

pub fn parse_decimal256(text: &[u8], scale: i8) -> Option<i256> {
    let ten = i256::from_i128(10);
    let mut acc = i256::ZERO;
    let neg = parse_decimal_digits(text, scale, |d| {
        match acc.checked_mul(ten).and_then(|a| a.checked_add(i256::from_i128(d.into()))) {
            Some(a) => {
                acc = a;
                true
            }
            None => false,
        }
    })
    .ok()?;
    Some(if neg { acc.wrapping_neg() } else { acc })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal128(b"-123.4500", 4), Some(-1_234_500));
        assert_eq!(parse_decimal128(b"12.5", 3), Some(12_500));
        assert_eq!(parse_decimal128(b"0.000", 3), Some(0));
        assert_eq!(parse_decimal128(b"7", 0), Some(7));
        assert_eq!(parse_decimal128(b"1.25", 1), None);
        assert_eq!(parse_decimal128(b"1e5", 0), None);
        assert_eq!(parse_decimal128(b"", 0), None);
        let big = "-99999999999999999999999999999999999.999999999999999999999999999999";
        assert_eq!(parse_decimal256(big.as_bytes(), 30).unwrap().to_string(), big.replace('.', ""));
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1000, 1, 1), -354_285);
        assert_eq!(days_from_civil(9999, 12, 31), 2_932_896);
        assert_eq!(days_from_civil(0, 3, 1), -719_468);
        assert_eq!(days_from_civil(1, 1, 1), -719_162);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(parse_decimal128(b"-1029.47", 2), Some(-102_947));
        assert_eq!(parse_decimal128(b"9999999999999999.99", 2), Some(999_999_999_999_999_999));
        assert_eq!(parse_decimal128(b"99999999999999999999.99", 2), Some(9_999_999_999_999_999_999_999));
    }
}
