//! The staging table of a `mysql.writer` replace whose process died (SIGKILL: no cleanup at all)
//! is dropped by the next write of the same table, while the staging table of a replace running
//! at that moment (it holds its server lock) is left alone. Real `osiris` binary, real signal,
//! the test MariaDB of `scripts/services.sh`.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::mysql::{self, MysqlConnection, ScratchDb};
use common::{Project, describe, wait_until};
use mysql_async::prelude::Queryable;

fn replace_pipeline(rows: u64) -> String {
    format!(
        r#"oml_version: "0.1.0"
name: replace
steps:
  - id: rows
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.test"
      query: "SELECT seq AS id, CONCAT('new-', seq) AS pad FROM seq_1_to_{rows}"
  - id: write
    component: mysql.writer
    mode: write
    needs: [rows]
    config:
      connection: "@mysql.test"
      table: order_items
      mode: replace
"#
    )
}

fn side_tables(db: &str) -> Vec<String> {
    let rows = mysql::query(&format!(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' \
         AND TABLE_NAME LIKE 'order\\_items\\_\\_osiris\\_%' ORDER BY TABLE_NAME"
    ));
    rows.into_iter().map(|r| r[0].clone().unwrap()).collect()
}

fn lock_held(name: &str) -> bool {
    mysql::query(&format!("SELECT IS_USED_LOCK('{name}')"))[0][0].is_some()
}

#[test]
fn a_killed_replace_leaves_a_staging_table_that_the_next_write_drops_but_a_live_one_stays() {
    let db = ScratchDb::create(&[
        "CREATE TABLE order_items (id BIGINT PRIMARY KEY, pad TEXT)",
        "INSERT INTO order_items VALUES (0, 'before')",
        // Not a side table of a write (no run tag): never touched.
        "CREATE TABLE order_items__osiris_stage_notatag (id BIGINT)",
    ]);
    // A replace "running now" elsewhere: its lock held, its staging table present.
    let live_runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut live = live_runtime.block_on(mysql::admin_connection());
    live_runtime.block_on(async {
        live.query_drop(format!(
            "CREATE TABLE `{}`.order_items__osiris_stage_0badc0de LIKE `{}`.order_items",
            db.name, db.name
        ))
        .await
        .unwrap();
        let got: Option<i64> = live.query_first("SELECT GET_LOCK('osiris_stage_0badc0de', 0)").await.unwrap();
        assert_eq!(got, Some(1));
    });

    let project = Project::new();
    project.write(
        "osiris_connections.yaml",
        mysql::connections_yaml(&[MysqlConnection::new("test", &db.name, "TEST_PASSWORD")]),
    );
    project.write("p.yaml", replace_pipeline(20_000_000));
    let mut child = project
        .osiris(&["run", "p.yaml", "--json"])
        .env("TEST_PASSWORD", mysql::password())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut killed_stage = String::new();
    wait_until("the replace created its staging table", Duration::from_secs(60), || {
        let tables = side_tables(&db.name);
        match tables.iter().find(|t| {
            t.starts_with("order_items__osiris_stage_") && !t.ends_with("0badc0de") && !t.ends_with("notatag")
        }) {
            Some(t) => {
                killed_stage = t.clone();
                true
            }
            None => false,
        }
    });
    child.kill().unwrap(); // SIGKILL: the process cannot clean up
    child.wait().unwrap();
    let tag = killed_stage.rsplit('_').next().unwrap().to_string();
    // The server ends the dead process's session (the socket closed), and with it its lock.
    wait_until("the killed writer's session ends", Duration::from_secs(30), || {
        !lock_held(&format!("osiris_stage_{tag}"))
    });
    assert!(side_tables(&db.name).contains(&killed_stage), "SIGKILL left {killed_stage} behind");

    // The next replace of the table drops it, and only it.
    project.write("p.yaml", replace_pipeline(10));
    let output = project.osiris(&["run", "p.yaml", "--json"]).env("TEST_PASSWORD", mysql::password()).output().unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        side_tables(&db.name),
        ["order_items__osiris_stage_0badc0de", "order_items__osiris_stage_notatag"],
        "the stale staging table is gone; the live one and the unrelated one stay"
    );
    assert_eq!(
        mysql::query(&format!("SELECT COUNT(*), MIN(pad) FROM `{}`.order_items", db.name)),
        [[Some("10".to_string()), Some("new-1".to_string())]]
    );
    live_runtime.block_on(live.disconnect()).unwrap();
}
