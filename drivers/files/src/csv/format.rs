//! Text forms of Arrow values, shared by the CSV writer (which prints them) and the CSV extractor
//! (which infers a type only when the text is exactly what the writer would print back).
//!
//! * integers: plain decimal; booleans: `true` / `false`
//! * floats: shortest round-trip digits in Python `repr` style (`1.5`, `100.0`, `1e-05`, `1e+16`,
//!   `nan`, `inf`, `-inf`)
//! * decimals: exact, with their scale (`12.50`, `-0.05`)
//! * dates: `YYYY-MM-DD`; timestamps: `YYYY-MM-DDTHH:MM:SS` plus `.fff`, `.ffffff` or `.fffffffff`
//!   only when the fraction is non-zero (`Z` appended for zoned timestamps, printed in UTC);
//!   times: `HH:MM:SS[.fff…]`
//! * durations: MySQL's TIME text, `[-]HH:MM:SS` with hours past 24 when needed (`838:59:59`)
//!   and as many fractional digits as the unit has (none for seconds, `.fff` for milliseconds,
//!   `.ffffff` for microseconds, `.fffffffff` for nanoseconds), so a MySQL TIME(6) prints
//!   `12:34:56.500000` as MySQL does
//! * binary: lowercase hex

/// Writes an unsigned integer.
#[inline]
pub(crate) fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Writes a signed integer.
#[inline]
pub(crate) fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
}

fn u128_digits(v: u128, buf: &mut [u8; 40]) -> usize {
    let mut i = buf.len();
    // Almost every decimal fits 64 bits, whose division is many times cheaper than 128-bit.
    if let Ok(mut small) = u64::try_from(v) {
        loop {
            i -= 1;
            buf[i] = b'0' + (small % 10) as u8;
            small /= 10;
            if small == 0 {
                return i;
            }
        }
    }
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    i
}

/// Writes `digits` (no sign) with `scale` digits after the decimal point.
fn write_scaled_digits(out: &mut Vec<u8>, negative: bool, digits: &[u8], scale: i8) {
    let is_zero = digits.iter().all(|&d| d == b'0');
    if negative && !is_zero {
        out.push(b'-');
    }
    if scale <= 0 {
        out.extend_from_slice(digits);
        if !is_zero {
            out.extend(std::iter::repeat_n(b'0', (-(scale as i16)) as usize));
        }
        return;
    }
    let s = scale as usize;
    if digits.len() <= s {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', s - digits.len()));
        out.extend_from_slice(digits);
    } else {
        let split = digits.len() - s;
        out.extend_from_slice(&digits[..split]);
        out.push(b'.');
        out.extend_from_slice(&digits[split..]);
    }
}

/// Writes a 128-bit decimal exactly (`1250`, scale 2 → `12.50`).
pub(crate) fn write_decimal128(out: &mut Vec<u8>, v: i128, scale: i8) {
    let mut buf = [0u8; 40];
    let start = u128_digits(v.unsigned_abs(), &mut buf);
    write_scaled_digits(out, v < 0, &buf[start..], scale);
}

/// Writes a decimal given as its unscaled integer text (used for 256-bit decimals).
pub(crate) fn write_decimal_text(out: &mut Vec<u8>, unscaled: &str, scale: i8) {
    let (neg, digits) = match unscaled.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, unscaled),
    };
    write_scaled_digits(out, neg, digits.as_bytes(), scale);
}

/// Writes a float in Python `repr` style from its shortest round-trip decimal text (ryu's
/// output: `-0.00012`, `1.5e16`, `5e-324`).
fn write_float_shortest(out: &mut Vec<u8>, text: &[u8]) {
    let (negative, rest) = match text.split_first() {
        Some((b'-', r)) => (true, r),
        _ => (false, text),
    };
    let e_pos = rest.iter().position(|&b| b == b'e').unwrap_or(rest.len());
    let (mantissa, exponent_text) = rest.split_at(e_pos);
    let mut exp: i32 = 0;
    let mut exp_negative = false;
    for &b in exponent_text.iter().skip(1) {
        match b {
            b'-' => exp_negative = true,
            b'0'..=b'9' => exp = exp * 10 + i32::from(b - b'0'),
            _ => {}
        }
    }
    if exp_negative {
        exp = -exp;
    }
    let point = mantissa.iter().position(|&b| b == b'.').unwrap_or(mantissa.len());
    let mut digits = [0u8; 40];
    let mut n = 0;
    for &b in mantissa {
        if b != b'.' && n < digits.len() {
            digits[n] = b;
            n += 1;
        }
    }
    // Scientific exponent of the first significant digit.
    let leading_zeros = digits[..n].iter().take_while(|&&d| d == b'0').count();
    let mut sig = &digits[leading_zeros.min(n.saturating_sub(1))..n];
    let exp = point as i32 - 1 - leading_zeros as i32 + exp;
    while sig.len() > 1 && sig[sig.len() - 1] == b'0' {
        sig = &sig[..sig.len() - 1];
    }
    write_float_digits(out, negative, sig, exp);
}

/// Writes `digits` (significant, no point) × 10^`exp` of the first digit, as Python's `repr`.
fn write_float_digits(out: &mut Vec<u8>, negative: bool, digits: &[u8], exp: i32) {
    if negative {
        out.push(b'-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.extend_from_slice(digits);
                out.extend(std::iter::repeat_n(b'0', int_len - digits.len()));
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&digits[..int_len]);
                out.push(b'.');
                out.extend_from_slice(&digits[int_len..]);
            }
        } else {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
            out.extend_from_slice(digits);
        }
    } else {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            out.push(b'0');
        }
        write_u64(out, a as u64);
    }
}

macro_rules! float_writer {
    ($name:ident, $t:ty) => {
        /// Writes a float as its shortest round-trip text in Python `repr` style.
        pub(crate) fn $name(out: &mut Vec<u8>, v: $t) {
            if v.is_nan() {
                out.extend_from_slice(b"nan");
            } else if v.is_infinite() {
                out.extend_from_slice(if v < 0.0 { b"-inf" } else { b"inf" });
            } else if v == 0.0 {
                out.extend_from_slice(if v.is_sign_negative() { b"-0.0" } else { b"0.0" });
            } else {
                // ryu: the shortest digits that round-trip, several times faster than core::fmt.
                let mut buf = ryu::Buffer::new();
                write_float_shortest(out, buf.format_finite(v).as_bytes());
            }
        }
    };
}

float_writer!(write_f64, f64);
float_writer!(write_f32, f32);

pub(crate) use osiris_engine::calendar::{civil_from_days, days_from_civil, days_in_month};

#[inline]
fn write_2(out: &mut Vec<u8>, v: u32) {
    let v = v % 100;
    out.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8]);
}

/// Writes a date given as days since the epoch (`YYYY-MM-DD`; years outside 0..=9999 get a sign).
pub(crate) fn write_date(out: &mut Vec<u8>, days: i64) {
    let (y, m, d) = civil_from_days(days);
    if (0..=9999).contains(&y) {
        let y = y as u32;
        write_2(out, y / 100);
        write_2(out, y % 100);
    } else {
        out.push(if y < 0 { b'-' } else { b'+' });
        write_u64(out, y.unsigned_abs());
    }
    out.push(b'-');
    write_2(out, m);
    out.push(b'-');
    write_2(out, d);
}

/// Writes `HH:MM:SS` and the `%.f`-style fraction of a time of day.
pub(crate) fn write_time(out: &mut Vec<u8>, secs_of_day: u32, nanos: u32) {
    write_2(out, secs_of_day / 3600);
    out.push(b':');
    write_2(out, secs_of_day / 60 % 60);
    out.push(b':');
    write_2(out, secs_of_day % 60);
    write_fraction(out, nanos);
}

/// chrono `%.f`: nothing for 0, else 3, 6 or 9 digits.
fn write_fraction(out: &mut Vec<u8>, nanos: u32) {
    if nanos == 0 {
        return;
    }
    let (value, digits) = if nanos.is_multiple_of(1_000_000) {
        (nanos / 1_000_000, 3)
    } else if nanos.is_multiple_of(1000) {
        (nanos / 1000, 6)
    } else {
        (nanos, 9)
    };
    out.push(b'.');
    let mut buf = [b'0'; 9];
    let mut v = value;
    for i in (0..digits).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[..digits]);
}

/// Writes a duration of `v` units (`digits` fractional digits per second: 0, 3, 6 or 9) as
/// MySQL's TIME text: `[-]HH:MM:SS[.f…]`, hours not wrapped at 24.
pub(crate) fn write_duration(out: &mut Vec<u8>, v: i64, digits: u32) {
    let per_sec = 10u64.pow(digits);
    let magnitude = v.unsigned_abs();
    if v < 0 {
        out.push(b'-');
    }
    let (secs, fraction) = (magnitude / per_sec, magnitude % per_sec);
    let hours = secs / 3600;
    if hours < 10 {
        out.push(b'0');
    }
    write_u64(out, hours);
    out.push(b':');
    write_2(out, (secs / 60 % 60) as u32);
    out.push(b':');
    write_2(out, (secs % 60) as u32);
    if digits > 0 {
        out.push(b'.');
        // A leading 1 keeps the fraction's leading zeros: 5000 µs → 1_005_000 → "005000".
        let start = out.len();
        write_u64(out, per_sec + fraction);
        out.remove(start);
    }
}

/// Writes a timestamp given as seconds and nanoseconds since the epoch.
pub(crate) fn write_timestamp(out: &mut Vec<u8>, secs: i64, nanos: u32) {
    write_date(out, secs.div_euclid(86_400));
    out.push(b'T');
    write_time(out, secs.rem_euclid(86_400) as u32, nanos);
}

/// Splits a value in `per_sec` units per second into (seconds, nanoseconds).
#[inline]
pub(crate) fn split_units(v: i64, per_sec: i64) -> (i64, u32) {
    let secs = v.div_euclid(per_sec);
    let rem = v.rem_euclid(per_sec);
    (secs, (rem * (1_000_000_000 / per_sec)) as u32)
}

/// Writes bytes as lowercase hex.
pub(crate) fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut out = Vec::new();
        write_f64(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_python_repr() {
        let cases = [
            (1.5, "1.5"),
            (100.0, "100.0"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (1e16, "1e+16"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (9999999999999998.0, "9999999999999998.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-2.5e-300, "-2.5e-300"),
            (1e22, "1e+22"),
            (123456.789, "123456.789"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (1.0, "1.0"),
            (-3.0, "-3.0"),
            (0.00012, "0.00012"),
        ];
        for (v, want) in cases {
            assert_eq!(f(v), want, "{v:e}");
        }
        let mut out = Vec::new();
        write_f32(&mut out, 0.1f32);
        assert_eq!(out, b"0.1");
    }

    #[test]
    fn floats_round_trip_across_the_range() {
        // A deterministic walk over bit patterns: every finite value must parse back exactly.
        let mut bits: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            bits = bits.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let v = f64::from_bits(bits);
            if !v.is_finite() {
                continue;
            }
            let text = f(v);
            assert_eq!(text.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{text}");
            let w = v as f32;
            let mut out = Vec::new();
            write_f32(&mut out, w);
            let text = String::from_utf8(out).unwrap();
            assert_eq!(text.parse::<f32>().unwrap().to_bits(), w.to_bits(), "{text}");
        }
    }

    #[test]
    fn decimals_exact() {
        let d = |v: i128, s: i8| {
            let mut out = Vec::new();
            write_decimal128(&mut out, v, s);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(d(1250, 2), "12.50");
        assert_eq!(d(-5, 2), "-0.05");
        assert_eq!(d(0, 2), "0.00");
        assert_eq!(d(7, 0), "7");
        assert_eq!(d(12, -2), "1200");
        assert_eq!(d(i128::MIN, 10), "-17014118346046923173168730371.5884105728");
        let mut out = Vec::new();
        write_decimal_text(&mut out, "-123", 5);
        assert_eq!(out, b"-0.00123");
    }

    #[test]
    fn dates_and_times() {
        for days in [-800_000i64, -719_469, -719_468, -1, 0, 1, 59, 365, 10_957, 2_932_896, 2_932_897] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        // The fast path agrees with the general one day by day.
        let mut previous = civil_from_days(-719_469);
        for days in -719_468..=2_932_896i64 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!((y, m, d) > previous);
            assert!((1..=12).contains(&m) && (1..=days_in_month(y, m)).contains(&d));
            previous = (y, m, d);
        }
        let mut out = Vec::new();
        write_date(&mut out, 0);
        assert_eq!(out, b"1970-01-01");
        out.clear();
        let (s, n) = split_units(-1, 1_000_000);
        write_timestamp(&mut out, s, n);
        assert_eq!(out, b"1969-12-31T23:59:59.999999");
        out.clear();
        let (s, n) = split_units(1_700_000_000_120, 1000);
        write_timestamp(&mut out, s, n);
        assert_eq!(out, b"2023-11-14T22:13:20.120");
        out.clear();
        write_time(&mut out, 3661, 5);
        assert_eq!(out, b"01:01:01.000000005");
    }

    #[test]
    fn durations_print_as_mysql_time() {
        let d = |v: i64, digits: u32| {
            let mut out = Vec::new();
            write_duration(&mut out, v, digits);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(d(45_296, 0), "12:34:56");
        assert_eq!(d(-3723, 0), "-01:02:03");
        assert_eq!(d(3_020_399, 0), "838:59:59");
        assert_eq!(d(-3_020_399, 0), "-838:59:59");
        assert_eq!(d(0, 0), "00:00:00");
        assert_eq!(d(45_296_500_000, 6), "12:34:56.500000");
        assert_eq!(d(-1_500, 3), "-00:00:01.500");
        assert_eq!(d(5, 6), "00:00:00.000005");
        assert_eq!(d(1, 9), "00:00:00.000000001");
        assert_eq!(d(i64::MIN, 9), "-2562047:47:16.854775808");
    }
}
