//! `${params.NAME}` parameters, resolved like Osiris's `ParamsResolver`.
//!
//! Precedence, lowest to highest: the OML `params` default < environment `OSIRIS_PARAM_<NAME>`
//! (matched case-insensitively) < `profiles.<profile>.params` < CLI `--param NAME=VALUE`.
//! Substitution is textual: every string of the document is searched (recursively), and the
//! result is always a string, like Python's `str(value)`.
//!
//! ```
//! use std::collections::BTreeMap;
//! use osiris_engine::pipeline::params::{effective_params, substitute_params};
//! let doc = serde_json::json!({"params": {"since": "2024"}, "steps": [{"config": {"q": "y >= ${params.since}"}}]});
//! let params = effective_params(&doc, "dev", &BTreeMap::new(), &BTreeMap::new()).unwrap();
//! let out = substitute_params(&doc, &params).unwrap();
//! assert_eq!(out["steps"][0]["config"]["q"], "y >= 2024");
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::parse_param_decls;
use super::validate::{Diagnostic, Severity, did_you_mean};
use crate::yaml::{LocatedDocument, PathSeg};

/// Prefix of environment variables that set parameters.
pub const ENV_PREFIX: &str = "OSIRIS_PARAM_";

/// Top-level OML key (`allow_undeclared_params: true`) that lets `--param` set parameters the
/// pipeline neither declares nor uses (a scheduler passing the same set to every pipeline).
/// Osiris has no such key; its validator warns about it as an unknown key and ignores it.
pub const ALLOW_UNDECLARED_KEY: &str = "allow_undeclared_params";

/// Parameter errors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamsError {
    /// Placeholders name parameters that have no value.
    #[error(
        "unresolved parameters: {}; declare them under `params:` with a default, set OSIRIS_PARAM_<NAME>, or pass --param NAME=VALUE",
        names.join(", ")
    )]
    Unresolved {
        /// The parameter names, sorted.
        names: Vec<String>,
        /// Where each unresolved placeholder occurs: (path, parameter name).
        occurrences: Vec<(Vec<PathSeg>, String)>,
    },
    /// The `params` or `profiles` block has the wrong shape.
    #[error("{0}")]
    Invalid(String),
}

/// Python-like `str(value)` of a parameter value.
pub fn param_to_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Null => "None".to_string(),
        other => other.to_string(),
    }
}

/// The effective parameters of a pipeline document for `profile`, with `env` (the process
/// environment or a test map) and the CLI `--param` values.
pub fn effective_params(
    doc: &Value,
    profile: &str,
    env: &BTreeMap<String, String>,
    cli: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ParamsError> {
    let decls = parse_param_decls(doc.get("params")).map_err(|e| ParamsError::Invalid(e.to_string()))?;
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, default) in &decls {
        if let Some(v) = default {
            out.insert(name.clone(), param_to_string(v));
        }
    }
    // Environment: OSIRIS_PARAM_<NAME>; Osiris lower-cases NAME, we match declared names
    // case-insensitively and fall back to the lower-cased name.
    for (key, value) in env {
        let Some(suffix) = key.strip_prefix(ENV_PREFIX) else { continue };
        if suffix.is_empty() {
            continue;
        }
        let name =
            decls.keys().find(|d| d.eq_ignore_ascii_case(suffix)).cloned().unwrap_or_else(|| suffix.to_lowercase());
        out.insert(name, value.clone());
    }
    if let Some(p) = doc.get("profiles").and_then(|p| p.get(profile)).and_then(|p| p.get("params")) {
        match p {
            Value::Object(m) => {
                for (k, v) in m {
                    out.insert(k.clone(), param_to_string(v));
                }
            }
            Value::Null => {}
            _ => return Err(ParamsError::Invalid(format!("profiles.{profile}.params must be a mapping"))),
        }
    }
    for (k, v) in cli {
        out.insert(k.clone(), v.clone());
    }
    Ok(out)
}

/// Replaces every `${params.NAME}` in the strings of `doc` (except inside the `params` and
/// `profiles` blocks, which declare them). Fails listing every unresolved name.
pub fn substitute_params(doc: &Value, params: &BTreeMap<String, String>) -> Result<Value, ParamsError> {
    let mut missing = Vec::new();
    let mut path = Vec::new();
    let out = match doc {
        Value::Object(m) => {
            let mut o = serde_json::Map::new();
            for (k, v) in m {
                let v = if k == "params" || k == "profiles" {
                    v.clone()
                } else {
                    path.push(PathSeg::Key(k.clone()));
                    let v = walk(v, params, &mut path, &mut missing);
                    path.pop();
                    v
                };
                o.insert(k.clone(), v);
            }
            Value::Object(o)
        }
        other => walk(other, params, &mut path, &mut missing),
    };
    if missing.is_empty() {
        Ok(out)
    } else {
        let names: BTreeSet<String> = missing.iter().map(|(_, n)| n.clone()).collect();
        Err(ParamsError::Unresolved { names: names.into_iter().collect(), occurrences: missing })
    }
}

fn walk(
    v: &Value,
    params: &BTreeMap<String, String>,
    path: &mut Vec<PathSeg>,
    missing: &mut Vec<(Vec<PathSeg>, String)>,
) -> Value {
    match v {
        Value::String(s) => {
            Value::String(substitute_str(s, params, &mut |name| missing.push((path.clone(), name.to_string()))))
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    path.push(PathSeg::Index(i));
                    let r = walk(item, params, path, missing);
                    path.pop();
                    r
                })
                .collect(),
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, item)| {
                    path.push(PathSeg::Key(k.clone()));
                    let r = walk(item, params, path, missing);
                    path.pop();
                    (k.clone(), r)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Substitutes the placeholders of one string; unknown names are reported and left literal.
pub fn substitute_str(s: &str, params: &BTreeMap<String, String>, missing: &mut dyn FnMut(&str)) -> String {
    crate::placeholders::substitute(s, "${params.", |name| {
        let name = name.trim();
        let value = params.get(name).cloned();
        if value.is_none() {
            missing(name);
        }
        value
    })
}

/// The parameters a pipeline knows: declared under `params:`, or used as `${params.NAME}`
/// outside the `params` and `profiles` blocks.
pub fn known_params(doc: &Value) -> BTreeSet<String> {
    let mut known: BTreeSet<String> = match doc.get("params") {
        Some(Value::Object(decls)) => decls.keys().cloned().collect(),
        _ => BTreeSet::new(),
    };
    if let Value::Object(root) = doc {
        for (key, value) in root {
            if key != "params" && key != "profiles" {
                collect_placeholder_names(value, &mut known);
            }
        }
    }
    known
}

fn collect_placeholder_names(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            out.extend(crate::placeholders::names(s, "${params.").into_iter().map(|n| n.trim().to_string()))
        }
        Value::Array(items) => items.iter().for_each(|i| collect_placeholder_names(i, out)),
        Value::Object(m) => m.values().for_each(|i| collect_placeholder_names(i, out)),
        _ => {}
    }
}

/// Whether the pipeline opts in to `--param` names it does not know ([`ALLOW_UNDECLARED_KEY`]).
pub fn allows_undeclared(doc: &Value) -> bool {
    doc.get(ALLOW_UNDECLARED_KEY) == Some(&Value::Bool(true))
}

/// A `--param` name the pipeline does not know, with the known name it is closest to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownParam {
    /// The name given.
    pub name: String,
    /// A known parameter within typo distance.
    pub suggestion: Option<String>,
    /// Every known parameter, sorted.
    pub known: Vec<String>,
}

/// The `--param` names that would have no effect: neither declared nor used by `doc` (empty
/// when the pipeline opts in with [`ALLOW_UNDECLARED_KEY`]). A typo like `min_amout` for
/// `min_amount` would otherwise silently leave the default in place.
pub fn unknown_cli_params(doc: &Value, cli: &BTreeMap<String, String>) -> Vec<UnknownParam> {
    if allows_undeclared(doc) {
        return Vec::new();
    }
    let known = known_params(doc);
    let known_list: Vec<String> = known.iter().cloned().collect();
    cli.keys()
        .filter(|name| !known.contains(*name))
        .map(|name| UnknownParam {
            name: name.clone(),
            suggestion: did_you_mean(name, known.iter().map(String::as_str)).map(str::to_string),
            known: known_list.clone(),
        })
        .collect()
}

/// The profiles a pipeline may be compiled for: its own `profiles:` and the project's (the
/// default profile and `osiris.yaml`'s `filesystem.profiles.values`), sorted.
pub fn known_profiles(doc: &Value, project_profiles: &[String]) -> Vec<String> {
    let mut known: BTreeSet<String> = project_profiles.iter().cloned().collect();
    if let Some(Value::Object(profiles)) = doc.get("profiles") {
        known.extend(profiles.keys().cloned());
    }
    known.into_iter().collect()
}

/// The `unknown_profile` and `unknown_param` errors of compiling `doc` for `profile` with the
/// CLI parameters `cli`: a typo must fail, not compile the defaults (a "prod" run writing dev
/// outputs). `project_profiles` are the profiles the project declares.
pub fn input_diagnostics(
    doc: &LocatedDocument,
    file: &str,
    profile: &str,
    project_profiles: &[String],
    cli: &BTreeMap<String, String>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let profiles = known_profiles(&doc.value, project_profiles);
    if !profiles.iter().any(|p| p == profile) {
        let close = did_you_mean(profile, profiles.iter().map(String::as_str));
        let hint = format!(
            "{}known profiles: {}; a new profile is declared under `profiles:` in the pipeline or in osiris.yaml `filesystem.profiles.values`",
            close.map(|c| format!("did you mean `{c}`? ")).unwrap_or_default(),
            profiles.join(", ")
        );
        let path = [PathSeg::key("profiles")];
        out.push(
            Diagnostic::new(Severity::Error, "unknown_profile", "", format!("unknown profile '{profile}' (--profile)"))
                .with_hint(hint)
                .at(Some(file), doc.key_location(&path)),
        );
    }
    for unknown in unknown_cli_params(&doc.value, cli) {
        let known = if unknown.known.is_empty() { "none".to_string() } else { unknown.known.join(", ") };
        let hint = format!(
            "{}known parameters: {known}; declare it under `params:`, or set `{ALLOW_UNDECLARED_KEY}: true` to accept parameters the pipeline does not use",
            unknown.suggestion.map(|c| format!("did you mean `{c}`? ")).unwrap_or_default(),
        );
        let path = [PathSeg::key("params")];
        out.push(
            Diagnostic::new(
                Severity::Error,
                "unknown_param",
                "",
                format!(
                    "--param {}: the pipeline neither declares nor uses a parameter '{}'",
                    unknown.name, unknown.name
                ),
            )
            .with_hint(hint)
            .at(Some(file), doc.key_location(&path)),
        );
    }
    out
}

/// Whether `s` contains a `${params.` placeholder.
pub fn has_placeholder(s: &str) -> bool {
    s.contains("${params.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn precedence_all_four_levels() {
        let doc = json!({
            "params": {"a": "oml", "b": {"default": "oml"}, "c": "oml", "d": "oml", "flag": true, "n": 3},
            "profiles": {"prod": {"params": {"c": "profile", "d": "profile"}}},
        });
        let env =
            map(&[("OSIRIS_PARAM_B", "env"), ("OSIRIS_PARAM_C", "env"), ("OSIRIS_PARAM_D", "env"), ("PATH", "x")]);
        let cli = map(&[("d", "cli")]);
        let p = effective_params(&doc, "prod", &env, &cli).unwrap();
        assert_eq!(p["a"], "oml");
        assert_eq!(p["b"], "env");
        assert_eq!(p["c"], "profile");
        assert_eq!(p["d"], "cli");
        assert_eq!(p["flag"], "True");
        assert_eq!(p["n"], "3");
        // Another profile: env wins over OML defaults.
        let p = effective_params(&doc, "dev", &env, &BTreeMap::new()).unwrap();
        assert_eq!(p["c"], "env");
        assert!(!p.contains_key("path"));
    }

    #[test]
    fn env_name_is_case_insensitive() {
        let doc = json!({"params": {"Since": "x"}});
        let p = effective_params(
            &doc,
            "dev",
            &map(&[("OSIRIS_PARAM_SINCE", "y"), ("OSIRIS_PARAM_OTHER", "z")]),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(p["Since"], "y");
        assert_eq!(p["other"], "z");
    }

    #[test]
    fn unknown_cli_params_are_those_neither_declared_nor_used() {
        let doc = json!({
            "params": {"min_amount": 10},
            "profiles": {"prod": {"params": {"only_in_profile": 1, "x": "${params.in_profile_block}"}}},
            "steps": [{"config": {"q": "a > ${params.min_amount} and b = '${params.used_only}'"}}],
        });
        assert_eq!(
            known_params(&doc).into_iter().collect::<Vec<_>>(),
            vec!["min_amount".to_string(), "used_only".to_string()]
        );
        let cli = map(&[("min_amout", "50"), ("used_only", "x"), ("zzz", "1")]);
        let unknown = unknown_cli_params(&doc, &cli);
        assert_eq!(unknown.len(), 2);
        assert_eq!(unknown[0].name, "min_amout");
        assert_eq!(unknown[0].suggestion.as_deref(), Some("min_amount"));
        assert_eq!(unknown[1].name, "zzz");
        assert_eq!(unknown[1].suggestion, None);
        assert_eq!(unknown[1].known, vec!["min_amount".to_string(), "used_only".to_string()]);
        let mut opted_in = doc.clone();
        opted_in[ALLOW_UNDECLARED_KEY] = json!(true);
        assert!(unknown_cli_params(&opted_in, &cli).is_empty());
    }

    #[test]
    fn known_profiles_join_the_pipeline_and_the_project() {
        let doc = json!({"profiles": {"prod": {}, "staging": {}}});
        assert_eq!(known_profiles(&doc, &["dev".to_string(), "prod".to_string()]), vec!["dev", "prod", "staging"]);
        assert_eq!(known_profiles(&json!({}), &["dev".to_string()]), vec!["dev"]);
    }

    #[test]
    fn substitution_and_unresolved() {
        let doc = json!({"params": {"x": "${params.keep}"}, "steps": [{"config": {"q": "${params.a}-${params.a}", "n": 5, "l": ["${params.b}"], "m": "${params.c}"}}]});
        let out = substitute_params(&doc, &map(&[("a", "1"), ("b", "2"), ("c", "3")])).unwrap();
        assert_eq!(out["steps"][0]["config"], json!({"q": "1-1", "n": 5, "l": ["2"], "m": "3"}));
        assert_eq!(out["params"]["x"], "${params.keep}");
        let err = substitute_params(&doc, &map(&[("a", "1")])).unwrap_err();
        match &err {
            ParamsError::Unresolved { names, occurrences } => {
                assert_eq!(names, &vec!["b".to_string(), "c".to_string()]);
                assert_eq!(occurrences.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("b, c"));
    }
}
