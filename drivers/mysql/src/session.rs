//! Where a MySQL step connects: the step's `host`/`port` overrides over its connection's fields,
//! `database`/`user`/`password` only from the connection. Options are built field by field, never
//! from a URL, so no library message can carry the password.
//!
//! Used by both MySQL components: the writer connects with mysql_async ([`Target::opts`]), the
//! extractor with the lean client ([`Target::connect_options`]).

use std::fmt;

use mysql_async::OptsBuilder;
use osiris_engine::connections::BoundConnection;
use osiris_engine::driver::DriverError;
use osiris_engine::spec::{ConfigField, ConnectionField, ConnectionSpec, FieldType, OverridePolicy};

use crate::errors::Where;

/// A resolved connection target. `Debug` never shows the password.
#[derive(Clone)]
pub struct Target {
    pub w: Where,
    password: String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target").field("w", &self.w).field("password", &"***").finish()
    }
}

/// Step-level values that may fill in for (host, port) or stand in for a missing connection
/// (database, user: accepted so that a config without a connection validates).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub user: Option<String>,
}

impl Target {
    /// Resolves the target of step `step_id` from its bound connection.
    pub fn resolve(step_id: &str, conn: Option<&BoundConnection>, o: &Overrides) -> Result<Target, DriverError> {
        let connection = conn.map(|c| format!("@{}.{}", c.family, c.alias)).unwrap_or_else(|| "@mysql".into());
        let field = |name: &str| conn.and_then(|c| c.get_string(name)).filter(|s| !s.is_empty());
        let host =
            o.host.clone().filter(|h| !h.is_empty()).or_else(|| field("host")).unwrap_or_else(|| "localhost".into());
        let port = match o.port {
            Some(p) => p,
            None => match field("port") {
                None => 3306,
                Some(p) => p.parse().map_err(|_| {
                    DriverError::new(
                        "connection.invalid",
                        format!("step '{step_id}': port '{p}' of {connection} is not a port number"),
                    )
                    .with_hint(format!("set `port` of {connection} in osiris_connections.yaml to a number like 3306"))
                })?,
            },
        };
        let missing = |what: &str| {
            DriverError::new("connection.invalid", format!("step '{step_id}': connection {connection} has no `{what}`"))
                .with_hint(format!("add `{what}` to {connection} in osiris_connections.yaml"))
        };
        let database = field("database").or_else(|| o.database.clone()).ok_or_else(|| missing("database"))?;
        let user = field("user").or_else(|| o.user.clone()).ok_or_else(|| missing("user"))?;
        let password = conn.and_then(|c| c.get_string("password")).unwrap_or_default();
        Ok(Target { w: Where { step: step_id.to_string(), connection, host, port, database, user }, password })
    }

    /// Options of the extractor's lean client ([`crate::wire`]).
    pub fn connect_options(&self) -> crate::wire::ConnectOptions {
        crate::wire::ConnectOptions {
            host: self.w.host.clone(),
            port: self.w.port,
            user: self.w.user.clone(),
            password: self.password.clone(),
            database: Some(self.w.database.clone()),
        }
    }

    /// Connection options, with `init` statements run on every new connection.
    pub fn opts(&self, init: &[&str]) -> OptsBuilder {
        OptsBuilder::default()
            .ip_or_hostname(self.w.host.clone())
            .tcp_port(self.w.port)
            .user(Some(self.w.user.clone()))
            .pass(Some(self.password.clone()))
            .db_name(Some(self.w.database.clone()))
            .prefer_socket(false)
            .init(init.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }
}

/// The connection-provided config fields both MySQL components declare first.
pub fn connection_config_fields() -> Vec<ConfigField> {
    vec![
        ConfigField::optional("host", FieldType::String, "Server host (from the connection; default localhost)."),
        ConfigField::optional("port", FieldType::Integer, "Server port (from the connection; default 3306)."),
        ConfigField::required("database", FieldType::String, "Database (from the connection)."),
        ConfigField::required("user", FieldType::String, "User (from the connection)."),
        ConfigField::required("password", FieldType::String, "Password (from the connection).").secret(),
    ]
}

/// The `@mysql.<alias>` connection both components require: `host`, `port` and `schema` may be
/// overridden in the step; `database`, `user` and `password` come only from the connection.
pub fn connection_spec() -> ConnectionSpec {
    let field = |name: &str, override_policy, secret| ConnectionField { name: name.into(), override_policy, secret };
    ConnectionSpec {
        family: "mysql".into(),
        required: true,
        fields: vec![
            field("host", OverridePolicy::Allowed, false),
            field("port", OverridePolicy::Allowed, false),
            field("schema", OverridePolicy::Allowed, false),
            field("database", OverridePolicy::Forbidden, false),
            field("user", OverridePolicy::Forbidden, false),
            field("password", OverridePolicy::Forbidden, true),
        ],
        ignored_keys: OSIRIS_IGNORED_KEYS.iter().map(|k| k.to_string()).collect(),
    }
}

/// Keys of Osiris's MySQL connections (its `osiris init` template, its connection schema and its
/// SQLAlchemy client) that set up Python's connection pool or driver: accepted and ignored here
/// (the extractor streams over one connection, the writer uses one per step, always utf8mb4).
const OSIRIS_IGNORED_KEYS: &[&str] =
    &["pool_size", "max_overflow", "pool_recycle", "echo", "charset", "timeout", "write_timeout"];
