//! `osiris run --dry-run`: what a run would do — steps, target, E2B options, connections and
//! files — after compiling and preparing it (so connection and environment problems show), with
//! nothing executed and no run log written.

use osiris_adapters::e2b::adapter::E2bOptions;
use osiris_engine::compile::Compiled;
use osiris_engine::prepared::PreparedRun;
use serde_json::{Value, json};

use super::{CliError, Outcome, RunArgs, Target};

pub fn report(
    compiled: &Compiled,
    prepared: &PreparedRun,
    target: Target,
    args: &RunArgs,
    sandbox_env: &[(String, String)],
) -> Result<Outcome, CliError> {
    if target == Target::E2b {
        check_pass_env(&args.e2b_options.e2b_pass_env)?;
    }
    let plan = plan_json(compiled, prepared, target, args, sandbox_env);
    if args.json {
        return Ok(Outcome::json(plan));
    }
    Ok(Outcome::text(render(&plan)))
}

fn plan_json(
    compiled: &Compiled,
    prepared: &PreparedRun,
    target: Target,
    args: &RunArgs,
    sandbox_env: &[(String, String)],
) -> Value {
    let steps: Vec<Value> = prepared
        .plan
        .steps
        .iter()
        .map(|s| json!({"step_id": s.id, "component": s.component, "mode": s.mode, "needs": s.needs}))
        .collect();
    let connections: Vec<Value> = prepared
        .resolved_connections
        .iter()
        .map(|(reference, c)| json!({"connection": reference, "used_by": c.used_by}))
        .collect();
    let files = |list: &[osiris_engine::prepared::StepFile]| -> Vec<Value> {
        list.iter().map(|f| json!({"step_id": f.step_id, "path": f.path})).collect()
    };
    json!({
        "status": "dry_run",
        "message": "dry run: compiled and prepared, nothing executed",
        "pipeline": compiled.manifest.pipeline.id,
        "profile": compiled.profile,
        "manifest_short": compiled.manifest_short(),
        "target": target.name(),
        "e2b": (target == Target::E2b).then(|| e2b_json(args, sandbox_env)),
        "steps": steps,
        "connections": connections,
        "inputs": files(&prepared.io_layout.inputs),
        "outputs": files(&prepared.io_layout.outputs),
        "warnings": compiled.warnings,
    })
}

/// What the E2B adapter checks before creating a sandbox, without E2B: every `--e2b-pass-env`
/// variable is set.
fn check_pass_env(names: &[String]) -> Result<(), CliError> {
    match names.iter().find(|name| std::env::var_os(name.as_str()).is_none()) {
        Some(name) => Err(CliError::usage(
            format!("--e2b-pass-env {name}: {name} is not set in this environment"),
            format!("export {name}, or drop --e2b-pass-env {name}"),
        )),
        None => Ok(()),
    }
}

/// The sandbox a run would ask for; variable values are left out (names only).
fn e2b_json(args: &RunArgs, sandbox_env: &[(String, String)]) -> Value {
    let e2b = &args.e2b_options;
    let defaults = E2bOptions::default();
    let names: Vec<&str> = sandbox_env.iter().map(|(k, _)| k.as_str()).collect();
    json!({
        "template": e2b.e2b_template.clone().unwrap_or(defaults.template),
        "timeout_seconds": e2b.e2b_timeout.map_or(defaults.timeout.as_secs(), u64::from),
        "min_cpu": e2b.e2b_cpu,
        "min_memory_mib": e2b.e2b_mem.map(|b| b >> 20),
        "env": names,
        "pass_env": e2b.e2b_pass_env,
    })
}

fn render(plan: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut out = format!(
        "Dry run: compiled and prepared, nothing executed\n  pipeline: {} (profile {}, manifest {})\n  target:   {}\n",
        text(&plan["pipeline"]),
        text(&plan["profile"]),
        text(&plan["manifest_short"]),
        text(&plan["target"]),
    );
    if let Some(e2b) = plan["e2b"].as_object() {
        out.push_str(&format!(
            "  sandbox:  template {}, timeout {} s, cpu ≥ {}, memory ≥ {}, env [{}], pass-env [{}]\n",
            text(&e2b["template"]),
            e2b["timeout_seconds"],
            e2b["min_cpu"].as_u64().map_or("any".to_string(), |n| n.to_string()),
            e2b["min_memory_mib"].as_u64().map_or("any".to_string(), |m| format!("{m} MiB")),
            names(&e2b["env"]),
            names(&e2b["pass_env"]),
        ));
    }
    out.push_str("  steps:\n");
    for step in plan["steps"].as_array().into_iter().flatten() {
        let needs = names(&step["needs"]);
        out.push_str(&format!(
            "    {:<24} {:<26} {:<9}{}\n",
            text(&step["step_id"]),
            text(&step["component"]),
            text(&step["mode"]),
            if needs.is_empty() { String::new() } else { format!(" needs {needs}") }
        ));
    }
    for c in plan["connections"].as_array().into_iter().flatten() {
        out.push_str(&format!("  connection {} (used by {})\n", text(&c["connection"]), names(&c["used_by"])));
    }
    for (label, key) in [("reads ", "inputs"), ("writes", "outputs")] {
        for f in plan[key].as_array().into_iter().flatten() {
            out.push_str(&format!("  {label} {} ({})\n", text(&f["path"]), text(&f["step_id"])));
        }
    }
    out
}

fn names(list: &Value) -> String {
    list.as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
}
