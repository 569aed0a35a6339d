//! The OML pipeline model (OML 0.1.0, Osiris-compatible).
//!
//! A pipeline is read in three stages: [`crate::yaml::parse_located`] turns the text into a JSON
//! value with locations, [`validate::validate`] reports every problem at once, and
//! [`Pipeline::from_value`] builds the typed model from a (valid) document. Parameters
//! (`${params.NAME}`) are resolved by [`params`].
//!
//! ```
//! use osiris_engine::pipeline::Pipeline;
//! use osiris_engine::yaml::parse_located;
//! let doc = parse_located("oml_version: \"0.1.0\"\nname: p\nsteps:\n  - {id: a, component: x.y, mode: read}\n  - {id: b, component: x.z, mode: write}\n").unwrap();
//! let p = Pipeline::from_value(&doc.value).unwrap();
//! assert_eq!(p.resolved_needs(1), vec!["a".to_string()]);
//! ```

pub mod params;
pub mod validate;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::yaml::{LocatedDocument, PathSeg};

pub use params::{ParamsError, effective_params, substitute_params};
pub use validate::{Diagnostic, Report, Severity, validate};

/// The OML version this engine implements.
pub const OML_VERSION: &str = "0.1.0";

/// A parsed OML pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Pipeline {
    /// `oml_version`.
    pub oml_version: String,
    /// `name`.
    pub name: String,
    /// `description`, when present.
    pub description: Option<String>,
    /// Declared parameters: name → default (`None` when declared without a default).
    pub params: BTreeMap<String, Option<Value>>,
    /// `profiles.<profile>.params`.
    pub profiles: BTreeMap<String, BTreeMap<String, Value>>,
    /// `metadata`, verbatim.
    pub metadata: Option<Value>,
    /// `schedule`, verbatim.
    pub schedule: Option<Value>,
    /// Steps in file order.
    pub steps: Vec<Step>,
}

/// One OML step.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// `id`.
    pub id: String,
    /// `component` (legacy `uses`).
    pub component: String,
    /// The OML mode as written (`read`, `transform`, `write`).
    pub mode: String,
    /// `needs`: `None` when the key is absent (then the step depends on the previous step).
    pub needs: Option<Vec<String>>,
    /// `config` (legacy `with`); empty when absent.
    pub config: Map<String, Value>,
    /// Position of the step in `steps` (0-based).
    pub index: usize,
    /// Line and column where the step starts, when known.
    pub location: Option<(u32, u32)>,
}

/// Why a document could not be turned into a [`Pipeline`] (run [`validate::validate`] first for
/// the full list of problems with locations).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The document does not have the shape of an OML pipeline.
    #[error("invalid pipeline: {0} (run `osiris oml validate` for details)")]
    Shape(String),
}

fn shape(msg: impl Into<String>) -> PipelineError {
    PipelineError::Shape(msg.into())
}

impl Pipeline {
    /// Builds the model from a document value. Checks only what it needs to build the model.
    pub fn from_value(value: &Value) -> Result<Pipeline, PipelineError> {
        Self::build(value, None)
    }

    /// Like [`Pipeline::from_value`], also recording step locations from `doc`.
    pub fn from_document(doc: &LocatedDocument) -> Result<Pipeline, PipelineError> {
        Self::build(&doc.value, Some(doc))
    }

    fn build(value: &Value, doc: Option<&LocatedDocument>) -> Result<Pipeline, PipelineError> {
        let root = value.as_object().ok_or_else(|| shape("the document is not a mapping"))?;
        let text = |key: &str| -> Result<Option<String>, PipelineError> {
            match root.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(shape(format!("'{key}' must be a string"))),
            }
        };
        let oml_version = text("oml_version")?.ok_or_else(|| shape("missing 'oml_version'"))?;
        let name = text("name")?.ok_or_else(|| shape("missing 'name'"))?;
        let description = text("description")?;
        let params = parse_param_decls(root.get("params"))?;
        let mut profiles = BTreeMap::new();
        if let Some(p) = root.get("profiles").filter(|v| !v.is_null()) {
            let p = p.as_object().ok_or_else(|| shape("'profiles' must be a mapping"))?;
            for (profile, body) in p {
                let mut values = BTreeMap::new();
                if let Some(ps) = body.get("params").filter(|v| !v.is_null()) {
                    let ps = ps
                        .as_object()
                        .ok_or_else(|| shape(format!("'profiles.{profile}.params' must be a mapping")))?;
                    for (k, v) in ps {
                        values.insert(k.clone(), v.clone());
                    }
                }
                profiles.insert(profile.clone(), values);
            }
        }
        let steps_value = root.get("steps").ok_or_else(|| shape("missing 'steps'"))?;
        let steps_list = steps_value.as_array().ok_or_else(|| shape("'steps' must be a list"))?;
        let mut steps = Vec::with_capacity(steps_list.len());
        for (index, raw) in steps_list.iter().enumerate() {
            let obj = raw.as_object().ok_or_else(|| shape(format!("steps[{index}] must be a mapping")))?;
            let field = |keys: &[&str]| -> Result<String, PipelineError> {
                for key in keys {
                    match obj.get(*key) {
                        Some(Value::String(s)) => return Ok(s.clone()),
                        Some(_) => return Err(shape(format!("steps[{index}].{key} must be a string"))),
                        None => {}
                    }
                }
                Err(shape(format!("steps[{index}] has no '{}'", keys[0])))
            };
            let needs = match obj.get("needs") {
                None => None,
                Some(Value::Null) => Some(Vec::new()),
                Some(Value::Array(items)) => Some(
                    items
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .map(str::to_string)
                                .ok_or_else(|| shape(format!("steps[{index}].needs must list step ids")))
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Some(_) => return Err(shape(format!("steps[{index}].needs must be a list"))),
            };
            let config = match obj.get("config").or_else(|| obj.get("with")) {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => return Err(shape(format!("steps[{index}].config must be a mapping"))),
            };
            steps.push(Step {
                id: field(&["id"])?,
                component: field(&["component", "uses"])?,
                mode: field(&["mode"])?,
                needs,
                config,
                index,
                location: doc.and_then(|d| d.location(&[PathSeg::key("steps"), PathSeg::Index(index)])),
            });
        }
        Ok(Pipeline {
            oml_version,
            name,
            description,
            params,
            profiles,
            metadata: root.get("metadata").filter(|v| !v.is_null()).cloned(),
            schedule: root.get("schedule").filter(|v| !v.is_null()).cloned(),
            steps,
        })
    }

    /// The dependencies of step `index`: its `needs`, or the previous step when `needs` is absent.
    pub fn resolved_needs(&self, index: usize) -> Vec<String> {
        match self.steps.get(index) {
            None => Vec::new(),
            Some(step) => match &step.needs {
                Some(needs) => needs.clone(),
                None if index == 0 => Vec::new(),
                None => vec![self.steps[index - 1].id.clone()],
            },
        }
    }

    /// The pipeline id of the manifest: `name` lower-cased with spaces as `_`.
    pub fn pipeline_id(&self) -> String {
        self.name.to_lowercase().replace(' ', "_")
    }
}

/// Reads the `params` block: `name: value` (shorthand) or `name: {default: value}`.
pub fn parse_param_decls(value: Option<&Value>) -> Result<BTreeMap<String, Option<Value>>, PipelineError> {
    let mut out = BTreeMap::new();
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(out);
    };
    let map = value.as_object().ok_or_else(|| shape("'params' must be a mapping"))?;
    for (name, decl) in map {
        let default = match decl {
            Value::Object(m) => m.get("default").filter(|v| !v.is_null()).cloned(),
            Value::Null => None,
            other => Some(other.clone()),
        };
        out.insert(name.clone(), default);
    }
    Ok(out)
}

/// Turns a name into a path segment as Osiris's `slugify_token` does (`osiris/core/fs_paths.py`):
/// lower-case, spaces and `_` become `-`, only `[a-z0-9-]` kept, runs of `-` collapsed, ends
/// stripped. `mysql_to_csv` → `mysql-to-csv`. Where Osiris would leave an empty segment, this
/// gives `pipeline`, so that a folder level never disappears.
pub fn slugify(text: &str) -> String {
    let mut out = String::new();
    for c in text.to_lowercase().chars() {
        let c = match c {
            ' ' | '_' | '-' => '-',
            c if c.is_ascii_lowercase() || c.is_ascii_digit() => c,
            _ => continue,
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() { "pipeline".to_string() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_located;

    const OML: &str = r#"oml_version: "0.1.0"
name: demo
params:
  since: "2024-01-01"
  limit: {default: 10}
  req: {}
profiles:
  prod: {params: {since: "2023-01-01"}}
steps:
  - id: a
    component: x.extractor
    mode: read
  - id: b
    uses: x.transform
    mode: transform
    with: {q: 1}
  - id: c
    component: x.writer
    mode: write
    needs: []
  - id: d
    component: x.writer
    mode: write
    needs: [a, b]
"#;

    #[test]
    fn model_and_implicit_needs() {
        let doc = parse_located(OML).unwrap();
        let p = Pipeline::from_document(&doc).unwrap();
        assert_eq!(p.steps.len(), 4);
        assert_eq!(p.steps[1].component, "x.transform");
        assert_eq!(p.steps[1].config["q"], 1);
        assert_eq!(p.steps[1].location, Some((13, 5)));
        assert_eq!(p.resolved_needs(0), Vec::<String>::new());
        assert_eq!(p.resolved_needs(1), vec!["a"]);
        assert_eq!(p.resolved_needs(2), Vec::<String>::new());
        assert_eq!(p.resolved_needs(3), vec!["a", "b"]);
        assert_eq!(p.params["since"], Some(Value::from("2024-01-01")));
        assert_eq!(p.params["limit"], Some(Value::from(10)));
        assert_eq!(p.params["req"], None);
        assert_eq!(p.profiles["prod"]["since"], "2023-01-01");
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("mysql_to_csv"), "mysql-to-csv");
        assert_eq!(slugify("My Pipeline__v2!"), "my-pipeline-v2");
        assert_eq!(slugify("__"), "pipeline");
        assert_eq!(slugify("a/b - Ünï"), "ab-n");
        assert_eq!(slugify("orders_export_v2"), "orders-export-v2");
    }
}
