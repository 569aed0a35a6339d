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
         1,18446744073709551615,-1234.500,1.5,true,2024,2024-02-29,-01:02:03.250,2024-01-02T03:04:05.000006,\
         2024-06-30T23:59:59.123Z,\"Žluťoučký, \"\"kůň\"\" 😀\",00ff,\"{\"\"a\"\": 1}\",red\n\
         2,0,0.000,-0.25,false,1901,1000-01-01,00:00:00.000,1999-12-31T23:59:59,1970-01-01T00:00:01Z,\"\",\"\",[],green\n\
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

/// A fresh scratch database `osiris_t_<random>` (dropped by the guard) and a project whose
/// connection `@mysql.test` points at it.
fn scratch_db_project() -> (Db, Project) {
    let mut random = [0u8; 6];
    getrandom::fill(&mut random).unwrap();
    let name = format!("osiris_t_{}", random.iter().map(|b| format!("{b:02x}")).collect::<String>());
    sql(&[format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4")]);
    let project = Project::new();
    project.write(
        "osiris_connections.yaml",
        format!(
            "version: 1\nconnections:\n  mysql:\n    test:\n      host: {host}\n      port: {port}\n      database: {name}\n      \
             user: {user}\n      password: ${{OSIRIS_TEST_MYSQL_PASSWORD}}\n    bad:\n      host: {host}\n      \
             port: {port}\n      database: {name}\n      user: {user}\n      password: ${{WRITER_WRONG_PASSWORD}}\n",
            host = env("OSIRIS_TEST_MYSQL_HOST", "127.0.0.1"),
            port = env("OSIRIS_TEST_MYSQL_PORT", "3306"),
            user = env("OSIRIS_TEST_MYSQL_USER", "osiris_test"),
        ),
    );
    (Db(name), project)
}

/// Every value kind the CSV extractor infers (plus a decimal through `dtype`), in the CSV
/// writer's canonical text: NULL is an empty field, the empty string `""`.
const ROUND_TRIP_CSV: &str = "id,n,amount,ratio,day,at,label\n\
1,-9223372036854775808,-1234.500,0.1,2024-02-29,2024-01-02T03:04:05.000006,\"Žluťoučký, \"\"kůň\"\" 😀\"\n\
2,9223372036854775807,0.000,1.7976931348623157e+308,1000-01-01,1999-12-31T23:59:59,\"\"\n\
3,,,,,,\n\
4,42,99999.999,-1.5e-07,9999-12-31,2024-06-30T23:59:59.123,\"line1\nline2, with comma\"\n\
5,0,0.001,3.0,1970-01-01,1970-01-01T00:00:00,tab\there \\ backslash 'quote'\n";

const CSV_TO_MYSQL: &str = r#"oml_version: "0.1.0"
name: csv-to-mysql
steps:
  - id: read
    component: filesystem.csv_extractor
    mode: read
    config:
      path: in.csv
      dtype: {amount: "decimal(12,3)"}
  - id: write
    component: mysql.writer
    mode: write
    needs: [read]
    config:
      connection: "@mysql.test"
      table: roundtrip
      mode: replace
      primary_key: id
"#;

const MYSQL_TO_CSV: &str = r#"oml_version: "0.1.0"
name: mysql-to-csv
steps:
  - id: extract
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.test"
      query: "SELECT * FROM roundtrip ORDER BY id"
  - id: write
    component: filesystem.csv_writer
    mode: write
    needs: [extract]
    config: {path: out/roundtrip.csv}
"#;

#[test]
fn csv_to_mysql_writer_and_back_reproduces_the_csv_byte_for_byte() {
    let (_db, project) = scratch_db_project();
    project.write("in.csv", ROUND_TRIP_CSV);
    project.write("to_mysql.yaml", CSV_TO_MYSQL);
    project.write("to_csv.yaml", MYSQL_TO_CSV);
    let password = env("OSIRIS_TEST_MYSQL_PASSWORD", "osiris_test");
    // The first run creates the table, the second replaces it.
    for round in 0..2 {
        let output =
            project.osiris(&["run", "to_mysql.yaml"]).env("OSIRIS_TEST_MYSQL_PASSWORD", &password).output().unwrap();
        assert!(output.status.success(), "round {round}: {}", describe(&output));
    }
    let runs = project.run_dirs();
    assert_eq!(runs.len(), 2);
    for run_dir in &runs {
        let metrics = common::jsonl(&run_dir.join("metrics.jsonl"));
        let written: Vec<u64> = metrics
            .iter()
            .filter(|m| m["metric"] == "rows_written" && m["step_id"] == "write")
            .map(|m| m["value"].as_u64().unwrap())
            .collect();
        assert_eq!(written, vec![5], "{metrics:?}");
        // The config's `mode` (the write mode) reaches the driver as `write_mode`; `mode` is the
        // component mode, as in Osiris's cfg files.
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run_dir.join("cfg/write.json")).unwrap()).unwrap();
        assert_eq!((cfg["mode"].as_str(), cfg["write_mode"].as_str()), (Some("write"), Some("replace")), "{cfg}");
    }
    let plan = std::fs::read_to_string(runs[0].join("artifacts/write/ddl_plan.sql")).unwrap();
    assert!(plan.contains("`id` BIGINT NOT NULL") && plan.contains("PRIMARY KEY (`id`)"), "{plan}");
    let output = project.osiris(&["run", "to_csv.yaml"]).env("OSIRIS_TEST_MYSQL_PASSWORD", &password).output().unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(project.read_text("out/roundtrip.csv"), ROUND_TRIP_CSV);
}

#[test]
fn mysql_writer_with_a_wrong_password_fails_naming_the_step_and_never_shows_the_password() {
    let (_db, project) = scratch_db_project();
    let secret = "Wr0ng-Wr1ter-Secret-7391";
    project.write("in.csv", ROUND_TRIP_CSV);
    project.write("p.yaml", CSV_TO_MYSQL.replace("@mysql.test", "@mysql.bad"));
    let output = project.osiris(&["run", "p.yaml", "--verbose"]).env("WRITER_WRONG_PASSWORD", secret).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let text = describe(&output);
    assert!(text.contains("step 'write' (@mysql.bad)"), "{text}");
    assert!(text.contains("connection.auth_failed"), "{text}");
    assert!(!text.contains(secret), "{text}");
    let mut stack = vec![project.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{} has the password",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn mysql_writer_config_errors_fail_compilation() {
    let project = Project::new();
    project.write(
        "osiris_connections.yaml",
        "version: 1\nconnections:\n  mysql:\n    test: {host: h, database: d, user: u}\n",
    );
    let upsert = CSV_TO_MYSQL.replace("mode: replace\n      primary_key: id", "mode: upsert");
    project.write("upsert.yaml", upsert);
    let output = project.osiris(&["compile", "upsert.yaml"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let text = describe(&output);
    assert!(text.contains("step 'write' (mysql.writer)") && text.contains("primary_key"), "{text}");
    let both = CSV_TO_MYSQL.replace("mode: replace", "mode: replace\n      write_mode: append");
    project.write("both.yaml", both);
    let output = project.osiris(&["compile", "both.yaml"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(describe(&output).contains("`mode: replace` and `write_mode: append` disagree"), "{}", describe(&output));
}
