//! Secrets stay out of everything a run produces, on every adapter.
//!
//! A MariaDB account with a recognisable password (`scripts/services.sh` creates it) is used
//! twice: through `${VAR}` from the environment and written literally in
//! `osiris_connections.yaml`. Every byte the run produced — the run directory with its
//! `prepared_run.json`, the outputs, stdout and stderr (also with `--verbose`), and for E2B
//! everything uploaded to the sandbox — is searched for the password.

mod common;

use common::mysql::{self, ScratchDb};
use common::parity::{LocalSandboxServer, Target};
use common::{Project, assert_secret_absent, describe};

const PROBE_USER: &str = "osiris_secret_probe";
const PROBE_PASSWORD: &str = "Probe-S3cret-Wq7Zk2-recognisable";

fn targets(server: &LocalSandboxServer) -> Vec<Target> {
    vec![Target::local(), Target::process(), Target::e2b(server)]
}

fn project(db: &ScratchDb) -> Project {
    let project = Project::new();
    let (host, port, database) = (mysql::host(), mysql::port(), &db.name);
    project.write(
        "osiris_connections.yaml",
        format!(
            "version: 1\nconnections:\n  mysql:\n    from_env:\n      host: {host}\n      port: {port}\n      database: {database}\n      user: {PROBE_USER}\n      password: ${{PROBE_PASSWORD}}\n    literal:\n      host: {host}\n      port: {port}\n      database: {database}\n      user: {PROBE_USER}\n      password: \"{PROBE_PASSWORD}\"\n"
        ),
    );
    project.write(
        "p.yaml",
        r#"oml_version: "0.1.0"
name: secrets
steps:
  - id: from-env
    component: mysql.extractor
    mode: read
    config: {connection: "@mysql.from_env", query: "SELECT id, label FROM t ORDER BY id"}
  - id: write-env
    component: filesystem.csv_writer
    mode: write
    needs: [from-env]
    config: {path: out/env.csv}
  - id: literal
    component: mysql.extractor
    mode: read
    needs: []
    config: {connection: "@mysql.literal", query: "SELECT id, label FROM t ORDER BY id"}
  - id: write-literal
    component: filesystem.csv_writer
    mode: write
    needs: [literal]
    config: {path: out/literal.csv}
"#,
    );
    project
}

/// Runs `p.yaml` on `target` with `--json`, then with `--verbose`, the probe's password in the
/// environment; each run must exit with `code` (`what` names the case in failures).
fn run_with_probe(project: &Project, target: &Target, code: i32, what: &str) -> Vec<std::process::Output> {
    [["--json"], ["--verbose"]]
        .into_iter()
        .map(|extra| {
            let output = project
                .osiris(&["run", "p.yaml"])
                .args(&target.args)
                .args(extra)
                .env("PROBE_PASSWORD", PROBE_PASSWORD)
                .envs(target.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .output()
                .unwrap();
            assert_eq!(output.status.code(), Some(code), "{} {what}: {}", target.name, describe(&output));
            output
        })
        .collect()
}

#[test]
fn no_adapter_leaks_a_connection_password() {
    let db = ScratchDb::create(&[
        "CREATE TABLE t (id INT PRIMARY KEY, label VARCHAR(20))",
        "INSERT INTO t VALUES (1,'a'),(2,'b')",
    ]);
    let server = LocalSandboxServer::start();
    for target in targets(&server) {
        let project = project(&db);
        let outputs = run_with_probe(&project, &target, 0, "");
        assert_eq!(project.read_text("out/env.csv"), "id,label\n1,a\n2,b\n");
        assert_eq!(project.read_text("out/literal.csv"), "id,label\n1,a\n2,b\n");
        let runs = project.run_dirs();
        assert_eq!(runs.len(), 2);
        for run in &runs {
            let prepared = std::fs::read_to_string(run.join("prepared_run.json")).unwrap();
            assert!(prepared.contains("\"PROBE_PASSWORD\""), "the placeholder names the variable: {prepared}");
        }
        let outputs: Vec<&std::process::Output> = outputs.iter().collect();
        // Everything the runs wrote: the project holds only what osiris made besides these inputs.
        std::fs::remove_file(project.file("osiris_connections.yaml")).unwrap();
        assert_secret_absent(PROBE_PASSWORD, &outputs, project.path());
    }
    // Everything that went to a sandbox (the test server keeps their homes): the prepared run,
    // the worker's artifacts — and the shipped binary, which is this very binary byte for byte.
    let shipped = std::fs::read(env!("CARGO_BIN_EXE_osiris")).unwrap();
    let mut checked = 0;
    for file in common::parity::files_under(server.root.path()) {
        let bytes = std::fs::read(server.root.path().join(&file)).unwrap();
        if file.contains(".osiris/bin/") {
            assert!(bytes == shipped, "{file} is not the osiris binary");
            continue;
        }
        assert!(
            !bytes.windows(PROBE_PASSWORD.len()).any(|w| w == PROBE_PASSWORD.as_bytes()),
            "{file} holds the secret"
        );
        checked += 1;
    }
    assert!(checked >= 4, "the sandboxes held {checked} files besides the binary");
}

/// Connection fields whose names mean a secret (issue 9, §1.4), each with a recognisable value.
const PLANTED: &[(&str, &str)] = &[
    ("passphrase", "Planted-Passphrase-7Qx1"),
    ("api-key", "Planted-ApiKey-7Qx2"),
    ("dbPassword", "Planted-DbPassword-7Qx3"),
    ("password2", "Planted-Password2-7Qx4"),
    ("sslPassword", "Planted-SslPassword-7Qx5"),
    ("bearer", "Planted-Bearer-7Qx6"),
    ("secretAccessKey", "Planted-SecretAccessKey-7Qx7"),
    ("private-key", "Planted-PrivateKey-7Qx8"),
    ("clientSecret", "Planted-ClientSecret-7Qx9"),
];

/// The same names nested in a mapping, in a list of mappings, with other values.
fn nested_value(name: &str) -> String {
    format!("Nested-{}-8Rw", name.replace('-', ""))
}

fn planted_values() -> Vec<String> {
    PLANTED.iter().map(|(_, v)| v.to_string()).chain(PLANTED.iter().map(|(n, _)| nested_value(n))).collect()
}

fn planted_project(db: &ScratchDb, query: &str) -> Project {
    let project = Project::new();
    let (host, port, database) = (mysql::host(), mysql::port(), &db.name);
    let mut yaml = format!(
        "version: 1\nconnections:\n  mysql:\n    planted:\n      host: {host}\n      port: {port}\n      database: {database}\n      user: {PROBE_USER}\n      password: ${{PROBE_PASSWORD}}\n"
    );
    // Keys no mysql component declares are errors unless the entry opts out; the planted ones must
    // reach the prepared run to prove they are masked by meaning there.
    yaml.push_str("      allow_unknown_keys: true\n");
    for (name, value) in PLANTED {
        yaml.push_str(&format!("      {name}: \"{value}\"\n"));
    }
    yaml.push_str("      options:\n        deeper:\n");
    for (name, _) in PLANTED {
        yaml.push_str(&format!("          {name}: \"{}\"\n", nested_value(name)));
    }
    yaml.push_str("      hosts:\n");
    for (name, _) in PLANTED {
        yaml.push_str(&format!("        - {{name: replica, {name}: \"{}\"}}\n", nested_value(name)));
    }
    project.write("osiris_connections.yaml", yaml);
    project.write(
        "p.yaml",
        format!(
            "oml_version: \"0.1.0\"\nname: planted\nsteps:\n  - id: extract\n    component: mysql.extractor\n    mode: read\n    config: {{connection: \"@mysql.planted\", query: \"{query}\"}}\n  - id: write\n    component: filesystem.csv_writer\n    mode: write\n    config: {{path: out/t.csv}}\n"
        ),
    );
    project
}

#[test]
fn connection_fields_named_like_secrets_leak_nowhere_on_any_adapter() {
    let db = ScratchDb::create(&[
        "CREATE TABLE t (id INT PRIMARY KEY, label VARCHAR(20))",
        "INSERT INTO t VALUES (1,'a'),(2,'b')",
    ]);
    let server = LocalSandboxServer::start();
    for target in targets(&server) {
        // A run that succeeds and one that fails (its error message names the step and the
        // connection), each with --json and --verbose.
        for (query, code) in [("SELECT id, label FROM t ORDER BY id", 0), ("SELECT nope FROM t", 1)] {
            let project = planted_project(&db, query);
            let mut outputs = run_with_probe(&project, &target, code, query);
            if code == 0 {
                assert_eq!(project.read_text("out/t.csv"), "id,label\n1,a\n2,b\n");
            }
            for listing in
                [&["connections", "list"][..], &["connections", "list", "--json"], &["connections", "doctor"]]
            {
                let output = project.osiris(listing).env("PROBE_PASSWORD", PROBE_PASSWORD).output().unwrap();
                assert_eq!(output.status.code(), Some(0), "{listing:?}: {}", describe(&output));
                outputs.push(output);
            }
            let prepared = std::fs::read_to_string(project.run_dirs()[0].join("prepared_run.json")).unwrap();
            assert!(prepared.contains("OSIRIS_SECRET_MYSQL_PLANTED_"), "the planted fields travel as variables");
            std::fs::remove_file(project.file("osiris_connections.yaml")).unwrap();
            let outputs: Vec<&std::process::Output> = outputs.iter().collect();
            for value in planted_values() {
                assert_secret_absent(&value, &outputs, project.path());
            }
        }
    }
    let shipped = std::fs::read(env!("CARGO_BIN_EXE_osiris")).unwrap();
    for file in common::parity::files_under(server.root.path()) {
        let bytes = std::fs::read(server.root.path().join(&file)).unwrap();
        if file.contains(".osiris/bin/") {
            assert!(bytes == shipped, "{file} is not the osiris binary");
            continue;
        }
        for value in planted_values() {
            assert!(!bytes.windows(value.len()).any(|w| w == value.as_bytes()), "{file} holds {value}");
        }
    }
}
