//! Helpers shared by the MySQL driver tests: the real test server of `scripts/services.sh`
//! (OSIRIS_TEST_MYSQL_HOST/PORT/USER/PASSWORD override it), scratch databases, bound connections,
//! and running `mysql.extractor`. Nothing here skips when the server is unreachable: it panics.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_cast::display::array_value_to_string;
use arrow_schema::SchemaRef;
use mysql_async::prelude::Queryable;
use osiris_driver_mysql::MysqlExtractor;
use osiris_engine::connections::{ConnectionDescriptor, SecretSource};
use osiris_engine::driver::{DriverError, StepContext, StepIo};
use osiris_engine::registry::Component;
use osiris_engine::runtime::budget::MemoryBudget;
use osiris_engine::runtime::cache::{CacheError, StepOutput};
use osiris_engine::telemetry::{StepCounters, Telemetry};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

pub fn server() -> Server {
    let env = |k: &str, d: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| d.to_string());
    Server {
        host: env("OSIRIS_TEST_MYSQL_HOST", "127.0.0.1"),
        port: env("OSIRIS_TEST_MYSQL_PORT", "3306").parse().expect("OSIRIS_TEST_MYSQL_PORT is a port"),
        user: env("OSIRIS_TEST_MYSQL_USER", "osiris_test"),
        password: env("OSIRIS_TEST_MYSQL_PASSWORD", "osiris_test"),
    }
}

pub fn admin_opts(s: &Server) -> mysql_async::OptsBuilder {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(s.host.clone())
        .tcp_port(s.port)
        .user(Some(s.user.clone()))
        .pass(Some(s.password.clone()))
        .prefer_socket(false)
}

/// A fresh database `osiris_t_<random>`, dropped when the guard goes away.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub async fn create(setup: &[&str]) -> TestDb {
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes).unwrap();
        let name = format!("osiris_t_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let s = server();
        let mut conn = mysql_async::Conn::new(admin_opts(&s)).await.unwrap_or_else(|e| {
            panic!(
                "the test MySQL server at {}:{} is unreachable ({e}); run `bash scripts/services.sh`",
                s.host, s.port
            )
        });
        conn.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4")).await.unwrap();
        conn.query_drop(format!("USE `{name}`")).await.unwrap();
        conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
        conn.query_drop("SET sql_mode = ''").await.unwrap();
        for sql in setup {
            conn.query_drop(*sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        conn.disconnect().await.unwrap();
        TestDb { name }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(mut c) = mysql_async::Conn::new(admin_opts(&server())).await {
                    let _ = c.query_drop(format!("DROP DATABASE IF EXISTS `{name}`")).await;
                    let _ = c.disconnect().await;
                }
            });
        })
        .join()
        .unwrap();
    }
}

pub struct Env(pub BTreeMap<String, String>);
impl SecretSource for Env {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

pub fn connection(database: &str, password: &str) -> osiris_engine::connections::BoundConnection {
    let s = server();
    let Value::Object(fields) = json!({"host": s.host, "port": s.port, "database": database, "user": s.user}) else {
        unreachable!()
    };
    let d = ConnectionDescriptor {
        family: "mysql".into(),
        alias: "testdb".into(),
        fields,
        secrets: [("password".to_string(), "MYSQL_PASSWORD".to_string())].into(),
    };
    d.bind(&Env([("MYSQL_PASSWORD".to_string(), password.to_string())].into())).unwrap()
}

/// Runs the extractor; returns schema, batches and rows read.
pub async fn extract_with(
    cfg: Value,
    database: &str,
    password: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>, u64), DriverError> {
    let Value::Object(cfg) = cfg else { panic!("config must be an object") };
    let component = MysqlExtractor::new();
    let driver = component.create(&cfg)?;
    let dir = tempfile::tempdir().unwrap();
    let out = StepOutput::new("s", Arc::new(MemoryBudget::new(64 << 20)), dir.path().join("s.arrows"));
    let tel = Telemetry::disabled().step("s");
    let cancel = CancellationToken::new();
    let mut reader = out.reader(cancel.clone(), tel.counters().clone());
    let sink = out.sink(cancel.clone(), tel.clone());
    let ctx = StepContext {
        step_id: "extract".into(),
        component: "mysql.extractor".into(),
        connection: Some(connection(database, password)),
        cancel,
        telemetry: tel.clone(),
        artifacts_dir: dir.path().join("artifacts"),
        base_dir: dir.path().to_path_buf(),
        memory_budget: 64 << 20,
        batch_size: 1000,
    };
    let run = async {
        let r = driver.run(ctx, StepIo { inputs: vec![], output: Some(sink) }).await;
        out.finish(r.is_ok());
        r
    };
    let read = async {
        let schema = reader.schema().await?;
        let mut batches = Vec::new();
        while let Some(b) = reader.next_batch().await? {
            batches.push(b);
        }
        Ok::<_, CacheError>((schema, batches))
    };
    let (r, data) = tokio::join!(run, read);
    r?;
    let (schema, batches) = data.map_err(DriverError::from)?;
    Ok((schema, batches, StepCounters::get(&tel.counters().rows_read)))
}

pub async fn extract(cfg: Value, db: &TestDb) -> Result<(SchemaRef, Vec<RecordBatch>, u64), DriverError> {
    extract_with(cfg, &db.name, &server().password).await
}

/// Every cell as text (arrow's display), row by row; NULL as "NULL".
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .map(|c| if c.is_null(r) { "NULL".to_string() } else { array_value_to_string(c, r).unwrap() })
                    .collect(),
            );
        }
    }
    out
}

/// A table `t` with a column of every MySQL type the extractor maps (docs/mysql.md).
const ALL_TYPES: &str = "CREATE TABLE t (
    id INT NOT NULL PRIMARY KEY,
    i8 TINYINT, u8 TINYINT UNSIGNED, i16 SMALLINT, u16 SMALLINT UNSIGNED,
    i24 MEDIUMINT, u24 MEDIUMINT UNSIGNED, i32 INT, u32 INT UNSIGNED, i64 BIGINT, u64 BIGINT UNSIGNED,
    flag TINYINT(1), d65 DECIMAL(65,30), d10 DECIMAL(10,2), du DECIMAL(5,0) UNSIGNED,
    f FLOAT, g DOUBLE, b1 BIT(1), b64 BIT(64), y YEAR, dt DATE, tm TIME(6),
    dt0 DATETIME, dt3 DATETIME(3), dt6 DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL,
    s VARCHAR(20), c CHAR(4), tx TEXT, bin BINARY(4), vb VARBINARY(10), bl BLOB,
    j JSON, e ENUM('a','b'), st SET('x','y')
)";

/// `ALL_TYPES` and four rows: minimum values, maximum values, NULLs, and a TIME over 24 h.
pub const ALL_TYPES_SETUP: [&str; 5] = [
    ALL_TYPES,
    "INSERT INTO t VALUES (1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
            0, '-99999999999999999999999999999999999.999999999999999999999999999999', -12345678.90, 0,
            -3.40282e38, -1.7976931348623157e308, b'0', b'0', 1901, '1000-01-01', '-838:59:59.000000',
            '1000-01-01 00:00:00', '1000-01-01 00:00:00.001', '1000-01-01 00:00:00.000001', '1970-01-01 00:00:01.000000',
            '', 'ab', '', x'00000000', x'00', x'', '{\"k\": [1, null]}', 'a', '')",
    "INSERT INTO t VALUES (2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
            9223372036854775807, 18446744073709551615,
            1, '99999999999999999999999999999999999.999999999999999999999999999999', 0.05, 99999,
            3.40282e38, 1.7976931348623157e308, b'1', x'FFFFFFFFFFFFFFFF', 2155, '9999-12-31', '838:59:59.999999',
            '9999-12-31 23:59:59', '9999-12-31 23:59:59.999', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999',
            'h\u{e9}llo \u{1F600}', 'abcd', 'multi\nline, \"quoted\"', x'00ff0000', x'00ff00', x'000102',
            '[]', 'b', 'x,y')",
    "INSERT INTO t (id) VALUES (3)",
    "INSERT INTO t (id, tm, dt, dt0) VALUES (4, '25:00:00.5', '2024-02-29', '2024-02-29 12:34:56')",
];
