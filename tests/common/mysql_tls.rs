//! The TLS MariaDB instances of `scripts/mysql_tls_services.sh` (which `scripts/services.sh`
//! runs): 127.0.0.1:3307 offers TLS, 127.0.0.1:3308 requires it (`require_secure_transport=ON`),
//! both with a server certificate for `localhost` only, signed by the test CA. Scratch databases
//! there and `osiris_connections.yaml` entries with TLS options. Fails, never skips, when an
//! instance is not running.

use std::path::PathBuf;

use super::mysql::{ScratchDb, password, setting, user};

/// The directory with the certificates (`certs/`) and the instances' data.
pub fn tls_dir() -> PathBuf {
    setting("OSIRIS_TEST_MYSQL_TLS_DIR", "/var/tmp/osiris-mysql-tls").into()
}

/// A PEM file of the test certificates: `ca.pem`, `wrong-ca.pem`, `client-cert.pem`, ...
pub fn cert(name: &str) -> String {
    let path = tls_dir().join("certs").join(name);
    assert!(path.is_file(), "{} is missing; run `bash scripts/services.sh`", path.display());
    path.display().to_string()
}

/// The instance that offers TLS and accepts plaintext too.
pub fn tls_port() -> u16 {
    setting("OSIRIS_TEST_MYSQL_TLS_PORT", "3307").parse().expect("OSIRIS_TEST_MYSQL_TLS_PORT is a port")
}

/// The instance with `require_secure_transport=ON`.
pub fn strict_port() -> u16 {
    setting("OSIRIS_TEST_MYSQL_STRICT_PORT", "3308").parse().expect("OSIRIS_TEST_MYSQL_STRICT_PORT is a port")
}

/// The tests' own connection options for an instance (TLS without checks: it is not the code
/// under test).
pub fn admin_opts(port: u16) -> mysql_async::OptsBuilder {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(user()))
        .pass(Some(password()))
        .prefer_socket(false)
        .ssl_opts(mysql_async::SslOpts::default().with_danger_accept_invalid_certs(true))
}

/// Runs a query on an instance; every value as text.
pub fn query(port: u16, sql: &str) -> Vec<Vec<Option<String>>> {
    super::mysql::query_with(admin_opts(port), sql)
}

/// A fresh database `osiris_tls_<random>` on an instance, dropped when the guard goes away.
pub fn scratch_db(port: u16, setup: &[&str]) -> ScratchDb {
    ScratchDb::create_with(admin_opts(port), "osiris_tls", setup)
}

/// One `mysql` entry of `osiris_connections.yaml` with extra options (`ssl_mode`, `ssl_ca`, ...)
/// written as given; the password is `${TEST_PASSWORD}`.
pub struct TlsConnection<'a> {
    pub alias: &'a str,
    pub host: &'a str,
    pub port: u16,
    pub database: &'a str,
    pub user: String,
    pub options: Vec<(&'a str, String)>,
}

impl<'a> TlsConnection<'a> {
    pub fn new(alias: &'a str, host: &'a str, port: u16, database: &'a str) -> Self {
        TlsConnection { alias, host, port, database, user: user(), options: Vec::new() }
    }

    pub fn with(mut self, key: &'a str, value: impl Into<String>) -> Self {
        self.options.push((key, value.into()));
        self
    }
}

/// `osiris_connections.yaml` with these connections.
pub fn connections_yaml(connections: &[TlsConnection<'_>]) -> String {
    let mut yaml = String::from("version: 1\nconnections:\n  mysql:\n");
    for c in connections {
        yaml.push_str(&format!(
            "    {}:\n      host: {}\n      port: {}\n      database: {}\n      user: {}\n      password: ${{TEST_PASSWORD}}\n",
            c.alias, c.host, c.port, c.database, c.user
        ));
        for (key, value) in &c.options {
            yaml.push_str(&format!("      {key}: {value}\n"));
        }
    }
    yaml
}
