//! Connections end to end: masking, missing aliases and variables, and proof that a secret never
//! reaches any byte a run produces.

mod common;

use std::path::Path;

use common::{Project, describe, sample_csv, stdout_json};

const CONNECTIONS: &str = r#"version: 1
connections:
  filesystem:
    local:
      default: true
      allow_unknown_keys: true
      base_dir: ${DATA_DIR}
      api_token: ${SECRET_TOKEN}
    literal:
      allow_unknown_keys: true
      base_dir: data
      password: literal-secret-9876
    tricky:
      allow_unknown_keys: true
      base_dir: ${DATA_DIR}
      dsn: "mysql://app:${DSN_PW}@db.local/movies"
      options:
        timeout: 5
        password: ${NESTED_PW}
      api_token: "${TOKEN_HEAD}-literal-tail-5150"
"#;

/// Secret values of the `tricky` alias (in `.env` or the connections file).
const TRICKY_SECRETS: &[&str] = &["Dsn-Pw-8812", "Nested-Pw-3141", "Mixed-Head-2718", "literal-tail-5150"];

fn pipeline(connection: &str) -> String {
    format!(
        r#"oml_version: "0.1.0"
name: with-connection
steps:
  - id: extract
    component: filesystem.csv_extractor
    mode: read
    config:
      connection: "{connection}"
      path: in.csv
  - id: write
    component: filesystem.csv_writer
    mode: write
    config: {{path: out/copy.csv}}
"#
    )
}

/// Every file under `dir` (recursively) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str, skip: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                stack.push(path);
            } else if !skip.contains(&name.as_str()) {
                let bytes = std::fs::read(&path).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    hits.push(path.display().to_string());
                }
            }
        }
    }
    hits
}

#[test]
fn secrets_from_env_and_literals_never_appear_in_anything_a_run_produces() {
    let project = Project::new();
    project.write("osiris_connections.yaml", CONNECTIONS);
    project.write(".env", "SECRET_TOKEN=Osiris-Secret-Value-4711\n");
    project.write("data/in.csv", sample_csv());
    project.write("env_secret.yaml", pipeline("@filesystem.local"));
    project.write("literal_secret.yaml", pipeline("@filesystem.literal"));

    let mut run = project.osiris(&["run", "env_secret.yaml", "--json", "--verbose"]);
    run.env("DATA_DIR", project.file("data"));
    let output = run.output().unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(project.read_text("out/copy.csv"), sample_csv(), "base_dir of the connection resolves `path`");
    let result = stdout_json(&output);
    let run_dir = Path::new(result["session_dir"].as_str().unwrap()).to_path_buf();
    let cleaned: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("artifacts/extract/cleaned_config.json")).unwrap()).unwrap();
    assert_eq!(cleaned["resolved_connection"]["api_token"], "***MASKED***");
    assert_eq!(cleaned["resolved_connection"]["base_dir"], project.file("data").display().to_string());

    let literal = project.run(&["run", "literal_secret.yaml", "--verbose"]);
    assert!(literal.status.success(), "{}", describe(&literal));

    for (secret, skip) in [("Osiris-Secret-Value-4711", ".env"), ("literal-secret-9876", "osiris_connections.yaml")] {
        let hits = files_containing(project.path(), secret, &[skip]);
        assert!(hits.is_empty(), "secret {secret} found in {hits:?}");
        for out in [&output, &literal] {
            assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
            assert!(!String::from_utf8_lossy(&out.stderr).contains(secret));
        }
    }
}

#[test]
fn nested_dsn_and_mixed_secrets_never_appear_in_anything_a_run_produces() {
    let project = Project::new();
    project.write("osiris_connections.yaml", CONNECTIONS);
    project.write(
        ".env",
        "SECRET_TOKEN=unused\nDSN_PW=Dsn-Pw-8812\nNESTED_PW=Nested-Pw-3141\nTOKEN_HEAD=Mixed-Head-2718\n",
    );
    project.write("data/in.csv", sample_csv());
    project.write("tricky.yaml", pipeline("@filesystem.tricky"));

    let mut run = project.osiris(&["run", "tricky.yaml", "--json", "--verbose"]);
    run.env("DATA_DIR", project.file("data"));
    let output = run.output().unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(project.read_text("out/copy.csv"), sample_csv());
    let result = stdout_json(&output);
    let run_dir = Path::new(result["session_dir"].as_str().unwrap()).to_path_buf();
    let cleaned: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("artifacts/extract/cleaned_config.json")).unwrap()).unwrap();
    let connection = &cleaned["resolved_connection"];
    assert_eq!(connection["options"]["password"], "***MASKED***", "{cleaned}");
    assert_eq!(connection["options"]["timeout"], 5, "{cleaned}");
    assert_eq!(connection["dsn"], "***MASKED***", "{cleaned}");
    assert_eq!(connection["api_token"], "***MASKED***", "{cleaned}");
    assert_eq!(connection["base_dir"], project.file("data").display().to_string());

    // An unset variable inside a nested secret is named, with its path, before the run starts.
    project.write(".env", "DSN_PW=Dsn-Pw-8812\nTOKEN_HEAD=Mixed-Head-2718\n");
    let output_unset = project.osiris(&["run", "tricky.yaml"]).env("DATA_DIR", project.file("data")).output().unwrap();
    assert_eq!(output_unset.status.code(), Some(2), "{}", describe(&output_unset));
    assert!(String::from_utf8_lossy(&output_unset.stderr).contains("options.password"), "{}", describe(&output_unset));

    for secret in TRICKY_SECRETS {
        let hits = files_containing(project.path(), secret, &[".env", "osiris_connections.yaml"]);
        assert!(hits.is_empty(), "secret {secret} found in {hits:?}");
        for out in [&output, &output_unset] {
            assert!(!String::from_utf8_lossy(&out.stdout).contains(secret), "{secret} in stdout");
            assert!(!String::from_utf8_lossy(&out.stderr).contains(secret), "{secret} in stderr");
        }
    }
}

#[test]
fn connections_list_masks_secrets_and_reports_env_vars() {
    let project = Project::new();
    project.write("osiris_connections.yaml", CONNECTIONS);
    let output = project.osiris(&["connections", "list", "--json"]).env("SECRET_TOKEN", "xyz-secret").output().unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    let listing = stdout_json(&output);
    let local = &listing["connections"]["filesystem"]["local"];
    assert_eq!(local["is_default"], true);
    assert_eq!(local["env_vars"]["SECRET_TOKEN"], true);
    assert_eq!(local["env_vars"]["DATA_DIR"], false);
    assert_eq!(listing["connections"]["filesystem"]["literal"]["config"]["password"], "***MASKED***");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("literal-secret-9876"));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("xyz-secret"));
    // A secret that is not exactly one `${VAR}` is masked; one `${VAR}` is shown as written.
    let tricky = &listing["connections"]["filesystem"]["tricky"]["config"];
    assert_eq!(tricky["api_token"], "***MASKED***");
    assert_eq!(tricky["dsn"], "***MASKED***");
    assert_eq!(tricky["options"]["password"], "${NESTED_PW}");
    assert_eq!(tricky["options"]["timeout"], 5);
    assert!(!String::from_utf8_lossy(&output.stdout).contains("literal-tail-5150"));
}

#[test]
fn a_missing_connection_alias_fails_before_running_with_exit_2() {
    let project = Project::new();
    project.write("osiris_connections.yaml", CONNECTIONS);
    project.write("p.yaml", pipeline("@filesystem.nope"));
    let output = project.run(&["run", "p.yaml"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("extract") && stderr.contains("nope"), "{stderr}");
    assert!(stderr.contains("local") && stderr.contains("literal"), "lists the available aliases: {stderr}");
    assert!(project.run_dirs().is_empty(), "no run starts");
}

#[test]
fn an_unset_environment_variable_fails_before_running_with_exit_2() {
    let project = Project::new();
    project.write("osiris_connections.yaml", CONNECTIONS);
    project.write("p.yaml", pipeline("@filesystem.local"));
    let output = project
        .osiris(&["run", "p.yaml", "--json"])
        .env_remove("DATA_DIR")
        .env("SECRET_TOKEN", "t0ken-value")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let result = stdout_json(&output);
    assert_eq!(result["phase"], "prepare");
    let message = result["message"].as_str().unwrap();
    assert!(message.contains("DATA_DIR") && message.contains("base_dir"), "{message}");
    assert!(!describe(&output).contains("t0ken-value"));
}

#[test]
fn doctor_checks_every_connection_and_exits_1_when_one_fails() {
    let project = Project::new();
    std::fs::create_dir_all(project.file("data")).unwrap();
    project.write(
        "osiris_connections.yaml",
        "connections:\n  filesystem:\n    good: {base_dir: data}\n    missing_dir: {base_dir: nope}\n    unset_var: {base_dir: \"${NOT_SET_ANYWHERE_XYZ}\"}\n",
    );
    let output = project.run(&["connections", "doctor", "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let report = stdout_json(&output);
    let fs = &report["results"]["filesystem"];
    assert_eq!(fs["good"]["status"], "success");
    assert_eq!(fs["missing_dir"]["status"], "failure");
    assert_eq!(fs["missing_dir"]["category"], "config");
    assert_eq!(fs["unset_var"]["status"], "error");
    assert!(fs["unset_var"]["message"].as_str().unwrap().contains("NOT_SET_ANYWHERE_XYZ"));
    assert_eq!(report["all_ok"], false);

    let good_only = project.run(&["connections", "doctor", "--alias", "good"]);
    assert_eq!(good_only.status.code(), Some(0), "{}", describe(&good_only));
    assert!(String::from_utf8_lossy(&good_only.stdout).contains("@filesystem.good"));
}
