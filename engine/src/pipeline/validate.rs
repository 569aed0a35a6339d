//! OML validation: every problem at once, each with a stable code, a location and a hint.
//!
//! Codes follow Osiris's `OMLValidator` where one exists (`missing_required_key`, `duplicate_id`,
//! `unknown_config_key`, ...). Beyond Osiris, `unknown_component` is an error, and
//! `dependency_cycle`, `yaml_syntax` and config checks against the component spec are added.
//!
//! ```
//! use osiris_engine::{registry::Registry, yaml::parse_located, pipeline::validate::validate};
//! let doc = parse_located("oml_version: \"0.1.0\"\nname: x\nsteps: []\n").unwrap();
//! let report = validate(&doc, Some("p.yaml"), &Registry::new());
//! assert_eq!(report.errors[0].code, "empty_steps");
//! assert_eq!(report.errors[0].to_string(), "p.yaml:3:1: error[empty_steps] steps: 'steps' is empty — hint: add at least one step");
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::params::has_placeholder;
use crate::connections::secret_names::is_config_secret_key;
use crate::registry::Registry;
use crate::spec::{ComponentSpec, Mode, OverridePolicy};
use crate::yaml::{LocatedDocument, PathSeg, YamlError, path_to_string};

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The pipeline cannot be compiled.
    Error,
    /// The pipeline compiles, but something looks wrong.
    Warning,
}

/// One problem found in a pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code (`unknown_config_key`, `dependency_cycle`, ...).
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// The pipeline file, when known.
    pub file: Option<String>,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// 1-based column, when known.
    pub column: Option<u32>,
    /// Where in the document, like `steps[1].config.delimiter` (empty for the whole document).
    pub path: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic without file or location.
    pub fn new(severity: Severity, code: &str, path: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            code: code.to_string(),
            message: message.into(),
            file: None,
            line: None,
            column: None,
            path: path.to_string(),
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Sets the location.
    pub fn at(mut self, file: Option<&str>, location: Option<(u32, u32)>) -> Self {
        self.file = file.map(str::to_string);
        self.line = location.map(|l| l.0);
        self.column = location.map(|l| l.1);
        self
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut prefix = String::new();
        if let Some(file) = &self.file {
            prefix.push_str(file);
        }
        if let Some(line) = self.line {
            if !prefix.is_empty() {
                prefix.push(':');
            }
            prefix.push_str(&line.to_string());
            if let Some(col) = self.column {
                prefix.push(':');
                prefix.push_str(&col.to_string());
            }
        }
        if !prefix.is_empty() {
            write!(f, "{prefix}: ")?;
        }
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}[{}] ", self.code)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " — hint: {hint}")?;
        }
        Ok(())
    }
}

/// The outcome of validation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Problems that prevent compilation.
    pub errors: Vec<Diagnostic>,
    /// Problems that do not.
    pub warnings: Vec<Diagnostic>,
}

impl Report {
    /// No errors (warnings allowed).
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// Adds a diagnostic to the list matching its severity.
    pub fn push(&mut self, d: Diagnostic) {
        match d.severity {
            Severity::Error => self.errors.push(d),
            Severity::Warning => self.warnings.push(d),
        }
    }

    /// Errors, then warnings.
    pub fn all(&self) -> impl Iterator<Item = &Diagnostic> {
        self.errors.iter().chain(self.warnings.iter())
    }
}

/// The `yaml_syntax` diagnostic of a document that is not valid YAML.
pub fn yaml_error_diagnostic(err: &YamlError, file: Option<&str>) -> Diagnostic {
    let location = err.line.map(|l| (l, err.column.unwrap_or(1)));
    Diagnostic::new(Severity::Error, "yaml_syntax", "", format!("malformed YAML: {}", err.message))
        .with_hint("fix the YAML syntax at this position (indentation, quoting, brackets, duplicate keys)")
        .at(file, location)
}

/// Top-level keys that are required.
const REQUIRED_KEYS: &[&str] = &["oml_version", "name", "steps"];
/// Top-level keys that belong to older formats.
const FORBIDDEN_KEYS: &[(&str, &str)] = &[
    ("version", "use `oml_version: \"0.1.0\"`"),
    (
        "connectors",
        "define connections in osiris_connections.yaml and reference them as `connection: \"@family.alias\"`",
    ),
    ("tasks", "use `steps:`"),
    ("outputs", "use writer steps (for example filesystem.csv_writer)"),
];
/// Top-level keys known to this engine.
const KNOWN_KEYS: &[&str] = &[
    "oml_version",
    "name",
    "steps",
    "description",
    "metadata",
    "schedule",
    "params",
    "profiles",
    super::params::ALLOW_UNDECLARED_KEY,
];
/// Step keys known to this engine.
const STEP_KEYS: &[&str] = &["id", "component", "uses", "mode", "needs", "config", "with", "description"];
const OML_MODES: &[&str] = &["read", "transform", "write"];

/// Validates a parsed pipeline against the OML rules and the component specs of `registry`.
pub fn validate(doc: &LocatedDocument, file: Option<&str>, registry: &Registry) -> Report {
    let mut v = Validator { doc, file, registry, report: Report::default() };
    v.run();
    // File order (stable, so problems at one place keep their check order).
    let key = |d: &Diagnostic| (d.line.unwrap_or(u32::MAX), d.column.unwrap_or(u32::MAX));
    v.report.errors.sort_by_key(key);
    v.report.warnings.sort_by_key(key);
    v.report
}

struct Validator<'a> {
    doc: &'a LocatedDocument,
    file: Option<&'a str>,
    registry: &'a Registry,
    report: Report,
}

fn key(k: &str) -> PathSeg {
    PathSeg::key(k)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
}

/// Levenshtein distance (on chars).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.chars().count().max(word.chars().count()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn is_valid_connection_ref(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('@') else { return false };
    let ok = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match rest.split_once('.') {
        Some((fam, alias)) => ok(fam) && ok(alias),
        None => false,
    }
}

/// The `invalid_id` rule: a step id names `cfg/<id>.json` and `artifacts/<id>/`, so it is not empty,
/// not `.` or `..`, and has no `/`, `\` or NUL.
pub fn is_safe_step_id(id: &str) -> bool {
    !id.trim().is_empty() && id != "." && id != ".." && !id.contains(['/', '\\', '\0'])
}

impl Validator<'_> {
    fn push(&mut self, severity: Severity, code: &str, path: &[PathSeg], message: String, hint: Option<String>) {
        let mut d = Diagnostic::new(severity, code, &path_to_string(path), message)
            .at(self.file, self.doc.nearest_location(path));
        d.hint = hint;
        self.report.push(d);
    }

    fn error(&mut self, code: &str, path: &[PathSeg], message: String, hint: Option<String>) {
        self.push(Severity::Error, code, path, message, hint);
    }

    fn warning(&mut self, code: &str, path: &[PathSeg], message: String, hint: Option<String>) {
        self.push(Severity::Warning, code, path, message, hint);
    }

    /// `${...}` in a step's `id`, `needs`, `component` or `mode`: these are checked before
    /// parameters are substituted and name files and the graph, so they must be literal.
    fn placeholder_not_allowed(&mut self, path: &[PathSeg], what: &str) {
        self.error(
            "placeholder_not_allowed",
            path,
            format!("'{what}' must be written literally; `${{...}}` placeholders are not allowed here"),
            Some(
                "use parameters only inside `config`; write the step id, needs, component and mode as plain text"
                    .into(),
            ),
        );
    }

    fn run(&mut self) {
        let doc = self.doc;
        let Some(root) = doc.value.as_object() else {
            self.error(
                "invalid_type",
                &[],
                format!("the pipeline must be a mapping, found {}", type_name(&doc.value)),
                Some("start the file with `oml_version: \"0.1.0\"`, `name:` and `steps:`".into()),
            );
            return;
        };
        for req in REQUIRED_KEYS {
            if !root.contains_key(*req) {
                self.error(
                    "missing_required_key",
                    &[],
                    format!("missing required key '{req}'"),
                    Some(match *req {
                        "oml_version" => "add `oml_version: \"0.1.0\"`".to_string(),
                        "name" => "add `name: <pipeline-name>`".to_string(),
                        _ => "add a `steps:` list".to_string(),
                    }),
                );
            }
        }
        for k in root.keys() {
            if let Some((_, hint)) = FORBIDDEN_KEYS.iter().find(|(f, _)| f == k) {
                self.error(
                    "forbidden_key",
                    &[key(k)],
                    format!("key '{k}' is not allowed in OML 0.1.0"),
                    Some(hint.to_string()),
                );
            } else if !KNOWN_KEYS.contains(&k.as_str()) {
                let hint = did_you_mean(k, KNOWN_KEYS.iter().copied())
                    .map(|s| format!("did you mean '{s}'?"))
                    .unwrap_or_else(|| format!("known keys: {}", KNOWN_KEYS.join(", ")));
                self.warning("unknown_key", &[key(k)], format!("unknown top-level key '{k}' (ignored)"), Some(hint));
            }
        }
        match root.get("oml_version") {
            None => {}
            Some(Value::String(s)) if s == super::OML_VERSION => {}
            Some(Value::String(s)) => self.warning(
                "unsupported_version",
                &[key("oml_version")],
                format!("oml_version '{s}' is not supported; this engine implements {}", super::OML_VERSION),
                Some(format!("use `oml_version: \"{}\"`", super::OML_VERSION)),
            ),
            Some(other) => self.error(
                "invalid_version_type",
                &[key("oml_version")],
                format!("oml_version must be a string, found {}", type_name(other)),
                Some(format!("quote it: `oml_version: \"{}\"`", super::OML_VERSION)),
            ),
        }
        match root.get("name") {
            None => {}
            Some(Value::String(s)) if s.trim().is_empty() => self.error(
                "empty_name",
                &[key("name")],
                "name is empty".into(),
                Some("give the pipeline a name".into()),
            ),
            Some(Value::String(s)) => {
                let ok = s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                if !ok {
                    self.warning(
                        "naming_convention",
                        &[key("name")],
                        format!("name '{s}' does not follow the convention ^[a-z0-9][a-z0-9-]*$"),
                        Some("use lower-case letters, digits and '-'".into()),
                    );
                }
            }
            Some(other) => self.error(
                "invalid_name_type",
                &[key("name")],
                format!("name must be a string, found {}", type_name(other)),
                None,
            ),
        }
        for block in ["params", "profiles", "metadata"] {
            if let Some(v) = root.get(block).filter(|v| !v.is_null() && !v.is_object()) {
                self.error(
                    "invalid_type",
                    &[key(block)],
                    format!("'{block}' must be a mapping, found {}", type_name(v)),
                    None,
                );
            }
        }
        if let Some(v) = root.get(super::params::ALLOW_UNDECLARED_KEY).filter(|v| !v.is_boolean()) {
            self.error(
                "invalid_type",
                &[key(super::params::ALLOW_UNDECLARED_KEY)],
                format!("'{}' must be true or false, found {}", super::params::ALLOW_UNDECLARED_KEY, type_name(v)),
                None,
            );
        }
        if let Some(Value::Object(profiles)) = root.get("profiles") {
            for (p, body) in profiles {
                let params = body.get("params");
                if !body.is_object() || params.is_some_and(|v| !v.is_null() && !v.is_object()) {
                    self.error(
                        "invalid_type",
                        &[key("profiles"), key(p)],
                        format!("profile '{p}' must be a mapping with a `params:` mapping"),
                        Some(format!("write `profiles: {{{p}: {{params: {{name: value}}}}}}`")),
                    );
                }
            }
        }
        match root.get("steps") {
            None => {}
            Some(Value::Array(steps)) if steps.is_empty() => self.error(
                "empty_steps",
                &[key("steps")],
                "'steps' is empty".into(),
                Some("add at least one step".into()),
            ),
            Some(Value::Array(steps)) => self.steps(steps),
            Some(other) => self.error(
                "invalid_steps_type",
                &[key("steps")],
                format!("'steps' must be a list, found {}", type_name(other)),
                Some("write `steps:` followed by `- id: ...` items".into()),
            ),
        }
        self.inline_secrets(root);
    }

    fn steps(&mut self, steps: &[Value]) {
        // Ids first, so that `needs` can be checked against all of them.
        let mut ids: Vec<Option<String>> = Vec::with_capacity(steps.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, step) in steps.iter().enumerate() {
            let id = step.get("id").and_then(Value::as_str).map(str::to_string);
            if let Some(id) = &id {
                if let Some(first) = seen.get(id) {
                    let where_first = self
                        .doc
                        .nearest_location(&[key("steps"), PathSeg::Index(*first), key("id")])
                        .map(|(l, _)| format!(" (first defined at line {l})"))
                        .unwrap_or_default();
                    self.error(
                        "duplicate_id",
                        &[key("steps"), PathSeg::Index(i), key("id")],
                        format!("duplicate step id '{id}'{where_first}"),
                        Some("step ids must be unique; rename one of them".into()),
                    );
                } else {
                    seen.insert(id.clone(), i);
                }
            }
            ids.push(id);
        }
        let known_ids: Vec<&str> = seen.keys().map(String::as_str).collect();
        let mut edges: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, step) in steps.iter().enumerate() {
            let base = [key("steps"), PathSeg::Index(i)];
            let Some(obj) = step.as_object() else {
                self.error(
                    "invalid_step_type",
                    &base,
                    format!("step must be a mapping, found {}", type_name(step)),
                    Some("write each step as `- id: ...` with `component`, `mode` and `config`".into()),
                );
                continue;
            };
            for k in obj.keys() {
                if !STEP_KEYS.contains(&k.as_str()) {
                    let hint = did_you_mean(k, STEP_KEYS.iter().copied())
                        .map(|s| format!("did you mean '{s}'?"))
                        .unwrap_or_else(|| "data flow comes only from `needs`; the key is ignored".into());
                    let path = [key("steps"), PathSeg::Index(i), key(k)];
                    self.warning("unknown_key", &path, format!("unknown step key '{k}' (ignored)"), Some(hint));
                }
            }
            let id_label = ids[i].clone().unwrap_or_else(|| format!("#{}", i + 1));
            match obj.get("id") {
                None => self.error(
                    "missing_step_field",
                    &base,
                    format!("step {id_label} has no 'id'"),
                    Some("add `id: <unique-name>`".into()),
                ),
                Some(Value::String(id)) if id.contains("${") => {
                    self.placeholder_not_allowed(&[key("steps"), PathSeg::Index(i), key("id")], "id")
                }
                Some(Value::String(id)) if !is_safe_step_id(id) => self.error(
                    "invalid_id",
                    &[key("steps"), PathSeg::Index(i), key("id")],
                    format!("step id '{id}' cannot be used as a file name"),
                    Some("use letters, digits, '-' and '_'".into()),
                ),
                Some(Value::String(_)) => {}
                Some(other) => self.error(
                    "invalid_id_type",
                    &[key("steps"), PathSeg::Index(i), key("id")],
                    format!("step id must be a string, found {}", type_name(other)),
                    None,
                ),
            }
            let comp_key = if obj.contains_key("component") { "component" } else { "uses" };
            let mut spec: Option<&ComponentSpec> = None;
            match obj.get(comp_key) {
                None => self.error(
                    "missing_step_field",
                    &base,
                    format!("step '{id_label}' has no 'component'"),
                    Some("add `component: <family.name>` (see `osiris components list`)".into()),
                ),
                Some(Value::String(name)) if name.contains("${") => {
                    self.placeholder_not_allowed(&[key("steps"), PathSeg::Index(i), key(comp_key)], comp_key)
                }
                Some(Value::String(name)) => match self.registry.get(name) {
                    Some(c) => spec = Some(c.spec()),
                    None => {
                        let hint = did_you_mean(name, self.registry.names())
                            .map(|s| format!("did you mean '{s}'? (see `osiris components list`)"))
                            .unwrap_or_else(|| "see `osiris components list` for the available components".into());
                        self.error(
                            "unknown_component",
                            &[key("steps"), PathSeg::Index(i), key(comp_key)],
                            format!("unknown component '{name}' in step '{id_label}'"),
                            Some(hint),
                        );
                    }
                },
                Some(other) => self.error(
                    "invalid_component_type",
                    &[key("steps"), PathSeg::Index(i), key(comp_key)],
                    format!("component must be a string, found {}", type_name(other)),
                    None,
                ),
            }
            match obj.get("mode") {
                None => self.error(
                    "missing_step_field",
                    &base,
                    format!("step '{id_label}' has no 'mode'"),
                    Some("add `mode: read`, `mode: transform` or `mode: write`".into()),
                ),
                Some(Value::String(m)) if m.contains("${") => {
                    self.placeholder_not_allowed(&[key("steps"), PathSeg::Index(i), key("mode")], "mode")
                }
                Some(Value::String(m)) if OML_MODES.contains(&m.as_str()) => {
                    if let (Some(spec), Some(mode)) = (spec, Mode::from_oml(m))
                        && !spec.supports(mode)
                    {
                        let supported: Vec<&str> = spec.modes.iter().map(|m| oml_mode_name(*m)).collect();
                        self.error(
                            "incompatible_mode",
                            &[key("steps"), PathSeg::Index(i), key("mode")],
                            format!("component '{}' does not support mode '{m}'", spec.name),
                            Some(format!("use mode: {}", supported.join(" or "))),
                        );
                    }
                }
                Some(other) => {
                    let shown = other.as_str().map(str::to_string).unwrap_or_else(|| other.to_string());
                    let hint = match shown.as_str() {
                        "extract" => "use `mode: read`".to_string(),
                        s => did_you_mean(s, OML_MODES.iter().copied())
                            .map(|m| format!("did you mean '{m}'?"))
                            .unwrap_or_else(|| "use read, transform or write".into()),
                    };
                    self.error(
                        "invalid_mode",
                        &[key("steps"), PathSeg::Index(i), key("mode")],
                        format!("invalid mode '{shown}' (expected read, transform or write)"),
                        Some(hint),
                    );
                }
            }
            // needs
            let mut deps: Vec<usize> = Vec::new();
            match obj.get("needs") {
                None => {
                    if i > 0 && ids[i - 1].is_some() {
                        deps.push(i - 1);
                    }
                }
                Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    for (j, item) in items.iter().enumerate() {
                        let path = [key("steps"), PathSeg::Index(i), key("needs"), PathSeg::Index(j)];
                        match item {
                            Value::String(dep) if dep.contains("${") => self.placeholder_not_allowed(&path, "needs"),
                            Value::String(dep) => match seen.get(dep) {
                                Some(&target) => deps.push(target),
                                None => {
                                    let hint = did_you_mean(dep, known_ids.iter().copied())
                                        .map(|s| format!("did you mean '{s}'?"))
                                        .unwrap_or_else(|| format!("known step ids: {}", sorted_join(&known_ids)));
                                    self.error(
                                        "unknown_dependency",
                                        &path,
                                        format!("step '{id_label}' needs unknown step '{dep}'"),
                                        Some(hint),
                                    );
                                }
                            },
                            other => self.error(
                                "invalid_dependency_type",
                                &path,
                                format!("a dependency must be a step id string, found {}", type_name(other)),
                                None,
                            ),
                        }
                    }
                }
                Some(other) => self.error(
                    "invalid_needs_type",
                    &[key("steps"), PathSeg::Index(i), key("needs")],
                    format!("'needs' must be a list of step ids, found {}", type_name(other)),
                    Some("write `needs: [step-id]`".into()),
                ),
            }
            edges.insert(i, deps);
            // config
            let cfg_key = if obj.contains_key("config") { "config" } else { "with" };
            match obj.get(cfg_key) {
                None | Some(Value::Null) => {
                    if let Some(spec) = spec {
                        self.config(i, &id_label, spec, &Map::new(), cfg_key);
                    }
                }
                Some(Value::Object(cfg)) => {
                    if let Some(spec) = spec {
                        self.config(i, &id_label, spec, cfg, cfg_key);
                    } else if let Some(conn) = cfg.get("connection") {
                        self.connection_ref(i, cfg_key, conn, None, &id_label);
                    }
                }
                Some(other) => self.error(
                    "invalid_config_type",
                    &[key("steps"), PathSeg::Index(i), key(cfg_key)],
                    format!("'config' must be a mapping, found {}", type_name(other)),
                    None,
                ),
            }
        }
        self.cycles(&ids, &edges);
    }

    fn connection_ref(&mut self, i: usize, cfg_key: &str, conn: &Value, spec: Option<&ComponentSpec>, id: &str) {
        let path = [key("steps"), PathSeg::Index(i), key(cfg_key), key("connection")];
        let hint = "write `connection: \"@family.alias\"` naming an alias in osiris_connections.yaml";
        match conn {
            Value::String(s) if has_placeholder(s) => {}
            Value::String(s) if is_valid_connection_ref(s) => {
                let family = s[1..].split('.').next().unwrap_or_default();
                match spec.map(|s| (s, s.connection.as_ref())) {
                    Some((spec, None)) => self.error(
                        "invalid_connection_ref",
                        &path,
                        format!("component '{}' of step '{id}' takes no connection, but '{s}' is given", spec.name),
                        Some("remove `connection`".into()),
                    ),
                    Some((spec, Some(c))) if c.family != family => self.error(
                        "invalid_connection_ref",
                        &path,
                        format!(
                            "connection '{s}' is of family '{family}', but component '{}' uses family '{}'",
                            spec.name, c.family
                        ),
                        Some(format!("use a connection `@{}.<alias>`", c.family)),
                    ),
                    _ => {}
                }
            }
            Value::String(s) => self.error(
                "invalid_connection_ref",
                &path,
                format!("invalid connection reference '{s}' (expected @family.alias)"),
                Some(hint.into()),
            ),
            other => self.error(
                "invalid_connection_ref",
                &path,
                format!("connection must be a string like \"@family.alias\", found {}", type_name(other)),
                Some(hint.into()),
            ),
        }
    }

    fn config(&mut self, i: usize, id: &str, spec: &ComponentSpec, cfg: &Map<String, Value>, cfg_key: &str) {
        let conn_fields: Vec<(&str, OverridePolicy)> = spec
            .connection
            .iter()
            .flat_map(|c| c.fields.iter())
            .map(|f| (f.name.as_str(), f.override_policy))
            .collect();
        let has_conn_ref = cfg.get("connection").is_some_and(|c| c.as_str().is_some_and(|s| s.starts_with('@')));
        if let Some(conn) = cfg.get("connection") {
            self.connection_ref(i, cfg_key, conn, Some(spec), id);
        }
        let names: Vec<&str> = spec.config.iter().map(|f| f.name.as_str()).collect();
        for (k, value) in cfg {
            if k == "connection" {
                continue;
            }
            let path = [key("steps"), PathSeg::Index(i), key(cfg_key), key(k)];
            let Some(field) = spec.field(k) else {
                let hint =
                    did_you_mean(k, names.iter().copied()).map(|s| format!("did you mean '{s}'?")).unwrap_or_else(
                        || format!("valid keys: {} (see `osiris components show {}`)", names.join(", "), spec.name),
                    );
                self.error(
                    "unknown_config_key",
                    &path,
                    format!("unknown config key '{k}' for {}", spec.name),
                    Some(hint),
                );
                continue;
            };
            if has_conn_ref && let Some((_, policy)) = conn_fields.iter().find(|(n, _)| *n == k) {
                match policy {
                    OverridePolicy::Forbidden => self.error(
                        "forbidden_override",
                        &path,
                        format!("'{k}' is provided by the connection and may not be overridden in the step"),
                        Some("set it in osiris_connections.yaml instead".into()),
                    ),
                    OverridePolicy::Warning => self.warning(
                        "override_warning",
                        &path,
                        format!("'{k}' overrides the value from the connection"),
                        None,
                    ),
                    OverridePolicy::Allowed => {}
                }
            }
            if value.is_null() || value.as_str().is_some_and(has_placeholder) {
                continue;
            }
            if !field.field_type.accepts(value) {
                self.error(
                    "invalid_config_value",
                    &path,
                    format!(
                        "'{k}' must be {} {}, found {}",
                        article(field.field_type.as_str()),
                        field.field_type.as_str(),
                        type_name(value)
                    ),
                    field.default.as_ref().map(|d| format!("for example `{k}: {d}`")),
                );
            } else if !field.allowed.is_empty() && !field.allowed.contains(value) {
                let allowed: Vec<String> = field
                    .allowed
                    .iter()
                    .map(|a| a.as_str().map(str::to_string).unwrap_or_else(|| a.to_string()))
                    .collect();
                let shown = value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
                let hint = did_you_mean(&shown, allowed.iter().map(String::as_str))
                    .map(|s| format!("did you mean '{s}'?"))
                    .unwrap_or_else(|| format!("use one of: {}", allowed.join(", ")));
                self.error(
                    "invalid_config_value",
                    &path,
                    format!("invalid value '{shown}' for '{k}' (allowed: {})", allowed.join(", ")),
                    Some(hint),
                );
            }
        }
        for field in spec.config.iter().filter(|f| f.required) {
            if cfg.get(&field.name).is_some_and(|v| !v.is_null()) {
                continue;
            }
            if conn_fields.iter().any(|(n, _)| *n == field.name) {
                continue; // provided by the connection
            }
            let path: Vec<PathSeg> = if cfg.is_empty() {
                vec![key("steps"), PathSeg::Index(i)]
            } else {
                vec![key("steps"), PathSeg::Index(i), key(cfg_key)]
            };
            self.error(
                "missing_config_key",
                &path,
                format!("step '{id}' ({}) is missing required config key '{}'", spec.name, field.name),
                Some(format!("add `{}:` under `config:` ({})", field.name, field.description)),
            );
        }
    }

    fn cycles(&mut self, ids: &[Option<String>], edges: &BTreeMap<usize, Vec<usize>>) {
        // Iterative-free DFS with colors; every back edge yields one cycle.
        let n = ids.len();
        let mut color = vec![0u8; n];
        let mut stack: Vec<usize> = Vec::new();
        let mut found: BTreeSet<Vec<usize>> = BTreeSet::new();
        fn dfs(
            u: usize,
            edges: &BTreeMap<usize, Vec<usize>>,
            color: &mut [u8],
            stack: &mut Vec<usize>,
            found: &mut BTreeSet<Vec<usize>>,
        ) {
            color[u] = 1;
            stack.push(u);
            for &w in edges.get(&u).map(Vec::as_slice).unwrap_or(&[]) {
                if color[w] == 1 {
                    if let Some(pos) = stack.iter().position(|&s| s == w) {
                        let mut cycle = stack[pos..].to_vec();
                        // Normalize the rotation so each cycle is reported once.
                        if let Some(min_pos) = cycle.iter().enumerate().min_by_key(|(_, v)| **v).map(|(p, _)| p) {
                            cycle.rotate_left(min_pos);
                        }
                        found.insert(cycle);
                    }
                } else if color[w] == 0 {
                    dfs(w, edges, color, stack, found);
                }
            }
            stack.pop();
            color[u] = 2;
        }
        for u in 0..n {
            if color[u] == 0 {
                dfs(u, edges, &mut color, &mut stack, &mut found);
            }
        }
        for cycle in found {
            let names: Vec<String> =
                cycle.iter().map(|&s| ids[s].clone().unwrap_or_else(|| format!("#{}", s + 1))).collect();
            // Edges point from a step to what it needs; show the path in data-flow order.
            let mut flow: Vec<String> = names.iter().take(1).chain(names.iter().skip(1).rev()).cloned().collect();
            flow.push(names[0].clone());
            let first = cycle[0];
            let path = if self.doc.location(&[key("steps"), PathSeg::Index(first), key("needs")]).is_some() {
                vec![key("steps"), PathSeg::Index(first), key("needs")]
            } else {
                vec![key("steps"), PathSeg::Index(first)]
            };
            self.error(
                "dependency_cycle",
                &path,
                format!("dependency cycle: {}", flow.join(" → ")),
                Some(
                    "remove one of these `needs` entries (a step without `needs` depends on the previous step)".into(),
                ),
            );
        }
    }

    fn inline_secrets(&mut self, root: &Map<String, Value>) {
        let mut path = Vec::new();
        for (k, v) in root {
            path.push(key(k));
            if k == "steps"
                && let Value::Array(steps) = v
            {
                for (i, step) in steps.iter().enumerate() {
                    let spec_secrets: Vec<String> = step
                        .get("component")
                        .or_else(|| step.get("uses"))
                        .and_then(Value::as_str)
                        .and_then(|c| self.registry.get(c))
                        .map(|c| c.spec().secret_names().map(str::to_string).collect())
                        .unwrap_or_default();
                    path.push(PathSeg::Index(i));
                    self.scan_secrets(step, &spec_secrets, &mut path);
                    path.pop();
                }
            } else {
                self.check_secret_entry(k, v, &[], &path);
                self.scan_secrets(v, &[], &mut path);
            }
            path.pop();
        }
    }

    fn scan_secrets(&mut self, v: &Value, spec_secrets: &[String], path: &mut Vec<PathSeg>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    path.push(key(k));
                    self.check_secret_entry(k, child, spec_secrets, path);
                    self.scan_secrets(child, spec_secrets, path);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    path.push(PathSeg::Index(i));
                    self.scan_secrets(child, spec_secrets, path);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    fn check_secret_entry(&mut self, k: &str, v: &Value, spec_secrets: &[String], path: &[PathSeg]) {
        let Value::String(s) = v else { return };
        if s.is_empty() || s.starts_with("${") || s.chars().count() <= 4 {
            return;
        }
        if is_config_secret_key(k, spec_secrets.iter().map(String::as_str)) {
            self.error(
                "inline_secret",
                path,
                format!("inline secret in '{k}': plaintext secrets must not be written in a pipeline"),
                Some(format!(
                    "remove '{k}' and use a connection (`connection: \"@family.alias\"` in osiris_connections.yaml with `${{ENV_VAR}}`)"
                )),
            );
        }
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
}

fn oml_mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Extract => "read",
        Mode::Transform => "transform",
        Mode::Write => "write",
    }
}

fn sorted_join(items: &[&str]) -> String {
    let mut v = items.to_vec();
    v.sort_unstable();
    v.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::registry;
    use crate::yaml::parse_located;

    fn check(text: &str) -> Report {
        match parse_located(text) {
            Ok(doc) => validate(&doc, Some("pipeline.yaml"), &registry()),
            Err(e) => {
                let mut r = Report::default();
                r.push(yaml_error_diagnostic(&e, Some("pipeline.yaml")));
                r
            }
        }
    }

    fn codes(r: &Report) -> Vec<&str> {
        r.errors.iter().map(|d| d.code.as_str()).collect()
    }

    const GOOD: &str = r#"oml_version: "0.1.0"
name: good
steps:
  - id: extract
    component: db.extractor
    mode: read
    config:
      connection: "@db.main"
      query: "SELECT 1"
  - id: write
    component: files.writer
    mode: write
    config:
      path: out.csv
      delimiter: ";"
"#;

    #[test]
    fn valid_pipeline_has_no_errors() {
        let r = check(GOOD);
        assert!(r.is_valid(), "{:#?}", r.errors);
        assert!(r.warnings.is_empty(), "{:#?}", r.warnings);
    }

    #[test]
    fn placeholders_are_not_allowed_in_ids_needs_component_and_mode() {
        let text = r#"oml_version: "0.1.0"
name: p
params: {x: a, c: files.writer, m: write}
steps:
  - id: "${params.x}"
    component: files.writer
    mode: write
    config: {path: "${params.x}.csv"}
  - id: b
    component: "${params.c}"
    mode: "${params.m}"
    needs: ["${params.x}"]
    config: {path: b.csv}
"#;
        let r = check(text);
        assert_eq!(codes(&r), vec!["placeholder_not_allowed"; 4], "{:#?}", r.errors);
        let paths: Vec<&str> = r.errors.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, vec!["steps[0].id", "steps[1].component", "steps[1].mode", "steps[1].needs[0]"]);
        assert_eq!((r.errors[0].line, r.errors[0].column), (Some(5), Some(5)), "located at the key");
        assert!(r.errors[0].hint.as_deref().unwrap_or_default().contains("inside `config`"));
        // Placeholders in config stay allowed.
        assert!(
            check(&GOOD.replace("out.csv", "${params.out}")).errors.iter().all(|d| d.code != "placeholder_not_allowed")
        );
    }

    #[test]
    fn malformed_yaml_reports_line() {
        let r = check("oml_version: \"0.1.0\"\nname: x\nsteps:\n  - id: a\n    config: {path: [1, 2}\n");
        assert_eq!(codes(&r), vec!["yaml_syntax"]);
        assert_eq!(
            r.errors[0].to_string(),
            "pipeline.yaml:5:20: error[yaml_syntax] malformed YAML: mismatched bracket '[' closed by '}' — hint: fix the YAML syntax at this position (indentation, quoting, brackets, duplicate keys)"
        );
        let dup = check("a: 1\na: 2\n");
        assert_eq!(dup.errors[0].message, "malformed YAML: duplicate mapping key: a");
        assert_eq!(dup.errors[0].line, Some(2));
        assert_eq!(r.errors[0].line, Some(5), "{}", r.errors[0]);
        assert!(r.errors[0].to_string().starts_with("pipeline.yaml:5:"), "{}", r.errors[0]);
    }

    #[test]
    fn unknown_config_key_with_hint_and_location() {
        let text = GOOD.replace("delimiter: \";\"", "delimter: \";\"");
        let r = check(&text);
        assert_eq!(codes(&r), vec!["unknown_config_key"]);
        let d = &r.errors[0];
        assert_eq!((d.line, d.column), (Some(15), Some(7)));
        assert_eq!(
            d.to_string(),
            "pipeline.yaml:15:7: error[unknown_config_key] steps[1].config.delimter: unknown config key 'delimter' for files.writer — hint: did you mean 'delimiter'?"
        );
    }

    #[test]
    fn every_problem_reported_at_once() {
        let text = r#"oml_version: 0.1
name: Bad Name
tasks: []
extra: 1
steps:
  - id: a
    component: db.extractr
    mode: read
  - id: a
    component: files.writer
    mode: extract
    needs: [zzz, 3]
    config:
      path: 5
      newline: crlf2
      password: hunter2secret
  - id: c
    component: files.writer
    mode: read
    needs: "a"
    config:
      connection: "db.main"
  - "not a step"
  - id: d
    component: db.extractor
    mode: read
    config:
      connection: "@files.x"
      api_key: "${API_KEY}"
"#;
        let r = check(text);
        let got = codes(&r);
        for code in [
            "forbidden_key",
            "invalid_version_type",
            "unknown_component",
            "duplicate_id",
            "invalid_mode",
            "unknown_dependency",
            "invalid_dependency_type",
            "invalid_config_value",
            "unknown_config_key",
            "inline_secret",
            "incompatible_mode",
            "invalid_needs_type",
            "invalid_connection_ref",
            "invalid_step_type",
            "missing_config_key",
        ] {
            assert!(got.contains(&code), "missing {code} in {got:?}");
        }
        let warn: Vec<&str> = r.warnings.iter().map(|d| d.code.as_str()).collect();
        assert!(warn.contains(&"naming_convention") && warn.contains(&"unknown_key"), "{warn:?}");
        let unknown = r.errors.iter().find(|d| d.code == "unknown_component").unwrap();
        assert_eq!(unknown.hint.as_deref(), Some("did you mean 'db.extractor'? (see `osiris components list`)"));
        let secret = r.errors.iter().find(|d| d.code == "inline_secret").unwrap();
        assert!(!secret.to_string().contains("hunter2secret"));
        assert!(secret.to_string().contains("'password'") && secret.to_string().contains("use a connection"));
        assert_eq!(secret.line, Some(16));
        let mode = r.errors.iter().find(|d| d.code == "invalid_mode").unwrap();
        assert_eq!(mode.hint.as_deref(), Some("use `mode: read`"));
        // `${API_KEY}` is a reference, not an inline secret; only one inline_secret error.
        assert_eq!(got.iter().filter(|c| **c == "inline_secret").count(), 1);
        // The family mismatch `@files.x` for db.extractor is reported too.
        assert!(r.errors.iter().any(|d| d.code == "invalid_connection_ref" && d.message.contains("family 'files'")));
    }

    #[test]
    fn cycle_is_named() {
        let text = r#"oml_version: "0.1.0"
name: cyc
steps:
  - id: a
    component: db.transform
    mode: transform
    needs: [c]
    config: {query: x}
  - id: b
    component: db.transform
    mode: transform
    config: {query: x}
  - id: c
    component: db.transform
    mode: transform
    config: {query: x}
  - id: self
    component: db.transform
    mode: transform
    needs: [self]
    config: {query: x}
"#;
        let r = check(text);
        assert_eq!(codes(&r), vec!["dependency_cycle", "dependency_cycle"], "{:#?}", r.errors);
        assert!(r.errors[0].message.ends_with("a → b → c → a"), "{}", r.errors[0].message);
        assert_eq!(r.errors[0].line, Some(7));
        assert!(r.errors[1].message.ends_with("self → self"), "{}", r.errors[1].message);
    }

    #[test]
    fn missing_required_and_connection_provided_keys() {
        // `host` is required but provided by the connection; `query` is missing.
        let text = "oml_version: \"0.1.0\"\nname: m\nsteps:\n  - id: e\n    component: db.extractor\n    mode: read\n";
        let r = check(text);
        assert_eq!(codes(&r), vec!["missing_config_key"]);
        assert!(r.errors[0].message.contains("'query'"));
        let r = check("name: x\n");
        assert_eq!(codes(&r), vec!["missing_required_key", "missing_required_key"]);
        let r = check("- a\n");
        assert_eq!(codes(&r), vec!["invalid_type"]);
    }

    #[test]
    fn params_placeholders_skip_type_checks_and_forbidden_override() {
        let text = r#"oml_version: "0.1.0"
name: p
params: {batch: 5}
steps:
  - id: e
    component: db.extractor
    mode: read
    config:
      connection: "@db.main"
      query: "SELECT 1"
      batch: "${params.batch}"
      user: root
"#;
        let r = check(text);
        assert_eq!(codes(&r), vec!["unknown_config_key"], "{:#?}", r.errors);
    }
}
