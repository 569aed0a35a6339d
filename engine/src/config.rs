//! `osiris.yaml`: the optional project configuration. Every key has a default, so a missing
//! file is fine; keys this engine does not use (Osiris has many) are ignored.
//!
//! ```
//! use osiris_engine::config::OsirisConfig;
//! let cfg = OsirisConfig::parse("filesystem:\n  build_dir: out/build\nruntime:\n  memory_budget: 64MiB\n", None).unwrap();
//! assert_eq!(cfg.build_dir, "out/build");
//! assert_eq!(cfg.memory_budget, Some(64 << 20));
//! assert_eq!(cfg.default_profile, "dev");
//! ```

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::runtime::budget::parse_byte_size;
use crate::yaml::parse_located;

/// The config file name.
pub const CONFIG_FILE: &str = "osiris.yaml";

/// Errors of reading `osiris.yaml`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("{path}:{line}:{column}: invalid YAML: {message}")]
    Yaml {
        /// The file.
        path: String,
        /// 1-based line (0 when unknown).
        line: u32,
        /// 1-based column (0 when unknown).
        column: u32,
        /// The parser's message.
        message: String,
    },
    /// A key has a value of the wrong type.
    #[error("{path}: invalid value for `{key}`: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// The dotted key.
        key: String,
        /// What is expected.
        message: String,
    },
}

/// The settings of `osiris.yaml` this engine uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsirisConfig {
    /// The file it was read from (`None` when absent).
    pub path: Option<PathBuf>,
    /// `filesystem.base_path`: root of build, run-log and index directories (default: the
    /// directory of `osiris.yaml` / the working directory, decided by the caller).
    pub base_path: Option<PathBuf>,
    /// `filesystem.build_dir` (default `build`).
    pub build_dir: String,
    /// `filesystem.run_logs_dir` (default `run_logs`).
    pub run_logs_dir: String,
    /// `filesystem.profiles.default` (default `dev`).
    pub default_profile: String,
    /// `filesystem.profiles.values`: the project's profiles (empty when not set).
    pub profile_values: Vec<String>,
    /// `filesystem.naming.manifest_short_len` (default 7, 3..=16).
    pub manifest_short_len: usize,
    /// `runtime.memory_budget` in bytes (`"256MiB"` or an integer).
    pub memory_budget: Option<u64>,
    /// `runtime.batch_size` (rows per batch).
    pub batch_size: Option<usize>,
    /// `runner.executor`: where `osiris run` executes by default (`local`, `process` or `e2b`).
    pub executor: Option<String>,
}

/// The execution targets `runner.executor` and `--target` accept.
pub const EXECUTORS: [&str; 3] = ["local", "process", "e2b"];

impl Default for OsirisConfig {
    fn default() -> Self {
        OsirisConfig {
            path: None,
            base_path: None,
            build_dir: "build".to_string(),
            run_logs_dir: "run_logs".to_string(),
            default_profile: "dev".to_string(),
            profile_values: Vec::new(),
            manifest_short_len: 7,
            memory_budget: None,
            batch_size: None,
            executor: None,
        }
    }
}

impl OsirisConfig {
    /// Reads `<dir>/osiris.yaml`, or returns the defaults when it does not exist.
    pub fn load_from_dir(dir: &Path) -> Result<Self, ConfigError> {
        let path = dir.join(CONFIG_FILE);
        if !path.is_file() {
            return Ok(Self::default());
        }
        Self::load(&path)
    }

    /// Reads the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, Some(path))
    }

    /// Parses `osiris.yaml` text.
    pub fn parse(text: &str, path: Option<&Path>) -> Result<Self, ConfigError> {
        let shown = path.map(|p| p.display().to_string()).unwrap_or_else(|| CONFIG_FILE.to_string());
        let doc = parse_located(text).map_err(|e| ConfigError::Yaml {
            path: shown.clone(),
            line: e.line.unwrap_or(0),
            column: e.column.unwrap_or(0),
            message: e.message,
        })?;
        let root = doc.value;
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            path: shown.clone(),
            key: key.to_string(),
            message: message.to_string(),
        };
        let get = |pointer: &str| root.pointer(pointer).filter(|v| !v.is_null());
        let string = |pointer: &str, key: &str| -> Result<Option<String>, ConfigError> {
            match get(pointer) {
                None => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(invalid(key, "expected a non-empty string")),
            }
        };
        let mut cfg = OsirisConfig { path: path.map(Path::to_path_buf), ..Self::default() };
        cfg.base_path = base_path(get("/filesystem/base_path")).map_err(|m| invalid("filesystem.base_path", m))?;
        if let Some(s) = string("/filesystem/build_dir", "filesystem.build_dir")? {
            cfg.build_dir = s;
        }
        if let Some(s) = string("/filesystem/run_logs_dir", "filesystem.run_logs_dir")? {
            cfg.run_logs_dir = s;
        }
        if let Some(s) = string("/filesystem/profiles/default", "filesystem.profiles.default")? {
            cfg.default_profile = s;
        }
        if let Some(v) = get("/filesystem/profiles/values") {
            cfg.profile_values = v
                .as_array()
                .and_then(|items| items.iter().map(|i| i.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
                .ok_or_else(|| invalid("filesystem.profiles.values", "expected a list of profile names"))?;
        }
        if let Some(v) = get("/filesystem/naming/manifest_short_len") {
            cfg.manifest_short_len =
                v.as_u64().filter(|n| (3..=16).contains(n)).map(|n| n as usize).ok_or_else(|| {
                    invalid("filesystem.naming.manifest_short_len", "expected an integer from 3 to 16")
                })?;
        }
        if let Some(v) = get("/runtime/memory_budget") {
            let bytes = match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => parse_byte_size(s),
                _ => None,
            };
            cfg.memory_budget = Some(bytes.filter(|b| *b > 0).ok_or_else(|| {
                invalid("runtime.memory_budget", "expected a size like \"256MiB\" or a number of bytes")
            })?);
        }
        if let Some(v) = get("/runtime/batch_size") {
            cfg.batch_size = Some(
                v.as_u64()
                    .filter(|n| *n > 0)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| invalid("runtime.batch_size", "expected a positive integer"))?,
            );
        }
        if let Some(s) = string("/runner/executor", "runner.executor")? {
            if !EXECUTORS.contains(&s.as_str()) {
                return Err(invalid("runner.executor", "expected one of local, process, e2b"));
            }
            cfg.executor = Some(s);
        }
        Ok(cfg)
    }
}

/// `filesystem.base_path`: an empty string (Osiris's default, written by `osiris init` and in its
/// sample config) means "not set", i.e. the project root, as in Osiris.
fn base_path(value: Option<&Value>) -> Result<Option<PathBuf>, &'static str> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(PathBuf::from(s))),
        Some(_) => Err("expected a path (a string; empty means the project root)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_absent_and_unknown_keys_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(OsirisConfig::load_from_dir(dir.path()).unwrap(), OsirisConfig::default());
        let text = "version: '2.0'\nlogging: {level: INFO}\nfilesystem:\n  base_path: /data/osiris\n  run_logs_dir: logs\n  profiles: {enabled: true, values: [dev, prod], default: prod}\n  naming: {manifest_short_len: 10}\nruntime: {memory_budget: 1048576, batch_size: 4096}\n";
        std::fs::write(dir.path().join(CONFIG_FILE), text).unwrap();
        let cfg = OsirisConfig::load_from_dir(dir.path()).unwrap();
        assert_eq!(cfg.base_path.as_deref(), Some(Path::new("/data/osiris")));
        assert_eq!(cfg.run_logs_dir, "logs");
        assert_eq!(cfg.build_dir, "build");
        assert_eq!(cfg.default_profile, "prod");
        assert_eq!(cfg.profile_values, vec!["dev".to_string(), "prod".to_string()]);
        assert_eq!(cfg.manifest_short_len, 10);
        assert_eq!(cfg.memory_budget, Some(1 << 20));
        assert_eq!(cfg.batch_size, Some(4096));
        let cfg = OsirisConfig::parse("runner: {executor: process}\n", None).unwrap();
        assert_eq!(cfg.executor.as_deref(), Some("process"));
        let err = OsirisConfig::parse("runner: {executor: cloud}\n", None).unwrap_err();
        assert!(err.to_string().contains("runner.executor"), "{err}");
    }

    #[test]
    fn empty_base_path_is_the_project_root() {
        for text in
            ["filesystem:\n  base_path: \"\"\n", "filesystem:\n  base_path: '  '\n", "filesystem:\n  base_path:\n"]
        {
            assert_eq!(OsirisConfig::parse(text, None).unwrap().base_path, None, "{text}");
        }
        let err = OsirisConfig::parse("filesystem:\n  base_path: [a]\n", None).unwrap_err();
        assert!(err.to_string().contains("filesystem.base_path"), "{err}");
    }

    #[test]
    fn bad_values_are_reported() {
        let err = OsirisConfig::parse("runtime: {memory_budget: lots}\n", None).unwrap_err();
        assert!(err.to_string().contains("runtime.memory_budget"), "{err}");
        let err = OsirisConfig::parse("filesystem:\n  naming: {manifest_short_len: 99}\n", None).unwrap_err();
        assert!(err.to_string().contains("manifest_short_len"), "{err}");
        let err = OsirisConfig::parse("a: [1\n", None).unwrap_err();
        assert!(matches!(err, ConfigError::Yaml { .. }));
    }
}
