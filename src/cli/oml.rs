//! `osiris oml validate FILE...`: every problem of every file, exit 1 when any file is invalid.
//!
//! "Valid" means `osiris compile` succeeds: after the structural checks, each file is compiled in
//! memory with the same `--profile`, `--param`, environment and project settings (nothing is
//! written), so parameter, driver and connection-key problems are reported here too.

use std::path::Path;

use osiris_engine::pipeline::validate::{Diagnostic, Report, validate, yaml_error_diagnostic};
use osiris_engine::registry::Registry;
use osiris_engine::yaml::parse_located;
use serde_json::{Value, json};

use super::compile::{compile_diagnostics, compiler, connection_key_problems};
use super::project::Project;
use super::{CliError, Outcome, ValidateArgs};

pub fn validate_files(registry: &Registry, args: &ValidateArgs) -> Result<Outcome, CliError> {
    let project = Project::load()?;
    let as_json = args.json;
    let results: Vec<(String, FileResult)> = args
        .files
        .iter()
        .map(|f| {
            let mut result = validate_file(registry, f);
            if result.report.is_valid() {
                result.report.errors.extend(compile_problems(&project, registry, args, f));
            }
            (f.display().to_string(), result)
        })
        .collect();
    let all_valid = results.iter().all(|(_, r)| r.report.errors.is_empty());
    let outcome = if as_json {
        let items: Vec<Value> = results.iter().map(|(name, r)| r.to_json(name)).collect();
        Outcome::json(if items.len() == 1 {
            items.into_iter().next().unwrap_or_default()
        } else {
            json!({"files": items, "all_valid": all_valid})
        })
    } else {
        Outcome::text(results.iter().map(|(name, r)| r.to_text(name)).collect::<String>())
    };
    Ok(if all_valid { outcome } else { Outcome::WithCode(Box::new(outcome), 1) })
}

/// What `osiris compile` would report for a structurally valid file, without writing anything.
fn compile_problems(project: &Project, registry: &Registry, args: &ValidateArgs, file: &Path) -> Vec<Diagnostic> {
    match compiler(project, registry, &args.pipeline).compile_file(file) {
        Ok(compiled) => connection_key_problems(project, registry, &compiled),
        Err(e) => compile_diagnostics(file, &e),
    }
}

struct FileResult {
    report: Report,
    summary: Option<(Value, Value, usize)>,
}

fn validate_file(registry: &Registry, path: &Path) -> FileResult {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            let d = Diagnostic::new(
                osiris_engine::pipeline::validate::Severity::Error,
                "file_not_readable",
                "",
                format!("cannot read the file: {e}"),
            )
            .with_hint("check the path")
            .at(Some(&shown), None);
            return FileResult { report: Report { errors: vec![d], warnings: vec![] }, summary: None };
        }
    };
    match parse_located(&text) {
        Err(e) => FileResult {
            report: Report { errors: vec![yaml_error_diagnostic(&e, Some(&shown))], warnings: vec![] },
            summary: None,
        },
        Ok(doc) => {
            let report = validate(&doc, Some(&shown), registry);
            let steps = doc.value.get("steps").and_then(Value::as_array).map_or(0, Vec::len);
            let summary = (
                doc.value.get("oml_version").cloned().unwrap_or(Value::Null),
                doc.value.get("name").cloned().unwrap_or(Value::Null),
                steps,
            );
            FileResult { report, summary: Some(summary) }
        }
    }
}

impl FileResult {
    fn to_json(&self, file: &str) -> Value {
        let absolute =
            std::fs::canonicalize(file).map(|p| p.display().to_string()).unwrap_or_else(|_| file.to_string());
        let mut value = json!({
            "valid": self.report.errors.is_empty(),
            "file": absolute,
            "errors": self.report.errors,
            "warnings": self.report.warnings,
        });
        if let Some((version, name, steps)) = &self.summary {
            value["oml_version"] = version.clone();
            value["name"] = name.clone();
            value["steps_count"] = json!(steps);
        }
        value
    }

    fn to_text(&self, file: &str) -> String {
        let mut text = String::new();
        for d in self.report.errors.iter().chain(&self.report.warnings) {
            text.push_str(&format!("{d}\n"));
        }
        let (errors, warnings) = (self.report.errors.len(), self.report.warnings.len());
        if errors == 0 {
            text.push_str(&format!("✓ {file}: valid ({warnings} warning{})\n", plural(warnings)));
        } else {
            text.push_str(&format!(
                "✗ {file}: {errors} error{}, {warnings} warning{}\n",
                plural(errors),
                plural(warnings)
            ));
        }
        text
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
