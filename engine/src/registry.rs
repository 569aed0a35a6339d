//! The component registry: name → component (spec + driver factory).
//!
//! The registry is a value, not a global: the CLI builds the built-in one, tests and embedding
//! applications build their own.
//!
//! ```
//! use osiris_engine::registry::Registry;
//! let registry = Registry::new();
//! assert!(registry.get("filesystem.csv_writer").is_none());
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::connections::BoundConnection;
use crate::driver::{Driver, DriverError};
use crate::spec::ComponentSpec;

/// A component: its spec and a factory for its driver.
pub trait Component: Send + Sync + 'static {
    fn spec(&self) -> &ComponentSpec;

    /// Parses and checks the step config (spec defaults already filled in, `component`, `mode`
    /// and `connection` removed) and returns a driver ready to run. Does no I/O: the compiler
    /// calls it to validate configs before anything runs.
    fn create(&self, config: &Map<String, Value>) -> Result<Box<dyn Driver>, DriverError>;

    /// Checks that a connection of this component's family really works (a handshake and
    /// `SELECT 1`, a directory that exists, ...), for `osiris connections doctor`. `None` when
    /// the component has nothing to check. Errors use `connection.auth_failed`,
    /// `connection.network` or `connection.config` codes so the doctor can categorise them.
    fn check_connection<'a>(
        &'a self,
        _connection: &'a BoundConnection,
    ) -> Option<BoxFuture<'a, Result<(), DriverError>>> {
        None
    }

    /// Checks the option values of a step's connection before anything runs (a bad `ssl_mode`, a
    /// duration that is not one): `fields` are the connection's non-secret fields, `connection`
    /// is `@family.alias`. An error stops the run at preparation (exit 2). Does no I/O.
    fn validate_connection(
        &self,
        _step_id: &str,
        _connection: &str,
        _fields: &Map<String, Value>,
    ) -> Result<(), DriverError> {
        Ok(())
    }

    /// [`Component::check_connection`], also returning what the check learnt for the doctor's
    /// report (for MySQL: the TLS version and cipher); a `summary` string, when present, replaces
    /// the plain "ok" of a successful check.
    fn check_connection_details<'a>(
        &'a self,
        connection: &'a BoundConnection,
    ) -> Option<BoxFuture<'a, Result<Map<String, Value>, DriverError>>> {
        let check = self.check_connection(connection)?;
        Some(Box::pin(async move { check.await.map(|()| Map::new()) }))
    }
}

/// Registry errors.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("component '{0}' is registered twice")]
    Duplicate(String),
}

/// Name-keyed set of components.
#[derive(Clone, Default)]
pub struct Registry {
    components: BTreeMap<String, Arc<dyn Component>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a component; a second component with the same name is an error.
    pub fn register(&mut self, component: impl Component) -> Result<(), RegistryError> {
        let name = component.spec().name.clone();
        if self.components.contains_key(&name) {
            return Err(RegistryError::Duplicate(name));
        }
        self.components.insert(name, Arc::new(component));
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Component>> {
        self.components.get(name)
    }

    /// Components in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Component>> {
        self.components.values()
    }

    /// Component names in order, for "did you mean" hints.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.components.keys().map(String::as_str)
    }

    /// Fingerprint input: `name@version` of every component, sorted.
    pub fn fingerprint_source(&self) -> String {
        self.components
            .values()
            .map(|c| format!("{}@{}", c.spec().name, c.spec().version))
            .collect::<Vec<_>>()
            .join("|")
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.components.keys()).finish()
    }
}
