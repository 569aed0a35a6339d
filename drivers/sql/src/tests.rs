//! SQL driver tests against a real step cache.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::pretty::pretty_format_batches;
use osiris_engine::registry::{Component, Registry};

use crate::testkit::{Upstream, config, run_sql};
use crate::{DUCKDB_ALIAS, SQL_NAME, SqlProcessor};

const BUDGET: u64 = 64 << 20;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn people_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("city_id", DataType::Int64, true),
    ]))
}

/// `people` in two batches (so scans cross batch boundaries).
fn people() -> Upstream {
    let schema = people_schema();
    let b = |ids: Vec<i64>, names: Vec<Option<&str>>, cities: Vec<Option<i64>>| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)) as ArrayRef,
                Arc::new(StringArray::from(names)),
                Arc::new(Int64Array::from(cities)),
            ],
        )
        .unwrap()
    };
    let batches = vec![
        b(vec![1, 2, 3], vec![Some("Ada"), Some("Bob"), None], vec![Some(10), Some(20), Some(10)]),
        b(vec![4, 5], vec![Some("Dee"), Some("Eve")], vec![Some(30), None]),
    ];
    Upstream { id: "extract-people", schema, batches }
}

fn cities() -> Upstream {
    let schema = Arc::new(Schema::new(vec![
        Field::new("city_id", DataType::Int64, false),
        Field::new("city", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![10, 20, 40])) as ArrayRef,
            Arc::new(StringArray::from(vec!["Oslo", "Rome", "Lima"])),
        ],
    )
    .unwrap();
    Upstream { id: "cities", schema, batches: vec![batch] }
}

fn table(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

#[test]
fn both_components_register_with_the_query_required() {
    let mut registry = Registry::new();
    crate::register(&mut registry).unwrap();
    for name in [SQL_NAME, DUCKDB_ALIAS] {
        let c = registry.get(name).unwrap();
        assert!(c.spec().field("query").unwrap().required);
    }
    assert!(registry.get(DUCKDB_ALIAS).unwrap().spec().title.contains("alias"));
}

#[test]
fn create_rejects_syntax_errors_and_several_statements() {
    let c = SqlProcessor::new();
    let err = c.create(&config("SELEC 1")).unwrap_err();
    assert_eq!(err.code, "transform.sql_error");
    assert!(err.message.contains("SELEC"), "{}", err.message);
    let err = c.create(&config("SELECT 1; SELECT 2")).unwrap_err();
    assert_eq!(err.code, "transform.sql_error");
    let err = c.create(&config("  ")).unwrap_err();
    assert_eq!(err.code, "config.invalid");
    assert!(c.create(&config("SELECT 1")).is_ok());
}

#[tokio::test]
async fn one_input_filtered_and_projected() {
    let dir = tmp();
    let out = run_sql(
        "SELECT name, id * 10 AS id10 FROM df_extract_people WHERE city_id = 10 ORDER BY id",
        vec![people()],
        dir.path(),
        BUDGET,
    )
    .await
    .unwrap();
    assert_eq!(
        table(&out.batches),
        "+------+------+\n| name | id10 |\n+------+------+\n| Ada  | 10   |\n|      | 30   |\n+------+------+"
    );
    assert_eq!(out.schema.field(1).data_type(), &DataType::Int64);
    assert_eq!(out.rows_in, 5);
}

#[tokio::test]
async fn two_inputs_joined_and_aggregated() {
    let dir = tmp();
    let out = run_sql(
        "SELECT c.city, COUNT(*) AS people, MAX(p.name) AS last_name \
         FROM df_extract_people p JOIN df_cities c ON p.city_id = c.city_id \
         GROUP BY c.city ORDER BY c.city",
        vec![people(), cities()],
        dir.path(),
        BUDGET,
    )
    .await
    .unwrap();
    assert_eq!(
        table(&out.batches),
        "+------+--------+-----------+\n| city | people | last_name |\n+------+--------+-----------+\n\
| Oslo | 2      | Ada       |\n| Rome | 1      | Bob       |\n+------+--------+-----------+"
    );
    assert_eq!(out.rows_in, 8);
}

#[tokio::test]
async fn self_join_scans_the_retained_input_twice() {
    let dir = tmp();
    let out = run_sql(
        "SELECT a.id AS a, b.id AS b FROM df_extract_people a JOIN df_extract_people b \
         ON a.city_id = b.city_id AND a.id < b.id ORDER BY a, b",
        vec![people()],
        dir.path(),
        BUDGET,
    )
    .await
    .unwrap();
    assert_eq!(table(&out.batches), "+---+---+\n| a | b |\n+---+---+\n| 1 | 3 |\n+---+---+");
    // Each batch is counted once although the plan scanned the input twice.
    assert_eq!(out.rows_in, 5);
}

#[tokio::test]
async fn no_inputs() {
    let dir = tmp();
    let out = run_sql("SELECT 1 AS x", vec![], dir.path(), BUDGET).await.unwrap();
    assert_eq!(table(&out.batches), "+---+\n| x |\n+---+\n| 1 |\n+---+");
    let out = run_sql("SELECT SUM(value) AS s FROM generate_series(1, 100)", vec![], dir.path(), BUDGET).await.unwrap();
    assert_eq!(out.batches[0].column(0).as_primitive::<Int64Type>().value(0), 5050);
}

#[tokio::test]
async fn empty_input_keeps_the_schema() {
    let dir = tmp();
    let up = Upstream { id: "empty", schema: people_schema(), batches: vec![] };
    let out = run_sql("SELECT id, name FROM df_empty WHERE id > 0", vec![up], dir.path(), BUDGET).await.unwrap();
    assert_eq!(out.batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
    let names: Vec<&str> = out.schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "name"]);
    assert_eq!(out.schema.field(1).data_type(), &DataType::Utf8);
}

#[tokio::test]
async fn unknown_table_lists_the_available_tables() {
    let dir = tmp();
    let err = run_sql("SELECT * FROM df_nope", vec![people(), cities()], dir.path(), BUDGET).await.err().unwrap();
    assert_eq!(err.code, "transform.sql_error");
    assert!(err.message.contains("df_nope"), "{}", err.message);
    let hint = err.hint.unwrap();
    assert!(hint.contains("df_extract_people (id, name, city_id)"), "{hint}");
    assert!(hint.contains("df_cities (city_id, city)"), "{hint}");

    let err = run_sql("SELECT nope FROM df_cities", vec![cities()], dir.path(), BUDGET).await.err().unwrap();
    assert_eq!(err.code, "transform.sql_error");
    assert!(err.hint.unwrap().contains("df_cities (city_id, city)"));
}

#[tokio::test]
async fn syntax_error_is_a_sql_error() {
    let dir = tmp();
    let err = run_sql("SELECT FROM WHERE", vec![cities()], dir.path(), BUDGET).await.err().unwrap();
    assert_eq!(err.code, "transform.sql_error");
}

#[tokio::test]
async fn ddl_is_refused() {
    let dir = tmp();
    let err = run_sql("CREATE TABLE t AS SELECT 1", vec![], dir.path(), BUDGET).await.err().unwrap();
    assert_eq!(err.code, "transform.sql_error");
}

/// `rows` rows of (k, padded text) in batches of 8192.
fn wide(rows: usize) -> Upstream {
    let schema =
        Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false), Field::new("v", DataType::Utf8, false)]));
    let mut batches = Vec::new();
    let mut start = 0;
    while start < rows {
        let end = (start + 8192).min(rows);
        // A pseudo-random permutation so the sort has work to do.
        let keys: Vec<i64> = (start..end).map(|i| ((i as i64) * 7919) % rows as i64).collect();
        let text: Vec<String> = keys.iter().map(|k| format!("value-{k:012}-padding-padding-padding")).collect();
        batches.push(
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from(keys)) as ArrayRef, Arc::new(StringArray::from(text))],
            )
            .unwrap(),
        );
        start = end;
    }
    Upstream { id: "big", schema, batches }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_sort_spills_within_a_small_pool() {
    let dir = tmp();
    let rows = 400_000; // ~20 MB of data for an 8 MiB pool
    let out = run_sql("SELECT k, v FROM df_big ORDER BY v DESC", vec![wide(rows)], dir.path(), 16 << 20).await.unwrap();
    let total: usize = out.batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(total, rows);
    let mut expected = rows as i64 - 1;
    for b in &out.batches {
        for k in b.column(0).as_primitive::<Int64Type>().values() {
            assert_eq!(*k, expected);
            expected -= 1;
        }
    }
    assert!(out.stats.spill_count > 0, "expected the sort to spill: {:?}", out.stats);
    // DataFusion removes its spill directory when the query ends.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("artifacts/sql")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_aggregate_runs_within_a_small_pool() {
    let dir = tmp();
    let rows = 300_000;
    let out = run_sql(
        "SELECT COUNT(*) AS groups, SUM(n) AS total FROM (SELECT v, COUNT(*) AS n FROM df_big GROUP BY v)",
        vec![wide(rows)],
        dir.path(),
        16 << 20,
    )
    .await
    .unwrap();
    let b = &out.batches[0];
    assert_eq!(b.column(0).as_primitive::<Int64Type>().value(0), rows as i64);
    assert_eq!(b.column(1).as_primitive::<Int64Type>().value(0), rows as i64);
}

#[tokio::test]
async fn mixed_case_step_ids_are_reachable_unquoted_and_quoted() {
    let dir = tmp();
    let mut up = cities();
    up.id = "Cities";
    let out = run_sql(
        "SELECT COUNT(*) AS n FROM df_Cities a JOIN \"df_Cities\" b USING (city_id)",
        vec![up],
        dir.path(),
        BUDGET,
    )
    .await
    .unwrap();
    assert_eq!(out.batches[0].column(0).as_primitive::<Int64Type>().value(0), 3);
}

#[tokio::test]
async fn a_failed_upstream_fails_the_step_as_upstream_failed() {
    // An upstream whose batch does not match its declared schema fails inside the cache.
    let dir = tmp();
    let mut up = cities();
    up.schema = people_schema();
    let err = run_sql("SELECT * FROM df_cities", vec![up], dir.path(), BUDGET).await.err().unwrap();
    assert_eq!(err.code, "run.upstream_failed", "{err:?}");
}

#[tokio::test]
async fn a_query_may_stop_reading_its_inputs_early() {
    let dir = tmp();
    let out = run_sql("SELECT id FROM df_extract_people LIMIT 1", vec![people(), cities()], dir.path(), BUDGET)
        .await
        .unwrap();
    assert_eq!(out.batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);
    assert!(out.rows_in <= 8, "inputs are not drained: {}", out.rows_in);
}
