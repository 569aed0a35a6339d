//! Canonical JSON and fingerprints, byte-compatible with Osiris's `canonical.py`/`fingerprint.py`.
//!
//! * [`canonical_json`]: keys sorted recursively, separators `,` and `:`, non-ASCII kept
//!   (Python `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`).
//! * [`python_json_ascii`]: the same with `ensure_ascii=True` (`\uXXXX` escapes, surrogate pairs
//!   above U+FFFF), used for the manifest hash.
//! * [`fingerprint`]: `"sha256:" + hex(sha256(utf-8 bytes))`.
//!
//! ```
//! use osiris_engine::compile::canonical::{canonical_json, python_json_ascii, fingerprint};
//! let v = serde_json::json!({"b": [1, 2.5, "é"], "a": null});
//! assert_eq!(canonical_json(&v), r#"{"a":null,"b":[1,2.5,"é"]}"#);
//! assert_eq!(python_json_ascii(&v), r#"{"a":null,"b":[1,2.5,"\u00e9"]}"#);
//! assert!(fingerprint("x").starts_with("sha256:"));
//! ```

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Canonical compact JSON with sorted keys and non-ASCII characters kept.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, false, &mut out);
    out
}

/// Python's `json.dumps(value, sort_keys=True, separators=(",", ":"))` (ASCII-only output).
pub fn python_json_ascii(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, true, &mut out);
    out
}

/// Hex sha256 of `text`.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// `sha256:<hex>` of `text`.
pub fn fingerprint(text: &str) -> String {
    format!("sha256:{}", sha256_hex(text))
}

fn write_value(v: &Value, ascii: bool, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(f) = n.as_f64() {
                out.push_str(&python_float(f));
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_str(s, ascii, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, ascii, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut entries: Vec<_> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(k, ascii, out);
                out.push(':');
                write_value(item, ascii, out);
            }
            out.push('}');
        }
    }
}

/// Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and from 1e16.
fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".to_string() } else { "-Infinity".to_string() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0".to_string() } else { "0.0".to_string() };
    }
    let sci = format!("{f:e}"); // e.g. "1.5e-7", "-2e20"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let s = format!("{f}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

fn write_str(s: &str, ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if ascii && (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_compatible_output() {
        let v = json!({"z": {"b": 1, "a": [true, false, null]}, "s": "a\"b\\c\n\t\u{1}\u{7f}", "emoji": "😀", "f": [1.0, 0.1, 1e16, 1.5e-7, 123456.789]});
        assert_eq!(
            python_json_ascii(&v),
            r#"{"emoji":"\ud83d\ude00","f":[1.0,0.1,1e+16,1.5e-07,123456.789],"s":"a\"b\\c\n\t\u0001\u007f","z":{"a":[true,false,null],"b":1}}"#
        );
        assert_eq!(
            canonical_json(&v),
            "{\"emoji\":\"😀\",\"f\":[1.0,0.1,1e+16,1.5e-07,123456.789],\"s\":\"a\\\"b\\\\c\\n\\t\\u0001\u{7f}\",\"z\":{\"a\":[true,false,null],\"b\":1}}"
        );
    }

    #[test]
    fn known_fingerprints() {
        // Values from Osiris's manifest: sha256("osiris-compiler/0.1") and sha256("registry-v0.1").
        assert_eq!(
            fingerprint("osiris-compiler/0.1"),
            "sha256:7f68eafb369ac0bd1b34b3c15659dc6fda602677620969f91d2a00415e88a805"
        );
        assert_eq!(
            fingerprint("registry-v0.1"),
            "sha256:2c528c04bb5cf058decb2b93d0c02a47e5cea3f59c2e78b8005dd72837ef2203"
        );
    }
}
