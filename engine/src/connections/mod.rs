//! Connections: `osiris_connections.yaml`, `.env`, `${VAR}` substitution and default aliases.
//!
//! Resolution happens where a run is prepared and yields a [`ConnectionDescriptor`]: plain
//! fields with their values, and secret fields — at any depth — as the *names* of environment
//! variables, keyed by the JSON pointer of the field (`/password`, `/options/password`). The
//! descriptor holds no secret value anywhere; it travels inside a `PreparedRun`, and secret values
//! are read from the environment only when a driver's step starts
//! ([`ConnectionDescriptor::bind`]), in the process that opens the connection.

pub mod dotenv;
pub mod file;
pub mod keys;
pub mod secret_names;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Supplies secret values by environment-variable name.
pub trait SecretSource: Send + Sync {
    /// The value of `name`; an empty value counts as no value (as in Osiris).
    fn get(&self, name: &str) -> Option<String>;

    /// Whether `name` is set, but to the empty string (so that a message can say "empty" rather
    /// than "not set"). Sources that cannot tell say `false`.
    fn is_set_but_empty(&self, _name: &str) -> bool {
        false
    }
}

/// Secrets from the process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl SecretSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    fn is_set_but_empty(&self, name: &str) -> bool {
        std::env::var_os(name).is_some_and(|v| v.is_empty())
    }
}

/// A resolved connection without secret values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectionDescriptor {
    pub family: String,
    pub alias: String,
    /// Non-secret fields with `${VAR}` already substituted. Secret entries are absent (a secret
    /// list item is `null`, so that the other items keep their index).
    pub fields: Map<String, Value>,
    /// Secret field → name of the environment variable that holds its value. The field is a JSON
    /// pointer into `fields` (`/password`, `/options/password`, `/hosts/0`); a key without a
    /// leading `/` names a top-level field (descriptors written before nested secrets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
}

/// Errors of connection loading, resolution and binding.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(
        "connection @{family}.{alias}: environment variable '{var}' is {} (needed for field '{field}')",
        if *.empty { "empty" } else { "not set" }
    )]
    MissingSecret { family: String, alias: String, field: String, var: String, empty: bool },
    #[error("{0}")]
    Resolve(String),
}

impl ConnectionDescriptor {
    /// `@family.alias`.
    pub fn reference(&self) -> String {
        format!("@{}.{}", self.family, self.alias)
    }

    /// Reads the secret values from `source`, puts each at its path, and returns the connection a
    /// driver uses.
    pub fn bind(&self, source: &dyn SecretSource) -> Result<BoundConnection, ConnectionError> {
        let mut values = Value::Object(self.fields.clone());
        let mut secret_fields = Vec::with_capacity(self.secrets.len());
        for (field, var) in &self.secrets {
            let tokens = secret_path_tokens(field);
            let value = source.get(var).ok_or_else(|| ConnectionError::MissingSecret {
                family: self.family.clone(),
                alias: self.alias.clone(),
                field: display_path(&tokens),
                var: var.clone(),
                empty: source.is_set_but_empty(var),
            })?;
            if !insert_at(&mut values, &tokens, Value::String(value)) {
                return Err(ConnectionError::Resolve(format!(
                    "connection {}: secret field '{}' does not fit the connection's fields; resolve the connection again",
                    self.reference(),
                    display_path(&tokens)
                )));
            }
            secret_fields.push(json_pointer(&tokens));
        }
        let Value::Object(values) = values else { unreachable!("bind starts from an object") };
        Ok(BoundConnection { family: self.family.clone(), alias: self.alias.clone(), values, secret_fields })
    }
}

/// The reference tokens of a secret path: a JSON pointer (`/options/password`, `~1` and `~0`
/// unescaped), or, without a leading `/`, one top-level field name.
pub fn secret_path_tokens(path: &str) -> Vec<String> {
    match path.strip_prefix('/') {
        Some(rest) => rest.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect(),
        None => vec![path.to_string()],
    }
}

/// The JSON pointer of `tokens` (`~` as `~0`, `/` as `~1`).
pub fn json_pointer<S: AsRef<str>>(tokens: &[S]) -> String {
    tokens.iter().map(|t| format!("/{}", t.as_ref().replace('~', "~0").replace('/', "~1"))).collect()
}

/// A path for messages: the tokens joined with `.` (`options.password`, `hosts.0`).
pub fn display_path<S: AsRef<str>>(tokens: &[S]) -> String {
    tokens.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(".")
}

/// Puts `value` at `tokens` inside `root`, creating missing objects on the way; a list item must
/// already exist. Returns `false` when the path does not fit.
fn insert_at(root: &mut Value, tokens: &[String], value: Value) -> bool {
    let Some((last, parents)) = tokens.split_last() else { return false };
    let mut current = root;
    for token in parents {
        current = match current {
            Value::Object(m) => m.entry(token.clone()).or_insert_with(|| Value::Object(Map::new())),
            Value::Array(items) => match token.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(item) => item,
                None => return false,
            },
            _ => return false,
        };
    }
    match current {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            true
        }
        Value::Array(items) => match last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
            Some(item) => {
                *item = value;
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// The one masking walk of connections: returns `fields` with every entry, at any depth, for
/// which `is_secret(json_pointer, value)` holds replaced by `***MASKED***` (a `null` stays
/// `null`). Used by [`BoundConnection::masked`] and the `connections list` output.
pub fn mask_fields(fields: &Map<String, Value>, is_secret: &mut dyn FnMut(&str, &Value) -> bool) -> Map<String, Value> {
    fields
        .iter()
        .map(|(k, v)| {
            let pointer = json_pointer(&[k]);
            (k.clone(), mask_walk(v, &pointer, is_secret))
        })
        .collect()
}

fn mask_walk(value: &Value, pointer: &str, is_secret: &mut dyn FnMut(&str, &Value) -> bool) -> Value {
    if !value.is_null() && is_secret(pointer, value) {
        return Value::String(crate::MASK.to_string());
    }
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), mask_walk(v, &format!("{pointer}{}", json_pointer(&[k])), is_secret)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items.iter().enumerate().map(|(i, v)| mask_walk(v, &format!("{pointer}/{i}"), is_secret)).collect(),
        ),
        other => other.clone(),
    }
}

/// A connection with its secrets bound, handed to a driver. Its `Debug` output masks secrets.
#[derive(Clone)]
pub struct BoundConnection {
    pub family: String,
    pub alias: String,
    values: Map<String, Value>,
    /// JSON pointers of the secret entries.
    secret_fields: Vec<String>,
}

impl BoundConnection {
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.values.get(field)
    }

    /// A field as a string (numbers are formatted), or `None`.
    pub fn get_string(&self, field: &str) -> Option<String> {
        match self.values.get(field)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// Every field, secrets included. Never log or serialize the result.
    pub fn values(&self) -> &Map<String, Value> {
        &self.values
    }

    /// The fields with secret values, at any depth, replaced by `***MASKED***`.
    pub fn masked(&self) -> Map<String, Value> {
        mask_fields(&self.values, &mut |pointer, _| self.secret_fields.iter().any(|s| s == pointer))
    }
}

impl fmt::Debug for BoundConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundConnection")
            .field("family", &self.family)
            .field("alias", &self.alias)
            .field("values", &self.masked())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn descriptor() -> ConnectionDescriptor {
        let Value::Object(fields) = json!({"host": "h", "options": {"timeout": 5}, "hosts": ["a", null]}) else {
            unreachable!()
        };
        ConnectionDescriptor {
            family: "db".into(),
            alias: "main".into(),
            fields,
            secrets: [
                ("/options/password".to_string(), "PW".to_string()),
                ("/hosts/1".to_string(), "HOST_URL".to_string()),
                ("/deep/a~1b/token".to_string(), "TOKEN".to_string()),
                ("api_key".to_string(), "KEY".to_string()),
            ]
            .into(),
        }
    }

    fn env() -> BTreeMap<String, String> {
        [("PW", "pw-value"), ("HOST_URL", "mysql://u:url-pw@h"), ("TOKEN", "tok-value"), ("KEY", "key-value")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bind_places_secrets_at_their_paths_and_masked_hides_them_at_any_depth() {
        let d = descriptor();
        let bound = d.bind(&env()).unwrap();
        assert_eq!(bound.values()["options"], json!({"timeout": 5, "password": "pw-value"}));
        assert_eq!(bound.values()["hosts"], json!(["a", "mysql://u:url-pw@h"]));
        assert_eq!(bound.values()["deep"], json!({"a/b": {"token": "tok-value"}}));
        assert_eq!(bound.get_string("api_key").as_deref(), Some("key-value"));
        let masked = Value::Object(bound.masked());
        assert_eq!(masked["options"], json!({"timeout": 5, "password": crate::MASK}));
        assert_eq!(masked["hosts"], json!(["a", crate::MASK]));
        assert_eq!(masked["deep"]["a/b"]["token"], crate::MASK);
        assert_eq!(masked["api_key"], crate::MASK);
        assert_eq!(masked["host"], "h");
        let shown = format!("{masked} {bound:?}");
        for secret in ["pw-value", "url-pw", "tok-value", "key-value"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn bind_errors_name_the_path_and_variable_only() {
        let mut e = env();
        e.remove("PW");
        let err = descriptor().bind(&e).unwrap_err();
        assert_eq!(
            err.to_string(),
            "connection @db.main: environment variable 'PW' is not set (needed for field 'options.password')"
        );
        e.insert("PW".into(), String::new());
        let err = descriptor().bind(&e).unwrap_err();
        assert!(err.to_string().contains("environment variable 'PW' is empty"), "{err}");
        let mut d = descriptor();
        d.secrets.insert("/host/x".into(), "PW".into());
        let err = d.bind(&env()).unwrap_err();
        assert!(err.to_string().contains("'host.x' does not fit"), "{err}");
        assert!(!err.to_string().contains("pw-value"));
    }

    #[test]
    fn pointers_round_trip() {
        assert_eq!(secret_path_tokens("/a~1b/c~0d"), vec!["a/b", "c~d"]);
        assert_eq!(json_pointer(&["a/b", "c~d"]), "/a~1b/c~0d");
        assert_eq!(secret_path_tokens("password"), vec!["password"]);
        assert_eq!(display_path(&secret_path_tokens("/options/password")), "options.password");
    }
}
