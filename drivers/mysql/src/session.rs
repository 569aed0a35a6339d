//! Where a MySQL step connects: the step's `host`/`port` overrides over its connection's fields,
//! `database`/`user`/`password` only from the connection. Options are built field by field, never
//! from a URL, so no library message can carry the password.
//!
//! Used by both MySQL components: the writer connects with mysql_async ([`Target::opts`]), the
//! extractor with the lean client ([`Target::connect_options`]).

use std::fmt;
use std::time::Duration;

use mysql_async::OptsBuilder;
use osiris_engine::connections::BoundConnection;
use osiris_engine::driver::DriverError;
use osiris_engine::spec::{ConfigField, ConnectionField, ConnectionSpec, FieldType, OverridePolicy};

use crate::errors::{Where, connect_timeout, map_error, map_wire_error};
use crate::tls::{SSL_MODES, SslMode, TlsOptions};

/// Default `read_timeout`: how long a read may wait for the server's next byte. Long enough for
/// the slowest honest wait (a query that sorts or scans a large table before its first row, a
/// COMMIT of a large transaction, a server under load), short enough that a dead link or a stalled
/// server ends a run within minutes instead of hanging it forever.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(600);
/// Default `connect_timeout`: TCP connect, TLS and the login together.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// TCP keepalive on every MySQL socket: idle time before the first probe. The kernel then notices
/// a peer that vanished (a NAT or firewall dropping the flow) even while nothing is sent.
pub const KEEPALIVE: Duration = Duration::from_secs(60);

/// The spellings each option accepts in a connection entry: ours (MySQL's option names) first,
/// then the `mysql` command line's (`ssl-mode`) and libpq-style ones (`sslmode`).
const SSL_MODE_KEYS: [&str; 3] = ["ssl_mode", "ssl-mode", "sslmode"];
const SSL_CA_KEYS: [&str; 3] = ["ssl_ca", "ssl-ca", "sslca"];
const SSL_CERT_KEYS: [&str; 3] = ["ssl_cert", "ssl-cert", "sslcert"];
const SSL_KEY_KEYS: [&str; 3] = ["ssl_key", "ssl-key", "sslkey"];
/// `ssl: true|false` (PyMySQL/SQLAlchemy style), or `ssl: {ca, cert, key}` (PyMySQL's dict).
const SSL_KEY: &str = "ssl";
const READ_TIMEOUT_KEYS: [&str; 2] = ["read_timeout", "read-timeout"];
const CONNECT_TIMEOUT_KEYS: [&str; 2] = ["connect_timeout", "connect-timeout"];

/// A resolved connection target. `Debug` never shows the password.
#[derive(Clone)]
pub struct Target {
    pub w: Where,
    password: String,
    pub tls: TlsOptions,
    /// Longest wait for the server's next byte (`read_timeout`).
    pub read_timeout: Duration,
    /// Longest connect + TLS + login (`connect_timeout`).
    pub connect_timeout: Duration,
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
        let options = ConnectionOptions { step_id, connection: &connection, fields: conn.map(BoundConnection::values) };
        let tls = options.tls()?;
        let read_timeout = options.duration(&READ_TIMEOUT_KEYS, DEFAULT_READ_TIMEOUT)?;
        let connect_timeout = options.duration(&CONNECT_TIMEOUT_KEYS, DEFAULT_CONNECT_TIMEOUT)?;
        Ok(Target {
            w: Where {
                step: step_id.to_string(),
                connection,
                host,
                port,
                database,
                user,
                ssl_mode: tls.mode,
                read_timeout,
            },
            password,
            tls,
            read_timeout,
            connect_timeout,
        })
    }

    /// Options of the extractor's lean client ([`crate::wire`]).
    pub fn connect_options(&self) -> crate::wire::ConnectOptions {
        crate::wire::ConnectOptions {
            host: self.w.host.clone(),
            port: self.w.port,
            user: self.w.user.clone(),
            password: self.password.clone(),
            database: Some(self.w.database.clone()),
            tls: self.tls.clone(),
            read_timeout: self.read_timeout,
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
            .tcp_keepalive(Some(KEEPALIVE))
            .init(init.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }
}

/// `VERIFY_CA` for the writer checks the chain and then a name the certificate holds (its client
/// can skip no name check); a certificate that names neither the host nor anything else (a
/// CN-only one, as MySQL's auto-generated certificates are) cannot be checked that way.
fn verify_ca_without_names(w: &Where) -> DriverError {
    DriverError::new(
        "connection.tls",
        format!(
            "step '{}' ({}): the certificate of MySQL at {}:{} is signed by ssl_ca but holds no subjectAltName, which ssl_mode VERIFY_CA needs for mysql.writer",
            w.step, w.connection, w.host, w.port
        ),
    )
    .with_hint("give the server a certificate with a DNS or IP subjectAltName (and use VERIFY_IDENTITY with that name), or use ssl_mode: REQUIRED (encrypted, not verified)")
}

impl Target {
    /// Connects mysql_async (the writer) with `init` statements, TLS as `ssl_mode` says, within
    /// `connect_timeout`. `PREFERRED` connects again in plaintext when the server has no TLS.
    pub async fn connect_async(&self, init: &[&str]) -> Result<mysql_async::Conn, DriverError> {
        let attempt = async {
            // mysql_async builds its rustls config with the process-wide provider: ring.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let plain = self.opts(init);
            let verify_ca_name = if self.tls.mode == SslMode::VerifyCa {
                let mismatch = crate::wire::Connection::certificate_names(&self.connect_options())
                    .await
                    .map_err(|e| map_wire_error(e, &self.w, true))?;
                match mismatch.map(|names| names.into_iter().next()) {
                    None => None,
                    Some(Some(name)) => Some(name),
                    Some(None) => return Err(verify_ca_without_names(&self.w)),
                }
            } else {
                None
            };
            let Some(ssl) = self.tls.mysql_async_opts(verify_ca_name) else {
                return mysql_async::Conn::new(plain).await.map_err(|e| map_error(e, &self.w, true));
            };
            match mysql_async::Conn::new(plain.clone().ssl_opts(ssl)).await {
                Err(mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer))
                    if self.tls.mode == SslMode::Preferred =>
                {
                    mysql_async::Conn::new(plain).await.map_err(|e| map_error(e, &self.w, true))
                }
                other => other.map_err(|e| map_error(e, &self.w, true)),
            }
        };
        tokio::time::timeout(self.connect_timeout, attempt)
            .await
            .unwrap_or_else(|_| Err(connect_timeout(&self.w, self.connect_timeout)))
    }
}

/// Reads the options of a connection entry (TLS, timeouts), accepting their other spellings.
struct ConnectionOptions<'a> {
    step_id: &'a str,
    /// `@mysql.<alias>`, for messages.
    connection: &'a str,
    fields: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// Checks the values of the options a connection entry has before the run starts (for
/// [`osiris_engine::registry::Component::validate_connection`]): `ssl_mode`/`ssl` and the
/// timeouts. The certificate files are checked when connecting (a path may be a secret, which is
/// not among `fields`, and the files must exist where the step runs).
pub fn validate_connection(
    step_id: &str,
    connection: &str,
    fields: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), DriverError> {
    let options = ConnectionOptions { step_id, connection, fields: Some(fields) };
    options.mode(false)?;
    options.duration(&READ_TIMEOUT_KEYS, DEFAULT_READ_TIMEOUT)?;
    options.duration(&CONNECT_TIMEOUT_KEYS, DEFAULT_CONNECT_TIMEOUT)?;
    Ok(())
}

impl ConnectionOptions<'_> {
    fn invalid(&self, key: &str, problem: String, hint: String) -> DriverError {
        DriverError::new(
            "connection.invalid",
            format!("step '{}': `{key}` of {} {problem}", self.step_id, self.connection),
        )
        .with_hint(hint)
    }

    /// The value of the one spelling of an option that is set (an error when several are).
    fn one_of(&self, keys: &[&str]) -> Result<Option<(String, serde_json::Value)>, DriverError> {
        let Some(conn) = self.fields else { return Ok(None) };
        let set: Vec<(&str, &serde_json::Value)> =
            keys.iter().filter_map(|k| conn.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v))).collect();
        match set.as_slice() {
            [] => Ok(None),
            [(key, value)] => Ok(Some((key.to_string(), (*value).clone()))),
            [(first, _), (second, _), ..] => Err(self.invalid(
                first,
                format!("is also set as `{second}`"),
                format!("keep one of {} in osiris_connections.yaml", keys.join(", ")),
            )),
        }
    }

    /// A path option: from its own keys, else from the `ssl:` object's `inner` key.
    fn path(&self, keys: &[&str], inner: &str) -> Result<Option<std::path::PathBuf>, DriverError> {
        let own = self.one_of(keys)?;
        let nested = self.fields.and_then(|c| c.get(SSL_KEY)).and_then(|v| v.get(inner)).filter(|v| !v.is_null());
        let (key, value) = match (own, nested) {
            (Some(own), _) => own,
            (None, Some(v)) => (format!("{SSL_KEY}.{inner}"), v.clone()),
            (None, None) => return Ok(None),
        };
        match value {
            serde_json::Value::String(s) if !s.trim().is_empty() => Ok(Some(s.trim().into())),
            _ => Err(self.invalid(&key, "is not a file path".into(), format!("set `{key}` to the path of a PEM file"))),
        }
    }

    fn tls(&self) -> Result<TlsOptions, DriverError> {
        let ca = self.path(&SSL_CA_KEYS, "ca")?;
        let cert = self.path(&SSL_CERT_KEYS, "cert")?;
        let key = self.path(&SSL_KEY_KEYS, "key")?;
        let client_cert = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(self.invalid(
                    "ssl_cert",
                    "and `ssl_key` must be set together".into(),
                    "set both `ssl_cert` (the client certificate) and `ssl_key` (its private key), or neither".into(),
                ));
            }
        };
        let mode = self.mode(ca.is_some())?;
        Ok(TlsOptions { mode, ca, client_cert })
    }

    /// `ssl_mode` (or what `ssl` implies; `has_ca`: whether `ssl_ca` is set).
    fn mode(&self, has_ca: bool) -> Result<SslMode, DriverError> {
        Ok(match self.one_of(&SSL_MODE_KEYS)? {
            Some((key, serde_json::Value::String(text))) => SslMode::parse(&text).ok_or_else(|| {
                self.invalid(&key, format!("is '{text}', which is not an ssl_mode"), format!("use one of {SSL_MODES}"))
            })?,
            Some((key, other)) => {
                return Err(self.invalid(
                    &key,
                    format!("is {other}, not an ssl_mode"),
                    format!("use one of {SSL_MODES}"),
                ));
            }
            None => self.mode_from_ssl_key(has_ca)?,
        })
    }

    /// The mode when `ssl_mode` is not set: from `ssl: true|false|{…}`; otherwise `VERIFY_CA`
    /// when a CA is given (a CA is given to be checked against), else `PREFERRED`.
    fn mode_from_ssl_key(&self, has_ca: bool) -> Result<SslMode, DriverError> {
        let implied = if has_ca { SslMode::VerifyCa } else { SslMode::Preferred };
        let Some(value) = self.fields.and_then(|c| c.get(SSL_KEY)).filter(|v| !v.is_null()) else {
            return Ok(implied);
        };
        let truthy = match value {
            serde_json::Value::Bool(b) => Some(*b),
            serde_json::Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Some(true),
                "false" | "no" | "off" | "0" => Some(false),
                _ => None,
            },
            serde_json::Value::Object(_) => Some(true),
            _ => None,
        };
        match truthy {
            Some(true) => Ok(if has_ca { SslMode::VerifyCa } else { SslMode::Required }),
            Some(false) => Ok(SslMode::Disabled),
            None => Err(self.invalid(
                SSL_KEY,
                format!("is {value}"),
                format!("use `ssl: true` or `ssl: false`, or `ssl_mode:` with one of {SSL_MODES}"),
            )),
        }
    }

    /// A duration option: seconds as a number, or a string like `90`, `30s`, `5m`, `1h`, `500ms`.
    fn duration(&self, keys: &[&str], default: Duration) -> Result<Duration, DriverError> {
        let Some((key, value)) = self.one_of(keys)? else { return Ok(default) };
        let parsed = match &value {
            serde_json::Value::Number(n) => n.as_f64().and_then(|s| Duration::try_from_secs_f64(s).ok()),
            serde_json::Value::String(s) => parse_duration(s),
            _ => None,
        };
        match parsed {
            Some(d) if !d.is_zero() => Ok(d),
            _ => Err(self.invalid(
                &key,
                format!("is {value}, not a duration"),
                format!("set `{key}` to seconds (like 600) or a duration like 30s, 5m or 1h"),
            )),
        }
    }
}

/// `90`, `90s`, `1.5m`, `2h`, `500ms` → a duration.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" => number,
        "ms" => number / 1000.0,
        "m" | "min" | "mins" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

/// Formats a duration the way `read_timeout` takes it (`600s`, `2.5s`).
pub fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{}s", d.as_secs_f64()) }
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
/// overridden in the step; `database`, `user`, `password`, the TLS options (`ssl_mode`, `ssl_ca`,
/// `ssl_cert`, `ssl_key`, each in its other spellings too, and `ssl`) and the timeouts
/// (`read_timeout`, `connect_timeout`) come only from the connection.
pub fn connection_spec() -> ConnectionSpec {
    let field =
        |name: &str, override_policy, secret| ConnectionField { secret, ..ConnectionField::new(name, override_policy) };
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
        ]
        .into_iter()
        .chain(
            SSL_MODE_KEYS
                .iter()
                .chain(&SSL_CA_KEYS)
                .chain(&SSL_CERT_KEYS)
                .chain(&[SSL_KEY])
                .chain(&READ_TIMEOUT_KEYS)
                .chain(&CONNECT_TIMEOUT_KEYS)
                .map(|name| field(name, OverridePolicy::Forbidden, false)),
        )
        // The path of the client key file, not the key itself: not a secret, though named like one.
        .chain(SSL_KEY_KEYS.iter().map(|name| field(name, OverridePolicy::Forbidden, false).not_secret()))
        .collect(),
        ignored_keys: OSIRIS_IGNORED_KEYS.iter().map(|k| k.to_string()).collect(),
    }
}

/// Keys of Osiris's MySQL connections (its `osiris init` template, its connection schema and its
/// SQLAlchemy client) that set up Python's connection pool or driver: accepted and ignored here
/// (the extractor streams over one connection, the writer uses one per step, always utf8mb4).
const OSIRIS_IGNORED_KEYS: &[&str] =
    &["pool_size", "max_overflow", "pool_recycle", "echo", "charset", "timeout", "write_timeout"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_and_units() {
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5 s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5 weeks"), None);
        assert_eq!(show_duration(Duration::from_secs(600)), "600s");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn the_connection_spec_declares_every_option_spelling() {
        let spec = connection_spec();
        for name in ["ssl_mode", "sslmode", "ssl-ca", "ssl_cert", "sslkey", "ssl", "read_timeout", "connect_timeout"] {
            let field = spec.fields.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("{name} is not declared"));
            assert!(!field.secret, "{name}");
        }
    }
}
