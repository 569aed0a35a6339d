//! End-to-end SQL transforms: CSV extractors → duckdb.processor / sql.processor → CSV writer.

mod common;

use common::{Project, describe, jsonl};

const ORDERS: &str = "order_id,customer_id,amount\n1,1,2.5\n2,2,10.0\n3,1,1.25\n4,3,7.0\n5,2,0.5\n6,9,100.0\n";
const CUSTOMERS: &str = "id,name,country\n1,Ada,NO\n2,Bob,IT\n3,\"Lee, Jr.\",PE\n4,Zoë,DE\n";

fn pipeline(component: &str, query: &str) -> String {
    format!(
        r#"
oml_version: "0.1.0"
name: sql-join
steps:
  - id: extract-orders
    component: filesystem.csv_extractor
    mode: read
    config: {{path: data/orders.csv}}
  - id: extract-customers
    component: filesystem.csv_extractor
    mode: read
    needs: []
    config: {{path: data/customers.csv}}
  - id: totals
    component: {component}
    mode: transform
    needs: [extract-orders, extract-customers]
    config:
      query: "{query}"
  - id: write
    component: filesystem.csv_writer
    mode: write
    needs: [totals]
    config: {{path: out/totals.csv}}
"#
    )
}

const JOIN_QUERY: &str = "SELECT c.name, c.country, COUNT(o.order_id) AS orders, SUM(o.amount) AS total \
FROM df_extract_customers c LEFT JOIN df_extract_orders o ON o.customer_id = c.id \
GROUP BY c.name, c.country ORDER BY total DESC NULLS LAST, c.name";

fn project(component: &str, query: &str) -> Project {
    let project = Project::new();
    project.write("data/orders.csv", ORDERS);
    project.write("data/customers.csv", CUSTOMERS);
    project.write("pipeline.yaml", pipeline(component, query));
    project
}

#[test]
fn duckdb_processor_joins_and_aggregates_two_csv_inputs() {
    let project = project("duckdb.processor", JOIN_QUERY);
    let output = project.run(&["run", "pipeline.yaml"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(
        project.read_text("out/totals.csv"),
        "name,country,orders,total\nBob,IT,2,10.5\n\"Lee, Jr.\",PE,1,7.0\nAda,NO,2,3.75\nZoë,DE,0,\n"
    );
}

#[test]
fn sql_processor_runs_the_same_query() {
    let project = project("sql.processor", JOIN_QUERY);
    let output = project.run(&["run", "pipeline.yaml"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(
        project.read_text("out/totals.csv"),
        "name,country,orders,total\nBob,IT,2,10.5\n\"Lee, Jr.\",PE,1,7.0\nAda,NO,2,3.75\nZoë,DE,0,\n"
    );
}

#[test]
fn an_unknown_table_fails_the_step_with_the_available_tables() {
    let project = project("duckdb.processor", "SELECT * FROM df_orders");
    let output = project.run(&["run", "pipeline.yaml"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("df_extract_orders"), "the hint lists the tables:\n{stderr}");
    let events = jsonl(&project.only_run_dir().join("events.jsonl"));
    let error = events.iter().find(|e| e["event"] == "step_error").expect("step_error event");
    assert_eq!(error["step_id"], "totals");
    assert_eq!(error["error_code"], "transform.sql_error");
}

#[test]
fn a_sql_syntax_error_is_reported_at_compile_time() {
    let project = project("sql.processor", "SELEC name FROM df_extract_customers");
    let output = project.run(&["compile", "pipeline.yaml"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let all = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(all.contains("SQL syntax error"), "{all}");
    assert!(all.contains("totals"), "the error names the step:\n{all}");
}

#[test]
fn a_large_sort_under_a_small_budget_matches_a_roomy_run() {
    let project = Project::new();
    let rows = 250_000;
    let mut csv = String::from("id,name\n");
    for i in 0..rows {
        csv.push_str(&format!("{i},name-{:08}-some-padding-text\n", (i * 7919) % rows));
    }
    project.write("data/in.csv", &csv);
    project.write(
        "sort.yaml",
        r#"
oml_version: "0.1.0"
name: sql-sort
steps:
  - id: extract
    component: filesystem.csv_extractor
    mode: read
    config: {path: data/in.csv}
  - id: sorted
    component: sql.processor
    mode: transform
    config: {query: "SELECT name, id FROM df_extract ORDER BY name DESC"}
  - id: write
    component: filesystem.csv_writer
    mode: write
    config: {path: out/sorted.csv}
"#,
    );
    let roomy = project.run(&["run", "sort.yaml"]);
    assert_eq!(roomy.status.code(), Some(0), "{}", describe(&roomy));
    let expected = project.read_text("out/sorted.csv");
    assert_eq!(expected.lines().count(), rows + 1);
    assert!(expected.starts_with("name,id\nname-00249999-some-padding-text,"), "{}", &expected[..80]);

    let tiny = project.run(&["run", "sort.yaml", "--memory-budget", "16MiB"]);
    assert_eq!(tiny.status.code(), Some(0), "{}", describe(&tiny));
    assert!(project.read_text("out/sorted.csv") == expected, "the small-budget run gives the same bytes");
    for dir in project.run_dirs() {
        let artifacts: Vec<_> =
            std::fs::read_dir(dir.join("artifacts/sorted")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(artifacts.iter().all(|n| !n.to_string_lossy().starts_with("datafusion")), "{artifacts:?}");
    }
}

#[test]
fn a_limit_that_stops_reading_early_still_completes_the_run() {
    let project = Project::new();
    let mut csv = String::from("id,name\n");
    for i in 0..200_000 {
        csv.push_str(&format!("{i},name-{i}\n"));
    }
    project.write("data/in.csv", &csv);
    project.write(
        "limit.yaml",
        r#"
oml_version: "0.1.0"
name: sql-limit
steps:
  - id: extract
    component: filesystem.csv_extractor
    mode: read
    config: {path: data/in.csv}
  - id: first
    component: duckdb.processor
    mode: transform
    config: {query: "SELECT id, name FROM df_extract LIMIT 3"}
  - id: write
    component: filesystem.csv_writer
    mode: write
    config: {path: out/first.csv}
"#,
    );
    let output = project.run(&["run", "limit.yaml", "--memory-budget", "1MiB"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(project.read_text("out/first.csv"), "id,name\n0,name-0\n1,name-1\n2,name-2\n");
}
