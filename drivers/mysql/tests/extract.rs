//! `mysql.extractor` against the real MariaDB/MySQL server of `scripts/services.sh`
//! (OSIRIS_TEST_MYSQL_HOST/PORT/USER/PASSWORD override it). These tests fail, never skip, when the
//! server is unreachable.

mod common;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, TimeUnit};
use common::{ALL_TYPES_SETUP, TestDb, extract, extract_with, rows, server};
use osiris_driver_mysql::MysqlExtractor;
use osiris_engine::registry::Component;
use serde_json::{Map, Value, json};

#[tokio::test]
async fn every_type_round_trips_with_edge_values_and_nulls() {
    let db = TestDb::create(&ALL_TYPES_SETUP).await;
    let (schema, batches, read) =
        extract(json!({"query": "SELECT * FROM t ORDER BY id", "batch_size": 10000}), &db).await.unwrap();
    assert_eq!(read, 4);
    let types: Vec<(String, DataType)> =
        schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()));
    let naive = DataType::Timestamp(TimeUnit::Microsecond, None);
    let expected = vec![
        ("id", DataType::Int32),
        ("i8", DataType::Int8),
        ("u8", DataType::UInt8),
        ("i16", DataType::Int16),
        ("u16", DataType::UInt16),
        ("i24", DataType::Int32),
        ("u24", DataType::UInt32),
        ("i32", DataType::Int32),
        ("u32", DataType::UInt32),
        ("i64", DataType::Int64),
        ("u64", DataType::UInt64),
        ("flag", DataType::Int8),
        ("d65", DataType::Decimal256(65, 30)),
        ("d10", DataType::Decimal128(10, 2)),
        ("du", DataType::Decimal128(5, 0)),
        ("f", DataType::Float32),
        ("g", DataType::Float64),
        ("b1", DataType::Boolean),
        ("b64", DataType::UInt64),
        ("y", DataType::UInt16),
        ("dt", DataType::Date32),
        ("tm", DataType::Duration(TimeUnit::Microsecond)),
        ("dt0", naive.clone()),
        ("dt3", naive.clone()),
        ("dt6", naive),
        ("ts", utc),
        ("s", DataType::Utf8),
        ("c", DataType::Utf8),
        ("tx", DataType::Utf8),
        ("bin", DataType::Binary),
        ("vb", DataType::Binary),
        ("bl", DataType::Binary),
        ("j", DataType::Utf8),
        ("e", DataType::Utf8),
        ("st", DataType::Utf8),
    ];
    let expected: Vec<(String, DataType)> = expected.into_iter().map(|(n, t)| (n.to_string(), t)).collect();
    assert_eq!(types, expected);
    let got = rows(&batches);
    let row = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got[0],
        row(&[
            "1",
            "-128",
            "0",
            "-32768",
            "0",
            "-8388608",
            "0",
            "-2147483648",
            "0",
            "-9223372036854775808",
            "0",
            "0",
            "-99999999999999999999999999999999999.999999999999999999999999999999",
            "-12345678.90",
            "0",
            "-3.40282e38",
            "-1.7976931348623157e308",
            "false",
            "0",
            "1901",
            "1000-01-01",
            "-PT3020399S",
            "1000-01-01T00:00:00",
            "1000-01-01T00:00:00.001",
            "1000-01-01T00:00:00.000001",
            "1970-01-01T00:00:01Z",
            "",
            "ab",
            "",
            "00000000",
            "00",
            "",
            "{\"k\": [1, null]}",
            "a",
            "",
        ])
    );
    assert_eq!(
        got[1],
        row(&[
            "2",
            "127",
            "255",
            "32767",
            "65535",
            "8388607",
            "16777215",
            "2147483647",
            "4294967295",
            "9223372036854775807",
            "18446744073709551615",
            "1",
            "99999999999999999999999999999999999.999999999999999999999999999999",
            "0.05",
            "99999",
            "3.40282e38",
            "1.7976931348623157e308",
            "true",
            "18446744073709551615",
            "2155",
            "9999-12-31",
            "PT3020399.999999S",
            "9999-12-31T23:59:59",
            "9999-12-31T23:59:59.999",
            "9999-12-31T23:59:59.999999",
            "2038-01-19T03:14:07.999999Z",
            "h\u{e9}llo \u{1F600}",
            "abcd",
            "multi\nline, \"quoted\"",
            "00ff0000",
            "00ff00",
            "000102",
            "[]",
            "b",
            "x,y",
        ])
    );
    // Row 3: NULL in every column but the key.
    assert_eq!(got[2][0], "3");
    assert!(got[2][1..].iter().all(|c| c == "NULL"), "{:?}", got[2]);
    assert_eq!(got[3][20], "2024-02-29");
    assert_eq!(got[3][21], "PT90000.5S");
    assert_eq!(got[3][22], "2024-02-29T12:34:56");
}

#[tokio::test]
async fn zero_dates_are_null_by_default_or_an_error() {
    let db = TestDb::create(&[
        "CREATE TABLE z (d DATE, t DATETIME)",
        "INSERT INTO z VALUES ('0000-00-00', '0000-00-00 00:00:00'), ('2024-00-00', '2024-01-02 03:04:05')",
    ])
    .await;
    let (_, batches, _) = extract(json!({"table": "z"}), &db).await.unwrap();
    assert_eq!(rows(&batches), vec![vec!["NULL", "NULL"], vec!["NULL", "2024-01-02T03:04:05"]]);
    let err = extract(json!({"table": "z", "zero_dates": "error"}), &db).await.unwrap_err();
    assert_eq!(err.code, "extract.zero_date", "{err}");
    assert!(err.message.contains("@mysql.testdb") && err.message.contains("'d'"), "{}", err.message);
}

#[tokio::test]
async fn empty_result_keeps_the_schema() {
    let db = TestDb::create(&["CREATE TABLE e (a INT, b VARCHAR(3), c DECIMAL(8,3))"]).await;
    let (schema, batches, read) = extract(json!({"query": "SELECT * FROM e"}), &db).await.unwrap();
    assert_eq!(read, 0);
    assert!(batches.iter().all(|b| b.num_rows() == 0));
    let types: Vec<DataType> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
    assert_eq!(types, vec![DataType::Int32, DataType::Utf8, DataType::Decimal128(8, 3)]);
}

#[tokio::test]
async fn batches_split_at_batch_size_and_table_columns_limit_offset() {
    let mut setup = vec!["CREATE TABLE n (id INT PRIMARY KEY, `we``ird` VARCHAR(5), other INT)".to_string()];
    let values: Vec<String> = (1..=25).map(|i| format!("({i}, 'v{i}', {})", i * 10)).collect();
    setup.push(format!("INSERT INTO n VALUES {}", values.join(", ")));
    let setup: Vec<&str> = setup.iter().map(String::as_str).collect();
    let db = TestDb::create(&setup).await;

    let (_, batches, read) =
        extract(json!({"query": "SELECT id FROM n ORDER BY id", "batch_size": 10}), &db).await.unwrap();
    assert_eq!(batches.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), vec![10, 10, 5]);
    assert_eq!(read, 25);

    let (schema, batches, _) =
        extract(json!({"table": "n", "columns": ["we`ird", "id"], "limit": 3, "offset": 2, "batch_size": 2}), &db)
            .await
            .unwrap();
    assert_eq!(schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), vec!["we`ird", "id"]);
    assert_eq!(rows(&batches), vec![vec!["v3", "3"], vec!["v4", "4"], vec!["v5", "5"]]);

    // With `query`, limit/offset apply to the rows read (the SQL runs unchanged).
    let (_, batches, _) =
        extract(json!({"query": "SELECT id FROM n ORDER BY id DESC", "limit": 2, "offset": 1}), &db).await.unwrap();
    assert_eq!(rows(&batches), vec![vec!["24"], vec!["23"]]);
}

#[tokio::test]
async fn errors_have_codes_name_the_connection_and_hide_the_password() {
    let db = TestDb::create(&["CREATE TABLE a (x INT)"]).await;
    let secret = "S3cr3t-Wr0ng-Pw!";
    let err = extract_with(json!({"query": "SELECT 1"}), &db.name, secret).await.unwrap_err();
    assert_eq!(err.code, "connection.auth_failed", "{err}");
    let text = format!("{} {:?} {:?}", err.message, err.hint, err.source.as_ref().map(|s| s.to_string()));
    assert!(!text.contains(secret), "{text}");
    assert!(err.message.contains("@mysql.testdb") && err.message.contains("'extract'"), "{}", err.message);

    let err =
        extract_with(json!({"query": "SELECT 1"}), "osiris_no_such_db_xyz", &server().password).await.unwrap_err();
    assert_eq!(err.code, "connection.unknown_database", "{err}");
    assert!(err.message.contains("osiris_no_such_db_xyz") && err.message.contains("@mysql.testdb"), "{}", err.message);

    let err = extract(json!({"query": "SELEC x FROM a"}), &db).await.unwrap_err();
    assert_eq!(err.code, "extract.query_failed", "{err}");
    assert!(err.message.contains("@mysql.testdb"), "{}", err.message);

    let err = extract(json!({"table": "no_such_table"}), &db).await.unwrap_err();
    assert_eq!(err.code, "extract.query_failed", "{err}");
}

#[tokio::test]
async fn config_is_checked_without_io() {
    let c = MysqlExtractor::new();
    let cfg = |v: Value| -> Map<String, Value> { v.as_object().unwrap().clone() };
    assert_eq!(c.create(&cfg(json!({}))).unwrap_err().code, "config.invalid");
    assert_eq!(c.create(&cfg(json!({"query": "SELECT 1", "table": "t"}))).unwrap_err().code, "config.invalid");
    assert_eq!(c.create(&cfg(json!({"table": "t", "bogus": 1}))).unwrap_err().code, "config.invalid");
    assert_eq!(c.create(&cfg(json!({"table": "t", "zero_dates": "zero"}))).unwrap_err().code, "config.invalid");
    assert!(c.create(&cfg(json!({"table": "t", "batch_size": 5, "pool_size": 5, "echo": true}))).is_ok());
}

/// Rows sorted, for comparing reads whose batch order may differ.
fn sorted_rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut all = rows(batches);
    all.sort();
    all
}

#[tokio::test]
async fn partitioned_reads_give_the_same_rows_as_one_connection() {
    let db = TestDb::create(&[
        "CREATE TABLE p (id BIGINT PRIMARY KEY, k INT NULL, name VARCHAR(20))",
        "INSERT INTO p SELECT seq, IF(seq % 10 = 0, NULL, CAST(seq AS SIGNED) * 3 - 500), CONCAT('row ', seq) FROM seq_1_to_5000",
    ])
    .await;
    let query = "SELECT id, k, name FROM p";
    let (_, single, n) = extract(json!({"query": query, "batch_size": 700}), &db).await.unwrap();
    assert_eq!(n, 5000);
    // On the primary key, and on a nullable column with negative values (NULLs go to the first range).
    for (column, partitions) in [("id", 4), ("k", 3), ("id", 64)] {
        let cfg = json!({"query": query, "batch_size": 700, "partition_on": column, "partitions": partitions});
        let (_, parts, n) = extract(cfg, &db).await.unwrap();
        assert_eq!(n, 5000, "partition_on {column}");
        assert_eq!(sorted_rows(&parts), sorted_rows(&single), "partition_on {column} x{partitions}");
    }
    // An empty result keeps its schema.
    let cfg = json!({"query": "SELECT id, name FROM p WHERE id < 0", "partition_on": "id", "partitions": 2});
    let (schema, batches, n) = extract(cfg, &db).await.unwrap();
    assert_eq!((schema.fields().len(), batches.len(), n), (2, 0, 0));
    // Partitioning on a non-integer column is refused with a clear message.
    let cfg = json!({"query": query, "partition_on": "name", "partitions": 2});
    let err = extract(cfg, &db).await.unwrap_err();
    assert_eq!(err.code, "config.invalid");
    assert!(err.message.contains("'name' is not an integer"), "{}", err.message);
}

#[test]
fn partition_options_are_checked() {
    let check = |cfg: Value| MysqlExtractor::new().create(cfg.as_object().unwrap()).map(|_| ()).unwrap_err();
    let e = check(json!({"query": "SELECT 1", "partitions": 4}));
    assert!(e.message.contains("partition_on is not set"), "{}", e.message);
    let e = check(json!({"query": "SELECT 1", "partition_on": "id"}));
    assert!(e.message.contains("partitions is 1"), "{}", e.message);
    let e = check(json!({"query": "SELECT 1", "partition_on": "id", "partitions": 65}));
    assert!(e.message.contains("invalid partitions 65"), "{}", e.message);
    let e = check(json!({"query": "SELECT 1", "partition_on": "id", "partitions": 2, "limit": 5}));
    assert!(e.message.contains("cannot be combined with partitions"), "{}", e.message);
}

#[tokio::test]
async fn consistent_snapshot_reads_inside_a_transaction() {
    let db =
        TestDb::create(&["CREATE TABLE s (id INT PRIMARY KEY) ENGINE=InnoDB", "INSERT INTO s VALUES (1), (2)"]).await;
    // @@in_transaction is 1 only inside the snapshot's transaction (MariaDB and MySQL 8).
    let cfg = json!({"query": "SELECT COUNT(*) AS n, @@in_transaction AS tx FROM s", "consistent_snapshot": true});
    let (_, batches, _) = extract(cfg, &db).await.unwrap();
    assert_eq!(rows(&batches), vec![vec!["2".to_string(), "1".to_string()]]);
    let cfg = json!({"query": "SELECT COUNT(*) AS n, @@in_transaction AS tx FROM s"});
    let (_, batches, _) = extract(cfg, &db).await.unwrap();
    assert_eq!(rows(&batches), vec![vec!["2".to_string(), "0".to_string()]]);
}
