//! `osiris oml validate` and `osiris compile` end to end: every validation error class with its
//! code and position, exit codes, and byte-identical compile output.

mod common;

use common::{Project, describe, stdout_json};
use serde_json::Value;

const VALID: &str = r#"oml_version: "0.1.0"
name: Orders Export
params:
  out: {default: out/orders.csv}
profiles:
  prod:
    params: {out: out/prod.csv}
steps:
  - id: extract
    component: filesystem.csv_extractor
    mode: read
    config: {path: data/in.csv}
  - id: write
    component: filesystem.csv_writer
    mode: write
    config: {path: "${params.out}"}
"#;

/// Validates `oml` with `--json` and returns (exit code, the errors' (code, line) pairs).
fn validate(oml: &str) -> (Option<i32>, Vec<(String, u64)>, Value) {
    let project = Project::new();
    project.write("p.yaml", oml);
    let output = project.run(&["oml", "validate", "p.yaml", "--json"]);
    let report = stdout_json(&output);
    let errors = report["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array: {}", describe(&output)))
        .iter()
        .map(|e| (e["code"].as_str().unwrap().to_string(), e["line"].as_u64().unwrap_or(0)))
        .collect();
    (output.status.code(), errors, report)
}

fn step(id: &str, component: &str, mode: &str, extra: &str) -> String {
    format!("  - id: {id}\n    component: {component}\n    mode: {mode}\n{extra}")
}

fn pipeline(steps: &[String]) -> String {
    format!("oml_version: \"0.1.0\"\nname: p\nsteps:\n{}", steps.concat())
}

#[test]
fn a_valid_pipeline_validates_with_exit_0() {
    let (code, errors, report) = validate(VALID);
    assert_eq!(code, Some(0));
    assert!(errors.is_empty());
    assert_eq!(report["valid"], true);
    assert_eq!(report["steps_count"], 2);
}

#[test]
fn malformed_yaml_is_reported_with_its_line() {
    let (code, errors, _) = validate("oml_version: \"0.1.0\"\nname: p\nsteps:\n  - id: a\n    config: {path: [1, 2}\n");
    assert_eq!(code, Some(1));
    assert_eq!(errors, vec![("yaml_syntax".to_string(), 5)]);
}

#[test]
fn unknown_component_is_reported_with_a_suggestion() {
    let oml = pipeline(&[step("a", "filesystem.csv_extractr", "read", "    config: {path: x.csv}\n")]);
    let (code, errors, report) = validate(&oml);
    assert_eq!(code, Some(1));
    assert_eq!(errors, vec![("unknown_component".to_string(), 5)]);
    assert!(report["errors"][0]["hint"].as_str().unwrap().contains("filesystem.csv_extractor"));
}

#[test]
fn cycles_duplicate_ids_and_unknown_dependencies_are_all_reported_at_once() {
    let oml = pipeline(&[
        step("a", "filesystem.csv_extractor", "read", "    config: {path: x.csv}\n"),
        step("b", "filesystem.csv_writer", "write", "    needs: [c]\n    config: {path: b.csv}\n"),
        step("c", "filesystem.csv_writer", "write", "    needs: [b]\n    config: {path: c.csv}\n"),
        step("a", "filesystem.csv_writer", "write", "    needs: [nowhere]\n    config: {path: d.csv}\n"),
    ]);
    let (code, errors, report) = validate(&oml);
    assert_eq!(code, Some(1));
    let codes: Vec<&str> = errors.iter().map(|(c, _)| c.as_str()).collect();
    assert!(codes.contains(&"dependency_cycle"), "{codes:?}");
    assert!(codes.contains(&"duplicate_id"), "{codes:?}");
    assert!(codes.contains(&"unknown_dependency"), "{codes:?}");
    let cycle = report["errors"].as_array().unwrap().iter().find(|e| e["code"] == "dependency_cycle").unwrap();
    assert!(cycle["message"].as_str().unwrap().contains("b → c → b"), "{cycle}");
}

#[test]
fn unknown_config_keys_and_inline_secrets_are_rejected_without_echoing_the_secret() {
    let oml = pipeline(&[
        step("a", "filesystem.csv_extractor", "read", "    config: {path: x.csv}\n"),
        step(
            "b",
            "filesystem.csv_writer",
            "write",
            "    config:\n      path: b.csv\n      delimter: \";\"\n      password: hunter2-plaintext\n",
        ),
    ]);
    let (code, errors, report) = validate(&oml);
    assert_eq!(code, Some(1));
    assert!(errors.contains(&("unknown_config_key".to_string(), 13)), "{errors:?}");
    assert!(errors.contains(&("inline_secret".to_string(), 14)), "{errors:?}");
    let text = report.to_string();
    assert!(!text.contains("hunter2-plaintext"), "the secret value must not be echoed: {text}");
    assert!(text.contains("did you mean 'delimiter'"), "{text}");
}

#[test]
fn compile_fails_with_exit_2_and_lists_every_problem() {
    let project = Project::new();
    let oml = pipeline(&[
        step("a", "nope.component", "read", "    config: {}\n"),
        step("a", "filesystem.csv_writer", "write", "    config: {path: p.csv, api_key: abcdefgh123}\n"),
    ]);
    project.write("p.yaml", oml);
    let output = project.run(&["compile", "p.yaml"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in ["p.yaml:5:5", "unknown_component", "duplicate_id", "inline_secret"] {
        assert!(stderr.contains(expected), "missing {expected}:\n{stderr}");
    }
    assert!(!stderr.contains("abcdefgh123"));
    assert!(!project.file("build").exists(), "nothing is written for an invalid pipeline");

    let json = project.run(&["compile", "p.yaml", "--json"]);
    assert_eq!(json.status.code(), Some(2));
    let result = stdout_json(&json);
    assert_eq!(result["status"], "error");
    assert_eq!(result["error_type"], "validation_error");
    assert!(result["errors"].as_array().unwrap().len() >= 3);
}

#[test]
fn compile_is_deterministic_and_writes_the_osiris_build_layout() {
    let project = Project::new();
    project.write("orders_export.yaml", VALID);
    let first = project.run(&["compile", "orders_export.yaml", "--json"]);
    assert!(first.status.success(), "{}", describe(&first));
    let first = stdout_json(&first);
    let build_dir = project.file(first["build_dir"].as_str().unwrap());
    let hash = first["manifest_hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 64);
    let short = first["manifest_short"].as_str().unwrap();
    assert!(build_dir.ends_with(format!("build/pipelines/dev/orders-export/{short}-{hash}")), "{build_dir:?}");

    let files = ["plan.json", "fingerprints.json", "cfg/extract.json", "cfg/write.json", "manifest.yaml"];
    let snapshot: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(build_dir.join(f)).unwrap()).collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = stdout_json(&project.run(&["compile", "orders_export.yaml", "--json"]));
    assert_eq!(second["manifest_hash"], hash.as_str());
    for (file, before) in files.iter().zip(&snapshot) {
        let after = std::fs::read(build_dir.join(file)).unwrap();
        if *file == "manifest.yaml" {
            let strip = |b: &[u8]| {
                String::from_utf8_lossy(b)
                    .lines()
                    .filter(|l| !l.contains("generated_at"))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(strip(before), strip(&after), "manifest differs beyond generated_at");
        } else {
            assert_eq!(before, &after, "{file} differs between compiles");
        }
    }

    let cfg: Value = serde_json::from_slice(&std::fs::read(build_dir.join("cfg/write.json")).unwrap()).unwrap();
    assert_eq!(cfg["component"], "filesystem.csv_writer");
    assert_eq!(cfg["mode"], "write");
    assert_eq!(cfg["path"], "out/orders.csv");
    assert_eq!(cfg["delimiter"], ",", "spec defaults are filled in");
    let manifest = std::fs::read_to_string(build_dir.join("manifest.yaml")).unwrap();
    assert!(manifest.starts_with("---\n") && manifest.trim_end().ends_with("..."), "{manifest}");
    let pointer = std::fs::read_to_string(project.file(".osiris/index/last_compile.txt")).unwrap();
    assert_eq!(pointer.lines().nth(1), Some(hash.as_str()));
}

#[test]
fn params_follow_osiris_precedence_and_change_the_hash() {
    let project = Project::new();
    project.write("data/in.csv", "id\n1\n");
    project.write("p.yaml", VALID);
    let hash_and_out = |args: &[&str], env: Option<(&str, &str)>| {
        let mut cmd = project.osiris(&[&["compile", "p.yaml", "--json"], args].concat());
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let output = cmd.output().unwrap();
        assert!(output.status.success(), "{}", describe(&output));
        let result = stdout_json(&output);
        let dir = project.file(result["build_dir"].as_str().unwrap());
        let cfg: Value = serde_json::from_slice(&std::fs::read(dir.join("cfg/write.json")).unwrap()).unwrap();
        (result["manifest_hash"].as_str().unwrap().to_string(), cfg["path"].as_str().unwrap().to_string())
    };
    let (default_hash, default_out) = hash_and_out(&[], None);
    assert_eq!(default_out, "out/orders.csv");
    let (env_hash, env_out) = hash_and_out(&[], Some(("OSIRIS_PARAM_OUT", "out/env.csv")));
    assert_eq!(env_out, "out/env.csv");
    assert_ne!(env_hash, default_hash);
    let (_, profile_out) = hash_and_out(&["--profile", "prod"], Some(("OSIRIS_PARAM_OUT", "out/env.csv")));
    assert_eq!(profile_out, "out/prod.csv", "profile params beat the environment");
    let (_, cli_out) = hash_and_out(&["--profile", "prod", "--param", "out=out/cli.csv"], None);
    assert_eq!(cli_out, "out/cli.csv", "--param beats everything");

    let run = project.run(&["run", "--last-compile", "--json"]);
    assert!(run.status.success(), "{}", describe(&run));
    assert_eq!(project.read_text("out/cli.csv"), "id\n1\n");
}

#[test]
fn usage_errors_exit_2() {
    let project = Project::new();
    assert_eq!(project.run(&["run"]).status.code(), Some(2));
    assert_eq!(project.run(&["compile", "--param", "novalue", "x.yaml"]).status.code(), Some(2));
    assert_eq!(project.run(&["run", "x.yaml", "--memory-budget", "lots"]).status.code(), Some(2));
    let missing = project.run(&["run", "missing.yaml"]);
    assert_eq!(missing.status.code(), Some(2), "{}", describe(&missing));
    assert_eq!(project.run(&["run", "--last-compile", "--param", "a=b"]).status.code(), Some(2));
    let no_compile = project.run(&["run", "--last-compile"]);
    assert_eq!(no_compile.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_compile.stderr).contains("osiris compile"));
}

#[test]
fn placeholders_in_ids_and_needs_are_rejected_so_params_cannot_shape_paths() {
    let oml = VALID.replace("id: write", "id: \"${params.out}\"").replace(
        "config: {path: \"${params.out}\"}",
        "needs: [\"${params.out}\"]\n    config: {path: \"${params.out}\"}",
    );
    let (code, errors, _) = validate(&oml);
    assert_eq!(code, Some(1), "{errors:?}");
    let codes: Vec<&str> = errors.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(codes, vec!["placeholder_not_allowed", "placeholder_not_allowed"], "{errors:?}");
    let project = Project::new();
    project.write("p.yaml", &oml);
    let output = project.run(&["compile", "p.yaml", "--param", "out=../../escape"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("placeholder_not_allowed"), "{}", describe(&output));
    assert!(!project.path().join("build").exists(), "nothing is written");
}

#[test]
fn a_profile_that_is_not_a_plain_name_is_a_compile_error_with_exit_2() {
    let project = Project::new();
    project.write("p.yaml", VALID);
    for bad in ["../../outside", "a/b", ".hidden"] {
        let output = project.run(&["compile", "p.yaml", "--profile", bad]);
        assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
        assert!(String::from_utf8_lossy(&output.stderr).contains("invalid profile name"), "{}", describe(&output));
    }
    assert!(!project.path().join("build").exists(), "nothing is written");
    let run = project.run(&["run", "p.yaml", "--profile", "../x"]);
    assert_eq!(run.status.code(), Some(2), "{}", describe(&run));
    assert!(project.run_dirs().is_empty());
    assert!(project.run(&["compile", "p.yaml", "--profile", "prod"]).status.success());
}
