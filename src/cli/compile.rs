//! `osiris compile FILE`: validate and compile into `build/pipelines/<profile>/<slug>/<short>-<hash>/`.

use std::collections::BTreeMap;
use std::path::Path;

use osiris_engine::compile::{self, BuildPaths, CompileError, Compiled, Compiler};
use osiris_engine::registry::Registry;
use serde_json::json;

use super::project::Project;
use super::{CliError, CompileArgs, Outcome, PipelineArgs};

pub fn command(registry: &Registry, args: &CompileArgs) -> Result<Outcome, CliError> {
    let project = Project::load()?;
    let (compiled, paths) = compile_and_write(&project, registry, &args.file, &args.pipeline)?;
    let manifest = project.show(&paths.manifest_path);
    if args.json {
        return Ok(Outcome::json(json!({
            "status": "success",
            "message": format!("Compilation successful: {}", compiled.manifest_short()),
            "manifest_path": manifest,
            "build_dir": project.show(&paths.build_dir),
            "manifest_hash": compiled.manifest_hash(),
            "manifest_short": compiled.manifest_short(),
            "pipeline_slug": compiled.pipeline_slug,
            "profile": compiled.profile,
            "warnings": compiled.warnings,
        })));
    }
    let mut text = String::new();
    for warning in &compiled.warnings {
        text.push_str(&format!("{warning}\n"));
    }
    text.push_str(&format!(
        "✓ Compiled {} ({} steps, profile {})\n  build:    {}\n  manifest: {}\n  hash:     {}\n  run it:   osiris run --last-compile\n",
        args.file.display(),
        compiled.manifest.steps.len(),
        compiled.profile,
        project.show(&paths.build_dir),
        manifest,
        compiled.manifest_short(),
    ));
    Ok(Outcome::text(text))
}

/// Compiles an OML file and writes its build directory and pointers.
pub fn compile_and_write(
    project: &Project,
    registry: &Registry,
    file: &Path,
    pipeline: &PipelineArgs,
) -> Result<(Compiled, BuildPaths), CliError> {
    let params: BTreeMap<String, String> = pipeline.params.iter().cloned().collect();
    let compiled = Compiler::new(registry)
        .profile(project.profile(pipeline.profile.as_deref()))
        .params(params)
        .env(project.env_map())
        .manifest_short_len(project.config.manifest_short_len)
        .compile_file(file)
        .map_err(|e| compile_error(file, e))?;
    let paths = compile::write_with_build_dir(&compiled, &project.base_dir, &project.config.build_dir)
        .map_err(|e| compile_error(file, e))?;
    Ok((compiled, paths))
}

/// A compile failure as a CLI error (exit 2) with every diagnostic.
pub fn compile_error(file: &Path, err: CompileError) -> CliError {
    let (error_type, hint) = match &err {
        CompileError::Validation { .. } => (
            "validation_error",
            format!("fix the problems above; `osiris oml validate {}` lists them again", file.display()),
        ),
        CompileError::Read { .. } => ("compilation_error", "check the file path".to_string()),
        _ => ("compilation_error", "see the message above".to_string()),
    };
    let json = json!({
        "status": "error",
        "error_type": error_type,
        "message": err.to_string(),
        "pipeline": file.display().to_string(),
        "errors": err.diagnostics(),
    });
    CliError::usage(err.to_string(), hint).with_json(json)
}
