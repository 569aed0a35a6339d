//! Build directories written by Osiris itself (`osiris compile`), read as they are.
//!
//! Osiris's compiler (`osiris/core/compiler_v0.py` in keboola/osiris 0.5.7, `_generate_manifest`
//! and `_generate_configs`) writes the same layout as this one, with three differences in shape
//! that [`super::load_compiled`] smooths over:
//!
//! - manifest steps carry no `mode` (`{cfg_path, component, driver, id, needs}`): the component
//!   mode is only in `cfg/<step>.json`, and there a config key `mode` (a writer's `mode: replace`)
//!   overwrites it, since Osiris copies the step's config over `{"component", "mode"}`;
//! - `cfg/<step>.json` holds every default of Osiris's component spec, including connection fields
//!   (`mysql.extractor`: `host: localhost`, `port: 3306`, `schema: null`) that Osiris's drivers never
//!   read from the config: they take them from the resolved connection only;
//! - `meta.toolchain.compiler` is `osiris-compiler/0.1`.

use serde_json::{Map, Value};

use crate::registry::Registry;
use crate::spec::{ComponentSpec, Mode};

/// `meta.toolchain.compiler` of manifests that Osiris compiled.
pub const OSIRIS_COMPILER_PREFIX: &str = "osiris-compiler/";

/// Whether the manifest (as read from YAML) was compiled by Osiris.
pub fn is_osiris_build(manifest: &Value) -> bool {
    manifest
        .pointer("/meta/toolchain/compiler")
        .and_then(Value::as_str)
        .is_some_and(|c| c.starts_with(OSIRIS_COMPILER_PREFIX))
}

/// The component mode of a manifest step that does not state one, from its `cfg/<step>.json`
/// (`extract`, `transform`, `write`), else from what the component can do. `Err` says why not.
pub fn step_mode(cfg: &Map<String, Value>, spec: Option<&ComponentSpec>) -> Result<Mode, String> {
    let cfg_mode = cfg.get("mode").and_then(Value::as_str).unwrap_or_default();
    if let Some(mode) = component_mode(cfg_mode) {
        return Ok(mode);
    }
    let Some(spec) = spec else {
        return Err("its component is unknown, and its cfg gives no component mode".into());
    };
    // A writer's own `mode` (`replace`, …) took the place of the component mode.
    if !cfg_mode.is_empty() && spec.supports(Mode::Write) {
        return Ok(Mode::Write);
    }
    match spec.modes.as_slice() {
        [only] => Ok(*only),
        _ => Err(format!("neither the manifest nor its cfg says in which mode {} runs", spec.name)),
    }
}

/// `extract`, `transform`, `write` (and OML's `read`).
fn component_mode(name: &str) -> Option<Mode> {
    match name {
        "extract" => Some(Mode::Extract),
        _ => Mode::from_oml(name),
    }
}

/// Turns an Osiris-written `cfg/<step>.json` into the shape this engine's compiler writes:
/// a config-level write mode moves from `mode` to `write_mode` (where the component takes that
/// alias), `mode` becomes the component mode, and connection fields are dropped (Osiris's drivers
/// ignore them in the config, so the connection's values apply, as in Osiris).
pub fn adapt_cfg(cfg: &mut Map<String, Value>, mode: Mode, spec: Option<&ComponentSpec>) {
    let Some(spec) = spec else { return };
    let config_mode = cfg.get("mode").and_then(Value::as_str).filter(|m| component_mode(m).is_none());
    if let Some(write_mode) = config_mode.map(str::to_string)
        && spec.field("write_mode").is_some()
    {
        cfg.entry("write_mode").or_insert(Value::String(write_mode));
    }
    cfg.insert("mode".into(), Value::String(mode.as_str().into()));
    for field in spec.connection.iter().flat_map(|c| &c.fields) {
        cfg.remove(&field.name);
    }
}

/// The spec of a manifest step's component, when this build has it.
pub fn spec_of<'r>(registry: &'r Registry, component: &str) -> Option<&'r ComponentSpec> {
    registry.get(component).map(|c| c.spec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::registry;
    use serde_json::json;

    fn cfg(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn modes_come_from_the_cfg_or_the_component() {
        let reg = registry();
        let writer = spec_of(&reg, "files.writer");
        let extractor = spec_of(&reg, "db.extractor");
        assert_eq!(step_mode(&cfg(json!({"mode": "extract"})), None), Ok(Mode::Extract));
        assert_eq!(step_mode(&cfg(json!({"mode": "transform"})), extractor), Ok(Mode::Transform));
        assert_eq!(step_mode(&cfg(json!({"mode": "replace"})), writer), Ok(Mode::Write));
        assert_eq!(step_mode(&cfg(json!({"mode": ""})), extractor), Ok(Mode::Extract));
        assert!(step_mode(&cfg(json!({})), None).is_err());
    }

    #[test]
    fn osiris_cfgs_take_this_engines_shape() {
        let reg = registry();
        let extractor = spec_of(&reg, "db.extractor");
        let mut c = cfg(json!({"component": "db.extractor", "mode": "extract", "host": "localhost", "query": "q"}));
        adapt_cfg(&mut c, Mode::Extract, extractor);
        assert_eq!(Value::Object(c), json!({"component": "db.extractor", "mode": "extract", "query": "q"}));
        let mut c = cfg(json!({"component": "files.writer", "mode": "replace", "path": "x"}));
        adapt_cfg(&mut c, Mode::Write, spec_of(&reg, "files.writer"));
        assert_eq!(c["mode"], "write");
        assert!(!c.contains_key("write_mode"), "files.writer has no write_mode: {c:?}");
        // A writer whose config takes `write_mode`: Osiris's `mode: replace` lands there.
        let mut writer = spec_of(&reg, "files.writer").cloned().unwrap();
        writer.config.push(crate::spec::ConfigField::optional("write_mode", crate::spec::FieldType::String, "w"));
        let mut c = cfg(json!({"component": "files.writer", "mode": "replace", "path": "x"}));
        adapt_cfg(&mut c, Mode::Write, Some(&writer));
        assert_eq!(
            Value::Object(c),
            json!({"component": "files.writer", "mode": "write", "path": "x", "write_mode": "replace"})
        );
        assert!(is_osiris_build(&json!({"meta": {"toolchain": {"compiler": "osiris-compiler/0.1"}}})));
        assert!(!is_osiris_build(&json!({"meta": {"toolchain": {"compiler": "osiris-rs-compiler/0.1"}}})));
    }
}
