//! Which compiled manifest `run --last-compile` and `run --last-compile-in SLUG|DIR` run.
//!
//! `--last-compile-in` takes, as Osiris 0.5.7 does, a pipeline slug (its per-pipeline pointer
//! `.osiris/index/latest/<slug>.txt`), and also a directory that holds a compile: a pipeline's
//! build folder with its `LATEST` pointer, a project with `.osiris/index/last_compile.txt`, or a
//! folder with a `manifest.yaml` (what `compile --out DIR` writes).

use std::path::{Path, PathBuf};

use osiris_engine::compile;
use osiris_engine::pipeline::validate::did_you_mean;

use super::CliError;
use super::project::Project;

/// Environment variable `--last-compile-in` without a value reads (as in Osiris).
const LAST_COMPILE_DIR_VAR: &str = "OSIRIS_LAST_COMPILE_DIR";

/// The manifest to run: the last compile (`None`), or the latest one `in_what` names.
pub fn manifest(project: &Project, in_what: Option<&str>) -> Result<PathBuf, CliError> {
    let Some(given) = in_what else {
        return compile::last_compile_manifest(&project.base_dir)
            .map_err(|e| CliError::usage(e.to_string(), "run `osiris compile FILE` first, or pass the pipeline file"));
    };
    let value = if given.is_empty() {
        std::env::var(LAST_COMPILE_DIR_VAR).ok().filter(|v| !v.is_empty()).ok_or_else(|| {
            CliError::usage(
                format!("--last-compile-in has no value and {LAST_COMPILE_DIR_VAR} is not set"),
                "pass a pipeline slug or a directory: `--last-compile-in orders-etl`",
            )
        })?
    } else {
        given.to_string()
    };
    let dir = project.cwd.join(&value);
    if dir.is_dir() {
        return in_directory(&dir);
    }
    by_slug(project, &value)
}

/// The compile a directory holds, by the first of its pointers that exists.
fn in_directory(dir: &Path) -> Result<PathBuf, CliError> {
    let pointers = [dir.join("LATEST"), dir.join(".osiris").join("index").join("last_compile.txt")];
    if let Some(pointer) = pointers.iter().find(|p| p.is_file()) {
        return read(pointer, dir);
    }
    let manifest = dir.join("manifest.yaml");
    if manifest.is_file() {
        return Ok(manifest);
    }
    Err(CliError::usage(
        format!(
            "--last-compile-in {}: the directory holds no compile (no LATEST, .osiris/index/last_compile.txt or manifest.yaml)",
            dir.display()
        ),
        "name a pipeline's build folder (build/pipelines/<profile>/<slug>), a project, or a pipeline slug",
    ))
}

/// The latest compile of pipeline `slug` in this project (`.osiris/index/latest/<slug>.txt`).
fn by_slug(project: &Project, slug: &str) -> Result<PathBuf, CliError> {
    let latest = project.base_dir.join(".osiris").join("index").join("latest");
    let pointer = latest.join(format!("{slug}.txt"));
    if !slug.contains(['/', '\\']) && pointer.is_file() {
        return read(&pointer, &project.base_dir);
    }
    let known = compiled_slugs(&latest);
    let hint = match did_you_mean(slug, known.iter().map(String::as_str)) {
        Some(close) => format!("did you mean `{close}`? compiled pipelines: {}", known.join(", ")),
        None if known.is_empty() => "compile the pipeline first (`osiris compile FILE`)".to_string(),
        None => format!("compiled pipelines: {}", known.join(", ")),
    };
    Err(CliError::usage(
        format!(
            "--last-compile-in {slug}: no such directory, and no compile of a pipeline with slug '{slug}' ({})",
            project.show(&pointer)
        ),
        hint,
    ))
}

/// The slugs with a latest-compile pointer.
fn compiled_slugs(latest: &Path) -> Vec<String> {
    let mut slugs: Vec<String> = std::fs::read_dir(latest)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".txt").map(str::to_string))
        .collect();
    slugs.sort();
    slugs
}

/// The manifest a pointer file names (a relative path resolves against `base`).
fn read(pointer: &Path, base: &Path) -> Result<PathBuf, CliError> {
    let (manifest, _, _) = compile::read_pointer(pointer)
        .map_err(|e| CliError::usage(e.to_string(), "compile the pipeline again (`osiris compile FILE`)"))?;
    Ok(if manifest.is_absolute() { manifest } else { base.join(manifest) })
}
