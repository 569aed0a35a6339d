//! `.env` files: parsing, loading (never overriding the environment) and an environment overlay.
//!
//! Osiris loads `$OSIRIS_HOME/.env` and `./.env` with python-dotenv, never overriding variables
//! that are already set. The engine forbids `unsafe` code, and mutating the process environment
//! is `unsafe` in Rust 2024, so instead of writing to `std::env` the loaded pairs are returned and
//! served through [`LayeredEnv`], a [`SecretSource`] that reads the process environment first and
//! the `.env` values second. Pass the same pairs to child processes with `Command::envs`.
//!
//! ```
//! use osiris_engine::connections::dotenv::parse_dotenv;
//! let pairs = parse_dotenv("# comment\nexport A=1\nB=\"two words\" # note\nC='x#y'\n");
//! assert_eq!(pairs, vec![("A".into(), "1".into()), ("B".into(), "two words".into()), ("C".into(), "x#y".into())]);
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::SecretSource;

/// Errors of `.env` loading.
#[derive(Debug, thiserror::Error)]
pub enum DotenvError {
    /// A `.env` file exists but cannot be read.
    #[error("cannot read {path}: {source}; fix its permissions or remove it")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn valid_key(k: &str) -> bool {
    let mut chars = k.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Parses `.env` text: `KEY=VALUE` lines, optional `export ` prefix, `#` comments, single quotes
/// (literal) and double quotes (with `\n`, `\t`, `\"`, `\\` escapes). Malformed lines are skipped.
pub fn parse_dotenv(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map(str::trim_start).unwrap_or(line);
        let Some((key, rest)) = line.split_once('=') else { continue };
        let key = key.trim();
        if !valid_key(key) {
            continue;
        }
        let rest = rest.trim_start();
        let value = if let Some(body) = rest.strip_prefix('"') {
            // Double-quoted values may span lines.
            let mut buf = body.to_string();
            loop {
                if let Some(v) = close_double(&buf) {
                    break Some(v);
                }
                match lines.next() {
                    Some(next) => {
                        buf.push('\n');
                        buf.push_str(next);
                    }
                    None => break None,
                }
            }
        } else if let Some(body) = rest.strip_prefix('\'') {
            body.find('\'').map(|end| body[..end].to_string())
        } else {
            let v = match rest.find(" #") {
                Some(i) => &rest[..i],
                None => rest,
            };
            Some(v.trim_end().to_string())
        };
        if let Some(value) = value {
            out.push((key.to_string(), value));
        }
    }
    out
}

/// Reads a double-quoted body up to its closing quote, unescaping; `None` if unterminated.
fn close_double(body: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => return None,
            },
            c => out.push(c),
        }
    }
    None
}

/// The `.env` files Osiris reads, in order: `$OSIRIS_HOME/.env`, then `<cwd>/.env`.
pub fn dotenv_candidates(osiris_home: Option<&Path>, cwd: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(home) = osiris_home {
        out.push(home.join(".env"));
    }
    let local = cwd.join(".env");
    if !out.contains(&local) {
        out.push(local);
    }
    out
}

/// Loads the `.env` files (see [`dotenv_candidates`]) and returns the pairs that are not already
/// set (`is_set` says whether a variable exists in the environment); an earlier file wins over a
/// later one. Missing files are skipped. Nothing is written to the process environment.
pub fn load_dotenv(
    osiris_home: Option<&Path>,
    cwd: &Path,
    is_set: &dyn Fn(&str) -> bool,
) -> Result<Vec<(String, String)>, DotenvError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for path in dotenv_candidates(osiris_home, cwd) {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(DotenvError::Read { path, source }),
        };
        for (k, v) in parse_dotenv(&text) {
            if is_set(&k) || out.iter().any(|(existing, _)| *existing == k) {
                continue;
            }
            out.push((k, v));
        }
    }
    Ok(out)
}

/// Whether `name` is set in the process environment.
pub fn process_env_has(name: &str) -> bool {
    std::env::var_os(name).is_some()
}

/// The process environment with extra values underneath (from `.env`, or synthetic secret
/// variables of literal connection secrets): a variable set in the process wins.
#[derive(Clone, Default)]
pub struct LayeredEnv {
    overlay: BTreeMap<String, String>,
    /// Values that win over the process environment: the synthetic variables of secrets written
    /// in the connections file, whose names a stray environment variable must not shadow.
    overrides: BTreeMap<String, String>,
}

impl LayeredEnv {
    /// An overlay over the process environment.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        LayeredEnv { overlay: pairs.into_iter().collect(), overrides: BTreeMap::new() }
    }

    /// Adds values that win over the process environment.
    pub fn with_overrides(mut self, pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        self.overrides.extend(pairs);
        self
    }

    /// Adds values (an existing overlay value is kept).
    pub fn extend(&mut self, pairs: impl IntoIterator<Item = (String, String)>) {
        for (k, v) in pairs {
            self.overlay.entry(k).or_insert(v);
        }
    }

    /// The overlay pairs (to pass to a child process). Contains secret values: never log them.
    pub fn overlay(&self) -> &BTreeMap<String, String> {
        &self.overlay
    }
}

impl std::fmt::Debug for LayeredEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayeredEnv").field("overlay_keys", &self.overlay.keys().collect::<Vec<_>>()).finish()
    }
}

impl SecretSource for LayeredEnv {
    fn get(&self, name: &str) -> Option<String> {
        if let Some(value) = self.overrides.get(name) {
            return Some(value.clone());
        }
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| self.overlay.get(name).filter(|v| !v.is_empty()).cloned())
    }

    fn is_set_but_empty(&self, name: &str) -> bool {
        self.get(name).is_none()
            && (self.overrides.contains_key(name)
                || std::env::var_os(name).is_some()
                || self.overlay.contains_key(name))
    }
}

/// A fixed map as a secret source (tests, embedding applications).
impl SecretSource for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).filter(|v| !v.is_empty()).cloned()
    }

    fn is_set_but_empty(&self, name: &str) -> bool {
        BTreeMap::get(self, name).is_some_and(|v| v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quotes_and_multiline() {
        let pairs = parse_dotenv("A = \"x\\ny\"\nB=\"multi\nline\"\nbad line\n1X=no\nE=\nF=a=b\n");
        assert_eq!(
            pairs,
            vec![
                ("A".to_string(), "x\ny".to_string()),
                ("B".to_string(), "multi\nline".to_string()),
                ("E".to_string(), String::new()),
                ("F".to_string(), "a=b".to_string()),
            ]
        );
    }

    #[test]
    fn never_overrides_environment_and_first_file_wins() {
        let home = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(".env"), "ONE=home\nTWO=home\n").unwrap();
        std::fs::write(cwd.path().join(".env"), "TWO=cwd\nTHREE=cwd\nSET=cwd\n").unwrap();
        let is_set = |k: &str| k == "SET";
        let pairs = load_dotenv(Some(home.path()), cwd.path(), &is_set).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("ONE".to_string(), "home".to_string()),
                ("TWO".to_string(), "home".to_string()),
                ("THREE".to_string(), "cwd".to_string()),
            ]
        );
        // No files at all is fine.
        let empty = tempfile::tempdir().unwrap();
        assert!(load_dotenv(None, empty.path(), &is_set).unwrap().is_empty());
    }

    #[test]
    fn layered_env_prefers_process_env() {
        let path = std::env::var("PATH").unwrap_or_default();
        let env = LayeredEnv::new([
            ("PATH".to_string(), "overlay".to_string()),
            ("OSIRIS_TEST_ONLY_X".to_string(), "v".to_string()),
        ]);
        if !path.is_empty() {
            assert_eq!(env.get("PATH").as_deref(), Some(path.as_str()));
        }
        assert_eq!(env.get("OSIRIS_TEST_ONLY_X").as_deref(), Some("v"));
        assert!(!format!("{env:?}").contains("\"v\""));
    }
}
