//! `osiris components list|show`.

use osiris_engine::registry::Registry;
use osiris_engine::spec::{ComponentSpec, Mode};
use serde_json::json;

use super::{CliError, Outcome};

pub fn list(registry: &Registry, mode: Option<Mode>, as_json: bool) -> Result<Outcome, CliError> {
    let specs: Vec<&ComponentSpec> =
        registry.iter().map(|c| c.spec()).filter(|s| mode.is_none_or(|m| s.supports(m))).collect();
    if as_json {
        let items: Vec<_> = specs
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "version": s.version,
                    "modes": s.modes,
                    "description": s.title,
                    "runnable": true,
                    "connection_family": s.connection.as_ref().map(|c| &c.family),
                })
            })
            .collect();
        return Ok(Outcome::json(json!(items)));
    }
    let width = specs.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut text = String::new();
    for s in specs {
        let modes: Vec<&str> = s.modes.iter().map(|m| m.as_str()).collect();
        text.push_str(&format!("{:<width$}  {:<18}  {}\n", s.name, modes.join(","), s.title));
    }
    Ok(Outcome::text(text))
}

pub fn show(registry: &Registry, name: &str, as_json: bool) -> Result<Outcome, CliError> {
    let component = registry.get(name).ok_or_else(|| {
        let names: Vec<&str> = registry.names().collect();
        CliError::usage(format!("unknown component '{name}'"), format!("available components: {}", names.join(", ")))
    })?;
    let spec = component.spec();
    if as_json {
        return Ok(Outcome::json(serde_json::to_value(spec).unwrap_or_default()));
    }
    Ok(Outcome::text(render_spec(spec)))
}

/// A spec as readable text; also used to generate `docs/components.md`.
pub fn render_spec(spec: &ComponentSpec) -> String {
    let modes: Vec<&str> = spec.modes.iter().map(|m| m.as_str()).collect();
    let mut text = format!("{} ({})\n  {}\n\n  modes: {}\n", spec.name, spec.version, spec.title, modes.join(", "));
    if !spec.description.is_empty() {
        text.push_str(&format!("\n  {}\n", spec.description.replace('\n', "\n  ")));
    }
    if let Some(conn) = &spec.connection {
        text.push_str(&format!(
            "  connection: family '{}' ({})\n",
            conn.family,
            if conn.required { "required" } else { "optional" }
        ));
    }
    text.push_str("\n  config:\n");
    for field in &spec.config {
        let mut notes = vec![field.field_type.as_str().to_string()];
        if field.required {
            notes.push("required".into());
        }
        if let Some(default) = &field.default {
            notes.push(format!("default {default}"));
        }
        if !field.allowed.is_empty() {
            let allowed: Vec<String> = field.allowed.iter().map(|v| v.to_string()).collect();
            notes.push(format!("one of {}", allowed.join("|")));
        }
        if field.secret {
            notes.push("secret".into());
        }
        if let Some(role) = field.file {
            notes.push(format!(
                "{} file",
                if role == osiris_engine::spec::FileRole::Input { "input" } else { "output" }
            ));
        }
        text.push_str(&format!("    {:<18} {}\n      {}\n", field.name, notes.join(", "), field.description));
    }
    if let Some(example) = &spec.example {
        text.push_str(&format!("\n  example config:\n    {}\n", serde_json::to_string(example).unwrap_or_default()));
    }
    text
}
