//! The compiler: OML → validated, parameter-resolved, fingerprinted manifest and step configs.
//!
//! ```no_run
//! use std::path::Path;
//! use osiris_engine::{compile::{Compiler, write}, registry::Registry};
//! let registry = Registry::new();
//! let compiler = Compiler::new(&registry).profile("dev").with_process_env();
//! let compiled = compiler.compile_file(Path::new("pipelines/mysql_to_csv.yaml"))?;
//! let paths = write(&compiled, Path::new("."))?;
//! println!("{}", paths.manifest_path.display());
//! # Ok::<(), osiris_engine::compile::CompileError>(())
//! ```
//!
//! The build directory follows Osiris (`build/pipelines/<profile>/<slug>/<short>-<hash>/` with
//! `manifest.yaml`, `plan.json`, `fingerprints.json`, `run_summary.json`, `cfg/<step>.json`, and
//! the `LATEST` / `.osiris/index` pointers). Identical input gives identical bytes, except
//! `meta.generated_at` and `run_summary.compiled_at`, which no hash covers.

pub mod canonical;
pub mod osiris_build;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::connections::secret_names::is_config_secret_key;
use crate::manifest::{Fingerprints, Manifest, ManifestMeta, ManifestPipeline, ManifestStep, Toolchain};
use crate::pipeline::params::{ParamsError, effective_params, has_placeholder, input_diagnostics, substitute_params};
use crate::pipeline::validate::{Diagnostic, Severity, is_safe_step_id, validate, yaml_error_diagnostic};
use crate::pipeline::{Pipeline, slugify};
use crate::registry::Registry;
use crate::spec::{FieldType, Mode};
use crate::yaml::{LocatedDocument, PathSeg, parse_located, path_to_string, to_canonical_yaml};
use canonical::{canonical_json, fingerprint, python_json_ascii, sha256_hex};

/// Compiler identity written to `meta.toolchain.compiler` and hashed into `compiler_fp`.
pub const COMPILER_ID: &str = "osiris-rs-compiler/0.1";
/// Registry identity written to `meta.toolchain.registry`.
pub const REGISTRY_ID: &str = "osiris-rs-registry/0.1";
/// Default profile.
pub const DEFAULT_PROFILE: &str = "dev";
/// Default length of `manifest_short`.
pub const DEFAULT_MANIFEST_SHORT_LEN: usize = 7;
/// Default name of the build directory under the base path.
pub const DEFAULT_BUILD_DIR: &str = "build";

/// Compilation errors.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The pipeline file could not be read.
    #[error("cannot read pipeline {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The pipeline is invalid; every problem is listed.
    #[error("{}", render_diagnostics(.file, .diagnostics))]
    Validation {
        /// The pipeline file.
        file: String,
        /// All errors (no warnings).
        diagnostics: Vec<Diagnostic>,
    },
    /// The build directory could not be written.
    #[error("cannot write {path}: {source}; check that the directory is writable")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The profile name cannot be used in a path.
    #[error(
        "invalid profile name '{profile}': a profile is part of the build and run-log paths, so it must match ^[A-Za-z0-9][A-Za-z0-9_-]*$ (letters, digits, '_' and '-')"
    )]
    InvalidProfile {
        /// The rejected name.
        profile: String,
    },
    /// A compiled build directory could not be read back.
    #[error("cannot load compiled pipeline {path}: {message}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
}

/// Whether `name` can be a profile: `^[A-Za-z0-9][A-Za-z0-9_-]*$` (it becomes a path segment).
pub fn is_valid_profile(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check_profile(profile: &str) -> Result<(), CompileError> {
    if is_valid_profile(profile) { Ok(()) } else { Err(CompileError::InvalidProfile { profile: profile.to_string() }) }
}

fn render_diagnostics(file: &str, diagnostics: &[Diagnostic]) -> String {
    let n = diagnostics.len();
    let mut s = format!("{file}: {n} error{} found", if n == 1 { "" } else { "s" });
    for d in diagnostics {
        s.push_str("\n  ");
        s.push_str(&d.to_string());
    }
    s
}

impl CompileError {
    /// The diagnostics of a validation error (empty for other errors).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            CompileError::Validation { diagnostics, .. } => diagnostics,
            _ => &[],
        }
    }
}

/// One compiled step config (`cfg/<id>.json`).
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledStep {
    /// The step id.
    pub id: String,
    /// The cfg object: `component`, `mode`, config keys, spec defaults, `connection` ref;
    /// secret keys dropped.
    pub config: Map<String, Value>,
}

/// A compiled pipeline: the manifest, the step configs and the run summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    /// The manifest (with hash and fingerprints).
    pub manifest: Manifest,
    /// Step configs in manifest order.
    pub steps: Vec<CompiledStep>,
    /// Effective parameters (empty when loaded back from a build directory).
    pub params: BTreeMap<String, String>,
    /// Slug of the build path: the OML file stem, slugified (as Osiris's `compile`). Run logs use
    /// [`Compiled::run_log_slug`].
    pub pipeline_slug: String,
    /// The profile compiled for.
    pub profile: String,
    /// `run_summary.compiled_at` (same as `meta.generated_at` when freshly compiled).
    pub compiled_at: String,
    /// Validation warnings.
    pub warnings: Vec<Diagnostic>,
}

impl Compiled {
    /// `meta.manifest_hash`.
    pub fn manifest_hash(&self) -> &str {
        &self.manifest.meta.manifest_hash
    }

    /// `meta.manifest_short`.
    pub fn manifest_short(&self) -> &str {
        &self.manifest.meta.manifest_short
    }

    /// Slug of the run-log path: the manifest's `pipeline.id` (the OML `name`), slugified, as
    /// Osiris's `run` names its session folder (`osiris/cli/run.py`: `pipeline_slug_final`).
    pub fn run_log_slug(&self) -> String {
        slugify(&self.manifest.pipeline.id)
    }

    /// The config of step `id`.
    pub fn step_config(&self, id: &str) -> Option<&Map<String, Value>> {
        self.steps.iter().find(|s| s.id == id).map(|s| &s.config)
    }

    /// `manifest.yaml` text (canonical YAML).
    pub fn manifest_yaml(&self) -> String {
        to_canonical_yaml(&serde_json::to_value(&self.manifest).unwrap_or(Value::Null))
    }

    /// `plan.json` text.
    pub fn plan_json(&self) -> String {
        let steps: Vec<Value> = self.manifest.steps.iter().map(|s| json!({"driver": s.driver, "id": s.id})).collect();
        canonical_json(&json!({ "steps": steps }))
    }

    /// `fingerprints.json` text.
    pub fn fingerprints_json(&self) -> String {
        let fp = serde_json::to_value(&self.manifest.pipeline.fingerprints).unwrap_or(Value::Null);
        canonical_json(&json!({ "fingerprints": fp }))
    }

    /// `run_summary.json` text.
    pub fn run_summary_json(&self) -> String {
        canonical_json(&json!({
            "compiled_at": self.compiled_at,
            "manifest_hash": self.manifest.meta.manifest_hash,
            "manifest_short": self.manifest.meta.manifest_short,
            "oml_version": self.manifest.meta.oml_version,
            "pipeline_slug": self.pipeline_slug,
            "profile": self.profile,
        }))
    }

    /// `cfg/<id>.json` text.
    pub fn cfg_json(&self, id: &str) -> Option<String> {
        self.step_config(id).map(|c| canonical_json(&Value::Object(c.clone())))
    }

    /// The build directory relative to the base path:
    /// `<build_dir>/pipelines/<profile>/<slug>/<short>-<hash>`.
    pub fn build_subdir(&self, build_dir: &str) -> PathBuf {
        Path::new(build_dir)
            .join("pipelines")
            .join(&self.profile)
            .join(&self.pipeline_slug)
            .join(format!("{}-{}", self.manifest.meta.manifest_short, self.manifest.meta.manifest_hash))
    }
}

/// Compiles OML files. Built with a registry; everything else has defaults.
#[derive(Clone, Debug)]
pub struct Compiler<'r> {
    registry: &'r Registry,
    profile: String,
    cli_params: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    generated_at: Option<String>,
    manifest_short_len: usize,
    project_profiles: Vec<String>,
}

impl<'r> Compiler<'r> {
    /// A compiler for profile `dev`, no CLI params and an empty environment.
    pub fn new(registry: &'r Registry) -> Self {
        Compiler {
            registry,
            profile: DEFAULT_PROFILE.to_string(),
            cli_params: BTreeMap::new(),
            env: BTreeMap::new(),
            generated_at: None,
            manifest_short_len: DEFAULT_MANIFEST_SHORT_LEN,
            project_profiles: vec![DEFAULT_PROFILE.to_string()],
        }
    }

    /// The profiles the project declares (its default and `osiris.yaml`'s
    /// `filesystem.profiles.values`; default: `dev`). A profile neither these nor the pipeline's
    /// `profiles:` name is an `unknown_profile` error.
    pub fn project_profiles(mut self, profiles: Vec<String>) -> Self {
        self.project_profiles = profiles;
        self
    }

    /// Sets the profile (`profiles.<profile>.params` apply; part of the build path and hash).
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = profile.into();
        self
    }

    /// Sets the CLI `--param` values (highest precedence).
    pub fn params(mut self, params: BTreeMap<String, String>) -> Self {
        self.cli_params = params;
        self
    }

    /// Adds one CLI `--param`.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.cli_params.insert(name.into(), value.into());
        self
    }

    /// Sets the environment used for `OSIRIS_PARAM_<NAME>`.
    pub fn env(mut self, env: BTreeMap<String, String>) -> Self {
        self.env = env;
        self
    }

    /// Uses the process environment for `OSIRIS_PARAM_<NAME>`.
    pub fn with_process_env(self) -> Self {
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with(crate::pipeline::params::ENV_PREFIX))
            .collect();
        self.env(env)
    }

    /// Pins `meta.generated_at` (tests); by default the current UTC time.
    pub fn generated_at(mut self, ts: impl Into<String>) -> Self {
        self.generated_at = Some(ts.into());
        self
    }

    /// Length of `manifest_short` (clamped to 3..=16).
    pub fn manifest_short_len(mut self, len: usize) -> Self {
        self.manifest_short_len = len.clamp(3, 16);
        self
    }

    /// Reads and compiles a pipeline file.
    pub fn compile_file(&self, path: &Path) -> Result<Compiled, CompileError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| CompileError::Read { path: path.to_path_buf(), source })?;
        self.compile(path, &text)
    }

    /// Compiles pipeline `text`, read from `source_path` (used for messages and the slug).
    pub fn compile(&self, source_path: &Path, text: &str) -> Result<Compiled, CompileError> {
        check_profile(&self.profile)?;
        let file = source_path.display().to_string();
        let fail = |diagnostics: Vec<Diagnostic>| CompileError::Validation { file: file.clone(), diagnostics };
        let doc = parse_located(text).map_err(|e| fail(vec![yaml_error_diagnostic(&e, Some(&file))]))?;
        let report = validate(&doc, Some(&file), self.registry);
        if !report.is_valid() {
            return Err(fail(report.errors));
        }
        let input_errors = input_diagnostics(&doc, &file, &self.profile, &self.project_profiles, &self.cli_params);
        if !input_errors.is_empty() {
            return Err(fail(input_errors));
        }
        let params = effective_params(&doc.value, &self.profile, &self.env, &self.cli_params).map_err(|e| {
            fail(vec![Diagnostic::new(Severity::Error, "invalid_type", "params", e.to_string()).at(Some(&file), None)])
        })?;
        let resolved = substitute_params(&doc.value, &params).map_err(|e| fail(param_diagnostics(&e, &doc, &file)))?;
        let mut pipeline = Pipeline::from_value(&resolved).map_err(|e| {
            fail(vec![Diagnostic::new(Severity::Error, "invalid_type", "", e.to_string()).at(Some(&file), None)])
        })?;
        for step in &mut pipeline.steps {
            step.location = doc.location(&[PathSeg::key("steps"), PathSeg::Index(step.index)]);
        }

        let mut errors = Vec::new();
        // Validation ran before `${params.*}` substitution and forbids placeholders in ids and
        // `needs`; check the ids that name files again after it, whatever produced them.
        let mut seen_ids = std::collections::BTreeSet::new();
        for step in &pipeline.steps {
            let path = [PathSeg::key("steps"), PathSeg::Index(step.index), PathSeg::key("id")];
            let (code, message) = if !is_safe_step_id(&step.id) {
                ("invalid_id", format!("step id '{}' cannot be used as a file name", step.id))
            } else if !seen_ids.insert(step.id.as_str()) {
                ("duplicate_id", format!("duplicate step id '{}'", step.id))
            } else {
                continue;
            };
            errors.push(
                Diagnostic::new(Severity::Error, code, &path_to_string(&path), message)
                    .with_hint("write step ids literally, with letters, digits, '-' and '_', each once")
                    .at(Some(&file), doc.nearest_location(&path)),
            );
        }
        if !errors.is_empty() {
            return Err(fail(errors));
        }
        let mut steps = Vec::with_capacity(pipeline.steps.len());
        let mut manifest_steps = Vec::with_capacity(pipeline.steps.len());
        for step in &pipeline.steps {
            let (Some(component), Some(mode)) = (self.registry.get(&step.component), Mode::from_oml(&step.mode)) else {
                continue; // reported by validation
            };
            let spec = component.spec();
            let cfg_key = if doc.value["steps"][step.index].get("config").is_some() { "config" } else { "with" };
            let raw_cfg = doc.value["steps"][step.index].get(cfg_key).and_then(Value::as_object);
            let mut cfg = Map::new();
            for (k, v) in &step.config {
                if k != "connection" && is_config_secret_key(k, spec.secret_names()) {
                    continue;
                }
                let path = [PathSeg::key("steps"), PathSeg::Index(step.index), PathSeg::key(cfg_key), PathSeg::key(k)];
                let mut v = v.clone();
                let from_param = raw_cfg.and_then(|c| c.get(k)).and_then(Value::as_str).is_some_and(has_placeholder);
                if let (true, Some(field)) = (from_param, spec.field(k)) {
                    v = coerce(v, field.field_type);
                    let bad_type = !v.is_null() && !field.field_type.accepts(&v);
                    let bad_value = !field.allowed.is_empty() && !field.allowed.contains(&v);
                    if bad_type || bad_value {
                        let msg = if bad_type {
                            format!("'{k}' must be {} after parameter substitution", field.field_type.as_str())
                        } else {
                            format!("'{k}' has a value that is not allowed after parameter substitution")
                        };
                        errors.push(
                            Diagnostic::new(Severity::Error, "invalid_config_value", &path_to_string(&path), msg)
                                .with_hint(
                                    "check the parameter value (OML default, OSIRIS_PARAM_*, profile or --param)",
                                )
                                .at(Some(&file), doc.nearest_location(&path)),
                        );
                    }
                }
                cfg.insert(k.clone(), v);
            }
            for field in &spec.config {
                if field.name == "mode" || cfg.contains_key(&field.name) {
                    continue;
                }
                if let Some(default) = &field.default {
                    cfg.insert(field.name.clone(), default.clone());
                }
            }
            let mut driver_config = cfg.clone();
            driver_config.remove("connection");
            if let Err(e) = component.create(&driver_config) {
                let path = [PathSeg::key("steps"), PathSeg::Index(step.index), PathSeg::key(cfg_key)];
                let mut d = Diagnostic::new(
                    Severity::Error,
                    "invalid_config_value",
                    &path_to_string(&path),
                    format!("step '{}' ({}): {}", step.id, spec.name, e.message),
                )
                .at(Some(&file), doc.nearest_location(&path));
                d.hint = e.hint.clone().or_else(|| Some(format!("see `osiris components show {}`", spec.name)));
                errors.push(d);
            }
            // `mode` in cfg/<step>.json is the component mode (set below, as Osiris does). A writer
            // whose config takes a write mode under `mode` and its alias `write_mode` (Osiris's
            // `write_mode|mode`) gets it as `write_mode`, so the setting reaches the driver. (If
            // both were set and disagreed, `create` above reported it.)
            if spec.field("mode").is_some()
                && spec.field("write_mode").is_some()
                && let Some(write_mode) = cfg.remove("mode")
            {
                cfg.entry("write_mode").or_insert(write_mode);
            }
            cfg.insert("component".into(), Value::String(spec.name.clone()));
            cfg.insert("mode".into(), Value::String(mode.as_str().to_string()));
            manifest_steps.push(ManifestStep {
                cfg_path: format!("cfg/{}.json", step.id),
                component: spec.name.clone(),
                driver: spec.name.clone(),
                id: step.id.clone(),
                mode,
                needs: pipeline.resolved_needs(step.index),
            });
            steps.push(CompiledStep { id: step.id.clone(), config: cfg });
        }
        if !errors.is_empty() {
            return Err(fail(errors));
        }

        let generated_at = self
            .generated_at
            .clone()
            .unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
        let params_value = Value::Object(params.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect());
        let mut manifest = Manifest {
            meta: ManifestMeta {
                generated_at: generated_at.clone(),
                manifest_hash: String::new(),
                manifest_short: String::new(),
                oml_version: pipeline.oml_version.clone(),
                profile: self.profile.clone(),
                run_id: "${run_id}".to_string(),
                toolchain: Toolchain { compiler: COMPILER_ID.to_string(), registry: REGISTRY_ID.to_string() },
            },
            metadata: pipeline.metadata.clone(),
            name: Some(pipeline.name.clone()),
            pipeline: ManifestPipeline {
                fingerprints: Fingerprints {
                    compiler_fp: fingerprint(COMPILER_ID),
                    manifest_fp: String::new(),
                    oml_fp: fingerprint(&canonical_json(&resolved)),
                    params_fp: fingerprint(&canonical_json(&params_value)),
                    profile: self.profile.clone(),
                    registry_fp: fingerprint(&self.registry.fingerprint_source()),
                },
                id: pipeline.pipeline_id(),
                version: pipeline.oml_version.clone(),
            },
            steps: manifest_steps,
        };
        let (manifest_fp, hash) = manifest_hashes(&manifest);
        manifest.pipeline.fingerprints.manifest_fp = manifest_fp;
        manifest.meta.manifest_short = hash.chars().take(self.manifest_short_len).collect();
        manifest.meta.manifest_hash = hash;

        let stem = source_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Compiled {
            manifest,
            steps,
            params,
            pipeline_slug: slugify(&stem),
            profile: self.profile.clone(),
            compiled_at: generated_at,
            warnings: report.warnings,
        })
    }
}

/// `(manifest_fp, manifest_hash)` of a manifest: both ignore `meta.generated_at`,
/// `meta.manifest_hash`, `meta.manifest_short` and `pipeline.fingerprints.manifest_fp`.
pub fn manifest_hashes(manifest: &Manifest) -> (String, String) {
    manifest_value_hashes(serde_json::to_value(manifest).unwrap_or(Value::Null))
}

/// [`manifest_hashes`] of a manifest as read (Osiris's `compute_manifest_hash` in
/// `osiris/core/fs_paths.py`): covers exactly the fields the file has, whoever wrote it.
pub fn manifest_value_hashes(mut m: Value) -> (String, String) {
    if let Some(meta) = m.get_mut("meta").and_then(Value::as_object_mut) {
        meta.remove("generated_at");
        meta.remove("manifest_hash");
        meta.remove("manifest_short");
    }
    if let Some(fp) = m.pointer_mut("/pipeline/fingerprints").and_then(Value::as_object_mut) {
        fp.remove("manifest_fp");
    }
    let manifest_fp = fingerprint(&canonical_json(&m));
    let profile = m.pointer("/meta/profile").and_then(Value::as_str).unwrap_or_default().to_string();
    let hash = sha256_hex(&python_json_ascii(&json!({"manifest": m, "profile": profile})));
    (manifest_fp, hash)
}

/// Converts a string produced by parameter substitution to the field's type when it parses.
fn coerce(v: Value, ty: FieldType) -> Value {
    let Value::String(s) = &v else { return v };
    let t = s.trim();
    match ty {
        FieldType::Integer => t.parse::<i64>().map(Value::from).unwrap_or(v),
        FieldType::Number => t
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| t.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number).ok_or(()))
            .unwrap_or(v),
        FieldType::Boolean => match t.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => v,
        },
        _ => v,
    }
}

fn param_diagnostics(e: &ParamsError, doc: &LocatedDocument, file: &str) -> Vec<Diagnostic> {
    match e {
        ParamsError::Unresolved { occurrences, .. } => occurrences
            .iter()
            .map(|(path, name)| {
                Diagnostic::new(
                    Severity::Error,
                    "unresolved_param",
                    &path_to_string(path),
                    format!("parameter '{name}' has no value"),
                )
                .with_hint(format!(
                    "declare `params: {{{name}: <default>}}`, set OSIRIS_PARAM_{}, or pass --param {name}=<value>",
                    name.to_uppercase()
                ))
                .at(Some(file), doc.nearest_location(path))
            })
            .collect(),
        ParamsError::Invalid(msg) => {
            vec![Diagnostic::new(Severity::Error, "invalid_type", "params", msg.clone()).at(Some(file), None)]
        }
    }
}

/// Where [`write`] put things.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildPaths {
    /// `<base>/build/pipelines/<profile>/<slug>/<short>-<hash>/`.
    pub build_dir: PathBuf,
    /// `<build_dir>/manifest.yaml`.
    pub manifest_path: PathBuf,
    /// `<base>/build/pipelines/<profile>/<slug>/LATEST`.
    pub latest_pointer: PathBuf,
    /// `<base>/.osiris/index/latest/<slug>.txt`.
    pub index_pointer: PathBuf,
    /// `<base>/.osiris/index/last_compile.txt` (for `run --last-compile`).
    pub last_compile: PathBuf,
}

impl fmt::Display for BuildPaths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.build_dir.display())
    }
}

/// Writes the build directory and pointers under `base_dir` with the default `build` directory.
pub fn write(compiled: &Compiled, base_dir: &Path) -> Result<BuildPaths, CompileError> {
    write_with_build_dir(compiled, base_dir, DEFAULT_BUILD_DIR)
}

fn write_file(path: &Path, contents: &str) -> Result<(), CompileError> {
    let err = |source| CompileError::Write { path: path.to_path_buf(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, contents).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// Writes the build directory and pointers under `base_dir/<build_dir>`.
pub fn write_with_build_dir(compiled: &Compiled, base_dir: &Path, build_dir: &str) -> Result<BuildPaths, CompileError> {
    check_profile(&compiled.profile)?;
    let dir = base_dir.join(compiled.build_subdir(build_dir));
    write_file(&dir.join("manifest.yaml"), &compiled.manifest_yaml())?;
    write_file(&dir.join("plan.json"), &compiled.plan_json())?;
    write_file(&dir.join("fingerprints.json"), &compiled.fingerprints_json())?;
    write_file(&dir.join("run_summary.json"), &compiled.run_summary_json())?;
    for step in &compiled.steps {
        write_file(
            &dir.join("cfg").join(format!("{}.json", step.id)),
            &canonical_json(&Value::Object(step.config.clone())),
        )?;
    }
    let manifest_path = dir.join("manifest.yaml");
    let pointer = format!("{}\n{}\n{}\n", manifest_path.display(), compiled.manifest_hash(), compiled.profile);
    let latest_pointer =
        base_dir.join(build_dir).join("pipelines").join(&compiled.profile).join(&compiled.pipeline_slug).join("LATEST");
    let index = base_dir.join(".osiris").join("index");
    let index_pointer = index.join("latest").join(format!("{}.txt", compiled.pipeline_slug));
    let last_compile = index.join("last_compile.txt");
    for p in [&latest_pointer, &index_pointer, &last_compile] {
        write_file(p, &pointer)?;
    }
    Ok(BuildPaths { build_dir: dir, manifest_path, latest_pointer, index_pointer, last_compile })
}

/// Reads a pointer file (`LATEST`, `last_compile.txt`): `(manifest path, hash, profile)`.
pub fn read_pointer(path: &Path) -> Result<(PathBuf, String, String), CompileError> {
    let text = std::fs::read_to_string(path).map_err(|e| CompileError::Load {
        path: path.to_path_buf(),
        message: format!("{e}; compile a pipeline first (`osiris compile FILE`)"),
    })?;
    let mut lines = text.lines();
    let manifest = lines.next().filter(|l| !l.trim().is_empty()).ok_or_else(|| CompileError::Load {
        path: path.to_path_buf(),
        message: "the pointer file is empty; compile the pipeline again".into(),
    })?;
    Ok((
        PathBuf::from(manifest.trim()),
        lines.next().unwrap_or_default().trim().to_string(),
        lines.next().unwrap_or_default().trim().to_string(),
    ))
}

/// The manifest of the last compile under `base_dir` (`.osiris/index/last_compile.txt`).
pub fn last_compile_manifest(base_dir: &Path) -> Result<PathBuf, CompileError> {
    let (manifest, _, _) = read_pointer(&base_dir.join(".osiris").join("index").join("last_compile.txt"))?;
    Ok(if manifest.is_absolute() { manifest } else { base_dir.join(manifest) })
}

/// Reads a build directory back from its `manifest.yaml` (for `run --last-compile` and
/// `run manifest.yaml`), whether this engine or Osiris compiled it ([`osiris_build`]). Checks the
/// manifest hash, so a hand-edited manifest is rejected. `params` is empty (not recorded).
pub fn load_compiled(manifest_path: &Path, registry: &Registry) -> Result<Compiled, CompileError> {
    let load_err = |path: &Path, message: String| CompileError::Load { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(manifest_path)
        .map_err(|e| load_err(manifest_path, format!("{e}; compile the pipeline again")))?;
    let doc = parse_located(&text)
        .map_err(|e| load_err(manifest_path, format!("invalid YAML at line {}: {}", e.line.unwrap_or(0), e.message)))?;
    let mut raw = doc.value;
    let (_, hash) = manifest_value_hashes(raw.clone());
    if raw.pointer("/meta/manifest_hash").and_then(Value::as_str) != Some(hash.as_str()) {
        return Err(load_err(
            manifest_path,
            "the manifest does not match its manifest_hash (was it edited?); compile the pipeline again".into(),
        ));
    }
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let osiris_written = osiris_build::is_osiris_build(&raw);
    fill_step_modes(&mut raw, dir, registry).map_err(|(path, message)| load_err(&path, message))?;
    let manifest: Manifest =
        serde_json::from_value(raw).map_err(|e| load_err(manifest_path, format!("not a manifest: {e}")))?;
    // The hash is no signature: whatever names a path must be checked like a fresh compile does.
    if !is_valid_profile(&manifest.meta.profile) {
        return Err(load_err(
            manifest_path,
            format!("invalid profile name '{}' in the manifest; compile the pipeline again", manifest.meta.profile),
        ));
    }
    let mut seen_ids = std::collections::BTreeSet::new();
    for step in &manifest.steps {
        if !is_safe_step_id(&step.id) {
            return Err(load_err(
                manifest_path,
                format!("step id '{}' cannot be used as a file name; compile the pipeline again", step.id),
            ));
        }
        if !seen_ids.insert(step.id.as_str()) {
            return Err(load_err(
                manifest_path,
                format!("duplicate step id '{}' in the manifest; compile the pipeline again", step.id),
            ));
        }
    }
    let mut steps = Vec::with_capacity(manifest.steps.len());
    for step in &manifest.steps {
        let mut config = read_step_cfg(dir, &step.id, &step.cfg_path).map_err(|(path, m)| load_err(&path, m))?;
        if osiris_written {
            osiris_build::adapt_cfg(&mut config, step.mode, osiris_build::spec_of(registry, &step.component));
        }
        steps.push(CompiledStep { id: step.id.clone(), config });
    }
    let summary: Value = std::fs::read_to_string(dir.join("run_summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    // Osiris records the file stem as it is (`orders_etl`); the build path uses its slug.
    let slug = summary
        .get("pipeline_slug")
        .and_then(Value::as_str)
        .map(slugify)
        .or_else(|| dir.parent().and_then(Path::file_name).map(|n| slugify(&n.to_string_lossy())))
        .unwrap_or_else(|| slugify(&manifest.pipeline.id));
    Ok(Compiled {
        profile: manifest.meta.profile.clone(),
        compiled_at: summary
            .get("compiled_at")
            .and_then(Value::as_str)
            .unwrap_or(&manifest.meta.generated_at)
            .to_string(),
        manifest,
        steps,
        params: BTreeMap::new(),
        pipeline_slug: slug,
        warnings: Vec::new(),
    })
}

/// A step's `cfg/<id>.json`, relative to the manifest's directory (never outside it).
fn read_step_cfg(dir: &Path, step_id: &str, cfg_path: &str) -> Result<Map<String, Value>, (PathBuf, String)> {
    let rel = Path::new(cfg_path);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err((dir.join("manifest.yaml"), format!("step '{step_id}' has an unsafe cfg_path '{cfg_path}'")));
    }
    let path = dir.join(rel);
    let text = std::fs::read_to_string(&path).map_err(|e| (path.clone(), e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| (path, format!("invalid JSON: {e}")))
}

/// Gives every manifest step without a `mode` (Osiris writes none) the one its cfg implies.
fn fill_step_modes(raw: &mut Value, dir: &Path, registry: &Registry) -> Result<(), (PathBuf, String)> {
    let Some(steps) = raw.get_mut("steps").and_then(Value::as_array_mut) else { return Ok(()) };
    for step in steps.iter_mut().filter_map(Value::as_object_mut).filter(|s| !s.contains_key("mode")) {
        let text = |key: &str| step.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        let (id, cfg_path, component) = (text("id"), text("cfg_path"), text("component"));
        let cfg = read_step_cfg(dir, &id, &cfg_path)?;
        let mode = osiris_build::step_mode(&cfg, osiris_build::spec_of(registry, &component)).map_err(|why| {
            (dir.join(&cfg_path), format!("step '{id}' ({component}): {why}; compile the pipeline again"))
        })?;
        step.insert("mode".into(), Value::String(mode.as_str().into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::registry;

    pub(crate) const OML: &str = r#"oml_version: "0.1.0"
name: demo-pipeline
params:
  since: "2024-01-01"
  batch: {default: 500}
profiles:
  prod: {params: {since: "2020-01-01"}}
metadata: {intent: "copy ünïcode rows"}
steps:
  - id: extract
    component: db.extractor
    mode: read
    config:
      connection: "@db.main"
      query: "SELECT * FROM t WHERE d >= '${params.since}'"
      batch: "${params.batch}"
      sql_pass: "${SQL_PASS}"
  - id: write-a
    component: files.writer
    mode: write
    config: {path: out/a.csv}
  - id: write-b
    component: files.writer
    mode: write
    needs: [extract]
    config: {path: out/b.csv, delimiter: ";", newline: crlf}
"#;

    fn compile_with(c: Compiler<'_>, text: &str) -> Result<Compiled, CompileError> {
        c.compile(Path::new("pipelines/Demo_Pipeline.yaml"), text)
    }

    fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.insert(p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap());
                }
            }
        }
        out
    }

    #[test]
    fn compiles_and_writes_build_dir() {
        let reg = registry();
        let compiled = compile_with(Compiler::new(&reg).generated_at("2025-01-01T00:00:00.000000Z"), OML).unwrap();
        assert_eq!(compiled.pipeline_slug, "demo-pipeline");
        let m = &compiled.manifest;
        assert_eq!(m.steps[1].needs, vec!["extract"]);
        assert_eq!(m.steps[2].needs, vec!["extract"]);
        assert_eq!(m.steps[0].needs, Vec::<String>::new());
        assert_eq!(m.meta.manifest_short.len(), 7);
        assert!(m.meta.manifest_hash.starts_with(&m.meta.manifest_short));
        let cfg = compiled.cfg_json("extract").unwrap();
        assert_eq!(
            cfg,
            r#"{"batch":500,"component":"db.extractor","connection":"@db.main","echo":false,"mode":"extract","port":3306,"query":"SELECT * FROM t WHERE d >= '2024-01-01'"}"#
        );
        assert_eq!(
            compiled.cfg_json("write-b").unwrap(),
            r#"{"batch":10,"component":"files.writer","delimiter":";","header":true,"mode":"write","newline":"crlf","path":"out/b.csv"}"#
        );
        let base = tempfile::tempdir().unwrap();
        let paths = write(&compiled, base.path()).unwrap();
        let rel = paths.build_dir.strip_prefix(base.path()).unwrap();
        assert_eq!(
            rel,
            Path::new(&format!("build/pipelines/dev/demo-pipeline/{}-{}", m.meta.manifest_short, m.meta.manifest_hash))
        );
        let manifest_text = std::fs::read_to_string(&paths.manifest_path).unwrap();
        assert!(manifest_text.starts_with("---\nmeta:\n") && manifest_text.ends_with("...\n"), "{manifest_text}");
        for p in [&paths.latest_pointer, &paths.index_pointer, &paths.last_compile] {
            let t = std::fs::read_to_string(p).unwrap();
            let lines: Vec<&str> = t.lines().collect();
            assert_eq!(
                lines,
                vec![paths.manifest_path.display().to_string().as_str(), compiled.manifest_hash(), "dev"]
            );
        }
        assert_eq!(last_compile_manifest(base.path()).unwrap(), paths.manifest_path);
        let loaded = load_compiled(&paths.manifest_path, &reg).unwrap();
        assert_eq!(loaded.manifest, compiled.manifest);
        assert_eq!(loaded.steps, compiled.steps);
        assert_eq!(loaded.pipeline_slug, compiled.pipeline_slug);
        // Every file of the build dir.
        let f = files(&paths.build_dir);
        let names: Vec<&str> = f.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            vec![
                "cfg/extract.json",
                "cfg/write-a.json",
                "cfg/write-b.json",
                "fingerprints.json",
                "manifest.yaml",
                "plan.json",
                "run_summary.json"
            ]
        );
        assert_eq!(
            std::str::from_utf8(&f["plan.json"]).unwrap(),
            r#"{"steps":[{"driver":"db.extractor","id":"extract"},{"driver":"files.writer","id":"write-a"},{"driver":"files.writer","id":"write-b"}]}"#
        );
    }

    #[test]
    fn compile_is_deterministic() {
        let reg = registry();
        let a = compile_with(Compiler::new(&reg).generated_at("2025-01-01T00:00:00.000000Z"), OML).unwrap();
        let b = compile_with(Compiler::new(&reg).generated_at("2026-06-06T12:34:56.789000Z"), OML).unwrap();
        assert_eq!(a.manifest_hash(), b.manifest_hash());
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let pa = write(&a, da.path()).unwrap();
        let pb = write(&b, db.path()).unwrap();
        let (fa, fb) = (files(&pa.build_dir), files(&pb.build_dir));
        assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
        for (name, bytes) in &fa {
            if name == "manifest.yaml" {
                let strip = |b: &[u8]| {
                    String::from_utf8(b.to_vec())
                        .unwrap()
                        .lines()
                        .filter(|l| !l.contains("generated_at"))
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                assert_eq!(strip(bytes), strip(&fb[name]));
                assert_ne!(bytes, &fb[name]);
            } else if name == "run_summary.json" {
                assert_ne!(bytes, &fb[name]);
            } else {
                assert_eq!(bytes, &fb[name], "{name} differs");
            }
        }
        // Same inputs, same build dir: compiling again is stable.
        let c = compile_with(Compiler::new(&reg).generated_at("2025-01-01T00:00:00.000000Z"), OML).unwrap();
        assert_eq!(c, a);
    }

    #[test]
    fn hash_changes_with_params_and_profile() {
        let reg = registry();
        let base = compile_with(Compiler::new(&reg), OML).unwrap();
        let cli = compile_with(Compiler::new(&reg).param("since", "2025-05-05"), OML).unwrap();
        let env = compile_with(
            Compiler::new(&reg).env([("OSIRIS_PARAM_SINCE".to_string(), "1999-01-01".to_string())].into()),
            OML,
        )
        .unwrap();
        let prod = compile_with(Compiler::new(&reg).profile("prod"), OML).unwrap();
        let hashes = [base.manifest_hash(), cli.manifest_hash(), env.manifest_hash(), prod.manifest_hash()];
        for i in 0..hashes.len() {
            for j in i + 1..hashes.len() {
                assert_ne!(hashes[i], hashes[j]);
            }
        }
        assert!(cli.cfg_json("extract").unwrap().contains("2025-05-05"));
        assert!(prod.cfg_json("extract").unwrap().contains("2020-01-01"));
        assert_ne!(base.manifest.pipeline.fingerprints.params_fp, cli.manifest.pipeline.fingerprints.params_fp);
    }

    #[test]
    fn validation_errors_are_all_reported() {
        let reg = registry();
        let text = OML
            .replace("delimiter: \";\"", "delimter: \";\"")
            .replace("component: db.extractor", "component: db.extractr");
        let err = compile_with(Compiler::new(&reg), &text).unwrap_err();
        let codes: Vec<&str> = err.diagnostics().iter().map(|d| d.code.as_str()).collect();
        assert_eq!(codes, vec!["unknown_component", "unknown_config_key"]);
        let msg = err.to_string();
        assert!(msg.contains("2 errors") && msg.contains("pipelines/Demo_Pipeline.yaml:11:5"), "{msg}");
    }

    #[test]
    fn unresolved_params_and_driver_errors() {
        let reg = registry();
        let text = OML.replace("${params.since}", "${params.nope}");
        let err = compile_with(Compiler::new(&reg), &text).unwrap_err();
        assert_eq!(err.diagnostics()[0].code, "unresolved_param");
        assert!(err.to_string().contains("'nope'"), "{err}");
        // The driver's own check (negative batch) surfaces as invalid_config_value.
        let err = compile_with(Compiler::new(&reg).param("batch", "-1"), OML).unwrap_err();
        assert_eq!(err.diagnostics()[0].code, "invalid_config_value");
        assert!(err.to_string().contains("batch must not be negative"), "{err}");
        // A param that does not parse as the field's type.
        let err = compile_with(Compiler::new(&reg).param("batch", "many"), OML).unwrap_err();
        assert_eq!(err.diagnostics()[0].path, "steps[0].config.batch");
    }

    #[test]
    fn malformed_yaml_fails_with_line() {
        let reg = registry();
        let err = compile_with(Compiler::new(&reg), "oml_version: \"0.1.0\"\nsteps:\n  - id: [a\n").unwrap_err();
        let d = &err.diagnostics()[0];
        assert_eq!(d.code, "yaml_syntax");
        assert!(d.line.is_some());
    }

    #[test]
    fn edited_manifest_is_rejected() {
        let reg = registry();
        let compiled = compile_with(Compiler::new(&reg), OML).unwrap();
        let base = tempfile::tempdir().unwrap();
        let paths = write(&compiled, base.path()).unwrap();
        let text = std::fs::read_to_string(&paths.manifest_path).unwrap();
        let edited = text.replace("id: write-a", "id: write-x");
        std::fs::write(&paths.manifest_path, edited).unwrap();
        assert!(matches!(load_compiled(&paths.manifest_path, &reg), Err(CompileError::Load { .. })));
    }

    #[test]
    fn profile_names_that_are_not_a_plain_segment_are_rejected() {
        let reg = registry();
        for bad in ["../x", "a/b", "", ".", "-x", "a b", "a\\b", "prod.1"] {
            let err = compile_with(Compiler::new(&reg).profile(bad), OML).unwrap_err();
            assert!(matches!(err, CompileError::InvalidProfile { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("^[A-Za-z0-9][A-Za-z0-9_-]*$"), "{err}");
        }
        for good in ["dev", "Prod_2", "9-x"] {
            assert!(is_valid_profile(good), "{good}");
        }
        // Writing checks again (fields of Compiled are public).
        let mut compiled = compile_with(Compiler::new(&reg), OML).unwrap();
        compiled.profile = "../../escape".into();
        let base = tempfile::tempdir().unwrap();
        assert!(matches!(write(&compiled, base.path()), Err(CompileError::InvalidProfile { .. })));
        assert!(!base.path().join("build").exists());
    }

    #[test]
    fn params_cannot_reach_step_ids_or_needs() {
        let reg = registry();
        let text = OML.replace("id: write-a", "id: \"${params.since}\"");
        let err = compile_with(Compiler::new(&reg).param("since", "../../evil"), &text).unwrap_err();
        assert_eq!(err.diagnostics()[0].code, "placeholder_not_allowed", "{err}");
        let text = OML.replace("needs: [extract]", "needs: [\"${params.since}\"]");
        let err = compile_with(Compiler::new(&reg).param("since", "extract"), &text).unwrap_err();
        assert_eq!(err.diagnostics()[0].code, "placeholder_not_allowed", "{err}");
    }

    /// Rewrites a build's manifest with `edit` applied and a matching hash (a forged manifest).
    fn forge(paths: &BuildPaths, compiled: &Compiled, edit: impl FnOnce(&mut Compiled)) {
        let mut forged = compiled.clone();
        edit(&mut forged);
        let (fp, hash) = manifest_hashes(&forged.manifest);
        forged.manifest.pipeline.fingerprints.manifest_fp = fp;
        forged.manifest.meta.manifest_hash = hash;
        std::fs::write(&paths.manifest_path, forged.manifest_yaml()).unwrap();
    }

    #[test]
    fn a_forged_manifest_cannot_name_paths_outside_the_run() {
        let reg = registry();
        let compiled = compile_with(Compiler::new(&reg), OML).unwrap();
        let base = tempfile::tempdir().unwrap();
        let paths = write(&compiled, base.path()).unwrap();
        // A forged manifest with a consistent hash is otherwise accepted.
        forge(&paths, &compiled, |_| {});
        assert!(load_compiled(&paths.manifest_path, &reg).is_ok());
        for bad in ["../../evil", "..", ".", "", "a\\b", "a/b"] {
            forge(&paths, &compiled, |c| c.manifest.steps[1].id = bad.to_string());
            let err = load_compiled(&paths.manifest_path, &reg).unwrap_err();
            assert!(err.to_string().contains("cannot be used as a file name"), "{bad}: {err}");
        }
        forge(&paths, &compiled, |c| c.manifest.steps[1].id = "extract".into());
        let err = load_compiled(&paths.manifest_path, &reg).unwrap_err();
        assert!(err.to_string().contains("duplicate step id 'extract'"), "{err}");
        forge(&paths, &compiled, |c| c.manifest.meta.profile = "../up".into());
        let err = load_compiled(&paths.manifest_path, &reg).unwrap_err();
        assert!(err.to_string().contains("invalid profile name '../up'"), "{err}");
        forge(&paths, &compiled, |_| {});
        let summary = paths.build_dir.join("run_summary.json");
        let text = std::fs::read_to_string(&summary).unwrap().replace("\"demo-pipeline\"", "\"../../x\"");
        std::fs::write(&summary, text).unwrap();
        // Osiris records the raw file stem there; whatever it says becomes a plain path segment.
        assert_eq!(load_compiled(&paths.manifest_path, &reg).unwrap().pipeline_slug, "x");
    }
}
