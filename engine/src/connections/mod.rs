//! Connections: `osiris_connections.yaml`, `.env`, `${VAR}` substitution and default aliases.
//!
//! Resolution happens where a run is prepared and yields a [`ConnectionDescriptor`]: plain
//! fields with their values, and secret fields as the *names* of environment variables. The
//! descriptor travels inside a `PreparedRun`; secret values are read from the environment only
//! when a driver's step starts ([`ConnectionDescriptor::bind`]), in the process that opens the
//! connection.

pub mod dotenv;
pub mod file;
pub mod secret_names;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Supplies secret values by environment-variable name.
pub trait SecretSource: Send + Sync {
    fn get(&self, name: &str) -> Option<String>;
}

/// Secrets from the process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl SecretSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// A resolved connection without secret values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectionDescriptor {
    pub family: String,
    pub alias: String,
    /// Non-secret fields with `${VAR}` already substituted.
    pub fields: Map<String, Value>,
    /// Secret field → name of the environment variable that holds its value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
}

/// Errors of connection loading, resolution and binding.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("connection @{family}.{alias}: environment variable '{var}' is not set (needed for field '{field}')")]
    MissingSecret { family: String, alias: String, field: String, var: String },
    #[error("{0}")]
    Resolve(String),
}

impl ConnectionDescriptor {
    /// `@family.alias`.
    pub fn reference(&self) -> String {
        format!("@{}.{}", self.family, self.alias)
    }

    /// Reads the secret values from `source` and returns the connection a driver uses.
    pub fn bind(&self, source: &dyn SecretSource) -> Result<BoundConnection, ConnectionError> {
        let mut values = self.fields.clone();
        for (field, var) in &self.secrets {
            let value = source.get(var).ok_or_else(|| ConnectionError::MissingSecret {
                family: self.family.clone(),
                alias: self.alias.clone(),
                field: field.clone(),
                var: var.clone(),
            })?;
            values.insert(field.clone(), Value::String(value));
        }
        Ok(BoundConnection {
            family: self.family.clone(),
            alias: self.alias.clone(),
            values,
            secret_fields: self.secrets.keys().cloned().collect(),
        })
    }
}

/// A connection with its secrets bound, handed to a driver. Its `Debug` output masks secrets.
#[derive(Clone)]
pub struct BoundConnection {
    pub family: String,
    pub alias: String,
    values: Map<String, Value>,
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

    /// The fields with secret values replaced by `***MASKED***`.
    pub fn masked(&self) -> Map<String, Value> {
        let mut masked = self.values.clone();
        for field in &self.secret_fields {
            masked.insert(field.clone(), Value::String(crate::MASK.to_string()));
        }
        masked
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
