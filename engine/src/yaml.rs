//! YAML with source locations, and canonical YAML emission.
//!
//! [`parse_located`] reads a YAML document into a `serde_json::Value` and remembers where every
//! node came from (1-based line and column), so that validation can point at the exact spot of a
//! problem. [`to_canonical_yaml`] writes a value as deterministic block-style YAML with sorted
//! keys between `---` and `...` markers (the format of Osiris's `manifest.yaml`).
//!
//! ```
//! use osiris_engine::yaml::{parse_located, PathSeg};
//! let doc = parse_located("a:\n  b: [1, 2]\n").unwrap();
//! assert_eq!(doc.value["a"]["b"][1], 2);
//! assert_eq!(doc.location(&[PathSeg::key("a"), PathSeg::key("b")]), Some((2, 6)));
//! ```

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;

/// One step of a path into a document: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathSeg {
    /// A mapping key.
    Key(String),
    /// A sequence index (0-based).
    Index(usize),
}

impl PathSeg {
    /// A key segment.
    pub fn key(name: impl Into<String>) -> Self {
        PathSeg::Key(name.into())
    }
}

/// Renders a path like `steps[1].config.delimiter` (empty for the root).
pub fn path_to_string(path: &[PathSeg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSeg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// A YAML syntax error with its position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// What is wrong (one line).
    pub message: String,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// 1-based column, when known.
    pub column: Option<u32>,
}

/// A parsed document: its value and where every node of it starts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LocatedDocument {
    /// The document as JSON (mapping keys in document order).
    pub value: Value,
    locations: HashMap<Vec<PathSeg>, (u32, u32)>,
    key_locations: HashMap<Vec<PathSeg>, (u32, u32)>,
}

impl LocatedDocument {
    /// A document without location information (for values built in code).
    pub fn from_value(value: Value) -> Self {
        LocatedDocument { value, ..Default::default() }
    }

    /// Line and column (1-based) where the value at `path` starts.
    pub fn location(&self, path: &[PathSeg]) -> Option<(u32, u32)> {
        self.locations.get(path).copied()
    }

    /// Line and column of the mapping key that leads to `path` (falls back to the value).
    pub fn key_location(&self, path: &[PathSeg]) -> Option<(u32, u32)> {
        self.key_locations.get(path).copied().or_else(|| self.location(path))
    }

    /// The keys of the mapping at `path` in document order (`serde_json::Map` sorts them).
    pub fn keys_in_order(&self, path: &[PathSeg]) -> Vec<String> {
        let mut node = &self.value;
        for seg in path {
            let next = match seg {
                PathSeg::Key(k) => node.get(k.as_str()),
                PathSeg::Index(i) => node.get(*i),
            };
            match next {
                Some(n) => node = n,
                None => return Vec::new(),
            }
        }
        let Some(map) = node.as_object() else { return Vec::new() };
        let mut keys: Vec<(Option<(u32, u32)>, String)> = map
            .keys()
            .map(|k| {
                let mut p = path.to_vec();
                p.push(PathSeg::Key(k.clone()));
                (self.key_locations.get(&p).copied(), k.clone())
            })
            .collect();
        keys.sort_by_key(|(loc, _)| loc.unwrap_or((u32::MAX, u32::MAX)));
        keys.into_iter().map(|(_, k)| k).collect()
    }

    /// The location of `path`, or of its nearest ancestor that has one.
    pub fn nearest_location(&self, path: &[PathSeg]) -> Option<(u32, u32)> {
        (0..=path.len()).rev().find_map(|n| self.key_location(&path[..n]))
    }
}

/// A YAML node with located children.
#[derive(Clone, Debug, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => Node::Int(i),
            Err(_) => Node::UInt(v),
        })
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<Spanned<String>, Spanned<Node>>()? {
            entries.push((k, v));
        }
        Ok(Node::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

fn pos(loc: &serde_saphyr::Location) -> Option<(u32, u32)> {
    let (line, column) = (loc.line(), loc.column());
    if line == 0 {
        return None;
    }
    Some((u32::try_from(line).unwrap_or(u32::MAX), u32::try_from(column).unwrap_or(u32::MAX)))
}

/// Parses one YAML document, keeping the location of every node. An empty document is `null`.
pub fn parse_located(text: &str) -> Result<LocatedDocument, YamlError> {
    if text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    }) {
        return Ok(LocatedDocument::from_value(Value::Null));
    }
    let root = serde_saphyr::from_str::<Spanned<Node>>(text).map_err(|e| {
        let (line, column) = e.location().as_ref().and_then(pos).unzip();
        YamlError { message: first_line(&e.to_string()), line, column }
    })?;
    let mut doc = LocatedDocument::default();
    let mut path = Vec::new();
    doc.value = convert(&root, &mut path, &mut doc);
    Ok(doc)
}

/// The first meaningful line of a (possibly multi-line, snippet-rendering) error message.
/// Position prefixes (`error: line 5 column 20:`) and library advice are dropped, since the
/// caller reports the position itself.
fn first_line(message: &str) -> String {
    let line = message.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("invalid YAML");
    let mut m = line.strip_prefix("error:").map(str::trim_start).unwrap_or(line);
    if m.starts_with("line ")
        && let Some(idx) = m.find(": ")
    {
        m = &m[idx + 2..];
    }
    let m = m.split(", set DuplicateKeyPolicy").next().unwrap_or(m);
    if m.is_empty() { "invalid YAML".to_string() } else { m.to_string() }
}

fn convert(node: &Spanned<Node>, path: &mut Vec<PathSeg>, doc: &mut LocatedDocument) -> Value {
    if let Some(p) = pos(&node.referenced) {
        doc.locations.insert(path.clone(), p);
    }
    match &node.value {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Int(i) => Value::Number((*i).into()),
        Node::UInt(u) => Value::Number((*u).into()),
        Node::Float(f) => Number::from_f64(*f).map(Value::Number).unwrap_or_else(|| Value::String(f.to_string())),
        Node::Str(s) => Value::String(s.clone()),
        Node::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(PathSeg::Index(i));
                out.push(convert(item, path, doc));
                path.pop();
            }
            Value::Array(out)
        }
        Node::Map(entries) => {
            let mut out = Map::new();
            for (k, v) in entries {
                path.push(PathSeg::Key(k.value.clone()));
                if let Some(p) = pos(&k.referenced) {
                    doc.key_locations.insert(path.clone(), p);
                }
                let value = convert(v, path, doc);
                path.pop();
                out.insert(k.value.clone(), value);
            }
            Value::Object(out)
        }
    }
}

/// Writes `value` as canonical YAML: block style, mapping keys sorted, strings quoted only when
/// a plain scalar would be read back as something else, first line `---`, last line `...`.
pub fn to_canonical_yaml(value: &Value) -> String {
    let mut out = String::from("---\n");
    match value {
        Value::Object(m) if !m.is_empty() => emit_map(m, 0, &mut out),
        Value::Array(a) if !a.is_empty() => emit_seq(a, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out.push_str("...\n");
    out
}

fn indent(n: usize, out: &mut String) {
    for _ in 0..n {
        out.push(' ');
    }
}

fn sorted(m: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = m.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

fn emit_map(m: &Map<String, Value>, level: usize, out: &mut String) {
    for (k, v) in sorted(m) {
        indent(level, out);
        out.push_str(&quote_str(k));
        out.push(':');
        emit_child(v, level, out);
    }
}

fn emit_seq(a: &[Value], level: usize, out: &mut String) {
    for v in a {
        indent(level, out);
        out.push('-');
        match v {
            Value::Object(m) if !m.is_empty() => {
                // First entry on the dash line, the rest aligned under it.
                let mut first = true;
                for (k, child) in sorted(m) {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        indent(level + 2, out);
                    }
                    out.push_str(&quote_str(k));
                    out.push(':');
                    emit_child(child, level + 2, out);
                }
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                emit_seq(inner, level + 2, out);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn emit_child(v: &Value, level: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            emit_map(m, level + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            emit_seq(a, level, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote_str(s),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
}

/// Whether a plain scalar `s` would be read back as a non-string (or is otherwise unsafe plain).
fn needs_quotes(s: &str) -> bool {
    if s.is_empty() || s.trim() != s {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "null" | "~" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | ".nan" | ".inf" | "-.inf" | "+.inf"
    ) {
        return true;
    }
    let first = s.chars().next().unwrap_or(' ');
    if first.is_ascii_digit() || matches!(first, '-' | '+' | '.') {
        // Anything number-like (ints, floats, octal/hex, dates, times) is quoted, except
        // dotted version-like strings with two or more dots and no other punctuation which
        // YAML 1.2 still reads as strings; keep it simple and quote unless clearly safe.
        let looks_numeric = s.chars().all(|c| c.is_ascii_hexdigit() || "-+._:eExXoO".contains(c));
        if looks_numeric && s.matches('.').count() != 2 {
            return true;
        }
        if first == '-' && (s.len() == 1 || s.starts_with("- ") || s == "---") {
            return true;
        }
        if s.starts_with("...") {
            return true;
        }
    }
    if "!&*[]{}|>'\"%@`#,?:".contains(first) {
        return true;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return true;
    }
    s.chars().any(|c| c.is_control() || c == '\u{feff}')
}

fn quote_str(s: &str) -> String {
    if !needs_quotes(s) {
        return s.to_string();
    }
    if s.chars().any(|c| c.is_control() || c == '\u{feff}') {
        // Double-quoted with escapes; JSON escaping is valid YAML double-quoted syntax.
        return serde_json::to_string(s).unwrap_or_else(|_| format!("'{}'", s.replace('\'', "''")));
    }
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn locations_of_nested_nodes() {
        let text = "oml_version: \"0.1.0\"\nsteps:\n  - id: a\n    config:\n      delimiter: \";\"\n";
        let doc = parse_located(text).unwrap();
        let path = [PathSeg::key("steps"), PathSeg::Index(0), PathSeg::key("config"), PathSeg::key("delimiter")];
        assert_eq!(doc.key_location(&path), Some((5, 7)));
        assert_eq!(doc.location(&[PathSeg::key("steps"), PathSeg::Index(0)]), Some((3, 5)));
        assert_eq!(path_to_string(&path), "steps[0].config.delimiter");
        assert_eq!(doc.value["steps"][0]["config"]["delimiter"], ";");
        let doc = parse_located("m:\n  zeta: 1\n  alpha: 2\n  mid: 3\n").unwrap();
        assert_eq!(doc.keys_in_order(&[PathSeg::key("m")]), vec!["zeta", "alpha", "mid"]);
    }

    #[test]
    fn syntax_error_has_line() {
        let err = parse_located("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line.is_some(), "{err:?}");
        let err = parse_located("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.line, Some(2), "{err:?}");
    }

    /// `osiris init` writes an `osiris.yaml` with long comment blocks before block values; the
    /// parser must not cap how many comment lines precede a node (issue 9, §3.1).
    #[test]
    fn long_comment_blocks_anywhere() {
        let block = |indent: &str| (0..100).map(|i| format!("{indent}# comment {i}\n")).collect::<String>();
        let text = format!(
            "{top}a:\n{b1}  b:\n{b2}    - 1\n{b3}    - x: 1\n{b4}      y:\n{b5}        z: 2\n{end}",
            top = block(""),
            b1 = block("  "),
            b2 = block("    "),
            b3 = block("    "),
            b4 = block("      "),
            b5 = block("        "),
            end = block(""),
        );
        let doc = parse_located(&text).unwrap();
        assert_eq!(doc.value, json!({"a": {"b": [1, {"x": 1, "y": {"z": 2}}]}}));
        let z = [PathSeg::key("a"), PathSeg::key("b"), PathSeg::Index(1), PathSeg::key("y"), PathSeg::key("z")];
        assert_eq!(doc.key_location(&z), Some((606, 9)));
        let err = parse_located(&format!("{}a: [1\n", block(""))).unwrap_err();
        assert!(err.line.is_some_and(|l| l > 100), "{err:?}");
    }

    #[test]
    fn empty_document_is_null() {
        assert_eq!(parse_located("# nothing\n").unwrap().value, Value::Null);
    }

    #[test]
    fn canonical_yaml_round_trips() {
        let v = json!({
            "z": 1, "a": {"y": "true", "b": [ {"k": "v", "a": null}, "x: y", "", "0.1.0", "1.5", "it's"]},
            "m": [], "e": {}, "s": "line\nbreak", "d": "2024-01-01", "r": "${run_id}", "h": "9c0e1a2",
            "u": "héllo", "f": 1.5, "neg": -3, "dash": "-", "at": "@mysql.db"
        });
        let text = to_canonical_yaml(&v);
        assert!(text.starts_with("---\n") && text.ends_with("...\n"), "{text}");
        let back = parse_located(&text).unwrap().value;
        assert_eq!(back, v, "{text}");
        assert_eq!(to_canonical_yaml(&back), text);
    }
}
