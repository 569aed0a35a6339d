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

#[test]
fn no_adapter_leaks_a_connection_password() {
    let db = ScratchDb::create(&[
        "CREATE TABLE t (id INT PRIMARY KEY, label VARCHAR(20))",
        "INSERT INTO t VALUES (1,'a'),(2,'b')",
    ]);
    let server = LocalSandboxServer::start();
    for target in targets(&server) {
        let project = project(&db);
        let mut outputs = Vec::new();
        for extra in [["--json"], ["--verbose"]] {
            let output = project
                .osiris(&["run", "p.yaml"])
                .args(&target.args)
                .args(extra)
                .env("PROBE_PASSWORD", PROBE_PASSWORD)
                .envs(target.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .output()
                .unwrap();
            assert_eq!(output.status.code(), Some(0), "{}: {}", target.name, describe(&output));
            outputs.push(output);
        }
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
