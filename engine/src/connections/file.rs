//! `osiris_connections.yaml`: loading, default aliases, `${VAR}` substitution, resolution into a
//! [`ConnectionDescriptor`] without secret values, and the masked listing.
//!
//! ```
//! use std::collections::BTreeMap;
//! use osiris_engine::connections::file::ConnectionsFile;
//! let file = ConnectionsFile::parse(
//!     "connections:\n  mysql:\n    main:\n      default: true\n      host: ${DB_HOST}\n      password: ${DB_PASSWORD}\n",
//!     None,
//! ).unwrap();
//! let env: BTreeMap<String, String> =
//!     [("DB_HOST".into(), "db.local".into()), ("DB_PASSWORD".into(), "s3cret".into())].into();
//! let resolved = file.resolve("mysql", None, &[], &env).unwrap();
//! assert_eq!(resolved.descriptor.fields["host"], "db.local");
//! // A JSON pointer to the field → the variable's name, not its value.
//! assert_eq!(resolved.descriptor.secrets["/password"], "DB_PASSWORD");
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::secret_names::{Declared, is_connection_secret};
use super::{ConnectionDescriptor, ConnectionError, SecretSource, display_path, json_pointer, mask_fields};
use crate::MASK;
use crate::yaml::{PathSeg, parse_located};

/// The connections file name.
pub const CONNECTIONS_FILE: &str = "osiris_connections.yaml";

/// Entry key (`allow_unknown_keys: true`) that accepts keys no component of the family knows, for
/// an entry shared with other tools; without it they are errors.
pub const ALLOW_UNKNOWN_KEYS: &str = "allow_unknown_keys";

/// Errors of loading and resolving connections. Messages never contain secret values.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionFileError {
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("{path}:{line}:{column}: invalid YAML in connections file: {message}")]
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
    /// The file has the wrong shape.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// No connections file or no connections at all.
    #[error(
        "no connections configured (looked for {searched}); create {CONNECTIONS_FILE} with a `connections:` block containing family '{family}'"
    )]
    NoConnections {
        /// The family asked for.
        family: String,
        /// Where the file was searched.
        searched: String,
    },
    /// The family is not in the file.
    #[error("connection family '{family}' not found in {path}. Available families: {}", available.join(", "))]
    FamilyNotFound {
        /// The family asked for.
        family: String,
        /// The file.
        path: String,
        /// Families in the file.
        available: Vec<String>,
    },
    /// The alias is not in the family.
    #[error("connection alias '{alias}' not found in family '{family}'. Available aliases: {}", available.join(", "))]
    AliasNotFound {
        /// The family.
        family: String,
        /// The alias asked for.
        alias: String,
        /// Aliases of the family.
        available: Vec<String>,
    },
    /// No alias given and no default alias.
    #[error("no default connection for family '{family}' (aliases: {}); mark one with `default: true`, name one `default`, or reference one explicitly as `connection: \"@{family}.<alias>\"`", aliases.join(", "))]
    NoDefault {
        /// The family.
        family: String,
        /// Aliases of the family.
        aliases: Vec<String>,
    },
    /// A `${VAR}` in the connection has no value (unset, or set to the empty string).
    #[error(
        "Environment variable '{var}' {} for {field} in {family}.{alias}; {}",
        if *.empty { "is empty" } else { "not set" },
        if *.empty { "give it a value (an empty variable counts as unset)" } else { "export it or add it to .env" }
    )]
    EnvNotSet {
        /// The variable.
        var: String,
        /// The connection field.
        field: String,
        /// The family.
        family: String,
        /// The alias.
        alias: String,
        /// Set, but to the empty string.
        empty: bool,
    },
    /// An entry has keys that no component of its family knows (a typo like `databse` would
    /// otherwise be ignored and the connection fail later, or silently do the wrong thing).
    #[error("{}", render_unknown_keys(.path, .family, .alias, .keys, .allowed))]
    UnknownKeys {
        /// The file.
        path: String,
        /// The family.
        family: String,
        /// The alias.
        alias: String,
        /// The unknown keys, in file order.
        keys: Vec<UnknownKey>,
        /// The keys the family takes, sorted.
        allowed: Vec<String>,
    },
    /// A reference like `@family.alias` names another family.
    #[error("connection reference '{reference}' does not belong to family '{family}'")]
    FamilyMismatch {
        /// The reference.
        reference: String,
        /// The family expected.
        family: String,
    },
}

/// A key of a connection entry that its family does not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownKey {
    /// The key as written.
    pub key: String,
    /// Its 1-based line in the connections file, when known.
    pub line: Option<u32>,
    /// An allowed key within typo distance.
    pub suggestion: Option<String>,
}

impl UnknownKey {
    /// `unknown key 'databse' in connection @mysql.main (family mysql)`.
    pub fn message(&self, family: &str, alias: &str) -> String {
        format!("unknown key '{}' in connection @{family}.{alias} (family {family})", self.key)
    }
}

fn render_unknown_keys(path: &str, family: &str, alias: &str, keys: &[UnknownKey], allowed: &[String]) -> String {
    let mut lines: Vec<String> = keys
        .iter()
        .map(|k| {
            let at = k.line.map(|l| format!("{path}:{l}")).unwrap_or_else(|| path.to_string());
            let close = k.suggestion.as_ref().map(|s| format!("; did you mean '{s}'?")).unwrap_or_default();
            format!("{at}: {}{close}", k.message(family, alias))
        })
        .collect();
    lines.push(format!("  a {family} connection takes: {}", allowed.join(", ")));
    lines.join("\n")
}

impl From<ConnectionFileError> for ConnectionError {
    fn from(e: ConnectionFileError) -> Self {
        ConnectionError::Resolve(e.to_string())
    }
}

/// Where to look for `osiris_connections.yaml`: `$OSIRIS_HOME`, then the working directory.
pub fn connections_candidates(osiris_home: Option<&Path>, cwd: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(home) = osiris_home {
        out.push(home.join(CONNECTIONS_FILE));
    }
    let local = cwd.join(CONNECTIONS_FILE);
    if !out.contains(&local) {
        out.push(local);
    }
    out
}

/// The first existing connections file of [`connections_candidates`].
pub fn find_connections_file(osiris_home: Option<&Path>, cwd: &Path) -> Option<PathBuf> {
    connections_candidates(osiris_home, cwd).into_iter().find(|p| p.is_file())
}

/// One alias: its raw (unsubstituted) fields in file order, and the line of each key.
#[derive(Clone, PartialEq)]
struct Alias {
    name: String,
    fields: Vec<(String, Value)>,
    lines: BTreeMap<String, u32>,
}

/// The parsed connections file (families and aliases in file order, values not substituted).
#[derive(Clone, Default, PartialEq)]
pub struct ConnectionsFile {
    /// The file it came from (`None` when none was found or parsed from text).
    pub path: Option<PathBuf>,
    searched: Vec<PathBuf>,
    families: Vec<(String, Vec<Alias>)>,
}

impl fmt::Debug for ConnectionsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let families: Vec<(&str, Vec<&str>)> =
            self.families.iter().map(|(f, a)| (f.as_str(), a.iter().map(|a| a.name.as_str()).collect())).collect();
        f.debug_struct("ConnectionsFile").field("path", &self.path).field("families", &families).finish()
    }
}

/// A resolved connection: the descriptor (no secret values) and, for secrets written literally
/// in the connections file, synthetic environment variables that carry them.
#[derive(Clone, PartialEq)]
pub struct ResolvedConnection {
    /// Plain fields and secret placeholders.
    pub descriptor: ConnectionDescriptor,
    /// `(OSIRIS_SECRET_<FAMILY>_<ALIAS>_<FIELD PATH>[_<n>], value)` pairs (the path's parts joined
    /// with `_`, `_<n>` only when two paths map to one name); put them into the environment of
    /// the process that binds the connection. Never log or serialize them.
    pub synthetic_env: Vec<(String, String)>,
}

impl fmt::Debug for ResolvedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedConnection")
            .field("descriptor", &self.descriptor)
            .field("synthetic_env", &self.synthetic_env.iter().map(|(k, _)| (k.as_str(), MASK)).collect::<Vec<_>>())
            .finish()
    }
}

/// The synthetic variable name for a literal secret: `OSIRIS_SECRET_<FAMILY>_<ALIAS>_<FIELD>`,
/// upper-cased, every non-alphanumeric character as `_`.
pub fn synthetic_secret_var(family: &str, alias: &str, field: &str) -> String {
    format!("OSIRIS_SECRET_{family}_{alias}_{field}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .collect()
}

/// If `s` is exactly `${VAR}`, the name `VAR`.
fn whole_var(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("${")?.strip_suffix('}')?;
    (!inner.is_empty() && !inner.contains(['{', '}', '$'])).then_some(inner)
}

/// The `${VAR}` names in `s`.
fn vars_in(s: &str) -> Vec<String> {
    crate::placeholders::names(s, "${").into_iter().filter(|name| !name.is_empty()).collect()
}

/// Substitutes `${VAR}` like Osiris: unset or empty variables are left literally.
pub fn substitute_env(s: &str, env: &dyn SecretSource) -> String {
    crate::placeholders::substitute(s, "${", |name| if name.is_empty() { None } else { env.get(name) })
}

fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "1"),
        Value::Number(n) => n.as_i64() == Some(1),
        _ => false,
    }
}

impl ConnectionsFile {
    /// No connections.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Finds and parses the connections file (`$OSIRIS_HOME`, then `cwd`); no file is not an
    /// error (resolution then fails with a message saying where it looked).
    pub fn load(osiris_home: Option<&Path>, cwd: &Path) -> Result<Self, ConnectionFileError> {
        let searched = connections_candidates(osiris_home, cwd);
        let mut file = match searched.iter().find(|p| p.is_file()) {
            Some(path) => Self::from_path(path)?,
            None => Self::empty(),
        };
        file.searched = searched;
        Ok(file)
    }

    /// Parses the file at `path`.
    pub fn from_path(path: &Path) -> Result<Self, ConnectionFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConnectionFileError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, Some(path))
    }

    /// Parses connections-file text (only the `connections:` block is used).
    pub fn parse(text: &str, path: Option<&Path>) -> Result<Self, ConnectionFileError> {
        let shown = path.map(|p| p.display().to_string()).unwrap_or_else(|| CONNECTIONS_FILE.to_string());
        let doc = parse_located(text).map_err(|e| ConnectionFileError::Yaml {
            path: shown.clone(),
            line: e.line.unwrap_or(0),
            column: e.column.unwrap_or(0),
            message: e.message,
        })?;
        let invalid = |message: String| ConnectionFileError::Invalid { path: shown.clone(), message };
        let mut families = Vec::new();
        match doc.value.get("connections") {
            None | Some(Value::Null) => {}
            Some(Value::Object(_)) => {
                let base = [PathSeg::key("connections")];
                for fam in doc.keys_in_order(&base) {
                    let fam_value = &doc.value["connections"][&fam];
                    if fam_value.is_null() {
                        families.push((fam, Vec::new()));
                        continue;
                    }
                    if !fam_value.is_object() {
                        return Err(invalid(format!("connections.{fam} must be a mapping of aliases")));
                    }
                    let fam_path = [PathSeg::key("connections"), PathSeg::key(fam.as_str())];
                    let mut aliases = Vec::new();
                    for alias in doc.keys_in_order(&fam_path) {
                        let alias_path = [fam_path[0].clone(), fam_path[1].clone(), PathSeg::key(alias.as_str())];
                        let value = &fam_value[&alias];
                        let fields: Vec<(String, Value)> = match value {
                            Value::Object(m) => {
                                doc.keys_in_order(&alias_path).into_iter().map(|k| (k.clone(), m[&k].clone())).collect()
                            }
                            Value::Null => Vec::new(),
                            _ => return Err(invalid(format!("connections.{fam}.{alias} must be a mapping of fields"))),
                        };
                        let lines = fields
                            .iter()
                            .filter_map(|(k, _)| {
                                let mut path = alias_path.to_vec();
                                path.push(PathSeg::key(k.as_str()));
                                Some((k.clone(), doc.key_location(&path)?.0))
                            })
                            .collect();
                        aliases.push(Alias { name: alias, fields, lines });
                    }
                    families.push((fam, aliases));
                }
            }
            Some(_) => return Err(invalid("`connections` must be a mapping of families".into())),
        }
        Ok(ConnectionsFile { path: path.map(Path::to_path_buf), searched: Vec::new(), families })
    }

    /// Family names in file order.
    pub fn families(&self) -> Vec<&str> {
        self.families.iter().map(|(f, _)| f.as_str()).collect()
    }

    /// Alias names of `family` in file order.
    pub fn aliases(&self, family: &str) -> Vec<&str> {
        self.family(family).map(|a| a.iter().map(|a| a.name.as_str()).collect()).unwrap_or_default()
    }

    fn family(&self, family: &str) -> Option<&Vec<Alias>> {
        self.families.iter().find(|(f, _)| f == family).map(|(_, a)| a)
    }

    /// The alias `default` resolution picks: the first with `default: true`, else one named
    /// `default`.
    pub fn default_alias(&self, family: &str) -> Option<&str> {
        let aliases = self.family(family)?;
        aliases
            .iter()
            .find(|a| a.fields.iter().any(|(k, v)| k == "default" && is_truthy(v)))
            .or_else(|| aliases.iter().find(|a| a.name == "default"))
            .map(|a| a.name.as_str())
    }

    fn path_label(&self) -> String {
        self.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| CONNECTIONS_FILE.to_string())
    }

    fn select(&self, family: &str, alias: Option<&str>) -> Result<&Alias, ConnectionFileError> {
        let alias = match alias {
            Some(a) if a.starts_with('@') => {
                let (fam, name) = a[1..].split_once('.').unwrap_or((&a[1..], ""));
                if fam != family {
                    return Err(ConnectionFileError::FamilyMismatch {
                        reference: a.to_string(),
                        family: family.to_string(),
                    });
                }
                Some(name)
            }
            other => other,
        };
        if self.families.is_empty() {
            let searched = if self.searched.is_empty() {
                self.path_label()
            } else {
                self.searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            };
            return Err(ConnectionFileError::NoConnections { family: family.to_string(), searched });
        }
        let Some(aliases) = self.family(family) else {
            return Err(ConnectionFileError::FamilyNotFound {
                family: family.to_string(),
                path: self.path_label(),
                available: self.families().iter().map(|s| s.to_string()).collect(),
            });
        };
        let names = || aliases.iter().map(|a| a.name.clone()).collect::<Vec<_>>();
        match alias {
            Some(name) => aliases.iter().find(|a| a.name == name).ok_or_else(|| ConnectionFileError::AliasNotFound {
                family: family.to_string(),
                alias: name.to_string(),
                available: names(),
            }),
            None => {
                let chosen = self
                    .default_alias(family)
                    .ok_or_else(|| ConnectionFileError::NoDefault { family: family.to_string(), aliases: names() })?;
                aliases
                    .iter()
                    .find(|a| a.name == chosen)
                    .ok_or_else(|| ConnectionFileError::NoDefault { family: family.to_string(), aliases: names() })
            }
        }
    }

    /// The keys of alias `alias` of `family` (as named, no default resolution) that are not in
    /// `allowed`, in file order.
    /// An entry with `allow_unknown_keys: true` has none.
    pub fn unknown_keys(&self, family: &str, alias: &str, allowed: &[String]) -> Vec<UnknownKey> {
        let Some(entry) = self.family(family).and_then(|a| a.iter().find(|a| a.name == alias)) else {
            return Vec::new();
        };
        if entry.fields.iter().any(|(k, v)| k == ALLOW_UNKNOWN_KEYS && *v == Value::Bool(true)) {
            return Vec::new();
        }
        entry
            .fields
            .iter()
            .filter(|(k, _)| !allowed.contains(k))
            .map(|(k, _)| UnknownKey {
                key: k.clone(),
                line: entry.lines.get(k).copied(),
                suggestion: crate::pipeline::validate::did_you_mean(k, allowed.iter().map(String::as_str))
                    .map(str::to_string),
            })
            .collect()
    }

    /// Checks the keys of the entry [`resolve`](Self::resolve) would pick for `family` / `alias`:
    /// an [`UnknownKeys`](ConnectionFileError::UnknownKeys) error when any is not in `allowed`;
    /// lookup errors (no such family or alias) as `resolve` reports them.
    pub fn check_keys(&self, family: &str, alias: Option<&str>, allowed: &[String]) -> Result<(), ConnectionFileError> {
        let chosen = self.select(family, alias)?;
        let keys = self.unknown_keys(family, &chosen.name, allowed);
        if keys.is_empty() {
            return Ok(());
        }
        Err(ConnectionFileError::UnknownKeys {
            path: self.path_label(),
            family: family.to_string(),
            alias: chosen.name.clone(),
            keys,
            allowed: allowed.to_vec(),
        })
    }

    /// Resolves `family` / `alias` (or the default alias; `@family.alias` accepted as alias).
    ///
    /// Which entries are secret — at any depth — is decided by
    /// [`is_connection_secret`](super::secret_names::is_connection_secret) (`declared`: what the
    /// family's component specs say about field names), plus every string that uses a variable a secret uses.
    /// Non-secret `${VAR}` are substituted into `fields`. A secret written as exactly `${VAR}`
    /// becomes an entry naming `VAR` (which must be set; its value is not read into the
    /// descriptor). Any other secret (a literal, or `${VAR}` mixed with text) is composed here, in
    /// process, and moved to a synthetic variable returned in `synthetic_env`. Placeholders are
    /// looked for in the file's text only, never in substituted values, so an error names only a
    /// variable written in the file.
    pub fn resolve(
        &self,
        family: &str,
        alias: Option<&str>,
        declared: &[Declared],
        env: &dyn SecretSource,
    ) -> Result<ResolvedConnection, ConnectionFileError> {
        let chosen = self.select(family, alias)?;
        let raw = chosen.raw_fields();
        let secret = secret_pointers(&raw, declared, env);
        let mut resolver = Resolver {
            family,
            alias: &chosen.name,
            env,
            secret: &secret,
            secrets: BTreeMap::new(),
            synthetic_env: Vec::new(),
        };
        let mut tokens = Vec::new();
        let fields = resolver.object(&raw, &mut tokens)?;
        Ok(ResolvedConnection {
            descriptor: ConnectionDescriptor {
                family: family.to_string(),
                alias: chosen.name.clone(),
                fields,
                secrets: resolver.secrets,
            },
            synthetic_env: resolver.synthetic_env,
        })
    }

    /// The masked listing of `osiris connections list --json`:
    /// `{connections: {family: {alias: {config, env_vars: {VAR: set?}, is_default}}}}`.
    /// Secret entries (the same rule as [`resolve`](Self::resolve), at any depth) are
    /// `***MASKED***` unless written as exactly one `${VAR}`, which is shown as written.
    /// `declared(family)` says what the family's component specs declare about field names.
    pub fn list_masked(&self, declared: &dyn Fn(&str) -> Vec<Declared>, env: &dyn SecretSource) -> Value {
        let mut out = Map::new();
        for (family, aliases) in &self.families {
            let extra = declared(family);
            let default = self.default_alias(family);
            let mut fam = Map::new();
            for alias in aliases {
                let mut env_vars = Map::new();
                for (_, v) in &alias.fields {
                    collect_vars(v, &mut |var| {
                        env_vars.insert(var.to_string(), Value::Bool(env.get(var).is_some()));
                    });
                }
                let all: Map<String, Value> = alias.fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                let secret = secret_pointers(&alias.raw_fields(), &extra, env);
                let config = mask_fields(&all, &mut |pointer, raw| {
                    secret.contains(pointer) && raw.as_str().and_then(whole_var).is_none()
                });
                fam.insert(
                    alias.name.clone(),
                    json!({"config": config, "env_vars": env_vars, "is_default": default == Some(alias.name.as_str())}),
                );
            }
            out.insert(family.clone(), Value::Object(fam));
        }
        json!({ "connections": out })
    }
}

impl Alias {
    /// The fields that resolution uses (all but `default` and `allow_unknown_keys`, which are
    /// about the entry, not the connection).
    fn raw_fields(&self) -> Map<String, Value> {
        self.fields
            .iter()
            .filter(|(k, _)| k != "default" && k != ALLOW_UNKNOWN_KEYS)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The JSON pointers of the secret entries of `fields` (a secret entry's children are not listed):
/// entries secret by [`is_connection_secret`], then, until nothing changes, every string entry
/// that uses a `${VAR}` also used inside a secret entry (so `note: "${DB_PASSWORD}"` next to
/// `password: ${DB_PASSWORD}` is secret too).
fn secret_pointers(fields: &Map<String, Value>, declared: &[Declared], env: &dyn SecretSource) -> BTreeSet<String> {
    struct Walk<'v, 'a> {
        declared: &'a [Declared],
        env: &'a dyn SecretSource,
        secret: BTreeSet<String>,
        secret_vars: BTreeSet<String>,
        /// Non-secret strings: (pointer, raw text).
        strings: Vec<(String, &'v str)>,
    }
    impl<'v> Walk<'v, '_> {
        fn walk(&mut self, key: Option<&str>, v: &'v Value, pointer: String) {
            let resolved = v.as_str().map(|s| substitute_env(s, self.env));
            if is_connection_secret(key, v, resolved.as_deref(), self.declared) {
                collect_vars(v, &mut |var| {
                    self.secret_vars.insert(var.to_string());
                });
                self.secret.insert(pointer);
                return;
            }
            match v {
                Value::Object(m) => {
                    for (k, c) in m {
                        self.walk(Some(k), c, format!("{pointer}{}", json_pointer(&[k])));
                    }
                }
                Value::Array(items) => {
                    for (i, c) in items.iter().enumerate() {
                        self.walk(None, c, format!("{pointer}/{i}"));
                    }
                }
                Value::String(s) => self.strings.push((pointer, s)),
                _ => {}
            }
        }
    }
    let mut w = Walk { declared, env, secret: BTreeSet::new(), secret_vars: BTreeSet::new(), strings: Vec::new() };
    for (k, v) in fields {
        w.walk(Some(k), v, json_pointer(&[k]));
    }
    let Walk { mut secret, mut secret_vars, mut strings, .. } = w;
    loop {
        let (tainted, clean): (Vec<_>, Vec<_>) =
            strings.into_iter().partition(|(_, s)| vars_in(s).iter().any(|v| secret_vars.contains(v)));
        strings = clean;
        if tainted.is_empty() {
            return secret;
        }
        for (pointer, s) in tainted {
            secret_vars.extend(vars_in(s));
            secret.insert(pointer);
        }
    }
}

/// Builds a descriptor's `fields` and `secrets` from an alias's raw fields.
struct Resolver<'a> {
    family: &'a str,
    alias: &'a str,
    env: &'a dyn SecretSource,
    secret: &'a BTreeSet<String>,
    secrets: BTreeMap<String, String>,
    synthetic_env: Vec<(String, String)>,
}

impl Resolver<'_> {
    fn not_set(&self, var: &str, tokens: &[String]) -> ConnectionFileError {
        ConnectionFileError::EnvNotSet {
            var: var.to_string(),
            field: display_path(tokens),
            family: self.family.to_string(),
            alias: self.alias.to_string(),
            empty: self.env.is_set_but_empty(var),
        }
    }

    /// `s` with `${VAR}` substituted; every placeholder written in `s` must be set. The check
    /// runs on `s` only, so a value containing `${...}` is never scanned.
    fn substitute(&self, s: &str, tokens: &[String]) -> Result<String, ConnectionFileError> {
        if let Some(var) = vars_in(s).into_iter().find(|var| self.env.get(var).is_none()) {
            return Err(self.not_set(&var, tokens));
        }
        Ok(substitute_env(s, self.env))
    }

    /// `v` with `${VAR}` substituted in every string (no secret entries inside).
    fn substitute_all(&self, v: &Value, tokens: &[String]) -> Result<Value, ConnectionFileError> {
        Ok(match v {
            Value::String(s) => Value::String(self.substitute(s, tokens)?),
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| self.substitute_all(i, tokens)).collect::<Result<_, _>>()?)
            }
            Value::Object(m) => Value::Object(
                m.iter().map(|(k, i)| Ok((k.clone(), self.substitute_all(i, tokens)?))).collect::<Result<_, _>>()?,
            ),
            other => other.clone(),
        })
    }

    fn object(
        &mut self,
        m: &Map<String, Value>,
        tokens: &mut Vec<String>,
    ) -> Result<Map<String, Value>, ConnectionFileError> {
        let mut out = Map::new();
        for (k, v) in m {
            tokens.push(k.clone());
            if self.secret.contains(&json_pointer(tokens)) {
                self.secret_entry(v, tokens)?;
            } else {
                out.insert(k.clone(), self.value(v, tokens)?);
            }
            tokens.pop();
        }
        Ok(out)
    }

    fn value(&mut self, v: &Value, tokens: &mut Vec<String>) -> Result<Value, ConnectionFileError> {
        Ok(match v {
            Value::String(s) => Value::String(self.substitute(s, tokens)?),
            Value::Object(m) => Value::Object(self.object(m, tokens)?),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    tokens.push(i.to_string());
                    if self.secret.contains(&json_pointer(tokens)) {
                        self.secret_entry(item, tokens)?;
                        out.push(Value::Null); // keeps the other items' indices
                    } else {
                        out.push(self.value(item, tokens)?);
                    }
                    tokens.pop();
                }
                Value::Array(out)
            }
            other => other.clone(),
        })
    }

    /// Records a secret entry: `${VAR}` by name, anything else through a synthetic variable.
    fn secret_entry(&mut self, v: &Value, tokens: &[String]) -> Result<(), ConnectionFileError> {
        let pointer = json_pointer(tokens);
        let value = match v {
            Value::Null => return Ok(()),
            Value::String(s) => {
                if let Some(var) = whole_var(s) {
                    if self.env.get(var).is_none() {
                        return Err(self.not_set(var, tokens));
                    }
                    self.secrets.insert(pointer, var.to_string());
                    return Ok(());
                }
                self.substitute(s, tokens)?
            }
            Value::Number(_) | Value::Bool(_) => v.to_string(),
            // A whole mapping or list under a secret name travels as one JSON string.
            other => crate::compile::canonical::canonical_json(&self.substitute_all(other, tokens)?),
        };
        let base = synthetic_secret_var(self.family, self.alias, &tokens.join("_"));
        let mut name = base.clone();
        let mut n = 1;
        while self.synthetic_env.iter().any(|(k, _)| *k == name) {
            n += 1;
            name = format!("{base}_{n}");
        }
        self.synthetic_env.push((name.clone(), value));
        self.secrets.insert(pointer, name);
        Ok(())
    }
}

fn collect_vars(v: &Value, f: &mut dyn FnMut(&str)) {
    match v {
        Value::String(s) => vars_in(s).iter().for_each(|var| f(var)),
        Value::Array(items) => items.iter().for_each(|i| collect_vars(i, f)),
        Value::Object(m) => m.values().for_each(|i| collect_vars(i, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"version: 1
connections:
  db:
    zeta:
      host: zeta.local
    main:
      default: true
      host: ${DB_HOST}
      port: 3306
      user: admin
      password: ${DB_PASSWORD}
    other:
      default: true
      host: other.local
  pg:
    default:
      host: pg.local
      pg_password: "literal-pg-secret"
    b:
      host: b.local
  nodefault:
    a: {host: a}
    b: {host: b}
  unset:
    main:
      default: true
      host: ${NOT_SET_ANYWHERE}
      token: "${MISSING_TOKEN}"
"#;

    fn env() -> BTreeMap<String, String> {
        [("DB_HOST", "db.example.com"), ("DB_PASSWORD", "super-secret-pw"), ("EMPTY", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file() -> ConnectionsFile {
        ConnectionsFile::parse(FILE, Some(Path::new("/cfg/osiris_connections.yaml"))).unwrap()
    }

    #[test]
    fn default_alias_precedence() {
        let f = file();
        // `default: true` first in file order wins over later ones; file order is kept
        // (`zeta` comes first although it sorts last).
        assert_eq!(f.aliases("db"), vec!["zeta", "main", "other"]);
        assert_eq!(f.default_alias("db"), Some("main"));
        // Then an alias named `default`.
        assert_eq!(f.default_alias("pg"), Some("default"));
        // Else an error listing aliases.
        let err = f.resolve("nodefault", None, &[], &env()).unwrap_err();
        assert!(matches!(err, ConnectionFileError::NoDefault { .. }));
        assert!(err.to_string().contains("aliases: a, b"), "{err}");
    }

    #[test]
    fn substitution_and_secret_placeholders() {
        let f = file();
        let r = f.resolve("db", None, &[], &env()).unwrap();
        let d = &r.descriptor;
        assert_eq!(d.alias, "main");
        assert_eq!(d.fields["host"], "db.example.com");
        assert_eq!(d.fields["port"], 3306);
        assert!(!d.fields.contains_key("default"));
        assert!(!d.fields.contains_key("password"));
        assert_eq!(d.secrets["/password"], "DB_PASSWORD");
        assert!(r.synthetic_env.is_empty());
        let json = serde_json::to_string(&r.descriptor).unwrap();
        assert!(!json.contains("super-secret-pw"));
        // Explicit alias and @ref form.
        assert_eq!(f.resolve("db", Some("zeta"), &[], &env()).unwrap().descriptor.fields["host"], "zeta.local");
        assert_eq!(f.resolve("db", Some("@db.other"), &[], &env()).unwrap().descriptor.alias, "other");
        // Spec secret names extend the list.
        let r = f.resolve("db", Some("main"), &[Declared::secret("user")], &env()).unwrap();
        assert!(r.descriptor.secrets.contains_key("/user"));
        assert!(!serde_json::to_string(&r.descriptor).unwrap().contains("admin"));
    }

    #[test]
    fn literal_secrets_map_to_synthetic_env() {
        let r = file().resolve("pg", None, &[], &env()).unwrap();
        assert_eq!(r.descriptor.secrets["/pg_password"], "OSIRIS_SECRET_PG_DEFAULT_PG_PASSWORD");
        assert_eq!(
            r.synthetic_env,
            vec![("OSIRIS_SECRET_PG_DEFAULT_PG_PASSWORD".to_string(), "literal-pg-secret".to_string())]
        );
        assert!(!serde_json::to_string(&r.descriptor).unwrap().contains("literal-pg-secret"));
        assert!(!format!("{r:?}").contains("literal-pg-secret"));
        assert_eq!(synthetic_secret_var("my-fam", "a.b", "key"), "OSIRIS_SECRET_MY_FAM_A_B_KEY");
    }

    #[test]
    fn unset_variables_and_lookup_errors() {
        let f = file();
        let err = f.resolve("unset", None, &[], &env()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Environment variable 'NOT_SET_ANYWHERE' not set for host in unset.main; export it or add it to .env"
        );
        // Empty counts as unset, and is called empty.
        let mut empty = env();
        empty.insert("NOT_SET_ANYWHERE".into(), String::new());
        let err = f.resolve("unset", None, &[], &empty).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Environment variable 'NOT_SET_ANYWHERE' is empty for host in unset.main; give it a value (an empty variable counts as unset)"
        );
        let mut e = env();
        e.insert("NOT_SET_ANYWHERE".into(), "x".into());
        let err = f.resolve("unset", None, &[], &e).unwrap_err();
        assert!(err.to_string().contains("'MISSING_TOKEN' not set for token"), "{err}");
        let err = f.resolve("nope", None, &[], &env()).unwrap_err();
        assert!(err.to_string().contains("Available families: db, pg, nodefault, unset"), "{err}");
        let err = f.resolve("db", Some("missing"), &[], &env()).unwrap_err();
        assert!(err.to_string().contains("Available aliases: zeta, main, other"), "{err}");
        let err = f.resolve("db", Some("@pg.default"), &[], &env()).unwrap_err();
        assert!(matches!(err, ConnectionFileError::FamilyMismatch { .. }));
        assert_eq!(substitute_env("a${EMPTY}b${DB_HOST}", &env()), "a${EMPTY}bdb.example.com");
    }

    #[test]
    fn load_searches_home_then_cwd() {
        let home = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        std::fs::write(cwd.path().join(CONNECTIONS_FILE), "connections:\n  x: {local: {path: cwd}}\n").unwrap();
        let f = ConnectionsFile::load(Some(home.path()), cwd.path()).unwrap();
        assert_eq!(f.families(), vec!["x"]);
        std::fs::write(home.path().join(CONNECTIONS_FILE), "connections:\n  y: {local: {path: home}}\n").unwrap();
        let f = ConnectionsFile::load(Some(home.path()), cwd.path()).unwrap();
        assert_eq!(f.families(), vec!["y"]);
        let empty = tempfile::tempdir().unwrap();
        let f = ConnectionsFile::load(None, empty.path()).unwrap();
        let err = f.resolve("mysql", None, &[], &env()).unwrap_err();
        assert!(err.to_string().contains("no connections configured"), "{err}");
        let err = ConnectionsFile::parse("connections:\n  a: [1\n", None).unwrap_err();
        assert!(matches!(err, ConnectionFileError::Yaml { line: 2.., .. }), "{err}");
    }

    #[test]
    fn masked_listing() {
        let v = file().list_masked(&|_| Vec::new(), &env());
        let main = &v["connections"]["db"]["main"];
        assert_eq!(main["config"]["password"], "${DB_PASSWORD}");
        assert_eq!(main["env_vars"]["DB_PASSWORD"], true);
        assert_eq!(main["is_default"], true);
        assert_eq!(v["connections"]["db"]["other"]["is_default"], false);
        assert_eq!(v["connections"]["pg"]["default"]["config"]["pg_password"], MASK);
        assert_eq!(v["connections"]["unset"]["main"]["env_vars"]["MISSING_TOKEN"], false);
        assert!(!v.to_string().contains("literal-pg-secret"));
    }

    const TRICKY: &str = r#"connections:
  db:
    main:
      host: h.local
      dsn: "mysql://app:${DB_PASSWORD}@h.local/db"
      url: "https://h.local/status"
      replica_url: "postgres://ro:literal-url-pw@replica/db"
      from_env_url: ${DATABASE_URL}
      mixed_token: "${DB_PASSWORD}-and-literal-suffix"
      note: "uses ${DB_PASSWORD}"
      options:
        timeout: 5
        password: ${NESTED_PW}
        ssl: {client_key: "literal-nested-key", mode: require}
      hosts: ["a.local", "mysql://u:in-list-pw@b.local"]
      primary_key: id
      connection_string: "Server=x;Password=literal-cs-pw"
"#;

    fn tricky_env() -> BTreeMap<String, String> {
        [
            ("DB_PASSWORD", "pw-from-env-1"),
            ("NESTED_PW", "nested-pw-2"),
            ("DATABASE_URL", "mysql://u:url-pw-3@h/db"),
            ("BRACES", "x${NOT_A_VAR}y"),
            ("BRACES_PW", "p${NOT_A_VAR}q"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    const TRICKY_SECRETS: &[&str] = &[
        "pw-from-env-1",
        "nested-pw-2",
        "url-pw-3",
        "literal-url-pw",
        "literal-nested-key",
        "in-list-pw",
        "literal-cs-pw",
        "literal-suffix",
    ];

    #[test]
    fn no_secret_at_any_depth_lands_in_fields() {
        let f = ConnectionsFile::parse(TRICKY, None).unwrap();
        // `primary_key` looks secret by name; the family's spec says it is not.
        let r = f.resolve("db", Some("main"), &[Declared::not_secret("primary_key")], &tricky_env()).unwrap();
        let d = &r.descriptor;
        let json = serde_json::to_string(d).unwrap();
        for secret in TRICKY_SECRETS {
            assert!(!json.contains(secret), "{secret} in {json}");
        }
        // Plain fields stay plain.
        assert_eq!(d.fields["host"], "h.local");
        assert_eq!(d.fields["url"], "https://h.local/status");
        assert_eq!(d.fields["primary_key"], "id");
        assert_eq!(d.fields["options"], json!({"timeout": 5, "ssl": {"mode": "require"}}));
        assert_eq!(d.fields["hosts"], json!(["a.local", null]));
        let secrets: Vec<(&str, &str)> = d.secrets.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            secrets,
            vec![
                ("/connection_string", "OSIRIS_SECRET_DB_MAIN_CONNECTION_STRING"),
                ("/dsn", "OSIRIS_SECRET_DB_MAIN_DSN"),
                ("/from_env_url", "DATABASE_URL"),
                ("/hosts/1", "OSIRIS_SECRET_DB_MAIN_HOSTS_1"),
                ("/mixed_token", "OSIRIS_SECRET_DB_MAIN_MIXED_TOKEN"),
                ("/note", "OSIRIS_SECRET_DB_MAIN_NOTE"),
                ("/options/password", "NESTED_PW"),
                ("/options/ssl/client_key", "OSIRIS_SECRET_DB_MAIN_OPTIONS_SSL_CLIENT_KEY"),
                ("/replica_url", "OSIRIS_SECRET_DB_MAIN_REPLICA_URL"),
            ]
        );
        let synthetic: BTreeMap<_, _> = r.synthetic_env.iter().cloned().collect();
        assert_eq!(synthetic["OSIRIS_SECRET_DB_MAIN_DSN"], "mysql://app:pw-from-env-1@h.local/db");
        assert_eq!(synthetic["OSIRIS_SECRET_DB_MAIN_MIXED_TOKEN"], "pw-from-env-1-and-literal-suffix");
        assert_eq!(synthetic["OSIRIS_SECRET_DB_MAIN_NOTE"], "uses pw-from-env-1");
        assert_eq!(synthetic["OSIRIS_SECRET_DB_MAIN_HOSTS_1"], "mysql://u:in-list-pw@b.local");
        // Binding restores every value at its place; masking hides every one of them.
        let mut env = tricky_env();
        env.extend(r.synthetic_env.iter().cloned());
        let bound = d.bind(&env).unwrap();
        assert_eq!(bound.values()["options"]["password"], "nested-pw-2");
        assert_eq!(bound.values()["options"]["ssl"], json!({"mode": "require", "client_key": "literal-nested-key"}));
        assert_eq!(bound.values()["hosts"], json!(["a.local", "mysql://u:in-list-pw@b.local"]));
        assert_eq!(bound.get_string("from_env_url").as_deref(), Some("mysql://u:url-pw-3@h/db"));
        let masked = Value::Object(bound.masked());
        assert_eq!(masked["options"]["password"], MASK);
        assert_eq!(masked["options"]["ssl"]["client_key"], MASK);
        assert_eq!(masked["options"]["ssl"]["mode"], "require");
        assert_eq!(masked["hosts"], json!(["a.local", MASK]));
        for secret in TRICKY_SECRETS {
            assert!(!masked.to_string().contains(secret), "{secret} in {masked}");
        }
    }

    #[test]
    fn errors_name_only_variables_written_in_the_file() {
        let text = "connections:\n  db:\n    main:\n      default: true\n      password: \"${BRACES_PW}x\"\n      host: \"${BRACES}\"\n      options: {token: \"a${UNSET_NESTED}\"}\n";
        let f = ConnectionsFile::parse(text, None).unwrap();
        // A value containing `${NOT_A_VAR}` is used as is, never scanned again.
        let mut env = tricky_env();
        env.insert("UNSET_NESTED".into(), "n".into());
        let r = f.resolve("db", None, &[], &env).unwrap();
        assert_eq!(r.descriptor.fields["host"], "x${NOT_A_VAR}y");
        let synthetic: BTreeMap<_, _> = r.synthetic_env.iter().cloned().collect();
        assert_eq!(synthetic["OSIRIS_SECRET_DB_MAIN_PASSWORD"], "p${NOT_A_VAR}qx");
        assert_eq!(synthetic["OSIRIS_SECRET_DB_MAIN_OPTIONS_TOKEN"], "an");
        // The error names the variable of the file and the nested field, nothing of a value.
        let err = f.resolve("db", None, &[], &tricky_env()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Environment variable 'UNSET_NESTED' not set for options.token in db.main; export it or add it to .env"
        );
        let mut env = tricky_env();
        env.remove("BRACES_PW");
        env.insert("UNSET_NESTED".into(), "n".into());
        let err = f.resolve("db", None, &[], &env).unwrap_err().to_string();
        assert!(err.contains("'BRACES_PW' not set for password"), "{err}");
    }

    #[test]
    fn listing_masks_every_secret_not_written_as_one_variable() {
        let f = ConnectionsFile::parse(TRICKY, None).unwrap();
        let v = f.list_masked(&|_| vec![Declared::not_secret("primary_key")], &tricky_env());
        let config = &v["connections"]["db"]["main"]["config"];
        let text = v.to_string();
        for secret in TRICKY_SECRETS.iter().chain(["app:"].iter()) {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(config["dsn"], MASK);
        assert_eq!(config["mixed_token"], MASK);
        assert_eq!(config["replica_url"], MASK);
        assert_eq!(config["connection_string"], MASK);
        assert_eq!(config["hosts"], json!(["a.local", MASK]));
        assert_eq!(config["options"]["ssl"], json!({"client_key": MASK, "mode": "require"}));
        // Exactly one `${VAR}` is shown as written (a name, not a value).
        assert_eq!(config["options"]["password"], "${NESTED_PW}");
        assert_eq!(config["from_env_url"], "${DATABASE_URL}");
        assert_eq!(config["url"], "https://h.local/status");
        assert_eq!(config["primary_key"], "id");
        let env_vars = &v["connections"]["db"]["main"]["env_vars"];
        assert_eq!(env_vars["NESTED_PW"], true);
        assert_eq!(env_vars["DB_PASSWORD"], true);
    }

    #[test]
    fn synthetic_names_stay_unique_within_an_alias() {
        let text = "connections:\n  db:\n    a:\n      options_password: one-1\n      options: {password: two-2}\n";
        let r = ConnectionsFile::parse(text, None).unwrap().resolve("db", Some("a"), &[], &env()).unwrap();
        let mut names: Vec<&str> = r.synthetic_env.iter().map(|(k, _)| k.as_str()).collect();
        names.sort();
        assert_eq!(names, vec!["OSIRIS_SECRET_DB_A_OPTIONS_PASSWORD", "OSIRIS_SECRET_DB_A_OPTIONS_PASSWORD_2"]);
        let env: BTreeMap<String, String> = r.synthetic_env.iter().cloned().collect();
        let bound = r.descriptor.bind(&env).unwrap();
        assert_eq!(bound.get_string("options_password").as_deref(), Some("one-1"));
        assert_eq!(bound.values()["options"]["password"], "two-2");
    }
}
