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
use crate::yaml::PathSeg;

/// Prefix of environment variables that set parameters.
pub const ENV_PREFIX: &str = "OSIRIS_PARAM_";

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
