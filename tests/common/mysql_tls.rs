//! The TLS MariaDB instances of `scripts/mysql_tls_services.sh` (which `scripts/services.sh`
//! runs): 127.0.0.1:3307 offers TLS, 127.0.0.1:3308 requires it (`require_secure_transport=ON`),
//! both with a server certificate for `localhost` only, signed by the test CA. Scratch databases
//! there and `osiris_connections.yaml` entries with TLS options. Fails, never skips, when an
//! instance is not running.

use std::path::PathBuf;

use mysql_async::prelude::Queryable;

use super::mysql::{block_on, password, setting, user};

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

/// The tests' own connection to an instance (TLS without checks: it is not the code under test).
pub async fn admin_connection(port: u16) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(user()))
        .pass(Some(password()))
        .prefer_socket(false)
        .ssl_opts(mysql_async::SslOpts::default().with_danger_accept_invalid_certs(true));
    mysql_async::Conn::new(opts).await.unwrap_or_else(|e| {
        panic!("the TLS MariaDB on 127.0.0.1:{port} is unreachable ({e}); run `bash scripts/services.sh`")
    })
}

/// Runs a query on an instance; every value as text.
pub fn query(port: u16, sql: &str) -> Vec<Vec<Option<String>>> {
    block_on(async {
        let mut conn = admin_connection(port).await;
        let rows: Vec<mysql_async::Row> = conn.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        conn.disconnect().await.unwrap();
        rows.into_iter()
            .map(|row| {
                row.unwrap()
                    .into_iter()
                    .map(|v| match v {
                        mysql_async::Value::NULL => None,
                        mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                        other => Some(other.as_sql(true)),
                    })
                    .collect()
            })
            .collect()
    })
}

/// A fresh database `osiris_tls_<random>` on an instance, dropped when the guard goes away.
pub struct TlsScratchDb {
    pub port: u16,
    pub name: String,
}

impl TlsScratchDb {
    pub fn create(port: u16, setup: &[&str]) -> TlsScratchDb {
        let mut random = [0u8; 6];
        getrandom::fill(&mut random).unwrap();
        let name = format!("osiris_tls_{}", random.iter().map(|b| format!("{b:02x}")).collect::<String>());
        block_on(async {
            let mut conn = admin_connection(port).await;
            conn.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4")).await.unwrap();
            conn.query_drop(format!("USE `{name}`")).await.unwrap();
            for sql in setup {
                conn.query_drop(*sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            conn.disconnect().await.unwrap();
        });
        TlsScratchDb { port, name }
    }
}

impl Drop for TlsScratchDb {
    fn drop(&mut self) {
        let (port, name) = (self.port, self.name.clone());
        let dropped = std::thread::spawn(move || {
            block_on(async {
                let mut conn = admin_connection(port).await;
                conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`")).await?;
                conn.disconnect().await
            })
        })
        .join();
        if !std::thread::panicking() {
            dropped.unwrap().unwrap();
        }
    }
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
