//! `mysql.writer` against the real MariaDB/MySQL server of `scripts/services.sh`
//! (OSIRIS_TEST_MYSQL_HOST/PORT/USER/PASSWORD override it). Every mode is read back and compared
//! value by value. These tests fail, never skip, when the server is unreachable.

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow_array::builder::{Decimal128Builder, Decimal256Builder};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, DurationMicrosecondArray, Float32Array, Float64Array,
    Int8Array, Int32Array, Int64Array, RecordBatch, StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
    UInt64Array,
};
use arrow_buffer::i256;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use common::{ALL_TYPES_SETUP, TestDb, admin_opts, connection, extract, rows, server};
use mysql_async::prelude::Queryable;
use osiris_driver_mysql::MysqlWriter;
use osiris_engine::driver::{DriverError, StepContext, StepInput, StepIo};
use osiris_engine::registry::Component;
use osiris_engine::runtime::budget::MemoryBudget;
use osiris_engine::runtime::cache::StepOutput;
use osiris_engine::telemetry::{StepCounters, Telemetry};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

/// What a writer run left behind.
struct Written {
    result: Result<(), DriverError>,
    rows_written: u64,
    /// `ddl_plan.sql`, when written.
    ddl_plan: Option<String>,
}

/// How the test feeds the writer.
#[derive(Clone, Copy, PartialEq)]
enum Feed {
    /// Send every batch, then end the input.
    All,
    /// Send every batch, keep the input open, and cancel once the writer has sent `n` rows.
    CancelAfter(u64),
    /// Send every batch, end the input, and cancel after this many milliseconds.
    CancelAfterMs(u64),
}

async fn write_with(
    cfg: Value,
    database: &str,
    password: &str,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    feed: Feed,
) -> Written {
    let Value::Object(cfg) = cfg else { panic!("config must be an object") };
    let driver = match MysqlWriter::new().create(&cfg) {
        Ok(d) => d,
        Err(e) => return Written { result: Err(e), rows_written: 0, ddl_plan: None },
    };
    let dir = tempfile::tempdir().unwrap();
    let upstream = StepOutput::new("up", Arc::new(MemoryBudget::new(256 << 20)), dir.path().join("up.arrows"));
    let cancel = CancellationToken::new();
    let tel = Telemetry::disabled().step("write");
    let reader = upstream.reader(cancel.clone(), tel.counters().clone());
    let mut sink = upstream.sink(cancel.clone(), Telemetry::disabled().step("up"));
    let ctx = StepContext {
        step_id: "write".into(),
        component: "mysql.writer".into(),
        connection: Some(connection(database, password)),
        cancel: cancel.clone(),
        telemetry: tel.clone(),
        artifacts_dir: dir.path().join("artifacts"),
        base_dir: dir.path().to_path_buf(),
        memory_budget: 256 << 20,
        batch_size: 1000,
    };
    let input = StepInput { step_id: "up".into(), table_name: "df_up".into(), reader };
    let run = driver.run(ctx, StepIo { inputs: vec![input], output: None });
    let produce = async {
        sink.set_schema(schema);
        for b in batches {
            if sink.send(b).await.is_err() {
                break;
            }
        }
        if matches!(feed, Feed::All | Feed::CancelAfterMs(_)) {
            upstream.finish(true);
        } else {
            cancel.cancelled().await;
            upstream.finish(false);
        }
    };
    let canceller = async {
        match feed {
            Feed::All => {}
            Feed::CancelAfter(n) => {
                while StepCounters::get(&tel.counters().rows_written) < n {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                cancel.cancel();
            }
            Feed::CancelAfterMs(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                cancel.cancel();
            }
        }
    };
    let (result, (), ()) = tokio::join!(run, produce, canceller);
    let ddl_plan = std::fs::read_to_string(dir.path().join("artifacts/ddl_plan.sql")).ok();
    Written { result, rows_written: StepCounters::get(&tel.counters().rows_written), ddl_plan }
}

async fn write(cfg: Value, db: &TestDb, batch: &RecordBatch) -> Written {
    write_batches(cfg, db, batch.schema(), vec![batch.clone()]).await
}

async fn write_batches(cfg: Value, db: &TestDb, schema: SchemaRef, batches: Vec<RecordBatch>) -> Written {
    write_with(cfg, &db.name, &server().password, schema, batches, Feed::All).await
}

/// Runs SQL as the test user in `db`; every value as text (NULL as `None`).
async fn query(db: &TestDb, sql: &str) -> Vec<Vec<Option<String>>> {
    let mut conn = mysql_async::Conn::new(admin_opts(&server()).db_name(Some(db.name.clone()))).await.unwrap();
    conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
    let rows: Vec<mysql_async::Row> = conn.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.disconnect().await.unwrap();
    rows.into_iter()
        .map(|r| {
            (0..r.len())
                .map(|i| match r.as_ref(i).unwrap() {
                    mysql_async::Value::NULL => None,
                    mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    other => Some(other.as_sql(true)),
                })
                .collect()
        })
        .collect()
}

async fn exec(db: &TestDb, statements: &[&str]) {
    let mut conn = mysql_async::Conn::new(admin_opts(&server()).db_name(Some(db.name.clone()))).await.unwrap();
    for s in statements {
        conn.query_drop(*s).await.unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    conn.disconnect().await.unwrap();
}

/// The two ways rows are sent (`auto` is `load_data` on a server with local_infile=ON, except
/// for upserts).
const METHODS: [&str; 2] = ["insert", "load_data"];

/// `cfg` with `load_method: method`.
fn with_method(mut cfg: Value, method: &str) -> Value {
    cfg["load_method"] = json!(method);
    cfg
}

/// The part of a failure message that locates the bad row: the INSERT statement's row range,
/// or the row number LOAD DATA reports.
fn row_hint(method: &str, first: u64, bad: u64) -> String {
    if method == "insert" { format!("input rows {first}–{bad}") } else { format!("at row {bad}") }
}

/// Text cells of a one-column-per-value query, `NULL` for NULL.
async fn cells(db: &TestDb, sql: &str) -> Vec<Vec<String>> {
    query(db, sql)
        .await
        .into_iter()
        .map(|r| r.into_iter().map(|c| c.unwrap_or_else(|| "NULL".into())).collect())
        .collect()
}

/// Tables the writer left on the side (staging or replaced ones).
async fn side_tables(db: &TestDb) -> Vec<String> {
    cells(
        db,
        &format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME LIKE '%osiris%'",
            db.name
        ),
    )
    .await
    .into_iter()
    .map(|mut r| r.remove(0))
    .collect()
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.into_iter().map(|(_, a)| a).collect()).unwrap()
}

fn ids(range: std::ops::Range<i32>) -> ArrayRef {
    Arc::new(Int32Array::from_iter_values(range))
}

const NASTY: [Option<&str>; 12] = [
    Some("it's trailing space "),
    Some("back\\slash \\' \\\\"),
    Some("new\nline\ttab\rcr"),
    Some("nul\0byte"),
    Some("ünïcödé 😀 Žluťoučký"),
    Some(""),
    None,
    Some("\"quoted\", comma %_ like ` backquote"),
    Some("x'); DROP TABLE t; --"),
    Some("NULL"),
    Some("\u{0}\u{1}\u{7f}"),
    Some("\\N"),
];

/// One column of every value kind, 12 rows (row 7 mostly NULL).
fn every_kind() -> RecordBatch {
    let n = NASTY.len();
    let mut d = Decimal128Builder::new().with_precision_and_scale(20, 6).unwrap();
    let mut d65 = Decimal256Builder::new().with_precision_and_scale(65, 30).unwrap();
    let big = i256::from_string("99999999999999999999999999999999999999999999999999999999999999999").unwrap();
    for i in 0..n {
        match i {
            6 => {
                d.append_null();
                d65.append_null();
            }
            0 => {
                d.append_value(-12_345_678_901_234_123_456);
                d65.append_value(big.wrapping_neg());
            }
            1 => {
                d.append_value(1);
                d65.append_value(big);
            }
            _ => {
                d.append_value(i as i128 * 1_000_000 + 5);
                d65.append_value(i256::from_i128(i as i128));
            }
        }
    }
    let doubles =
        [0.1, -1.7976931348623157e308, 5e-324, 1.0 / 3.0, 123456789.125, 2.5e-300, 0.0, -0.25, 1e22, 7.0, 8.5, 9e-9];
    let floats = [0.1f32, 3.40282e38, 1.1754944e-38, 1.0 / 3.0, -7.5, 0.0, 0.0, 16777216.0, 1e-10, 2.0, 3.0, 4.0];
    let mut bins: Vec<Option<Vec<u8>>> = (0..n).map(|i| Some(vec![i as u8, 0, 0xff, b'\'', b'\\'])).collect();
    bins[5] = Some(vec![]);
    bins[6] = None;
    bins[1] = Some((0..=255).collect());
    let day = |y: i64, m: u32, d: u32| {
        // Days since 1970-01-01.
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * ((i64::from(m) + 9) % 12) + 2) / 5 + i64::from(d) - 1;
        (era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468) as i32
    };
    let dates: Vec<Option<i32>> = (0..n)
        .map(|i| match i {
            0 => Some(day(1000, 1, 1)),
            1 => Some(day(9999, 12, 31)),
            2 => Some(day(2024, 2, 29)),
            6 => None,
            _ => Some(day(1970, 1, 1) + i as i32),
        })
        .collect();
    let micros = |d: i32, us: i64| i64::from(d) * 86_400_000_000 + us;
    let stamps: Vec<Option<i64>> = (0..n)
        .map(|i| match i {
            0 => Some(micros(day(1000, 1, 1), 0)),
            1 => Some(micros(day(9999, 12, 31), 86_399_999_999)),
            2 => Some(micros(day(2024, 1, 2), 3 * 3_600_000_000 + 4 * 60_000_000 + 5_000_006)),
            6 => None,
            _ => Some(micros(day(1969, 12, 31), 86_399_999_999 - i as i64)),
        })
        .collect();
    let times: Vec<Option<i64>> = (0..n)
        .map(|i| match i {
            0 => Some(-(838 * 3600 + 59 * 60 + 59) * 1_000_000),
            1 => Some((838 * 3600 + 59 * 60 + 59) * 1_000_000 + 999_999),
            2 => Some(25 * 3_600_000_000 + 500_000),
            3 => Some(-1_500_000),
            6 => None,
            _ => Some(i as i64),
        })
        .collect();
    batch(vec![
        ("id", ids(1..n as i32 + 1)),
        ("s", Arc::new(StringArray::from(NASTY.to_vec()))),
        ("b", Arc::new(BinaryArray::from(bins.iter().map(|b| b.as_deref()).collect::<Vec<_>>()))),
        ("d", Arc::new(d.finish())),
        ("d65", Arc::new(d65.finish())),
        ("g", Arc::new(Float64Array::from((0..n).map(|i| (i != 6).then_some(doubles[i])).collect::<Vec<_>>()))),
        ("f", Arc::new(Float32Array::from((0..n).map(|i| (i != 6).then_some(floats[i])).collect::<Vec<_>>()))),
        ("dt", Arc::new(Date32Array::from(dates))),
        ("ts", Arc::new(TimestampMicrosecondArray::from(stamps.clone()))),
        ("tz", Arc::new(TimestampMicrosecondArray::from(stamps).with_timezone("+00:00"))),
        ("tm", Arc::new(DurationMicrosecondArray::from(times))),
        (
            "u64",
            Arc::new(UInt64Array::from((0..n).map(|i| (i != 6).then_some(u64::MAX - i as u64)).collect::<Vec<_>>())),
        ),
        (
            "i64",
            Arc::new(Int64Array::from(
                (0..n).map(|i| (i != 6).then_some(if i % 2 == 0 { i64::MIN } else { i64::MAX })).collect::<Vec<_>>(),
            )),
        ),
        ("i8", Arc::new(Int8Array::from((0..n).map(|i| (i != 6).then_some(-128 + i as i8)).collect::<Vec<_>>()))),
        ("flag", Arc::new(BooleanArray::from((0..n).map(|i| (i != 6).then_some(i % 2 == 0)).collect::<Vec<_>>()))),
        (
            "t64",
            Arc::new(Time64MicrosecondArray::from(
                (0..n).map(|i| (i != 6).then_some(86_399_999_999 - i as i64)).collect::<Vec<_>>(),
            )),
        ),
    ])
}

/// Reads `table` back with mysql.extractor, ordered by id, as one batch.
async fn read_back(db: &TestDb, table: &str) -> RecordBatch {
    let (schema, mut batches, _) =
        extract(json!({"query": format!("SELECT * FROM `{table}` ORDER BY id"), "batch_size": 100000}), db)
            .await
            .unwrap();
    assert!(batches.len() <= 1);
    batches.pop().unwrap_or_else(|| RecordBatch::new_empty(schema))
}

/// Asserts that `got` holds the values of `want`, column by column (casting where the table
/// maps an Arrow type to another one: Boolean → TINYINT(1) → Int8, a zoned timestamp → naive
/// DATETIME, Time64 → TIME → Duration).
fn assert_same_values(want: &RecordBatch, got: &RecordBatch) {
    assert_eq!(want.num_rows(), got.num_rows());
    for (i, f) in want.schema().fields().iter().enumerate() {
        let g = got.column_by_name(f.name()).unwrap_or_else(|| panic!("column {} missing", f.name()));
        let w = want.column(i);
        let w: ArrayRef = match (w.data_type(), g.data_type()) {
            (a, b) if a == b => w.clone(),
            (DataType::Boolean, DataType::Int8) => arrow_cast::cast(w, &DataType::Int8).unwrap(),
            (DataType::Timestamp(u, Some(_)), DataType::Timestamp(_, None)) => {
                arrow_cast::cast(w, &DataType::Timestamp(*u, None)).unwrap()
            }
            (DataType::Time64(TimeUnit::Microsecond), DataType::Duration(TimeUnit::Microsecond)) => {
                let t = w.as_any().downcast_ref::<Time64MicrosecondArray>().unwrap();
                Arc::new(DurationMicrosecondArray::new(t.values().clone(), t.nulls().cloned()))
            }
            (a, b) => panic!("column {}: wrote {a}, read back {b}", f.name()),
        };
        assert_eq!(w.len(), g.len());
        for r in 0..w.len() {
            assert_eq!(w.is_null(r), g.is_null(r), "column {} row {r}: NULL differs", f.name());
        }
        assert_eq!(&w.to_data(), &g.to_data(), "column {}", f.name());
    }
}

#[tokio::test]
async fn append_creates_the_table_and_writes_every_value_exactly() {
    let db = TestDb::create(&[]).await;
    let data = every_kind();
    for method in METHODS {
        let table = format!("kinds_{method}");
        let w = write(with_method(json!({"table": table, "primary_key": "id"}), method), &db, &data).await;
        w.result.unwrap();
        assert_eq!(w.rows_written, 12);
        assert_same_values(&data, &read_back(&db, &table).await);
        // Byte-exact text (including NUL, backslashes and the empty string vs NULL) in SQL too.
        let hex = cells(&db, &format!("SELECT id, HEX(s), s IS NULL, HEX(b) FROM {table} ORDER BY id")).await;
        for (r, want) in NASTY.iter().enumerate() {
            let want_hex = want.map(|s| s.bytes().map(|b| format!("{b:02X}")).collect::<String>());
            assert_eq!(hex[r][1], want_hex.unwrap_or_else(|| "NULL".into()), "{method} row {r}");
            assert_eq!(hex[r][2], if want.is_none() { "1" } else { "0" });
        }
        assert_eq!(hex[5][3], "", "empty binary is not NULL");
        assert_eq!(hex[6][3], "NULL");
        // Appending again to the existing table adds the rows.
        let more = batch(vec![("id", ids(100..103)), ("s", Arc::new(StringArray::from(vec!["a", "b", "c"])))]);
        write(with_method(json!({"table": table}), method), &db, &more).await.result.unwrap();
        let counts = cells(&db, &format!("SELECT COUNT(*), SUM(d IS NULL) FROM {table}")).await;
        assert_eq!(counts, vec![vec!["15", "4"]]);
    }
    assert!(side_tables(&db).await.is_empty());
}

#[tokio::test]
async fn created_tables_get_the_documented_column_types_and_a_ddl_plan() {
    let db = TestDb::create(&[]).await;
    // Rows without NULLs (key columns are NOT NULL).
    let data = every_kind().slice(0, 6);
    let w = write(json!({"table": "kinds", "primary_key": ["id", "s"]}), &db, &data).await;
    w.result.unwrap();
    let plan = w.ddl_plan.expect("ddl_plan.sql");
    assert!(
        plan.contains("CREATE TABLE `kinds__osiris_stage_") && plan.contains("RENAME TABLE `kinds__osiris_stage_"),
        "{plan}"
    );
    assert!(plan.contains("PRIMARY KEY (`id`, `s`)"), "{plan}");
    let sql = format!(
        "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY, COALESCE(COLLATION_NAME, '') \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = 'kinds' ORDER BY ORDINAL_POSITION",
        db.name
    );
    let got = cells(&db, &sql).await;
    let got: Vec<String> = got.iter().map(|r| r.join(" ")).collect();
    let want = vec![
        "id int(11) NO PRI ".to_string(),
        "s varchar(255) NO PRI utf8mb4_bin".to_string(),
        "b longblob YES  ".to_string(),
        "d decimal(20,6) YES  ".to_string(),
        "d65 decimal(65,30) YES  ".to_string(),
        "g double YES  ".to_string(),
        "f float YES  ".to_string(),
        "dt date YES  ".to_string(),
        "ts datetime(6) YES  ".to_string(),
        "tz datetime(6) YES  ".to_string(),
        "tm time(6) YES  ".to_string(),
        "u64 bigint(20) unsigned YES  ".to_string(),
        "i64 bigint(20) YES  ".to_string(),
        "i8 tinyint(4) YES  ".to_string(),
        "flag tinyint(1) YES  ".to_string(),
        "t64 time(6) YES  ".to_string(),
    ];
    assert_eq!(got, want);
    let charset = cells(
        &db,
        &format!(
            "SELECT CCSA.CHARACTER_SET_NAME, T.ENGINE FROM information_schema.TABLES T JOIN \
             information_schema.COLLATION_CHARACTER_SET_APPLICABILITY CCSA ON CCSA.COLLATION_NAME = T.TABLE_COLLATION \
             WHERE T.TABLE_SCHEMA = '{}' AND T.TABLE_NAME = 'kinds'",
            db.name
        ),
    )
    .await;
    assert_eq!(charset, vec![vec!["utf8mb4", "InnoDB"]]);
}

#[tokio::test]
async fn append_is_one_transaction_and_a_failure_leaves_nothing() {
    let db = TestDb::create(&[
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10) NOT NULL)",
        "INSERT INTO t VALUES (0, 'keep')",
    ])
    .await;
    // Row 1500 violates NOT NULL, after 14 statements (chunks) of 100 rows went through.
    let v: Vec<Option<String>> = (1..=2000).map(|i| (i != 1500).then(|| format!("v{i}"))).collect();
    let data = batch(vec![("id", ids(1..2001)), ("v", Arc::new(StringArray::from(v)))]);
    // A duplicate of the existing key: an error with INSERT, a warning with LOAD DATA LOCAL.
    let dup = batch(vec![("id", ids(0..1)), ("v", Arc::new(StringArray::from(vec!["dup"])))]);
    for method in METHODS {
        let w = write(with_method(json!({"table": "t", "batch_size": 100}), method), &db, &data).await;
        let err = w.result.unwrap_err();
        assert_eq!(err.code, "write.failed", "{err}");
        assert!(err.message.contains("step 'write' (@mysql.testdb)"), "{}", err.message);
        assert!(err.message.contains(&row_hint(method, 1401, 1500)), "{}", err.message);
        assert!(w.rows_written >= 1400, "{}", w.rows_written);
        assert_eq!(cells(&db, "SELECT id, v FROM t").await, vec![vec!["0", "keep"]]);

        let err = write(with_method(json!({"table": "t"}), method), &db, &dup).await.result.unwrap_err();
        assert_eq!(err.code, "write.failed", "{err}");
        assert!(err.message.contains("Duplicate entry '0'"), "{}", err.message);
        assert_eq!(cells(&db, "SELECT id, v FROM t").await, vec![vec!["0", "keep"]]);

        // truncate_before deletes in the same transaction: a failure brings the rows back…
        let cfg = with_method(json!({"table": "t", "batch_size": 100, "truncate_before": true}), method);
        let w = write(cfg, &db, &data).await;
        assert_eq!(w.result.unwrap_err().code, "write.failed");
        assert_eq!(cells(&db, "SELECT id, v FROM t").await, vec![vec!["0", "keep"]]);
    }
    // …and a success replaces them.
    let ok = batch(vec![("id", ids(7..9)), ("v", Arc::new(StringArray::from(vec!["a", "b"])))]);
    write(json!({"table": "t", "truncate_before": true}), &db, &ok).await.result.unwrap();
    assert_eq!(cells(&db, "SELECT id, v FROM t ORDER BY id").await, vec![vec!["7", "a"], vec!["8", "b"]]);
}

#[tokio::test]
async fn replace_swaps_the_table_atomically() {
    let db = TestDb::create(&[
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10) NOT NULL, extra INT DEFAULT 42) ENGINE=InnoDB",
        "INSERT INTO t VALUES (1, 'old', 1), (2, 'old', 2)",
    ])
    .await;
    let data = batch(vec![("id", ids(5..8)), ("v", Arc::new(StringArray::from(vec!["x", "y", "z"])))]);
    let w = write(json!({"table": "t", "mode": "replace"}), &db, &data).await;
    w.result.unwrap();
    assert_eq!(w.rows_written, 3);
    assert_eq!(
        cells(&db, "SELECT id, v, extra FROM t ORDER BY id").await,
        vec![vec!["5", "x", "42"], vec!["6", "y", "42"], vec!["7", "z", "42"]]
    );
    // The table keeps its definition (LIKE the target).
    let create = query(&db, "SHOW CREATE TABLE t").await;
    assert!(create[0][1].as_deref().unwrap().contains("`v` varchar(10) NOT NULL"), "{create:?}");
    assert!(side_tables(&db).await.is_empty(), "{:?}", side_tables(&db).await);
    let plan = w.ddl_plan.unwrap();
    assert!(plan.contains("CREATE TABLE `t__osiris_stage_") && plan.contains(" LIKE `t`"), "{plan}");
    assert!(
        plan.contains("RENAME TABLE `t` TO `t__osiris_old_") && plan.contains("DROP TABLE `t__osiris_old_"),
        "{plan}"
    );

    // A load failing mid-way (NOT NULL in row 250, statements of 50 rows) leaves the old table.
    let v: Vec<Option<String>> = (0..400).map(|i| (i != 249).then(|| format!("n{i}"))).collect();
    let bad = batch(vec![("id", ids(100..500)), ("v", Arc::new(StringArray::from(v)))]);
    for method in METHODS {
        let cfg = with_method(json!({"table": "t", "write_mode": "replace", "batch_size": 50}), method);
        let err = write(cfg, &db, &bad).await.result.unwrap_err();
        assert_eq!(err.code, "write.failed", "{err}");
        assert!(err.message.contains("@mysql.testdb"), "{}", err.message);
        assert!(err.message.contains(&row_hint(method, 201, 250)), "{}", err.message);
        assert_eq!(cells(&db, "SELECT COUNT(*), MIN(id) FROM t").await, vec![vec!["3", "5"]]);
        assert!(side_tables(&db).await.is_empty(), "{:?}", side_tables(&db).await);
    }

    // An empty input replaces the rows with none.
    let empty = RecordBatch::new_empty(data.schema());
    write(json!({"table": "t", "mode": "replace"}), &db, &empty).await.result.unwrap();
    assert_eq!(cells(&db, "SELECT COUNT(*) FROM t").await, vec![vec!["0"]]);
    // …and creates a missing table, empty, with the input's columns.
    let w = write(json!({"table": "fresh", "mode": "replace"}), &db, &empty).await;
    w.result.unwrap();
    assert_eq!(w.rows_written, 0);
    assert_eq!(cells(&db, "SELECT COUNT(*) FROM fresh").await, vec![vec!["0"]]);
    let cols = query(&db, "SHOW COLUMNS FROM fresh").await;
    assert_eq!(cols.iter().map(|c| c[0].clone().unwrap()).collect::<Vec<_>>(), vec!["id", "v"]);
}

#[tokio::test]
async fn cancellation_drops_the_staging_table_and_rolls_back() {
    let db = TestDb::create(&["CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 1)"]).await;
    let schema =
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, true), Field::new("v", DataType::Int32, true)]));
    let batches: Vec<RecordBatch> = (0..5)
        .map(|k| RecordBatch::try_new(schema.clone(), vec![ids(100 + k * 100..200 + k * 100), ids(0..100)]).unwrap())
        .collect();
    let runs = [
        ("replace", "insert"),
        ("replace", "load_data"),
        ("append", "insert"),
        ("append", "load_data"),
        ("upsert", "auto"),
    ];
    for (mode, method) in runs {
        let started = std::time::Instant::now();
        let w = write_with(
            with_method(json!({"table": "t", "mode": mode, "primary_key": "id", "batch_size": 50}), method),
            &db.name,
            &server().password,
            schema.clone(),
            batches.clone(),
            Feed::CancelAfter(300),
        )
        .await;
        let err = w.result.unwrap_err();
        assert!(err.is_cancellation(), "{mode}: {err}");
        assert!(started.elapsed() < Duration::from_secs(10), "{mode}: took {:?}", started.elapsed());
        assert_eq!(cells(&db, "SELECT id, v FROM t").await, vec![vec!["1", "1"]], "{mode}");
        assert!(side_tables(&db).await.is_empty(), "{mode}: {:?}", side_tables(&db).await);
    }
    // Cancelled while creating a missing table: it does not appear.
    let w = write_with(
        json!({"table": "fresh", "batch_size": 50}),
        &db.name,
        &server().password,
        schema.clone(),
        batches,
        Feed::CancelAfter(100),
    )
    .await;
    assert!(w.result.unwrap_err().is_cancellation());
    assert!(side_tables(&db).await.is_empty());
    assert_eq!(
        cells(&db, &format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}'", db.name)).await,
        vec![vec!["1"]]
    );
}

#[tokio::test]
async fn cancelling_a_running_statement_kills_it_and_rolls_back() {
    // A trigger makes every inserted row take 20 ms: a 200-row statement runs for 4 s.
    let db = TestDb::create(&[
        "CREATE TABLE t (id INT PRIMARY KEY, v INT)",
        "INSERT INTO t VALUES (0, 0)",
        "CREATE TRIGGER slow BEFORE INSERT ON t FOR EACH ROW SET NEW.v = NEW.v + SLEEP(0.02)",
    ])
    .await;
    let data = batch(vec![("id", ids(1..401)), ("v", ids(1..401))]);
    for method in METHODS {
        let started = std::time::Instant::now();
        let w = write_with(
            with_method(json!({"table": "t", "batch_size": 200}), method),
            &db.name,
            &server().password,
            data.schema(),
            vec![data.clone()],
            Feed::CancelAfterMs(700),
        )
        .await;
        let err = w.result.unwrap_err();
        assert!(err.is_cancellation(), "{err}");
        if method == "insert" {
            // (LOAD DATA counts rows as they are streamed to the server.)
            assert_eq!(w.rows_written, 0);
        }
        assert!(started.elapsed() < Duration::from_millis(3500), "{method} took {:?}", started.elapsed());
        assert_eq!(cells(&db, "SELECT id, v FROM t").await, vec![vec!["0", "0"]]);
        // The writer's killed connection is gone (its rollback done), nothing of it is left running.
        let sql = "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                   WHERE INFO LIKE 'INSERT INTO `t`%' OR INFO LIKE 'LOAD DATA%'";
        assert_eq!(cells(&db, sql).await, vec![vec!["0"]], "{method}");
    }
}

#[tokio::test]
async fn upsert_updates_and_inserts_on_the_key() {
    let db = TestDb::create(&[
        "CREATE TABLE t (a INT, b VARCHAR(5), v VARCHAR(10), n INT DEFAULT 7, PRIMARY KEY (a, b))",
        "INSERT INTO t VALUES (1, 'x', 'old', 1), (2, 'y', 'old', 2)",
        "CREATE TABLE u (id INT AUTO_INCREMENT PRIMARY KEY, code VARCHAR(5) UNIQUE, v INT)",
        "CREATE TABLE nokey (id INT, v INT)",
    ])
    .await;
    let data = batch(vec![
        ("a", ids(1..4)),
        ("b", Arc::new(StringArray::from(vec!["x", "z", "z"]))),
        ("v", Arc::new(StringArray::from(vec![Some("new"), None, Some("ins")]))),
    ]);
    let w = write(json!({"table": "t", "mode": "upsert", "primary_key": ["b", "A"]}), &db, &data).await;
    w.result.unwrap();
    assert_eq!(w.rows_written, 3);
    assert_eq!(
        cells(&db, "SELECT a, b, v, n FROM t ORDER BY a, b").await,
        vec![
            vec!["1", "x", "new", "1"],
            vec!["2", "y", "old", "2"],
            vec!["2", "z", "NULL", "7"],
            vec!["3", "z", "ins", "7"]
        ]
    );
    // A UNIQUE key counts too (Osiris's name for the key setting).
    let codes = batch(vec![("code", Arc::new(StringArray::from(vec!["k1", "k2"]))), ("v", ids(10..12))]);
    exec(&db, &["INSERT INTO u VALUES (1, 'k1', 0)"]).await;
    write(json!({"table": "u", "write_mode": "upsert", "upsert_keys": "code"}), &db, &codes).await.result.unwrap();
    assert_eq!(cells(&db, "SELECT code, v FROM u ORDER BY code").await, vec![vec!["k1", "10"], vec!["k2", "11"]]);
    // No key on exactly those columns: a clear error before anything is written.
    let id_v = batch(vec![("id", ids(0..1)), ("v", ids(0..1))]);
    let id_code = batch(vec![("id", ids(5..6)), ("code", Arc::new(StringArray::from(vec!["k9"]))), ("v", ids(0..1))]);
    let a_b = batch(vec![("a", ids(0..1)), ("b", Arc::new(StringArray::from(vec!["q"])))]);
    for (table, key, input) in
        [("nokey", json!("id"), &id_v), ("t", json!("a"), &a_b), ("u", json!(["id", "code"]), &id_code)]
    {
        let w = write(json!({"table": table, "mode": "upsert", "primary_key": key}), &db, input).await;
        let err = w.result.unwrap_err();
        assert_eq!(err.code, "write.schema_mismatch", "{err}");
        assert!(err.message.contains("PRIMARY or UNIQUE key on exactly"), "{}", err.message);
    }
    assert_eq!(cells(&db, "SELECT COUNT(*) FROM nokey").await, vec![vec!["0"]]);
    assert_eq!(cells(&db, "SELECT COUNT(*) FROM t").await, vec![vec!["4"]]);
    // Upserting without the key columns in the input is refused up front.
    let err =
        write(json!({"table": "u", "mode": "upsert", "primary_key": "id"}), &db, &codes).await.result.unwrap_err();
    assert_eq!(err.code, "write.schema_mismatch", "{err}");
    assert!(err.message.contains("names 'id' that the input does not have"), "{}", err.message);
    // Upsert into a missing table creates it with the key; duplicates within the input: last wins.
    let dup = batch(vec![("id", Arc::new(Int32Array::from(vec![1, 2, 1]))), ("v", ids(1..4))]);
    write(json!({"table": "fresh", "mode": "upsert", "primary_key": "id"}), &db, &dup).await.result.unwrap();
    assert_eq!(cells(&db, "SELECT id, v FROM fresh ORDER BY id").await, vec![vec!["1", "3"], vec!["2", "2"]]);
}

#[tokio::test]
async fn schema_problems_are_clear_errors() {
    let db = TestDb::create(&["CREATE TABLE t (id INT, v INT)"]).await;
    let data = batch(vec![("id", ids(0..2)), ("V", ids(0..2)), ("nope", ids(0..2)), ("gone", ids(0..2))]);
    let err = write(json!({"table": "t"}), &db, &data).await.result.unwrap_err();
    assert_eq!(err.code, "write.schema_mismatch", "{err}");
    assert!(err.message.contains("'nope', 'gone'") && err.message.contains("columns are: id, v"), "{}", err.message);

    let err = write(json!({"table": "missing", "create_if_missing": false}), &db, &data).await.result.unwrap_err();
    assert_eq!(err.code, "write.table_not_found", "{err}");
    assert!(
        err.message.contains(&format!("{}.missing", db.name)) && err.message.contains("@mysql.testdb"),
        "{}",
        err.message
    );
    let err = write(json!({"table": "missing", "create_table": false, "mode": "replace"}), &db, &data)
        .await
        .result
        .unwrap_err();
    assert_eq!(err.code, "write.table_not_found", "{err}");

    let twice = batch(vec![("id", ids(0..1)), ("ID", ids(0..1))]);
    assert_eq!(write(json!({"table": "t"}), &db, &twice).await.result.unwrap_err().code, "write.schema_mismatch");

    let err = write(json!({"table": "fresh", "primary_key": "absent"}), &db, &data).await.result.unwrap_err();
    assert_eq!(err.code, "write.schema_mismatch");
    assert!(err.message.contains("'absent'") && err.message.contains("id, V, nope, gone"), "{}", err.message);

    let list =
        arrow_array::ListArray::from_iter_primitive::<arrow_array::types::Int32Type, _, _>(vec![Some(vec![Some(1)])]);
    let nested = batch(vec![("l", Arc::new(list))]);
    let err = write(json!({"table": "fresh"}), &db, &nested).await.result.unwrap_err();
    assert_eq!(err.code, "write.unsupported_type", "{err}");
    assert!(err.message.contains("column 'l'"), "{}", err.message);

    let nan = batch(vec![("g", Arc::new(Float64Array::from(vec![1.0, f64::NAN])))]);
    let err = write(json!({"table": "fresh"}), &db, &nan).await.result.unwrap_err();
    assert_eq!(err.code, "write.failed", "{err}");
    assert!(err.message.contains("input row 2, column 'g'"), "{}", err.message);
    assert!(side_tables(&db).await.is_empty());
    assert_eq!(
        cells(&db, &format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}'", db.name)).await,
        vec![vec!["1"]]
    );
}

#[tokio::test]
async fn identifiers_are_quoted_and_schema_qualifies_the_table() {
    let db = TestDb::create(&[]).await;
    let data = batch(vec![("we`ird col", ids(0..2)), ("select", Arc::new(StringArray::from(vec!["a", "b"])))]);
    // The connection's database is another one; `schema` points at the test database.
    let other = TestDb::create(&[]).await;
    let cfg = json!({"table": "odd`name; DROP TABLE x", "schema": db.name, "primary_key": "we`ird col"});
    let w =
        write_with(cfg.clone(), &other.name, &server().password, data.schema(), vec![data.clone()], Feed::All).await;
    w.result.unwrap();
    assert_eq!(
        cells(&db, "SELECT `we``ird col`, `select` FROM `odd``name; DROP TABLE x` ORDER BY 1").await,
        vec![vec!["0", "a"], vec!["1", "b"]]
    );
    let cfg = json!({"table": "odd`name; DROP TABLE x", "schema": db.name, "mode": "replace"});
    write_with(cfg, &other.name, &server().password, data.schema(), vec![data], Feed::All).await.result.unwrap();
    assert_eq!(cells(&db, "SELECT COUNT(*) FROM `odd``name; DROP TABLE x`").await, vec![vec!["2"]]);
    assert!(side_tables(&db).await.is_empty());
}

#[tokio::test]
async fn text_is_converted_to_the_column_character_set() {
    let db = TestDb::create(&["CREATE TABLE l (id INT PRIMARY KEY, s VARCHAR(10) CHARACTER SET latin1)"]).await;
    for (k, method) in METHODS.iter().enumerate() {
        let data = batch(vec![("id", ids(k as i32..k as i32 + 1)), ("s", Arc::new(StringArray::from(vec!["éř"])))]);
        let w = write(with_method(json!({"table": "l"}), method), &db, &data).await;
        let err = w.result.unwrap_err();
        // "ř" has no latin1 (cp1252) code: strict mode refuses it instead of storing "?".
        assert_eq!(err.code, "write.failed", "{method}: {err}");
        let data = batch(vec![("id", ids(k as i32..k as i32 + 1)), ("s", Arc::new(StringArray::from(vec!["é"])))]);
        write(with_method(json!({"table": "l"}), method), &db, &data).await.result.unwrap();
    }
    assert_eq!(cells(&db, "SELECT id, HEX(s) FROM l ORDER BY id").await, vec![vec!["0", "E9"], vec!["1", "E9"]]);
}

#[tokio::test]
async fn many_batches_and_large_values_split_into_statements() {
    let db = TestDb::create(&[]).await;
    let schema =
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false), Field::new("s", DataType::Utf8, true)]));
    // ~2.8 MB per value, 7 of them in each batch: more than the 16 MiB a statement may grow to.
    let big = "é'\\".repeat(700_000);
    let is_big = |i: i32| (7..14).contains(&i);
    let mut batches = Vec::new();
    let mut total = 0usize;
    for k in 0..2 {
        let s: Vec<String> = (0..2500).map(|i| if is_big(i) { big.clone() } else { format!("r{k}-{i}") }).collect();
        total += s.iter().map(String::len).sum::<usize>();
        let columns: Vec<ArrayRef> = vec![ids(k * 2500..(k + 1) * 2500), Arc::new(StringArray::from(s))];
        batches.push(RecordBatch::try_new(schema.clone(), columns).unwrap());
    }
    for method in METHODS {
        let table = format!("big_{method}");
        let cfg = with_method(json!({"table": table, "primary_key": "id", "batch_size": 999}), method);
        let w = write_batches(cfg, &db, schema.clone(), batches.clone()).await;
        w.result.unwrap();
        assert_eq!(w.rows_written, 5000);
        assert_eq!(
            cells(&db, &format!("SELECT COUNT(*), SUM(LENGTH(s)), COUNT(DISTINCT s) FROM {table}")).await,
            vec![vec!["5000".to_string(), total.to_string(), (2 * 2493 + 1).to_string()]]
        );
        let got = query(&db, &format!("SELECT s FROM {table} WHERE id = 2507")).await;
        assert!(got[0][0].as_deref() == Some(big.as_str()));
    }
}

#[tokio::test]
async fn every_extractor_type_round_trips_through_the_writer() {
    let db = TestDb::create(&ALL_TYPES_SETUP).await;
    let (schema, batches, read) = extract(json!({"query": "SELECT * FROM t ORDER BY id"}), &db).await.unwrap();
    assert_eq!(read, 4);
    // t2 through INSERT, t3 through LOAD DATA: both must equal t.
    let cfg = with_method(json!({"table": "t2", "primary_key": "id"}), "insert");
    let w = write_batches(cfg, &db, schema.clone(), batches.clone()).await;
    w.result.unwrap();
    assert_eq!(w.rows_written, 4);
    let cfg = with_method(json!({"table": "t3", "primary_key": "id"}), "load_data");
    write_batches(cfg, &db, schema.clone(), batches.clone()).await.result.unwrap();
    // The same text as the extractor gives for the original table, for every column whose
    // Arrow type maps back to itself…
    let (schema2, batches2, _) = extract(json!({"query": "SELECT * FROM t2 ORDER BY id"}), &db).await.unwrap();
    let (orig, copy) = (rows(&batches), rows(&batches2));
    let mut differ = Vec::new();
    for (i, (f, f2)) in schema.fields().iter().zip(schema2.fields()).enumerate() {
        assert_eq!(f.name(), f2.name());
        if f.data_type() == f2.data_type() {
            for r in 0..4 {
                assert_eq!(orig[r][i], copy[r][i], "column {} row {r}", f.name());
            }
        } else {
            differ.push(f.name().as_str());
        }
    }
    // BIT(1) → Boolean → BOOLEAN (TINYINT(1)) reads back as Int8; TIMESTAMP → UTC timestamp →
    // DATETIME(6) reads back without the zone.
    assert_eq!(differ, vec!["b1", "ts"]);
    // …and in SQL, every column of the copies compares equal to the original (NULL-safe),
    // binary-exact for text.
    for copy in ["t2", "t3"] {
        let mut cond = Vec::new();
        for f in schema.fields() {
            let c = format!("`{}`", f.name());
            cond.push(format!("t.{c} <=> {copy}.{c}"));
            if matches!(f.data_type(), DataType::Utf8 | DataType::Binary) {
                cond.push(format!("CAST(t.{c} AS BINARY) <=> CAST({copy}.{c} AS BINARY)"));
            }
        }
        let sql = format!("SELECT COUNT(*) FROM t JOIN {copy} USING (id) WHERE {}", cond.join(" AND "));
        assert_eq!(cells(&db, &sql).await, vec![vec!["4"]], "{copy}");
    }

    // The rest of the mapping: GEOMETRY (Binary) and a NULL-typed expression (Null).
    exec(
        &db,
        &[
            "CREATE TABLE geo (id INT PRIMARY KEY, g GEOMETRY)",
            "INSERT INTO geo VALUES (1, ST_GeomFromText('POINT(1 2)')), (2, NULL)",
        ],
    )
    .await;
    let (schema, batches, _) =
        extract(json!({"query": "SELECT id, g, NULL AS nothing FROM geo ORDER BY id"}), &db).await.unwrap();
    let types: Vec<DataType> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
    assert_eq!(types, vec![DataType::Int32, DataType::Binary, DataType::Null]);
    write_batches(json!({"table": "geo2"}), &db, schema, batches).await.result.unwrap();
    assert_eq!(
        cells(
            &db,
            "SELECT geo.id, HEX(geo.g) <=> HEX(geo2.g), geo2.nothing IS NULL FROM geo JOIN geo2 USING (id) ORDER BY id"
        )
        .await,
        vec![vec!["1", "1", "1"], vec!["2", "1", "1"]]
    );
}

#[tokio::test]
async fn connection_errors_name_the_step_and_hide_the_password() {
    let db = TestDb::create(&[]).await;
    let data = batch(vec![("id", ids(0..1))]);
    let secret = "S3cr3t-Wr1ter-Pw!";
    let w = write_with(json!({"table": "t"}), &db.name, secret, data.schema(), vec![data.clone()], Feed::All).await;
    let err = w.result.unwrap_err();
    assert_eq!(err.code, "connection.auth_failed", "{err}");
    let text = format!("{} {:?} {:?}", err.message, err.hint, err.source.as_ref().map(|s| s.to_string()));
    assert!(!text.contains(secret), "{text}");
    assert!(err.message.contains("step 'write' (@mysql.testdb)"), "{}", err.message);
    let w = write_with(
        json!({"table": "t"}),
        "osiris_no_such_db_w",
        &server().password,
        data.schema(),
        vec![data],
        Feed::All,
    )
    .await;
    assert_eq!(w.result.unwrap_err().code, "connection.unknown_database");
}

#[test]
fn config_is_checked_without_io() {
    let c = MysqlWriter::new();
    let check = |v: Value| -> Result<(), DriverError> {
        let cfg: Map<String, Value> = v.as_object().unwrap().clone();
        c.create(&cfg).map(|_| ())
    };
    let code = |v: Value| check(v).unwrap_err().code;
    assert!(check(json!({"table": "t"})).is_ok());
    assert!(check(json!({"table": "t", "mode": "replace", "write_mode": "replace", "batch_size": 100000})).is_ok());
    assert!(check(json!({"table": "t", "mode": "upsert", "upsert_keys": ["a", "b"], "pool_size": 5, "pool_recycle": 1, "echo": true})).is_ok());
    assert!(
        check(json!({"table": "t", "create_if_missing": false, "create_table": false, "truncate_before": true}))
            .is_ok()
    );
    assert_eq!(code(json!({})), "config.invalid");
    assert_eq!(code(json!({"table": "t", "bogus": 1})), "config.invalid");
    assert_eq!(code(json!({"table": "t", "mode": "merge"})), "config.invalid");
    assert_eq!(code(json!({"table": "t", "batch_size": 0})), "config.invalid");
    assert_eq!(code(json!({"table": "t", "batch_size": 100001})), "config.invalid");
    assert_eq!(code(json!({"table": "t", "primary_key": 5})), "config.invalid");
    assert_eq!(code(json!({"table": "t", "primary_key": ["a", "A"]})), "config.invalid");
    let err = check(json!({"table": "t", "mode": "append", "write_mode": "replace"})).unwrap_err();
    assert!(err.message.contains("`mode: append` and `write_mode: replace` disagree"), "{}", err.message);
    let err = check(json!({"table": "t", "primary_key": "a", "upsert_keys": "b"})).unwrap_err();
    assert_eq!(err.code, "config.invalid");
    let err = check(json!({"table": "t", "create_if_missing": true, "create_table": false})).unwrap_err();
    assert!(err.message.contains("create_if_missing"), "{}", err.message);
    let err = check(json!({"table": "t", "write_mode": "upsert"})).unwrap_err();
    assert_eq!(err.code, "config.missing_required_field");
    assert!(err.hint.unwrap().contains("primary_key"));
    // replace needs no key (staging swap).
    assert!(check(json!({"table": "t", "mode": "replace"})).is_ok());
    assert!(check(json!({"table": "t", "load_method": "insert", "mode": "upsert", "primary_key": "k"})).is_ok());
    assert_eq!(code(json!({"table": "t", "load_method": "copy"})), "config.invalid");
    let upsert_load = json!({"table": "t", "load_method": "load_data", "mode": "upsert", "primary_key": "k"});
    assert_eq!(code(upsert_load), "config.invalid");
}
