//! `osiris connections list|doctor`: every connection per family, secrets masked; and a real
//! connection check of each.

use std::time::{Duration, Instant};

use osiris_engine::connections::SecretSource;
use osiris_engine::connections::file::ConnectionsFile;
use osiris_engine::connections::keys::{allowed_keys, file_diagnostics};
use osiris_engine::driver::DriverError;
use osiris_engine::prepare::family_declared_secrecy;
use osiris_engine::registry::Registry;
use serde_json::{Map, Value, json};

use super::project::Project;
use super::{CliError, Outcome};

/// How long `doctor` waits for one connection.
const DOCTOR_TIMEOUT: Duration = Duration::from_secs(10);

fn load(project: &Project) -> Result<ConnectionsFile, CliError> {
    ConnectionsFile::load(project.home.as_deref(), &project.cwd)
        .map_err(|e| CliError::usage(e.to_string(), "fix osiris_connections.yaml (see docs/connections.md)"))
}

pub fn list(registry: &Registry, as_json: bool) -> Result<Outcome, CliError> {
    let project = Project::load()?;
    let file = load(&project)?;
    let declared = |family: &str| family_declared_secrecy(registry, family);
    let env = project.secrets(&[]);
    let mut listing = file.list_masked(&declared, &env);
    let (errors, warnings) = file_diagnostics(&file, registry);
    let failed = !errors.is_empty();
    let outcome = if as_json {
        listing["errors"] = json!(errors);
        listing["warnings"] = json!(warnings);
        Outcome::json(listing)
    } else {
        let mut text = render(&listing, &env);
        for d in errors.iter().chain(&warnings) {
            text.push_str(&format!("{d}\n"));
        }
        Outcome::text(text)
    };
    // Like `oml validate`: the listing is printed, and a problem in the file exits 1.
    Ok(if failed { Outcome::WithCode(Box::new(outcome), 1) } else { outcome })
}

fn render(listing: &Value, env: &dyn SecretSource) -> String {
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
                let mark = match (set == &json!(true), env.is_set_but_empty(var)) {
                    (true, _) => "✓ set",
                    (false, true) => "✗ EMPTY (an empty variable counts as unset)",
                    (false, false) => "✗ NOT SET",
                };
                text.push_str(&format!("    env {var}: {mark}\n"));
            }
        }
    }
    text
}

pub fn doctor(
    registry: &Registry,
    family: Option<&str>,
    alias: Option<&str>,
    as_json: bool,
) -> Result<Outcome, CliError> {
    let project = Project::load()?;
    let file = load(&project)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::run_failed(format!("cannot start the async runtime: {e}"), None))?;
    let mut results = Map::new();
    let mut failed = false;
    for fam in file.families().into_iter().filter(|f| family.is_none_or(|wanted| wanted == *f)) {
        let mut aliases = Map::new();
        for name in file.aliases(fam).into_iter().filter(|a| alias.is_none_or(|wanted| wanted == *a)) {
            let result = runtime.block_on(check(registry, &project, &file, fam, name));
            failed |= !matches!(result["status"].as_str(), Some("success" | "skipped"));
            aliases.insert(name.to_string(), result);
        }
        results.insert(fam.to_string(), Value::Object(aliases));
    }
    let report = json!({"results": results, "all_ok": !failed});
    let outcome = if as_json { Outcome::json(report) } else { Outcome::text(render_doctor(&report)) };
    Ok(if failed { Outcome::WithCode(Box::new(outcome), 1) } else { outcome })
}

/// Checks one connection: `{status: success|failure|error|skipped, latency_ms, category, message}`.
async fn check(registry: &Registry, project: &Project, file: &ConnectionsFile, family: &str, alias: &str) -> Value {
    let config_error = |message: String| json!({"status": "error", "category": "config", "message": message});
    let declared = family_declared_secrecy(registry, family);
    let env = project.secrets(&[]);
    if let Some(allowed) = allowed_keys(registry, family)
        && let Err(e) = file.check_keys(family, Some(alias), &allowed)
    {
        return config_error(e.to_string());
    }
    let resolved = match file.resolve(family, Some(alias), &declared, &env) {
        Ok(resolved) => resolved,
        Err(e) => return config_error(e.to_string()),
    };
    let bound = match resolved.descriptor.bind(&project.secrets(&resolved.synthetic_env)) {
        Ok(bound) => bound,
        Err(e) => return config_error(e.to_string()),
    };
    let started = Instant::now();
    let Some(probe) = registry.iter().find_map(|c| {
        let spec = c.spec();
        if spec.connection.as_ref().is_some_and(|conn| conn.family == family) {
            c.check_connection_details(&bound)
        } else {
            None
        }
    }) else {
        return json!({"status": "skipped", "category": "ok", "message": format!("no component of family '{family}' can check connections")});
    };
    let outcome = tokio::time::timeout(DOCTOR_TIMEOUT, probe).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(Ok(mut details)) => {
            let message = details.remove("summary").unwrap_or_else(|| json!("ok"));
            let mut result =
                json!({"status": "success", "category": "ok", "latency_ms": latency_ms, "message": message});
            if let Value::Object(fields) = &mut result {
                fields.extend(details);
            }
            result
        }
        Ok(Err(e)) => {
            json!({"status": "failure", "category": category(&e), "latency_ms": latency_ms, "message": e.to_string(), "hint": e.hint})
        }
        Err(_) => json!({"status": "failure", "category": "network", "latency_ms": latency_ms,
                         "message": format!("no answer within {} s", DOCTOR_TIMEOUT.as_secs())}),
    }
}

fn category(err: &DriverError) -> &'static str {
    match err.code.as_str() {
        "connection.auth_failed" => "auth",
        code if code.starts_with("connection.network") || code.ends_with("timeout") => "network",
        _ => "config",
    }
}

fn render_doctor(report: &Value) -> String {
    let mut text = String::new();
    for (family, aliases) in report["results"].as_object().into_iter().flatten() {
        for (alias, r) in aliases.as_object().into_iter().flatten() {
            let mark = match r["status"].as_str() {
                Some("success") => "✓",
                Some("skipped") => "-",
                _ => "✗",
            };
            let latency = r["latency_ms"].as_f64().map(|ms| format!(" {ms:.0} ms")).unwrap_or_default();
            text.push_str(&format!(
                "{mark} @{family}.{alias}  {}{latency}  [{}] {}\n",
                r["status"].as_str().unwrap_or_default(),
                r["category"].as_str().unwrap_or_default(),
                r["message"].as_str().unwrap_or_default()
            ));
            if let Some(hint) = r["hint"].as_str() {
                text.push_str(&format!("    hint: {hint}\n"));
            }
        }
    }
    if text.is_empty() {
        text.push_str("No connections found: create osiris_connections.yaml (see docs/connections.md).\n");
    }
    text
}
