//! Deterministic synthetic orders data, shaped like `bench.orders` (see
//! `../shared/bench/gen_orders.sql`): every value is a function of the row id, a small share of
//! text values need CSV quoting (commas, quotes, newlines, tabs, non-ASCII), and nullable columns
//! are NULL in about 2 % of rows.

use osiris_engine::calendar::civil_from_days;
use std::io::{self, Write};

/// The CSV header of [`write_orders_csv`].
pub const ORDERS_HEADER: &str =
    "id,customer_id,quantity,is_paid,amount,weight,product_name,coupon_code,order_date,created_at,notes";

/// A small deterministic mixing function (splitmix64), so rows need no RNG state.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Writes rows `1..=rows` of the orders data set as RFC 4180 CSV with a header.
pub fn write_orders_csv(out: &mut impl Write, rows: u64) -> io::Result<()> {
    writeln!(out, "{ORDERS_HEADER}")?;
    for id in 1..=rows {
        write_row(out, id)?;
    }
    Ok(())
}

fn write_row(out: &mut impl Write, id: u64) -> io::Result<()> {
    let h = mix(id);
    let null = |salt: u64| mix(h ^ salt) % 100 < 2;
    let customer = 1 + h % 100_000;
    write!(out, "{id},{customer},")?;
    if !null(1) {
        write!(out, "{}", ((h >> 8) % 200) as i64 - 20)?;
    }
    out.write_all(b",")?;
    if !null(2) {
        out.write_all(if (h >> 16) & 1 == 0 { b"true" } else { b"false" })?;
    }
    out.write_all(b",")?;
    if !null(3) {
        let cents = ((h >> 20) % 10_000_000) as i64 - 500_000;
        let sign = if cents < 0 { "-" } else { "" };
        write!(out, "{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)?;
    }
    out.write_all(b",")?;
    if !null(4) {
        // Full-precision doubles in Python repr style (shortest round trip).
        let weight = (mix(h ^ 5) >> 11) as f64 / (1u64 << 53) as f64 * 1000.0;
        write!(out, "{weight:?}")?;
    }
    out.write_all(b",")?;
    match mix(h ^ 6) % 1000 {
        0 => out.write_all(b"\"Widget, large\"")?,
        1 => out.write_all(b"\"The \"\"best\"\" gadget\"")?,
        2 => out.write_all(b"\"Two\nlines\"")?,
        3 => out.write_all("Šroubek malý".as_bytes())?,
        _ => write!(out, "Product {}", h % 5000)?,
    }
    out.write_all(b",")?;
    match mix(h ^ 7) % 100 {
        0 | 1 => {}
        2 => out.write_all(b"\"\"")?,
        n => write!(out, "CPN{n:04}")?,
    }
    let day = h % 1461;
    let (y, m, d) = civil_from_days(19_000 + day as i64);
    write!(out, ",{y:04}-{m:02}-{d:02},")?;
    let secs = (h >> 12) % 86_400;
    let micros = (h >> 40) % 1_000_000;
    write!(out, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06},", secs / 3600, secs / 60 % 60, secs % 60)?;
    writeln!(out, "\"{{\"\"source\"\": \"\"web\"\", \"\"items\"\": {}, \"\"note\"\": \"\"order {id}\"\"}}\"", h % 9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_deterministic_and_well_formed() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_orders_csv(&mut a, 2000).unwrap();
        write_orders_csv(&mut b, 2000).unwrap();
        assert_eq!(a, b);
        let mut reader = csv::ReaderBuilder::new().from_reader(a.as_slice());
        let records: Vec<_> = reader.records().collect::<Result<_, _>>().unwrap();
        assert_eq!(records.len(), 2000);
        assert!(records.iter().all(|r| r.len() == 11));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_000), (2022, 1, 8));
    }
}
