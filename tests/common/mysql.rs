//! The test MySQL/MariaDB server of `scripts/services.sh` for end-to-end tests
//! (OSIRIS_TEST_MYSQL_HOST/PORT/USER/PASSWORD override it): scratch databases, admin queries and
//! `osiris_connections.yaml` entries. Everything here fails, never skips, when the server is
//! unreachable.

use mysql_async::prelude::Queryable;

/// An `OSIRIS_TEST_MYSQL_*` setting, or its default.
pub fn setting(key: &str, default: &str) -> String {
    std::env::var(key).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

pub fn host() -> String {
    setting("OSIRIS_TEST_MYSQL_HOST", "127.0.0.1")
}

pub fn port() -> u16 {
    setting("OSIRIS_TEST_MYSQL_PORT", "3306").parse().expect("OSIRIS_TEST_MYSQL_PORT is a port")
}

pub fn user() -> String {
    setting("OSIRIS_TEST_MYSQL_USER", "osiris_test")
}

pub fn password() -> String {
    setting("OSIRIS_TEST_MYSQL_PASSWORD", "osiris_test")
}

/// Options for the tests' own connections (never the code under test).
pub fn admin_opts() -> mysql_async::OptsBuilder {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(host())
        .tcp_port(port())
        .user(Some(user()))
        .pass(Some(password()))
        .prefer_socket(false)
}

/// Connects as the test account; panics (the test fails) when the server is unreachable.
pub async fn admin_connection() -> mysql_async::Conn {
    connect(admin_opts()).await
}

/// Connects with `opts`; panics (the test fails) when the server is unreachable.
async fn connect(opts: mysql_async::OptsBuilder) -> mysql_async::Conn {
    let opts = mysql_async::Opts::from(opts);
    let at = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
    mysql_async::Conn::new(opts).await.unwrap_or_else(|e| {
        panic!("the test MySQL server at {at} is unreachable ({e}); run `bash scripts/services.sh`")
    })
}

/// Runs `f` on a fresh current-thread runtime (for synchronous tests).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// Runs a text-protocol query and returns every row, each value as text (`None` for NULL).
pub fn query(sql: &str) -> Vec<Vec<Option<String>>> {
    query_with(admin_opts(), sql)
}

/// [`query`] on the server `opts` connect to.
pub fn query_with(opts: mysql_async::OptsBuilder, sql: &str) -> Vec<Vec<Option<String>>> {
    block_on(async {
        let mut conn = connect(opts).await;
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

/// A fresh database `osiris_t_<random>`, dropped when the guard goes away.
pub struct ScratchDb {
    pub name: String,
    opts: mysql_async::OptsBuilder,
}

impl ScratchDb {
    /// Creates the database and runs `setup` in it, in one session with `time_zone = '+00:00'`.
    pub fn create(setup: &[&str]) -> ScratchDb {
        ScratchDb::create_with(admin_opts(), "osiris_t", setup)
    }

    /// [`ScratchDb::create`] on the server `opts` connect to, named `<prefix>_<random>`.
    pub fn create_with(opts: mysql_async::OptsBuilder, prefix: &str, setup: &[&str]) -> ScratchDb {
        let mut random = [0u8; 6];
        getrandom::fill(&mut random).unwrap();
        let name = format!("{prefix}_{}", random.iter().map(|b| format!("{b:02x}")).collect::<String>());
        block_on(async {
            let mut conn = connect(opts.clone()).await;
            conn.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4")).await.unwrap();
            conn.query_drop(format!("USE `{name}`")).await.unwrap();
            conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
            for sql in setup {
                conn.query_drop(*sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            conn.disconnect().await.unwrap();
        });
        ScratchDb { name, opts }
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let (name, opts) = (self.name.clone(), self.opts.clone());
        // A thread of its own: the guard may be dropped inside another runtime.
        let dropped = std::thread::spawn(move || {
            block_on(async {
                let mut conn = mysql_async::Conn::new(opts).await?;
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

/// One `mysql` entry of `osiris_connections.yaml` (user: the test account); the password is
/// `${password_var}`, read from the environment of the `osiris` process.
pub struct MysqlConnection {
    pub alias: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub password_var: String,
}

impl MysqlConnection {
    /// An alias on the test server.
    pub fn new(alias: &str, database: &str, password_var: &str) -> Self {
        MysqlConnection {
            alias: alias.into(),
            host: host(),
            port: port(),
            database: database.into(),
            password_var: password_var.into(),
        }
    }
}

/// `osiris_connections.yaml` with these MySQL connections.
pub fn connections_yaml(connections: &[MysqlConnection]) -> String {
    let mut yaml = String::from("version: 1\nconnections:\n  mysql:\n");
    for c in connections {
        yaml.push_str(&format!(
            "    {}:\n      host: {}\n      port: {}\n      database: {}\n      user: {}\n      password: ${{{}}}\n",
            c.alias,
            c.host,
            c.port,
            c.database,
            user(),
            c.password_var
        ));
    }
    yaml
}
