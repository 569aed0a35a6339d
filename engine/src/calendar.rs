//! The proleptic Gregorian calendar as days since 1970-01-01 (Howard Hinnant's algorithms), shared
//! by every driver that turns dates into Arrow's Date32/Timestamp values or back into text.
//!
//! ```
//! use osiris_engine::calendar::{civil_from_days, days_from_civil};
//! assert_eq!(days_from_civil(2024, 2, 29), 19_782);
//! assert_eq!(civil_from_days(19_782), (2024, 2, 29));
//! ```

/// (year, month, day) → days since 1970-01-01.
#[inline]
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    // Years 1..=9999 (every date a database holds): unsigned arithmetic, whose divisions by
    // constants compile to multiplications. Hot in row decoding.
    if (1..=9999).contains(&y) && (1..=12).contains(&m) {
        let y = y as u32 - u32::from(m <= 2);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + d - 1;
        return i64::from(y * 365 + y / 4 - y / 100 + y / 400 + doy) - 719_468;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 → (year, month, day).
#[inline]
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Years 0..=9999: unsigned 32-bit arithmetic, as above. Hot in CSV encoding.
    if (-719_468..=2_932_896).contains(&days) {
        let z = (days + 719_468) as u32;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + u32::from(m <= 2);
        return (i64::from(y), m, d);
    }
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days in a month (0 for a month outside 1..=12).
pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}
