//! How the MySQL golden path (`mysql.extractor` → `filesystem.csv_writer`) fails, through the real
//! `osiris` binary against the test MariaDB/MySQL server of `scripts/services.sh`
//! (OSIRIS_TEST_MYSQL_* override it): unknown host, wrong password, unknown database, SQL errors,
//! the server going away before or during the result, Ctrl-C during a query; and a 1M-row export
//! compared with the server value by value. Fails, never skips, when the server is unreachable.
//! The server is never mocked: a lost server is simulated by a TCP proxy in front of the real one
//! that cuts the connection.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::mysql::{self, MysqlConnection, ScratchDb};
use common::{Project, describe, dir_entries, jsonl, stdout_json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The golden path: one query of `@mysql.<alias>` into `out/<file>`.
fn mysql_to_csv(alias: &str, query: &str, batch_size: usize, out: &str) -> String {
    assert!(!query.contains('"') && !query.contains('\\'), "the query goes into a YAML double-quoted string");
    format!(
        r#"oml_version: "0.1.0"
name: mysql-to-csv
steps:
  - id: extract
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.{alias}"
      query: "{query}"
      batch_size: {batch_size}
  - id: write
    component: filesystem.csv_writer
    mode: write
    needs: [extract]
    config: {{path: {out}}}
"#
    )
}

/// A project with these connections and the golden-path pipeline `p.yaml`.
fn project(connections: &[MysqlConnection], pipeline: &str) -> Project {
    let project = Project::new();
    project.write("osiris_connections.yaml", mysql::connections_yaml(connections));
    project.write("p.yaml", pipeline);
    project
}

/// Runs `osiris run p.yaml --json` with `password_var` set; returns the output and the wall time.
fn run_json(project: &Project, password_var: &str, password: &str) -> (Output, Duration) {
    let started = Instant::now();
    let output = project.osiris(&["run", "p.yaml", "--json"]).env(password_var, password).output().unwrap();
    (output, started.elapsed())
}

/// Checks a failed run's `--json` result and its run log: exit 1, step `extract` failed with
/// `code`, and the message names the step and `@mysql.<alias>`. Returns the message.
fn assert_extract_failed(output: &Output, alias: &str, code: &str) -> String {
    assert_eq!(output.status.code(), Some(1), "{}", describe(output));
    let result = stdout_json(output);
    assert_eq!(result["status"], "error", "{result}");
    assert_eq!(result["failed_step"], "extract", "{result}");
    assert_eq!(result["error_code"], code, "{result}");
    let message = result["message"].as_str().unwrap().to_string();
    let named = format!("step 'extract' (@mysql.{alias})");
    assert!(message.contains(&named), "the message does not name {named}: {message}");
    let events = jsonl(&Path::new(result["session_dir"].as_str().unwrap()).join("events.jsonl"));
    let error = events
        .iter()
        .find(|e| e["event"] == "step_error" && e["step_id"] == "extract")
        .unwrap_or_else(|| panic!("no step_error of extract in {events:?}"));
    assert_eq!(error["error_code"], code, "{error}");
    assert!(error["error"].as_str().unwrap().contains(&named), "{error}");
    assert_eq!(events.last().unwrap()["event"], "run_end");
    assert_eq!(events.last().unwrap()["status"], "failed");
    message
}

/// Asserts that `out/` holds neither the target CSV nor a temporary file.
fn assert_no_output(project: &Project) {
    let left = dir_entries(&project.file("out"));
    assert!(left.is_empty(), "nothing may remain in out/: {left:?}");
}

#[test]
fn unknown_host_fails_at_once_naming_step_and_connection_and_never_shows_the_password() {
    let secret = "S3cr3t-Unknown-Host-Pw";
    let nowhere = MysqlConnection {
        host: "nonexistent-host.invalid".into(),
        ..MysqlConnection::new("nowhere", "osiris_nowhere", "UNKNOWN_HOST_PASSWORD")
    };
    let project = project(&[nowhere], &mysql_to_csv("nowhere", "SELECT 1 AS one", 10, "out/one.csv"));

    let (output, elapsed) = run_json(&project, "UNKNOWN_HOST_PASSWORD", secret);
    let message = assert_extract_failed(&output, "nowhere", "connection.network");
    assert!(message.contains("cannot connect to MySQL at nonexistent-host.invalid:"), "{message}");
    // A name that does not resolve is not retried (retrying takes 3 s of backoff).
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}:\n{}", describe(&output));

    // Without --json the same error goes to stderr.
    let started = Instant::now();
    let text = project.osiris(&["run", "p.yaml"]).env("UNKNOWN_HOST_PASSWORD", secret).output().unwrap();
    let text_elapsed = started.elapsed();
    assert_eq!(text.status.code(), Some(1), "{}", describe(&text));
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(
        stderr.contains("step 'extract' (mysql.extractor) failed [connection.network]")
            && stderr.contains("step 'extract' (@mysql.nowhere): cannot connect to MySQL"),
        "{}",
        describe(&text)
    );
    assert!(text_elapsed < Duration::from_secs(3), "took {text_elapsed:?}");

    assert_no_output(&project);
    assert_eq!(project.run_dirs().len(), 2);
    // The password is in no output and no file of the project (run logs included).
    common::assert_secret_absent(secret, &[&output, &text], project.path());
    eprintln!("unknown host: failed after {elapsed:?} (--json) and {text_elapsed:?} (text)");
}

#[test]
fn wrong_password_fails_without_retrying_and_never_shows_the_password() {
    let db = ScratchDb::create(&[]);
    let secret = "Wr0ng-Extractor-Pw-5521";
    let project = project(
        &[MysqlConnection::new("wrongpw", &db.name, "WRONG_PASSWORD")],
        &mysql_to_csv("wrongpw", "SELECT 1 AS one", 10, "out/one.csv"),
    );
    let (output, elapsed) = run_json(&project, "WRONG_PASSWORD", secret);
    let message = assert_extract_failed(&output, "wrongpw", "connection.auth_failed");
    assert!(message.contains(&format!("MySQL rejected user '{}'", mysql::user())), "{message}");
    assert!(elapsed < Duration::from_secs(3), "an authentication failure is not retried; took {elapsed:?}");
    assert_no_output(&project);
    common::assert_secret_absent(secret, &[&output], project.path());
}

#[test]
fn unknown_database_fails_naming_the_database() {
    let project = project(
        &[MysqlConnection::new("gone", "osiris_no_such_database_7a1c", "TEST_PASSWORD")],
        &mysql_to_csv("gone", "SELECT 1 AS one", 10, "out/one.csv"),
    );
    let (output, _) = run_json(&project, "TEST_PASSWORD", &mysql::password());
    let message = assert_extract_failed(&output, "gone", "connection.unknown_database");
    assert!(message.contains("database 'osiris_no_such_database_7a1c' does not exist"), "{message}");
    assert_no_output(&project);
}

#[test]
fn sql_errors_fail_with_the_server_message() {
    let db = ScratchDb::create(&["CREATE TABLE t (id INT)"]);
    for (query, server_error) in [
        ("SELEC id FROM t", "error 1064, SQLSTATE 42000"),
        ("SELECT id FROM no_such_table", "error 1146, SQLSTATE 42S02"),
        ("SELECT no_such_column FROM t", "error 1054, SQLSTATE 42S22"),
    ] {
        let project = project(
            &[MysqlConnection::new("test", &db.name, "TEST_PASSWORD")],
            &mysql_to_csv("test", query, 10, "out/t.csv"),
        );
        let (output, _) = run_json(&project, "TEST_PASSWORD", &mysql::password());
        let message = assert_extract_failed(&output, "test", "extract.query_failed");
        assert!(message.contains("the query failed: ") && message.contains(server_error), "{query}: {message}");
        assert_no_output(&project);
    }
}

/// A TCP proxy in front of the test server that cuts both directions of a connection once it has
/// forwarded `cut_after` bytes from the server (what a client sees when the server is killed),
/// for the first `cut_connections` connections; later ones pass untouched.
struct CuttingProxy {
    port: u16,
    /// Connections accepted.
    connections: Arc<AtomicUsize>,
    /// Connections cut.
    cuts: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl CuttingProxy {
    fn start(cut_after: u64, cut_connections: usize) -> CuttingProxy {
        assert!(cut_after > 0);
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = format!("{}:{}", mysql::host(), mysql::port());
        let connections = Arc::new(AtomicUsize::new(0));
        let cuts = Arc::new(AtomicUsize::new(0));
        let (accepted, cut) = (connections.clone(), cuts.clone());
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let earlier = accepted.fetch_add(1, Ordering::SeqCst);
                let cut_after = if earlier < cut_connections { cut_after } else { u64::MAX };
                tokio::spawn(forward(client, upstream.clone(), cut_after, cut.clone()));
            }
        });
        CuttingProxy { port, connections, cuts, _runtime: runtime }
    }
}

async fn forward(client: TcpStream, upstream: String, cut_after: u64, cuts: Arc<AtomicUsize>) {
    let server = TcpStream::connect(&upstream).await.expect("the proxy reaches the test server");
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let to_server = tokio::io::copy(&mut client_read, &mut server_write);
    let to_client = async {
        let mut buf = vec![0u8; 64 << 10];
        let mut forwarded = 0u64;
        loop {
            let n = server_read.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            let n = n.min((cut_after - forwarded) as usize);
            client_write.write_all(&buf[..n]).await?;
            forwarded += n as u64;
            if forwarded == cut_after {
                cuts.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            }
        }
    };
    tokio::select! {
        _ = to_server => {}
        _ = to_client => {}
    }
    // Returning drops all four halves: both connections close.
}

/// Rows of ~120 bytes in the binary protocol, generated by the server (MariaDB's SEQUENCE engine).
fn generated_rows(rows: u64, marker: &str) -> String {
    format!(
        "SELECT seq AS id, CONCAT('row-', seq, '-', REPEAT('x', 100)) AS pad, '{marker}' AS marker FROM seq_1_to_{rows}"
    )
}

#[test]
fn server_lost_mid_result_fails_naming_step_and_connection_and_leaves_no_csv() {
    let db = ScratchDb::create(&[]);
    // 300,000 rows are ~36 MB; the connection is cut after 2 MB, when batches of 1,000 rows have
    // already gone to the writer.
    let proxy = CuttingProxy::start(2 << 20, usize::MAX);
    let proxied = MysqlConnection { port: proxy.port, ..MysqlConnection::new("proxied", &db.name, "TEST_PASSWORD") };
    let project = project(&[proxied], &mysql_to_csv("proxied", &generated_rows(300_000, "lost"), 1000, "out/big.csv"));
    let (output, elapsed) = run_json(&project, "TEST_PASSWORD", &mysql::password());
    let message = assert_extract_failed(&output, "proxied", "connection.network");
    assert!(
        message.contains(&format!("lost the connection to MySQL at {}:{}", mysql::host(), proxy.port)),
        "{message}"
    );
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1);
    // Rows had been handed on, so the step fails at once instead of retrying.
    assert_eq!(proxy.connections.load(Ordering::SeqCst), 1, "no retry after rows were sent");
    let result = stdout_json(&output);
    let extract = result["steps"].as_array().unwrap().iter().find(|s| s["step_id"] == "extract").unwrap();
    assert!(extract["rows_read"].as_u64().unwrap() >= 1000, "the cut came after the first batches: {result}");
    assert_no_output(&project);
    eprintln!("server lost mid-result: failed after {elapsed:?}");
}

#[test]
fn server_lost_while_connecting_is_retried_three_times_then_fails() {
    let db = ScratchDb::create(&[]);
    // Cut inside the server's greeting: every attempt fails while connecting.
    let proxy = CuttingProxy::start(10, usize::MAX);
    let proxied = MysqlConnection { port: proxy.port, ..MysqlConnection::new("proxied", &db.name, "TEST_PASSWORD") };
    let project = project(&[proxied], &mysql_to_csv("proxied", "SELECT 1 AS one", 10, "out/one.csv"));
    let (output, elapsed) = run_json(&project, "TEST_PASSWORD", &mysql::password());
    let message = assert_extract_failed(&output, "proxied", "connection.network");
    assert!(message.contains("cannot connect to MySQL"), "{message}");
    assert_eq!(proxy.connections.load(Ordering::SeqCst), 4, "one attempt and 3 retries");
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 4);
    // Backoff 0.2 + 0.8 + 2 s.
    assert!(elapsed >= Duration::from_secs(3), "retried without the backoff: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    assert_no_output(&project);
}

#[test]
fn server_lost_before_the_first_batch_is_retried_and_the_export_is_complete() {
    let db = ScratchDb::create(&[]);
    // 50,000 rows (~6 MB) in one batch: the first connection is cut after 1 MB of rows, none of
    // which were handed on yet, so the read starts over on a new connection and succeeds.
    let proxy = CuttingProxy::start(1 << 20, 1);
    let proxied = MysqlConnection { port: proxy.port, ..MysqlConnection::new("proxied", &db.name, "TEST_PASSWORD") };
    let project =
        project(&[proxied], &mysql_to_csv("proxied", &generated_rows(50_000, "again"), 100_000, "out/rows.csv"));
    let (output, elapsed) = run_json(&project, "TEST_PASSWORD", &mysql::password());
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!((proxy.connections.load(Ordering::SeqCst), proxy.cuts.load(Ordering::SeqCst)), (2, 1));
    // Every row once, in order: nothing of the failed attempt leaked into the output.
    let mut expected = String::from("id,pad,marker\n");
    for i in 1..=50_000 {
        expected.push_str(&format!("{i},row-{i}-{},again\n", "x".repeat(100)));
    }
    assert!(project.read_text("out/rows.csv") == expected, "out/rows.csv is not rows 1..=50000 once each");
    assert_eq!(stdout_json(&output)["total_rows"], 50_000);
    assert_eq!(dir_entries(&project.file("out")), ["rows.csv"]);
    eprintln!("server lost before the first batch: exported after a retry in {elapsed:?}");
}

/// Ids of the server's sessions (other than the asking one) running a statement that contains
/// `marker`.
fn sessions_running(marker: &str) -> Vec<String> {
    mysql::query(&format!(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%{marker}%' AND ID <> CONNECTION_ID()"
    ))
    .into_iter()
    .map(|row| row[0].clone().unwrap())
    .collect()
}

fn random_marker(prefix: &str) -> String {
    let mut random = [0u8; 4];
    getrandom::fill(&mut random).unwrap();
    format!("{prefix}_{}", random.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A child process killed if the test fails before waiting for it.
struct Running(Option<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `osiris run p.yaml --json`, waits until `ready`, sends SIGINT, and checks that the run
/// exits 1 soon, cancelled, leaving no output; then that the server stops running the query
/// (`marker`).
fn interrupt_and_check(project: &Project, marker: &str, ready: impl Fn() -> bool) {
    let mut running = Running(Some(
        project
            .osiris(&["run", "p.yaml", "--json"])
            .env("TEST_PASSWORD", mysql::password())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let waited = common::wait_until("the query runs on the server", Duration::from_secs(60), || {
        common::step_event_logged(project, "step_start", "extract") && ready()
    });
    let child = running.0.take().unwrap();
    let interrupted = Instant::now();
    let kill = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    let exited = interrupted.elapsed();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(exited < Duration::from_secs(5), "exited {exited:?} after SIGINT");
    let result = stdout_json(&output);
    assert_eq!(
        (result["error_code"].as_str(), result["failed_step"].as_str()),
        (Some("run.cancelled"), None),
        "{result}"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Ctrl-C received: cancelling… (steps: extract, write)"),
        "{}",
        describe(&output)
    );
    assert_no_output(project);
    let run_dir = project.only_run_dir();
    let events = jsonl(&run_dir.join("events.jsonl"));
    assert_eq!(events.last().unwrap()["event"], "run_end");
    assert_eq!(events.last().unwrap()["status"], "cancelled", "{events:?}");
    assert!(!events.iter().any(|e| e["event"] == "step_complete" && e["step_id"] == "extract"));
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("status.json")).unwrap()).unwrap();
    // status.json says cancelled, as run_end does; no step failed.
    assert_eq!((status["ok"].as_bool(), status["status"].as_str()), (Some(false), Some("cancelled")), "{status}");
    assert_eq!((status["reason"].as_str(), status.get("failed_step")), (Some("incomplete_steps"), None), "{status}");
    // The dropped connection ends the statement on the server (during SLEEP, MariaDB notices a
    // closed connection within 5 s).
    let stopped = common::wait_until("the server stops the query", Duration::from_secs(15), || {
        sessions_running(marker).is_empty()
    });
    eprintln!("{marker}: running after {waited:?}; exit {exited:?} after SIGINT; server query gone {stopped:?} later");
}

#[test]
fn ctrl_c_while_mysql_runs_a_long_query_cancels_the_run_and_the_server_query() {
    let db = ScratchDb::create(&[]);
    let marker = random_marker("osiris_sleep");
    let project = project(
        &[MysqlConnection::new("test", &db.name, "TEST_PASSWORD")],
        &mysql_to_csv("test", &format!("SELECT SLEEP(60) AS slept, '{marker}' AS marker"), 10, "out/slow.csv"),
    );
    interrupt_and_check(&project, &marker, || !sessions_running(&marker).is_empty());
}

#[test]
fn ctrl_c_while_rows_stream_leaves_no_partial_csv_and_stops_the_server_query() {
    let db = ScratchDb::create(&[]);
    let marker = random_marker("osiris_stream");
    // Far more rows than can be read before the interrupt.
    let project = project(
        &[MysqlConnection::new("test", &db.name, "TEST_PASSWORD")],
        &mysql_to_csv("test", &generated_rows(1_000_000_000, &marker), 1000, "out/endless.csv"),
    );
    // Interrupt once the writer has written rows to its temporary file.
    let writing = || {
        dir_entries(&project.file("out")).iter().any(|name| {
            name.contains(".osiris-tmp-")
                && std::fs::metadata(project.file(&format!("out/{name}"))).is_ok_and(|m| m.len() > 1 << 20)
        }) && !sessions_running(&marker).is_empty()
    };
    interrupt_and_check(&project, &marker, writing);
}

/// The benchmark's `orders` table (`bench/sql/gen_orders.sql`): 12 columns, every value a pure
/// function of the row id, with NULLs, empty strings, quotes, commas, newlines, tabs, backslashes
/// and non-ASCII text. Built in the scratch database (the generator writes into `bench`) in one
/// INSERT … SELECT, the generator's single 1M-row chunk.
const ORDERS_TABLE: &str = "CREATE TABLE orders (
    id            BIGINT        NOT NULL,
    customer_id   INT           NOT NULL,
    quantity      SMALLINT      NULL,
    is_paid       TINYINT(1)    NULL,
    amount        DECIMAL(12,2) NULL,
    weight        DOUBLE        NULL,
    product_name  VARCHAR(64)   NOT NULL,
    coupon_code   VARCHAR(32)   NULL,
    order_date    DATE          NULL,
    created_at    DATETIME(6)   NULL,
    updated_at    TIMESTAMP     NULL DEFAULT NULL,
    notes         TEXT          NULL,
    PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

/// Needs `time_zone = '+00:00'` in the session (FROM_UNIXTIME).
const ORDERS_ROWS: &str = r#"INSERT INTO orders
SELECT
  n,
  (n * 48271) % 2000000 + 1,
  IF(n % 61 = 0, NULL, ((n * 31) % 2001) - 1000),
  IF(n % 101 = 0, NULL, n % 3 <> 0),
  IF(n % 67 = 0, NULL, IF(n % 50 = 0, -1, 1) * ((n * 7919) % 100000000) / 100),
  IF(n % 83 = 0, NULL, (n % 100000) / 7e0),
  CASE n % 1000
    WHEN 7   THEN CONCAT('Widget, "deluxe" edition #', n % 5000)
    WHEN 13  THEN CONCAT('Line one\nline two #', n % 5000)
    WHEN 21  THEN CONCAT('Tab\there, back\\slash #', n % 5000)
    WHEN 42  THEN CONCAT('Café Ünïcødé 日本 "q" #', n % 5000)
    ELSE CONCAT('Product ', LPAD(n % 5000, 4, '0'), ' ', ELT(1 + n % 5, 'small', 'medium', 'large', 'XL', 'bundle'))
  END,
  CASE WHEN n % 53 = 0 THEN NULL WHEN n % 59 = 0 THEN '' ELSE CONCAT('CPN-', n % 9973) END,
  IF(n % 71 = 0, NULL, DATE('2015-01-01') + INTERVAL ((n * 7) % 3650) DAY),
  IF(n % 73 = 0, NULL, TIMESTAMP('2015-01-01 00:00:00')
                        + INTERVAL ((n * 7919) % 315360000) SECOND
                        + INTERVAL ((n * 104729) % 1000000) MICROSECOND),
  IF(n % 79 = 0, NULL, FROM_UNIXTIME(1500000000 + (n * 2654435761) % 200000000)),
  IF(n % 89 = 0, NULL, CONCAT('{"sku":"SKU-', LPAD(n % 100000, 6, '0'),
                              '","qty":', n % 17,
                              ',"tags":["', ELT(1 + n % 4, 'red', 'green', 'blue', 'gift, wrap'),
                              '"],"comment":"', REPEAT('x', n % 40), '"}'))
FROM (SELECT CAST(seq AS SIGNED) AS n FROM seq_1_to_1000000) AS s"#;

/// How the CSV writer prints a column's values, against the server's text protocol
/// (docs/mysql.md, drivers/files/src/csv/format.rs).
#[derive(Clone, Copy, Debug)]
enum Canonical {
    /// The same text: integers, DECIMAL (exact, with its scale), DATE, strings.
    Same,
    /// DOUBLE: both texts parse to the identical f64 (the writer prints the shortest round-trip
    /// digits in Python repr style: `1.0`, `1e-05`).
    Double,
    /// DATETIME: `YYYY-MM-DDTHH:MM:SS` plus `.fff` or `.ffffff` only when the fraction is not 0.
    DateTime,
    /// TIMESTAMP (read in UTC): the same with a `Z`.
    Timestamp,
}

impl Canonical {
    fn of(column: &mysql_async::Column) -> Canonical {
        use mysql_async::consts::ColumnType::*;
        match column.column_type() {
            MYSQL_TYPE_DOUBLE | MYSQL_TYPE_FLOAT => Canonical::Double,
            MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => Canonical::DateTime,
            MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => Canonical::Timestamp,
            _ => Canonical::Same,
        }
    }

    /// Whether `csv` is how the writer prints the server's `text`.
    fn matches(self, text: &str, csv: &str) -> bool {
        match self {
            Canonical::Same => text == csv,
            Canonical::Double => {
                let (a, b) = (text.parse::<f64>(), csv.parse::<f64>());
                matches!((a, b), (Ok(a), Ok(b)) if a.to_bits() == b.to_bits())
            }
            Canonical::DateTime => csv == datetime_text(text),
            Canonical::Timestamp => csv.strip_suffix('Z') == Some(&datetime_text(text)),
        }
    }
}

/// `2015-01-01 15:23:53.729000` → `2015-01-01T15:23:53.729` (chrono's `%.f`: no fraction when it
/// is 0, else 3 or 6 digits).
fn datetime_text(server: &str) -> String {
    let (whole, fraction) = server.split_once('.').unwrap_or((server, ""));
    let mut text = whole.replacen(' ', "T", 1);
    let micros = format!("{fraction:0<6}");
    if micros != "000000" {
        text.push('.');
        text.push_str(if micros.ends_with("000") { &micros[..3] } else { &micros });
    }
    text
}

/// Which fields of one raw CSV record are quoted (an empty field is NULL, `""` an empty string).
fn quoted_fields(raw: &[u8]) -> Vec<bool> {
    let mut quoted = Vec::new();
    let mut i = 0;
    loop {
        let is_quoted = raw.get(i) == Some(&b'"');
        quoted.push(is_quoted);
        if is_quoted {
            i += 1;
            loop {
                match raw[i] {
                    b'"' if raw.get(i + 1) == Some(&b'"') => i += 2,
                    b'"' => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
        }
        while i < raw.len() && !matches!(raw[i], b',' | b'\n' | b'\r') {
            i += 1;
        }
        if raw.get(i) != Some(&b',') {
            return quoted;
        }
        i += 1;
    }
}

/// Reads a CSV file record by record, with each record's raw bytes (to tell `""` from NULL).
struct CsvRecords {
    reader: csv::Reader<std::fs::File>,
    raw: std::io::BufReader<std::fs::File>,
    record: csv::StringRecord,
    raw_record: Vec<u8>,
}

impl CsvRecords {
    fn open(path: &Path) -> CsvRecords {
        let reader = csv::ReaderBuilder::new().has_headers(false).from_path(path).unwrap();
        let raw = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        CsvRecords { reader, raw, record: csv::StringRecord::new(), raw_record: Vec::new() }
    }

    /// The next record; `false` at the end.
    fn advance(&mut self) -> bool {
        let start = self.reader.position().byte();
        if !self.reader.read_record(&mut self.record).expect("the CSV parses") {
            return false;
        }
        let len = (self.reader.position().byte() - start) as usize;
        self.raw_record.resize(len, 0);
        std::io::Read::read_exact(&mut self.raw, &mut self.raw_record).unwrap();
        true
    }
}

#[test]
fn a_million_row_export_matches_mariadb_value_by_value() {
    let started = Instant::now();
    let db = ScratchDb::create(&[ORDERS_TABLE, ORDERS_ROWS]);
    let generated = started.elapsed();
    let project = project(
        &[MysqlConnection::new("test", &db.name, "TEST_PASSWORD")],
        &mysql_to_csv("test", "SELECT * FROM orders ORDER BY id", 10_000, "out/orders.csv"),
    );
    let (output, exported) = run_json(&project, "TEST_PASSWORD", &mysql::password());
    assert!(output.status.success(), "{}", describe(&output));
    let result = stdout_json(&output);
    assert_eq!(result["total_rows"], 1_000_000, "{result}");

    let compare = Instant::now();
    let mut csv = CsvRecords::open(&project.file("out/orders.csv"));
    let rows = mysql::block_on(async {
        use mysql_async::prelude::Queryable;
        let mut conn = mysql::admin_connection().await;
        conn.query_drop(format!("USE `{}`", db.name)).await.unwrap();
        conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
        // The text protocol: every value as the server prints it.
        let mut result = conn.query_iter("SELECT * FROM orders ORDER BY id").await.unwrap();
        let columns = result.columns().unwrap();
        let names: Vec<String> = columns.iter().map(|c| c.name_str().into_owned()).collect();
        let canonical: Vec<Canonical> = columns.iter().map(Canonical::of).collect();
        assert!(csv.advance(), "the CSV is empty");
        assert_eq!(csv.record.iter().collect::<Vec<_>>(), names, "header");
        let mut rows = 0u64;
        result
            .for_each(|row| {
                rows += 1;
                assert!(csv.advance(), "the CSV ends after {} rows", rows - 1);
                let values = row.unwrap_raw();
                assert_eq!(csv.record.len(), values.len(), "row {rows}: {:?}", csv.record);
                let quoted = if csv.record.iter().any(str::is_empty) { quoted_fields(&csv.raw_record) } else { vec![] };
                for (i, value) in values.into_iter().enumerate() {
                    let value = value.expect("a value");
                    let server = match &value {
                        mysql_async::Value::NULL => None,
                        mysql_async::Value::Bytes(text) => Some(std::str::from_utf8(text).expect("UTF-8 text")),
                        other => panic!("the text protocol sent {other:?}"),
                    };
                    let field = &csv.record[i];
                    let ok = match server {
                        None => field.is_empty() && !quoted[i],
                        Some("") => field.is_empty() && quoted[i],
                        Some(text) => canonical[i].matches(text, field),
                    };
                    assert!(
                        ok,
                        "row {rows}, column {}: the server has {server:?}, the CSV {field:?} (record {:?})",
                        names[i],
                        String::from_utf8_lossy(&csv.raw_record)
                    );
                }
            })
            .await
            .unwrap();
        drop(result);
        conn.disconnect().await.unwrap();
        rows
    });
    assert_eq!(rows, 1_000_000);
    assert!(!csv.advance(), "the CSV has more rows than the table");
    eprintln!("1M rows: generated in {generated:?}, exported in {exported:?}, compared in {:?}", compare.elapsed());
}

#[test]
fn the_orders_table_is_the_benchmark_generators() {
    let generator = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/sql/gen_orders.sql")).unwrap();
    let generator: Vec<&str> = generator.lines().map(str::trim).collect();
    let own =
        ["CREATE TABLE orders (", ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", "INSERT INTO orders", "FROM (SELECT"];
    for line in ORDERS_TABLE.lines().chain(ORDERS_ROWS.lines()).map(str::trim) {
        if !own.iter().any(|o| line.starts_with(o)) {
            assert!(generator.contains(&line), "bench/sql/gen_orders.sql has no line `{line}`");
        }
    }
}

#[test]
fn the_comparison_helpers_follow_the_csv_writer() {
    assert_eq!(datetime_text("2015-01-01 15:23:53.729000"), "2015-01-01T15:23:53.729");
    assert_eq!(datetime_text("2015-01-01 15:23:53.000000"), "2015-01-01T15:23:53");
    assert_eq!(datetime_text("2015-01-01 15:23:53.000001"), "2015-01-01T15:23:53.000001");
    assert_eq!(datetime_text("2017-11-26 15:24:59"), "2017-11-26T15:24:59");
    assert!(Canonical::Timestamp.matches("2017-11-26 15:24:59", "2017-11-26T15:24:59Z"));
    assert!(!Canonical::Timestamp.matches("2017-11-26 15:24:59", "2017-11-26T15:24:59"));
    assert!(
        Canonical::Double.matches("1", "1.0") && Canonical::Double.matches("1.8571428571428572", "1.8571428571428572")
    );
    assert!(!Canonical::Double.matches("1.8571428571428572", "1.857142857142857"));
    assert!(!Canonical::Same.matches("4672.21", "4672.2"));
    assert_eq!(quoted_fields(b"1,,\"\",\"a,\"\"b\"\"\nc\",x\n"), [false, false, true, true, false]);
    assert_eq!(quoted_fields(b"\"\"\r\n"), [true]);
}
