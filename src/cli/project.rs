//! The project an `osiris` command works in: working directory, `$OSIRIS_HOME`, `osiris.yaml`,
//! and the environment with `.env` values underneath (never overriding the process).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use osiris_engine::config::OsirisConfig;
use osiris_engine::connections::dotenv::{LayeredEnv, load_dotenv, process_env_has};

use super::CliError;

pub struct Project {
    pub cwd: PathBuf,
    pub home: Option<PathBuf>,
    pub config: OsirisConfig,
    /// Root of `build/`, `run_logs/` and `.osiris/`.
    pub base_dir: PathBuf,
    /// `.env` pairs not set in the process environment.
    pub dotenv: Vec<(String, String)>,
}

/// `~` and `~/…` name the home directory, as Osiris's `os.path.expanduser` does for
/// `filesystem.base_path` (`osiris/core/fs_config.py`).
fn expand_home(path: &Path) -> PathBuf {
    let home = || std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    match path.strip_prefix("~") {
        Ok(rest) => home().map_or_else(|| path.to_path_buf(), |h| h.join(rest)),
        Err(_) => path.to_path_buf(),
    }
}

impl Project {
    pub fn load() -> Result<Self, CliError> {
        let cwd = std::env::current_dir().map_err(|e| {
            CliError::usage(format!("cannot read the working directory: {e}"), "run osiris from an existing directory")
        })?;
        let home = std::env::var_os("OSIRIS_HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        let config = OsirisConfig::load_from_dir(&cwd)
            .map_err(|e| CliError::usage(e.to_string(), "fix osiris.yaml or remove it to use the defaults"))?;
        // `$OSIRIS_FILESYSTEM_BASE` overrides `filesystem.base_path`, as in Osiris
        // (`osiris/core/fs_config.py`). Relative to the working directory; an absolute path
        // replaces it in `join`.
        let from_env = std::env::var_os("OSIRIS_FILESYSTEM_BASE").filter(|b| !b.is_empty()).map(PathBuf::from);
        let base_dir = from_env
            .or_else(|| config.base_path.clone())
            .map_or_else(|| cwd.clone(), |base| cwd.join(expand_home(&base)));
        let dotenv = load_dotenv(home.as_deref(), &cwd, &process_env_has)
            .map_err(|e| CliError::usage(e.to_string(), "fix or remove the .env file"))?;
        Ok(Project { cwd, home, config, base_dir, dotenv })
    }

    /// Process environment plus `.env` values, as a map (for `OSIRIS_PARAM_*` lookup).
    pub fn env_map(&self) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = self.dotenv.iter().cloned().collect();
        env.extend(std::env::vars());
        env
    }

    /// Process environment over `.env` values, with `synthetic` secret variables (from
    /// preparation) winning over both, as a secret source.
    pub fn secrets(&self, synthetic: &[(String, String)]) -> LayeredEnv {
        LayeredEnv::new(self.dotenv.iter().cloned()).with_overrides(synthetic.iter().cloned())
    }

    /// The profiles the project declares: `osiris.yaml`'s `filesystem.profiles.values` and its
    /// default profile.
    pub fn known_profiles(&self) -> Vec<String> {
        let mut profiles = self.config.profile_values.clone();
        profiles.push(self.config.default_profile.clone());
        profiles
    }

    pub fn profile(&self, requested: Option<&str>) -> String {
        requested.map(str::to_string).unwrap_or_else(|| self.config.default_profile.clone())
    }

    /// A path for display: relative to the working directory when inside it.
    pub fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.cwd).unwrap_or(path).display().to_string()
    }
}
