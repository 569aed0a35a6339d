//! `mysql.extractor` → `filesystem.csv_writer` through the real `osiris` binary, against the test
//! MySQL/MariaDB server of `scripts/services.sh` (OSIRIS_TEST_MYSQL_* override it). Fails, never
//! skips, when the server is unreachable.

mod common;

use common::{Project, describe};
use mysql_async::prelude::Queryable;

fn env(k: &str, d: &str) -> String {
    std::env::var(k).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| d.to_string())
}

fn admin_opts() -> mysql_async::OptsBuilder {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(env("OSIRIS_TEST_MYSQL_HOST", "127.0.0.1"))
        .tcp_port(env("OSIRIS_TEST_MYSQL_PORT", "3306").parse().unwrap())
        .user(Some(env("OSIRIS_TEST_MYSQL_USER", "osiris_test")))
        .pass(Some(env("OSIRIS_TEST_MYSQL_PASSWORD", "osiris_test")))
        .prefer_socket(false)
}

fn sql(statements: &[String]) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut conn = mysql_async::Conn::new(admin_opts())
            .await
            .unwrap_or_else(|e| panic!("the test MySQL server is unreachable ({e}); run `bash scripts/services.sh`"));
        for s in statements {
            conn.query_drop(s.as_str()).await.unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        conn.disconnect().await.unwrap();
    });
}

struct Db(String);
impl Drop for Db {
    fn drop(&mut self) {
        sql(&[format!("DROP DATABASE IF EXISTS `{}`", self.0)]);
    }
}

const PIPELINE: &str = r#"oml_version: "0.1.0"
name: mysql-to-csv
steps:
  - id: extract
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.test"
      query: "SELECT * FROM t ORDER BY id"
      batch_size: 2
  - id: write
    component: filesystem.csv_writer
    mode: write
    needs: [extract]
    config: {path: out/t.csv}
"#;

#[test]
fn mysql_extractor_to_csv_writer_prints_exact_text() {
    let mut random = [0u8; 6];
    getrandom::fill(&mut random).unwrap();
    let name = format!("osiris_t_{}", random.iter().map(|b| format!("{b:02x}")).collect::<String>());
    sql(&[
        format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"),
        format!(
            "CREATE TABLE `{name}`.t (id INT PRIMARY KEY, u BIGINT UNSIGNED, d DECIMAL(12,3), f DOUBLE, b BIT(1), \
             y YEAR, day DATE, tm TIME(3), dt DATETIME(6), ts TIMESTAMP(3) NULL, s VARCHAR(30), bin VARBINARY(4), \
             j JSON, e ENUM('red','green'))"
        ),
        "SET time_zone = '+00:00'".into(),
        format!(
            "INSERT INTO `{name}`.t VALUES \
             (1, 18446744073709551615, -1234.500, 1.5, b'1', 2024, '2024-02-29', '-01:02:03.250', \
              '2024-01-02 03:04:05.000006', '2024-06-30 23:59:59.123', 'Žluťoučký, \"kůň\" 😀', x'00ff', '{{\"a\": 1}}', 'red'), \
             (2, 0, 0.000, -0.25, b'0', 1901, '1000-01-01', '00:00:00', '1999-12-31 23:59:59', '1970-01-01 00:00:01', '', x'', '[]', 'green'), \
             (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        ),
    ]);
    let _db = Db(name.clone());
    let project = Project::new();
    project.write(
        "osiris_connections.yaml",
        format!(
            "version: 1\nconnections:\n  mysql:\n    test:\n      host: {}\n      port: {}\n      database: {name}\n      \
             user: {}\n      password: ${{OSIRIS_TEST_MYSQL_PASSWORD}}\n",
            env("OSIRIS_TEST_MYSQL_HOST", "127.0.0.1"),
            env("OSIRIS_TEST_MYSQL_PORT", "3306"),
            env("OSIRIS_TEST_MYSQL_USER", "osiris_test"),
        ),
    );
    project.write("p.yaml", PIPELINE);
    let mut run = project.osiris(&["run", "p.yaml"]);
    run.env("OSIRIS_TEST_MYSQL_PASSWORD", env("OSIRIS_TEST_MYSQL_PASSWORD", "osiris_test"));
    let output = run.output().unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    let csv = project.read_text("out/t.csv");
    assert_eq!(
        csv,
        "id,u,d,f,b,y,day,tm,dt,ts,s,bin,j,e\n\
         1,18446744073709551615,-1234.500,1.5,true,2024,2024-02-29,-PT3723.25S,2024-01-02T03:04:05.000006,\
         2024-06-30T23:59:59.123Z,\"Žluťoučký, \"\"kůň\"\" 😀\",00ff,\"{\"\"a\"\": 1}\",red\n\
         2,0,0.000,-0.25,false,1901,1000-01-01,P0D,1999-12-31T23:59:59,1970-01-01T00:00:01Z,\"\",\"\",[],green\n\
         3,,,,,,,,,,,,,\n"
    );
}

#[test]
fn doctor_connects_to_mysql_and_reports_auth_failures_without_the_password() {
    let project = Project::new();
    project.write(
        "osiris_connections.yaml",
        format!(
            "connections:\n  mysql:\n    good:\n      host: {host}\n      port: {port}\n      database: information_schema\n      user: {user}\n      password: ${{OSIRIS_TEST_MYSQL_PASSWORD}}\n    wrong_password:\n      host: {host}\n      port: {port}\n      database: information_schema\n      user: {user}\n      password: ${{DOCTOR_WRONG_PASSWORD}}\n",
            host = env("OSIRIS_TEST_MYSQL_HOST", "127.0.0.1"),
            port = env("OSIRIS_TEST_MYSQL_PORT", "3306"),
            user = env("OSIRIS_TEST_MYSQL_USER", "osiris_test"),
        ),
    );
    let output = project
        .osiris(&["connections", "doctor", "--json"])
        .env("OSIRIS_TEST_MYSQL_PASSWORD", env("OSIRIS_TEST_MYSQL_PASSWORD", "osiris_test"))
        .env("DOCTOR_WRONG_PASSWORD", "Wr0ng-Doctor-Secret")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let report = common::stdout_json(&output);
    let mysql = &report["results"]["mysql"];
    assert_eq!(mysql["good"]["status"], "success", "{report}");
    assert!(mysql["good"]["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(mysql["wrong_password"]["status"], "failure");
    assert_eq!(mysql["wrong_password"]["category"], "auth");
    assert!(!describe(&output).contains("Wr0ng-Doctor-Secret"));
}

/// The main job of `scripts/demo.sh`: the sample movies database to CSV with a SQL transform.
#[test]
fn the_movies_golden_path_exports_every_table_and_the_sql_transform() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    sql(&[std::fs::read_to_string(root.join("examples/mysql/movies.sql")).unwrap()]);
    let project = Project::new();
    let pipeline = root.join("examples/pipelines/movies_to_csv.yaml");
    let output = project
        .osiris(&["run", pipeline.to_str().unwrap(), "--param", "out_dir=out"])
        .env("OSIRIS_HOME", root.join("examples"))
        .env("OSIRIS_DEMO_MYSQL_PASSWORD", env("OSIRIS_TEST_MYSQL_PASSWORD", "osiris_test"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        project.read_text("out/director_ratings.csv"),
        "director,reviews,avg_rating\nHayao Miyazaki,3,9.23\nChristopher Nolan,3,8.43\nAgnès Varda,1,8.0\nBong Joon-ho,2,4.75\n"
    );
    let movies = project.read_text("out/movies.csv");
    assert!(
        movies.starts_with("id,title,director_id,release_year,runtime_minutes,budget_usd,genre,tagline,added_at\n")
    );
    assert!(
        movies.contains("\n7,Untitled Project,5,,,,,\"\",2024-01-05T00:00:00\n"),
        "NULLs empty, '' quoted:\n{movies}"
    );
    for table in ["directors", "actors", "movie_actors", "reviews"] {
        assert!(project.file(&format!("out/{table}.csv")).is_file(), "{table}.csv missing");
    }
}
