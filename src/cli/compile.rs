//! `osiris compile FILE`: validate and compile into `build/pipelines/<profile>/<slug>/<short>-<hash>/`.

use std::collections::BTreeMap;
use std::path::Path;

use osiris_engine::compile::{self, BuildPaths, CompileError, Compiled, Compiler};
use osiris_engine::connections::file::ConnectionsFile;
use osiris_engine::connections::keys::compiled_key_diagnostics;
use osiris_engine::pipeline::validate::{Diagnostic, Severity};
use osiris_engine::registry::Registry;
use serde_json::json;

use super::project::Project;
use super::{CliError, CompileArgs, Outcome, PipelineArgs};

pub fn command(registry: &Registry, args: &CompileArgs) -> Result<Outcome, CliError> {
    let project = Project::load()?;
    let (compiled, paths) = compile_and_write(&project, registry, &args.file, &args.pipeline)?;
    let manifest = project.show(&paths.manifest_path);
    if let Some(out) = &args.out {
        copy_build(&paths.build_dir, out)?;
    }
    print_warnings(&compiled.warnings);
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
            "out_dir": args.out.as_ref().map(|dir| project.show(dir)),
        })));
    }
    let mut text = String::new();
    text.push_str(&format!(
        "✓ Compiled {} ({} steps, profile {})\n  build:    {}\n  manifest: {}\n  hash:     {}\n  run it:   osiris run --last-compile\n",
        args.file.display(),
        compiled.manifest.steps.len(),
        compiled.profile,
        project.show(&paths.build_dir),
        manifest,
        compiled.manifest_short(),
    ));
    if let Some(out) = &args.out {
        text.push_str(&format!(
            "  copied:   {} (run it: osiris run {})\n",
            project.show(out),
            project.show(&out.join("manifest.yaml"))
        ));
    }
    Ok(Outcome::text(text))
}

/// Validation warnings, on stderr before anything else happens (`--json` carries them as
/// `warnings` instead).
pub fn print_warnings(warnings: &[Diagnostic]) {
    for warning in warnings {
        super::emit(&mut std::io::stderr(), &format!("{warning}\n"));
    }
}

/// `compile --out DIR`: the build directory's files, copied into DIR (created when missing).
fn copy_build(build_dir: &Path, out: &Path) -> Result<(), CliError> {
    copy_tree(build_dir, out).map_err(|e| {
        CliError::usage(
            format!("compiled, but cannot copy the build into {}: {e}", out.display()),
            "check that --out names a writable directory",
        )
    })
}

/// Copies the files under `from` into `to`, keeping the layout (also used by `run --out`).
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Compiles an OML file and writes its build directory and pointers.
pub fn compile_and_write(
    project: &Project,
    registry: &Registry,
    file: &Path,
    pipeline: &PipelineArgs,
) -> Result<(Compiled, BuildPaths), CliError> {
    let compiled = compiler(project, registry, pipeline).compile_file(file).map_err(|e| compile_error(file, e))?;
    let problems = connection_key_problems(project, registry, &compiled);
    if !problems.is_empty() {
        let err = CompileError::Validation { file: file.display().to_string(), diagnostics: problems };
        return Err(compile_error(file, err));
    }
    let paths = compile::write_with_build_dir(&compiled, &project.base_dir, &project.config.build_dir)
        .map_err(|e| compile_error(file, e))?;
    Ok((compiled, paths))
}

/// The compiler `compile`, `run` and `oml validate` use: the project's profile, parameters,
/// environment and naming.
pub fn compiler<'r>(project: &Project, registry: &'r Registry, pipeline: &PipelineArgs) -> Compiler<'r> {
    let params: BTreeMap<String, String> = pipeline.params.iter().cloned().collect();
    Compiler::new(registry)
        .profile(project.profile(pipeline.profile.as_deref()))
        .params(params)
        .env(project.env_map())
        .manifest_short_len(project.config.manifest_short_len)
        .project_profiles(project.known_profiles())
}

/// The `unknown_connection_key` errors of the connection entries the compiled steps use, when
/// the project has a connections file that loads (a run needs it and reports its problems;
/// compile does not).
pub fn connection_key_problems(project: &Project, registry: &Registry, compiled: &Compiled) -> Vec<Diagnostic> {
    match ConnectionsFile::load(project.home.as_deref(), &project.cwd) {
        Ok(file) => compiled_key_diagnostics(compiled, &file, registry),
        Err(_) => Vec::new(),
    }
}

/// Every problem of a compile failure as diagnostics (a failure that is not about the pipeline's
/// content, like an unreadable file, becomes one diagnostic with the error's own message).
pub fn compile_diagnostics(file: &Path, err: &CompileError) -> Vec<Diagnostic> {
    if !err.diagnostics().is_empty() {
        return err.diagnostics().to_vec();
    }
    let (code, hint) = match err {
        CompileError::InvalidProfile { .. } => ("invalid_profile", "pass a profile like --profile prod"),
        CompileError::Read { .. } => ("file_not_readable", "check the path"),
        _ => ("compilation_error", "see the message"),
    };
    let shown = file.display().to_string();
    vec![Diagnostic::new(Severity::Error, code, "", err.to_string()).with_hint(hint).at(Some(&shown), None)]
}

/// A compile failure as a CLI error (exit 2) with every diagnostic.
pub fn compile_error(file: &Path, err: CompileError) -> CliError {
    let (error_type, hint) = match &err {
        CompileError::Validation { .. } => (
            "validation_error",
            "fix the problems above (each names its file:line; docs/pipelines.md lists the codes)".to_string(),
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
