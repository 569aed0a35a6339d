//! `CREATE TABLE` from an Arrow schema (the table `create_if_missing` makes).
//!
//! | Arrow | MySQL column |
//! |---|---|
//! | Int8 / Int16 / Int32 / Int64 | TINYINT / SMALLINT / INT / BIGINT |
//! | UInt8 … UInt64 | the same, UNSIGNED |
//! | Boolean | BOOLEAN (TINYINT(1)) |
//! | Float16 / Float32 / Float64 | FLOAT / FLOAT / DOUBLE |
//! | Decimal32…256(p,s) | DECIMAL(p,s) (p ≤ 65; a negative scale gives DECIMAL(p-s,0)) |
//! | Date32 / Date64 | DATE |
//! | Timestamp(s / ms / us, ns) | DATETIME / DATETIME(3) / DATETIME(6), with or without a zone (values in UTC) |
//! | Duration, Time32, Time64 (s / ms / us, ns) | TIME / TIME(3) / TIME(6) |
//! | Utf8 / LargeUtf8 / Utf8View | LONGTEXT; VARCHAR(255) COLLATE utf8mb4_bin in the primary key |
//! | Binary / LargeBinary / BinaryView | LONGBLOB; VARBINARY(255) in the primary key |
//! | FixedSizeBinary(n) | BINARY(n) for n ≤ 255, else LONGBLOB |
//! | Null | TEXT (nullable) |
//! | Dictionary(_, v) | the type of v |

use arrow_schema::{DataType, Schema, TimeUnit};

use crate::extract::quote_ident;

fn fsp(unit: &TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Second => "",
        TimeUnit::Millisecond => "(3)",
        TimeUnit::Microsecond | TimeUnit::Nanosecond => "(6)",
    }
}

fn decimal(p: u8, s: i8) -> Result<String, String> {
    let (p, s) = if s < 0 { (u32::from(p) + u32::from(s.unsigned_abs()), 0) } else { (u32::from(p), s as u32) };
    if p > 65 {
        return Err(format!("DECIMAL precision {p} is more than MySQL's maximum of 65 digits"));
    }
    if s > 30 {
        return Err(format!("DECIMAL scale {s} is more than MySQL's maximum of 30 digits"));
    }
    Ok(format!("DECIMAL({p},{s})"))
}

/// The MySQL column type for `dt`; `in_key` when the column is part of the primary key.
pub fn column_type(dt: &DataType, in_key: bool) -> Result<String, String> {
    Ok(match dt {
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "TINYINT UNSIGNED".into(),
        DataType::UInt16 => "SMALLINT UNSIGNED".into(),
        DataType::UInt32 => "INT UNSIGNED".into(),
        DataType::UInt64 => "BIGINT UNSIGNED".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => decimal(*p, *s)?,
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(unit, _) => format!("DATETIME{}", fsp(unit)),
        DataType::Duration(unit) | DataType::Time32(unit) | DataType::Time64(unit) => format!("TIME{}", fsp(unit)),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            if in_key {
                "VARCHAR(255) COLLATE utf8mb4_bin".into()
            } else {
                "LONGTEXT".into()
            }
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            if in_key {
                "VARBINARY(255)".into()
            } else {
                "LONGBLOB".into()
            }
        }
        DataType::FixedSizeBinary(n) if (1..=255).contains(n) => format!("BINARY({n})"),
        DataType::FixedSizeBinary(_) => "LONGBLOB".into(),
        DataType::Null => "TEXT".into(),
        DataType::Dictionary(_, value) => column_type(value, in_key)?,
        other => return Err(format!("Arrow type {other} has no MySQL column type")),
    })
}

/// `CREATE TABLE <name> (…)` for `schema`, with `PRIMARY KEY (keys)` when `keys` is not empty.
/// `keys` must name columns of `schema` (case-insensitively). Errors name the column.
pub fn create_table(qualified_name: &str, schema: &Schema, keys: &[String]) -> Result<String, String> {
    let mut cols = Vec::with_capacity(schema.fields().len() + 1);
    for f in schema.fields() {
        let in_key = keys.iter().any(|k| k.to_lowercase() == f.name().to_lowercase());
        let ty = column_type(f.data_type(), in_key).map_err(|e| format!("column '{}': {e}", f.name()))?;
        let null = if in_key || !f.is_nullable() && *f.data_type() != DataType::Null { " NOT NULL" } else { " NULL" };
        cols.push(format!("  {} {ty}{null}", quote_ident(f.name())));
    }
    if !keys.is_empty() {
        let names: Vec<String> = keys.iter().map(|k| quote_ident(k)).collect();
        cols.push(format!("  PRIMARY KEY ({})", names.join(", ")));
    }
    Ok(format!("CREATE TABLE {qualified_name} (\n{}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", cols.join(",\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::Field;

    #[test]
    fn ddl_for_a_schema_with_a_key() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("n", DataType::UInt64, true),
            Field::new("d", DataType::Decimal256(65, 30), true),
            Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())), false),
            Field::new("we`ird", DataType::Null, true),
        ]);
        assert_eq!(
            create_table("`x`", &schema, &["ID".to_string()]).unwrap(),
            "CREATE TABLE `x` (\n  `id` VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,\n  `n` BIGINT UNSIGNED NULL,\n  \
             `d` DECIMAL(65,30) NULL,\n  `t` DATETIME(6) NOT NULL,\n  `we``ird` TEXT NULL,\n  PRIMARY KEY (`ID`)\n) \
             ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        );
        assert!(column_type(&DataType::Decimal256(76, 0), false).unwrap_err().contains("65"));
        assert_eq!(column_type(&DataType::Decimal128(5, -2), false).unwrap(), "DECIMAL(7,0)");
    }
}
