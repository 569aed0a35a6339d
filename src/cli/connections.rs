//! `osiris connections list`: every connection per family, secrets masked.

use osiris_engine::connections::file::ConnectionsFile;
use osiris_engine::registry::Registry;
use serde_json::{Value, json};

use super::project::Project;
use super::{CliError, Outcome};

pub fn list(registry: &Registry, as_json: bool) -> Result<Outcome, CliError> {
    let project = Project::load()?;
    let file = ConnectionsFile::load(project.home.as_deref(), &project.cwd)
        .map_err(|e| CliError::usage(e.to_string(), "fix osiris_connections.yaml (see docs/connections.md)"))?;
    let spec_secrets = |family: &str| -> Vec<String> {
        registry
            .iter()
            .map(|c| c.spec())
            .filter(|s| s.connection.as_ref().is_some_and(|c| c.family == family))
            .flat_map(|s| s.secret_names().map(str::to_string).collect::<Vec<_>>())
            .collect()
    };
    let env = project.secrets(&[]);
    let listing = file.list_masked(&spec_secrets, &env);
    if as_json {
        return Ok(Outcome::json(listing));
    }
    Ok(Outcome::text(render(&listing)))
}

fn render(listing: &Value) -> String {
    let Some(families) = listing.get("connections").and_then(Value::as_object).filter(|f| !f.is_empty()) else {
        return "No connections found: create osiris_connections.yaml in $OSIRIS_HOME or the working directory (see docs/connections.md).\n".to_string();
    };
    let mut text = String::new();
    for (family, aliases) in families {
        text.push_str(&format!("{family}\n"));
        for (alias, entry) in aliases.as_object().into_iter().flatten() {
            let default = if entry["is_default"] == json!(true) { " (default)" } else { "" };
            text.push_str(&format!("  @{family}.{alias}{default}\n"));
            for (key, value) in entry["config"].as_object().into_iter().flatten() {
                let shown = value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
                text.push_str(&format!("    {key}: {shown}\n"));
            }
            for (var, set) in entry["env_vars"].as_object().into_iter().flatten() {
                let mark = if set == &json!(true) { "✓ set" } else { "✗ NOT SET" };
                text.push_str(&format!("    env {var}: {mark}\n"));
            }
        }
    }
    text
}
