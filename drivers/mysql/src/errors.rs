//! mysql_async errors → [`DriverError`]s that name the step and the connection alias and never
//! contain a secret (the driver builds its options field by field, never from a URL, so the
//! library's messages cannot carry the password; the server never echoes it either).

use std::time::Duration;

use osiris_engine::driver::DriverError;

use crate::session::show_duration;
use crate::tls::SslMode;
use crate::wire::WireError;

/// Where an error happened, for messages.
#[derive(Clone, Debug)]
pub struct Where {
    pub step: String,
    /// `@mysql.<alias>`.
    pub connection: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub ssl_mode: SslMode,
    /// `read_timeout`, for the message of a stall.
    pub read_timeout: Duration,
}

/// MySQL/MariaDB server error codes we classify.
mod code {
    pub const ER_CON_COUNT_ERROR: u16 = 1040;
    pub const ER_DBACCESS_DENIED_ERROR: u16 = 1044;
    pub const ER_ACCESS_DENIED_ERROR: u16 = 1045;
    pub const ER_BAD_DB_ERROR: u16 = 1049;
    pub const ER_TOO_MANY_USER_CONNECTIONS: u16 = 1203;
    pub const ER_ACCESS_DENIED_NO_PASSWORD_ERROR: u16 = 1698;
    pub const ER_TABLEACCESS_DENIED_ERROR: u16 = 1142;
    pub const ER_COLUMNACCESS_DENIED_ERROR: u16 = 1143;
    pub const ER_SPECIFIC_ACCESS_DENIED_ERROR: u16 = 1227;
    /// MySQL's "Connections using insecure transport are prohibited while
    /// --require_secure_transport=ON"; MariaDB reports the same condition as 1045 with that text.
    pub const ER_SECURE_TRANSPORT_REQUIRED: u16 = 3159;
}

/// Whether a failure to connect (or to start the query) may go away if tried again.
pub fn is_transient(err: &mysql_async::Error) -> bool {
    match err {
        mysql_async::Error::Server(e) => {
            matches!(e.code, code::ER_CON_COUNT_ERROR | code::ER_TOO_MANY_USER_CONNECTIONS)
        }
        mysql_async::Error::Io(mysql_async::IoError::Io(e)) => is_transient_io(e),
        mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed) => true,
        _ => false,
    }
}

/// The error of a connect that took longer than `connect_timeout`.
pub fn connect_timeout(w: &Where, limit: Duration) -> DriverError {
    DriverError::new(
        "connection.timeout",
        format!(
            "step '{}' ({}): cannot connect to MySQL at {}:{}: no answer within {} (connect_timeout)",
            w.step,
            w.connection,
            w.host,
            w.port,
            show_duration(limit)
        ),
    )
    .with_hint(format!(
        "check `host` and `port` of {} and that the server is reachable from here; a slow link may need a \
         larger `connect_timeout` in osiris_connections.yaml",
        w.connection
    ))
}

/// The error of a read (or write) that saw no byte for `read_timeout`: the server or the network
/// stalled. `doing` says what the step was waiting for.
pub fn read_timeout(w: &Where, doing: &str) -> DriverError {
    let limit = show_duration(w.read_timeout);
    DriverError::new(
        "connection.timeout",
        format!(
            "step '{}' ({}): no data from MySQL at {}:{} for {limit} while {doing} (read_timeout {limit})",
            w.step, w.connection, w.host, w.port
        ),
    )
    .with_hint(format!(
        "if the server is only slow (a long query, a busy server), raise `read_timeout` of {} in \
         osiris_connections.yaml (e.g. read_timeout: 30m); otherwise check the network and the server",
        w.connection
    ))
}

/// The marker inside the mysql_async error of a statement that saw no byte for `read_timeout`
/// (see [`within`]); [`map_error`] and [`map_write_error`] turn it into `connection.timeout`.
#[derive(Debug)]
pub struct Stalled;

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no data from the server within read_timeout")
    }
}

impl std::error::Error for Stalled {}

/// The mysql_async error of a stall: an I/O error, so the connection counts as unusable.
pub fn stalled() -> mysql_async::Error {
    mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, Stalled)))
}

fn is_stalled(err: &mysql_async::Error) -> bool {
    matches!(err, mysql_async::Error::Io(mysql_async::IoError::Io(e))
        if e.get_ref().is_some_and(|inner| inner.is::<Stalled>()))
}

/// Runs one mysql_async exchange with `limit` (`read_timeout`) as the longest wait for its answer.
/// mysql_async has no read timeout of its own.
pub async fn within<T>(
    limit: Duration,
    exchange: impl std::future::Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, mysql_async::Error> {
    tokio::time::timeout(limit, exchange).await.unwrap_or_else(|_| Err(stalled()))
}

/// What went wrong, whichever client (mysql_async or the lean [`crate::wire`] client) saw it.
enum Failure<'a> {
    Server { code: u16, state: &'a str, message: &'a str },
    Network(String),
    Timeout,
    Tls(String),
    NoTls,
    Other(String),
}

/// The rustls error inside a mysql_async error, if the failure was TLS's.
fn tls_detail(err: &mysql_async::Error) -> Option<String> {
    let mysql_async::Error::Io(io) = err else { return None };
    match io {
        mysql_async::IoError::Tls(tls) => Some(match tls {
            mysql_async::TlsError::Tls(e) => e.to_string(),
            other => other.to_string(),
        }),
        mysql_async::IoError::Io(e) => {
            e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).map(|r| r.to_string())
        }
    }
}

/// Maps a mysql_async error of connecting (`connecting = true`) or of running a statement.
pub fn map_error(err: mysql_async::Error, w: &Where, connecting: bool) -> DriverError {
    if is_stalled(&err) {
        return read_timeout(w, if connecting { "connecting" } else { "running the query or reading its rows" })
            .with_source(err);
    }
    let tls = tls_detail(&err);
    let failure = match &err {
        mysql_async::Error::Server(e) => Failure::Server { code: e.code, state: &e.state, message: &e.message },
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) => Failure::NoTls,
        mysql_async::Error::Io(_) if tls.is_some() => Failure::Tls(tls.unwrap_or_default()),
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed) => {
            Failure::Network(err.to_string())
        }
        _ => Failure::Other(err.to_string()),
    };
    describe(failure, w, connecting).with_source(err)
}

/// Maps an error of the lean client.
pub fn map_wire_error(err: WireError, w: &Where, connecting: bool) -> DriverError {
    let failure = match &err {
        WireError::Server { code, state, message } => Failure::Server { code: *code, state, message },
        WireError::Io(_) | WireError::Closed => Failure::Network(err.to_string()),
        WireError::Protocol(_) => Failure::Other(err.to_string()),
        WireError::Timeout(_) => Failure::Timeout,
        WireError::Tls(detail) => Failure::Tls(detail.clone()),
        WireError::NoTls => Failure::NoTls,
    };
    describe(failure, w, connecting).with_source(err)
}

/// Whether a failure of the lean client to connect or start the query may go away if tried again.
pub fn is_transient_wire(err: &WireError) -> bool {
    match err {
        WireError::Server { code, .. } => {
            matches!(*code, code::ER_CON_COUNT_ERROR | code::ER_TOO_MANY_USER_CONNECTIONS)
        }
        WireError::Io(e) => is_transient_io(e),
        WireError::Closed => true,
        // Retrying a stall would multiply the wait; TLS problems are settings, not luck.
        WireError::Protocol(_) | WireError::Timeout(_) | WireError::Tls(_) | WireError::NoTls => false,
    }
}

fn is_transient_io(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | TimedOut
            | BrokenPipe
            | UnexpectedEof
            | NotConnected
            | Interrupted
    )
}

fn describe(failure: Failure<'_>, w: &Where, connecting: bool) -> DriverError {
    let prefix = format!("step '{}' ({})", w.step, w.connection);
    match failure {
        Failure::Server { code, message, .. } if requires_secure_transport(code, message) => DriverError::new(
            "connection.tls",
            format!(
                "{prefix}: MySQL at {}:{} accepts only TLS connections, but ssl_mode is {}: {message}",
                w.host,
                w.port,
                w.ssl_mode.as_str()
            ),
        )
        .with_hint(format!(
            "enable TLS: set `ssl_mode: REQUIRED` (or VERIFY_CA / VERIFY_IDENTITY with `ssl_ca`) on {} in \
             osiris_connections.yaml",
            w.connection
        )),
        Failure::Server { code, state, message } => match code {
            // MariaDB refuses a plaintext login to a server with require_secure_transport=ON
            // with this same "access denied": say so when the login was not encrypted on purpose.
            code::ER_ACCESS_DENIED_ERROR if w.ssl_mode == SslMode::Disabled => DriverError::new(
                "connection.auth_failed",
                format!(
                    "{prefix}: MySQL rejected user '{}' at {}:{}: {message}; the connection was not encrypted \
                     (ssl_mode DISABLED), and a server that requires secure transport rejects such logins with \
                     this same error",
                    w.user, w.host, w.port
                ),
            )
            .with_hint(format!(
                "enable TLS: set `ssl_mode: REQUIRED` on {} in osiris_connections.yaml (or VERIFY_CA with \
                 `ssl_ca`); if the server accepts plaintext, check `user` and the password",
                w.connection
            )),
            code::ER_ACCESS_DENIED_ERROR | code::ER_ACCESS_DENIED_NO_PASSWORD_ERROR => DriverError::new(
                "connection.auth_failed",
                format!("{prefix}: MySQL rejected user '{}' at {}:{}: {message}", w.user, w.host, w.port),
            )
            .with_hint(format!(
                "check `user` and the password of {} in osiris_connections.yaml (and the variable it names in .env)",
                w.connection
            )),
            code::ER_DBACCESS_DENIED_ERROR => DriverError::new(
                "connection.auth_failed",
                format!("{prefix}: user '{}' may not use database '{}': {message}", w.user, w.database),
            )
            .with_hint("grant the user access to the database, or use another database in the connection"),
            code::ER_BAD_DB_ERROR => DriverError::new(
                "connection.unknown_database",
                format!("{prefix}: database '{}' does not exist on {}:{}", w.database, w.host, w.port),
            )
            .with_hint(format!("fix `database` of {} in osiris_connections.yaml", w.connection)),
            code::ER_CON_COUNT_ERROR | code::ER_TOO_MANY_USER_CONNECTIONS => DriverError::new(
                "connection.network",
                format!("{prefix}: the MySQL server refused the connection: {message}"),
            )
            .with_hint("the server has too many connections; retry later or raise max_connections"),
            _ if connecting => DriverError::new(
                "connection.failed",
                format!("{prefix}: cannot connect to MySQL at {}:{}: {message} (error {code})", w.host, w.port),
            ),
            _ => DriverError::new(
                "extract.query_failed",
                format!("{prefix}: the query failed: {message} (error {code}, SQLSTATE {state})"),
            )
            .with_hint("check the SQL in `query` (or `table`/`columns`) against the database"),
        },
        Failure::Network(detail) => {
            let what = if connecting { "cannot connect to MySQL" } else { "lost the connection to MySQL" };
            DriverError::new("connection.network", format!("{prefix}: {what} at {}:{}: {detail}", w.host, w.port))
                .with_hint(format!(
                    "check `host` and `port` of {} and that the server is reachable from here",
                    w.connection
                ))
        }
        Failure::Timeout => {
            read_timeout(w, if connecting { "connecting" } else { "running the query or reading its rows" })
        }
        Failure::Tls(detail) => tls_failed(w, &prefix, &detail),
        Failure::NoTls => DriverError::new(
            "connection.tls",
            format!(
                "{prefix}: MySQL at {}:{} does not offer TLS, but ssl_mode is {}",
                w.host,
                w.port,
                w.ssl_mode.as_str()
            ),
        )
        .with_hint(format!(
            "enable TLS on the server (its ssl_cert / ssl_key settings), or set `ssl_mode: PREFERRED` on {} to \
             connect in plaintext when the server has no TLS",
            w.connection
        )),
        Failure::Other(detail) => DriverError::new(
            if connecting { "connection.failed" } else { "extract.query_failed" },
            format!("{prefix}: MySQL error: {detail}"),
        ),
    }
}

/// Whether a server error says that only TLS connections are accepted.
fn requires_secure_transport(code: u16, message: &str) -> bool {
    code == code::ER_SECURE_TRANSPORT_REQUIRED || message.contains("require_secure_transport")
}

/// A TLS handshake that failed: the certificate was rejected, or the TLS settings are unusable.
fn tls_failed(w: &Where, prefix: &str, detail: &str) -> DriverError {
    let mode = w.ssl_mode.as_str();
    let hint = if detail.contains("not valid for name") || detail.contains("NotValidForName") {
        format!(
            "the server's certificate does not name '{}': connect by a name the certificate holds, or use \
             `ssl_mode: VERIFY_CA` on {} to check the CA only",
            w.host, w.connection
        )
    } else if detail.contains("UnknownIssuer") || detail.contains("issuer") || detail.contains("BadSignature") {
        format!(
            "the server's certificate is not signed by the CA in `ssl_ca` of {}: point `ssl_ca` at the CA that \
             signed it (or use `ssl_mode: REQUIRED` to encrypt without checking the certificate)",
            w.connection
        )
    } else {
        format!("check `ssl_mode`, `ssl_ca`, `ssl_cert` and `ssl_key` of {} in osiris_connections.yaml", w.connection)
    };
    DriverError::new(
        "connection.tls",
        format!("{prefix}: TLS with MySQL at {}:{} failed (ssl_mode {mode}): {detail}", w.host, w.port),
    )
    .with_hint(hint)
}

/// Maps an error of a statement the writer ran once connected: a missing privilege is
/// `write.permission_denied`, any other server error `write.failed` (saying `what` failed), and
/// a lost connection `connection.network` (as [`map_error`] does).
pub fn map_write_error(err: mysql_async::Error, w: &Where, what: &str) -> DriverError {
    if is_stalled(&err) {
        return read_timeout(w, what).with_source(err);
    }
    let prefix = format!("step '{}' ({})", w.step, w.connection);
    let mysql_async::Error::Server(e) = &err else {
        return map_error(err, w, false);
    };
    let de = match e.code {
        code::ER_DBACCESS_DENIED_ERROR
        | code::ER_TABLEACCESS_DENIED_ERROR
        | code::ER_COLUMNACCESS_DENIED_ERROR
        | code::ER_SPECIFIC_ACCESS_DENIED_ERROR => DriverError::new(
            "write.permission_denied",
            format!("{prefix}: {what}: user '{}' lacks a privilege: {} (error {})", w.user, e.message, e.code),
        )
        .with_hint(format!(
            "grant '{}' SELECT, INSERT, UPDATE, DELETE, CREATE, DROP and ALTER on database '{}'",
            w.user, w.database
        )),
        _ => DriverError::new(
            "write.failed",
            format!("{prefix}: {what} failed: {} (error {}, SQLSTATE {})", e.message, e.code, e.state),
        ),
    };
    de.with_source(err)
}
