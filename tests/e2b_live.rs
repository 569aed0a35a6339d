//! Against real E2B: runs only when asked, because it needs `E2B_API_KEY` and the internet.
//! `scripts/test.sh` runs it (`cargo test --test e2b_live -- --ignored`) whenever `E2B_API_KEY`
//! is set; without a key it is reported as ignored, never as passed.
//!
//! The same pipelines as the parity suite's file-only ones go through `--target local` and
//! `--e2b` (E2B's default `base` template, or `OSIRIS_E2B_TEMPLATE`), and the conformance
//! harness requires identical events, metrics, artifacts and output bytes.

mod common;

use common::parity::{Target, assert_same, run_everywhere};
use common::{Project, describe};

const FANOUT: &str = r#"oml_version: "0.1.0"
name: live
steps:
  - id: extract
    component: filesystem.csv_extractor
    mode: read
    config: {path: data/orders.csv}
  - id: write-csv
    component: filesystem.csv_writer
    mode: write
    needs: [extract]
    config: {path: out/orders.csv}
  - id: write-parquet
    component: filesystem.parquet_writer
    mode: write
    needs: [extract]
    config: {path: out/orders.parquet}
"#;

fn real_e2b() -> Target {
    let key = std::env::var("E2B_API_KEY").expect("this test needs E2B_API_KEY (run it with -- --ignored only then)");
    let mut args = vec!["--e2b".to_string(), "--e2b-timeout".into(), "600".into()];
    if let Ok(template) = std::env::var("OSIRIS_E2B_TEMPLATE") {
        args.extend(["--e2b-template".into(), template]);
    }
    let mut env = vec![("E2B_API_KEY".to_string(), key)];
    env.extend(std::env::var("E2B_DOMAIN").ok().map(|d| ("E2B_DOMAIN".to_string(), d)));
    Target { name: "e2b".into(), args, env }
}

#[test]
#[ignore = "needs E2B_API_KEY and the internet; scripts/test.sh runs it when the key is set"]
fn a_fan_out_runs_identically_on_real_e2b() {
    let setup = |p: &Project| {
        p.write("data/orders.csv", common::sample_csv());
        p.write("pipeline.yaml", FANOUT);
    };
    let targets = [Target::local(), real_e2b()];
    let runs =
        run_everywhere(&targets, &setup, &["run", "pipeline.yaml"], &[], &["out/orders.csv", "out/orders.parquet"]);
    for (_, capture) in &runs {
        assert_eq!(capture.output.status.code(), Some(0), "{}: {}", capture.target, describe(&capture.output));
    }
    assert_same(&runs);
    let result: serde_json::Value = serde_json::from_slice(&runs[1].1.output.stdout).unwrap();
    assert!(result["adapter"]["sandbox_id"].is_string(), "{result}");
}
