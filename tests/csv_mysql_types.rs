//! MySQL → CSV → new MySQL table → CSV through the real `osiris` binary against the test
//! MariaDB of `scripts/services.sh`: the CSV extractor infers the types this project's CSV
//! writer prints (exact decimals, unsigned 64-bit integers, timestamps with and without zone),
//! so `mysql.writer` creates columns of the original's class and the second CSV has the same
//! bytes; MySQL TIME is written as MySQL's own text and reads back into TIME columns.

mod common;

use common::mysql::{MysqlConnection, ScratchDb, connections_yaml, password, query};
use common::{Project, describe};

const SETUP: &[&str] = &[
    "CREATE TABLE t (id INT PRIMARY KEY, amount DECIMAL(12,2), big BIGINT UNSIGNED, dt DATETIME, \
     ts TIMESTAMP(6) NULL, day DATE, s VARCHAR(40), tm TIME, tm6 TIME(6))",
    "INSERT INTO t VALUES \
     (1, 1234.50, 18446744073709551615, '2024-01-02 03:04:05', '2024-06-30 23:59:59.123456', '2024-02-29', \
      'a, \"b\"', '12:34:56', '-01:02:03.500000'), \
     (2, -0.05, 9223372036854775808, '1999-12-31 23:59:59', '1970-01-01 00:00:01', '1000-01-01', '', \
      '838:59:59', '00:00:00'), \
     (3, 7.00, 5, '2000-01-01 00:00:00', NULL, NULL, NULL, '-838:59:59', '23:59:59.000001'), \
     (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    // Same columns as t, for writing the CSV back into existing TIME columns.
    "CREATE TABLE t3 LIKE t",
];

const EXPORT: &str = r#"oml_version: "0.1.0"
name: export
steps:
  - id: extract
    component: mysql.extractor
    mode: read
    config: {connection: "@mysql.test", query: "SELECT * FROM TABLE_NAME ORDER BY id"}
  - id: write
    component: filesystem.csv_writer
    mode: write
    needs: [extract]
    config: {path: OUT}
"#;

const IMPORT: &str = r#"oml_version: "0.1.0"
name: import
steps:
  - id: extract
    component: filesystem.csv_extractor
    mode: read
    config: {path: out/first.csv}
  - id: write
    component: mysql.writer
    mode: write
    needs: [extract]
    config: {connection: "@mysql.test", table: TABLE_NAME, create_if_missing: CREATE}
"#;

fn run(project: &Project, yaml: String) {
    project.write("p.yaml", yaml);
    let output = project.osiris(&["run", "p.yaml"]).env("CSV_TYPES_PASSWORD", password()).output().unwrap();
    assert!(output.status.success(), "{}", describe(&output));
}

fn export(project: &Project, table: &str, out: &str) -> String {
    run(project, EXPORT.replace("TABLE_NAME", table).replace("OUT", out));
    project.read_text(out)
}

fn column_types(db: &ScratchDb, table: &str) -> Vec<(String, String)> {
    query(&format!(
        "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION",
        db.name
    ))
    .into_iter()
    .map(|r| (r[0].clone().unwrap_or_default(), r[1].clone().unwrap_or_default()))
    .collect()
}

#[test]
fn mysql_to_csv_to_a_new_table_keeps_the_types_and_the_bytes() {
    let db = ScratchDb::create(SETUP);
    let project = Project::new();
    project.write(
        "osiris_connections.yaml",
        connections_yaml(&[MysqlConnection::new("test", &db.name, "CSV_TYPES_PASSWORD")]),
    );

    let first = export(&project, "t", "out/first.csv");
    // TIME as MySQL prints it, with the column's fractional digits; TIMESTAMP in UTC with Z.
    assert_eq!(
        first,
        "id,amount,big,dt,ts,day,s,tm,tm6\n\
         1,1234.50,18446744073709551615,2024-01-02T03:04:05,2024-06-30T23:59:59.123456Z,2024-02-29,\"a, \"\"b\"\"\",12:34:56,-01:02:03.500000\n\
         2,-0.05,9223372036854775808,1999-12-31T23:59:59,1970-01-01T00:00:01Z,1000-01-01,\"\",838:59:59,00:00:00.000000\n\
         3,7.00,5,2000-01-01T00:00:00,,,,-838:59:59,23:59:59.000001\n\
         4,,,,,,,,\n"
    );

    // Into a new table: the writer creates it from the types the CSV extractor inferred.
    run(&project, IMPORT.replace("TABLE_NAME", "t2").replace("CREATE", "true"));
    let types = column_types(&db, "t2");
    let expected = [
        ("id", "bigint(20)"),
        // Precision: at least 18 (inferred from the data, with room), the scale exactly.
        ("amount", "decimal(18,2)"),
        ("big", "bigint(20) unsigned"),
        ("dt", "datetime(6)"),
        // mysql.writer stores zoned timestamps (UTC) as DATETIME(6).
        ("ts", "datetime(6)"),
        ("day", "date"),
        ("s", "longtext"),
        // TIME text is not inferred (it would make every `08:30:00` a duration): a string.
        ("tm", "longtext"),
        ("tm6", "longtext"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(c, t)| (c.to_string(), t.to_string())).collect();
    assert_eq!(types, expected);

    // …and the second export has the same bytes, except that the zone of `ts` is not kept by a
    // DATETIME column: the same UTC values, without the Z.
    let second = export(&project, "t2", "out/second.csv");
    assert_eq!(second, first.replace("Z,", ","));

    // The first CSV written back into the original column types (TIME included) gives the
    // original values.
    run(&project, IMPORT.replace("TABLE_NAME", "t3").replace("CREATE", "false"));
    let same = query(&format!(
        "SELECT COUNT(*) FROM `{0}`.t JOIN `{0}`.t3 USING (id) WHERE t.amount <=> t3.amount AND t.big <=> t3.big \
         AND t.dt <=> t3.dt AND t.ts <=> t3.ts AND t.day <=> t3.day AND BINARY t.s <=> BINARY t3.s \
         AND t.tm <=> t3.tm AND t.tm6 <=> t3.tm6",
        db.name
    ));
    assert_eq!(same, vec![vec![Some("4".to_string())]]);
    assert_eq!(export(&project, "t3", "out/third.csv"), first);
}
