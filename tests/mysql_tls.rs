//! TLS to MySQL through the real `osiris` binary against real MariaDB instances with TLS
//! (`scripts/mysql_tls_services.sh`, run by `scripts/services.sh`; certificates generated there):
//! `ssl_mode` REQUIRED / VERIFY_CA / VERIFY_IDENTITY / DISABLED / PREFERRED for the extractor's
//! client, the writer and `connections doctor`, a client certificate, a server that requires
//! secure transport and the plain server without TLS. Fails, never skips, when a server is missing.

mod common;

use std::path::Path;
use std::process::Output;

use common::mysql_tls::{self, TlsConnection, cert, strict_port, tls_port};
use common::{Project, describe, jsonl, stdout_json};

/// `@mysql.<from>` → `out/status.csv` (the session's `Ssl_cipher` as the server reports it) and
/// 500 generated rows of `@mysql.<from>` → table `copied` of `@mysql.<to>` (mode replace).
fn cipher_and_copy(from: &str, to: &str) -> String {
    format!(
        r#"oml_version: "0.1.0"
name: tls
steps:
  - id: status
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.{from}"
      query: "SHOW SESSION STATUS LIKE 'Ssl_cipher'"
  - id: write-status
    component: filesystem.csv_writer
    mode: write
    needs: [status]
    config: {{path: out/status.csv}}
  - id: rows
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.{from}"
      query: "SELECT seq AS id, CONCAT('row-', seq) AS name FROM seq_1_to_500"
  - id: copy
    component: mysql.writer
    mode: write
    needs: [rows]
    config:
      connection: "@mysql.{to}"
      table: copied
      mode: replace
      primary_key: id
"#
    )
}

/// Only the extractor: `@mysql.<alias>` → `out/one.csv`.
fn extract_only(alias: &str) -> String {
    format!(
        r#"oml_version: "0.1.0"
name: tls-extract
steps:
  - id: extract
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.{alias}"
      query: "SELECT 1 AS one"
  - id: write
    component: filesystem.csv_writer
    mode: write
    needs: [extract]
    config: {{path: out/one.csv}}
"#
    )
}

fn project(connections: &[TlsConnection<'_>], pipeline: &str) -> Project {
    let project = Project::new();
    project.write("osiris_connections.yaml", mysql_tls::connections_yaml(connections));
    project.write("p.yaml", pipeline);
    project
}

fn run(project: &Project) -> Output {
    project.osiris(&["run", "p.yaml", "--json"]).env("TEST_PASSWORD", common::mysql::password()).output().unwrap()
}

fn doctor(project: &Project) -> serde_json::Value {
    let output = project
        .osiris(&["connections", "doctor", "--json"])
        .env("TEST_PASSWORD", common::mysql::password())
        .output()
        .unwrap();
    stdout_json(&output)
}

/// The cipher in `out/status.csv` (`Variable_name,Value` / `Ssl_cipher,<cipher>`).
fn reported_cipher(project: &Project) -> String {
    let csv = project.read_text("out/status.csv");
    let line = csv.lines().find(|l| l.starts_with("Ssl_cipher,")).unwrap_or_else(|| panic!("no Ssl_cipher in {csv}"));
    line["Ssl_cipher,".len()..].to_string()
}

/// Asserts a run failed in `step` with `code`; returns the message and the hint.
fn assert_failed(output: &Output, step: &str, alias: &str, code: &str) -> (String, String) {
    assert_eq!(output.status.code(), Some(1), "{}", describe(output));
    let result = stdout_json(output);
    assert_eq!(result["failed_step"], step, "{result}");
    assert_eq!(result["error_code"], code, "{result}");
    let message = result["message"].as_str().unwrap().to_string();
    assert!(message.contains(&format!("step '{step}' (@mysql.{alias})")), "{message}");
    let events = jsonl(&Path::new(result["session_dir"].as_str().unwrap()).join("events.jsonl"));
    assert!(
        events.iter().any(|e| e["event"] == "step_error" && e["step_id"] == step && e["error_code"] == code),
        "{events:?}"
    );
    (message, result["hint"].as_str().unwrap_or_default().to_string())
}

#[test]
fn required_encrypts_the_extractor_and_the_writer_on_a_server_that_accepts_only_tls() {
    let db = mysql_tls::scratch_db(strict_port(), &[]);
    let strict = TlsConnection::new("strict", "127.0.0.1", strict_port(), &db.name).with("ssl_mode", "REQUIRED");
    let project = project(&[strict], &cipher_and_copy("strict", "strict"));
    let output = run(&project);
    assert!(output.status.success(), "{}", describe(&output));
    let cipher = reported_cipher(&project);
    assert!(cipher.starts_with("TLS_") || cipher.contains("AES") || cipher.contains("CHACHA"), "cipher: {cipher}");
    // The server refuses every plaintext login, so the writer's rows arrived over TLS too.
    let copied = mysql_tls::query(strict_port(), &format!("SELECT COUNT(*), MAX(name) FROM `{}`.copied", db.name));
    assert_eq!(copied, [[Some("500".to_string()), Some("row-99".to_string())]]);
}

#[test]
fn verify_ca_checks_the_chain_and_accepts_any_name_in_every_spelling() {
    let db = mysql_tls::scratch_db(tls_port(), &[]);
    // The certificate names `localhost` only; VERIFY_CA by 127.0.0.1 must still connect.
    let ok = TlsConnection::new("ca", "127.0.0.1", tls_port(), &db.name)
        .with("sslmode", "verify-ca")
        .with("ssl-ca", cert("ca.pem"));
    let implied = TlsConnection::new("implied", "127.0.0.1", tls_port(), &db.name).with("ssl_ca", cert("ca.pem"));
    let project = project(&[ok, implied], &cipher_and_copy("ca", "implied"));
    let output = run(&project);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(!reported_cipher(&project).is_empty());
    assert_eq!(
        mysql_tls::query(tls_port(), &format!("SELECT COUNT(*) FROM `{}`.copied", db.name)),
        [[Some("500".to_string())]]
    );
    let report = doctor(&project);
    for alias in ["ca", "implied"] {
        let r = &report["results"]["mysql"][alias];
        assert_eq!(r["status"], "success", "{report}");
        assert_eq!(r["ssl_mode"], "VERIFY_CA", "{report}");
        assert!(r["tls"]["cipher"].as_str().is_some_and(|c| !c.is_empty()), "{report}");
        assert!(r["message"].as_str().unwrap().contains("TLS"), "{report}");
    }
}

#[test]
fn verify_ca_with_the_wrong_ca_fails_naming_the_ca_for_the_extractor_and_the_writer() {
    let db = mysql_tls::scratch_db(tls_port(), &[]);
    let wrong = |alias| {
        TlsConnection::new(alias, "localhost", tls_port(), &db.name)
            .with("ssl_mode", "VERIFY_CA")
            .with("ssl_ca", cert("wrong-ca.pem"))
    };
    let plain = TlsConnection::new("plain", "127.0.0.1", tls_port(), &db.name);
    let extracting = project(&[wrong("wrong")], &extract_only("wrong"));
    let (message, hint) = assert_failed(&run(&extracting), "extract", "wrong", "connection.tls");
    assert!(message.contains("ssl_mode VERIFY_CA") && message.contains("UnknownIssuer"), "{message}");
    assert!(hint.contains("ssl_ca"), "{hint}");
    assert!(!extracting.file("out/one.csv").exists());

    let writing = project(&[plain, wrong("wrong")], &cipher_and_copy("plain", "wrong"));
    let (message, _) = assert_failed(&run(&writing), "copy", "wrong", "connection.tls");
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert!(mysql_tls::query(tls_port(), &format!("SHOW TABLES FROM `{}`", db.name)).is_empty());
}

#[test]
fn verify_identity_needs_the_name_in_the_certificate() {
    let db = mysql_tls::scratch_db(tls_port(), &[]);
    let by = |alias, host| {
        TlsConnection::new(alias, host, tls_port(), &db.name)
            .with("ssl_mode", "VERIFY_IDENTITY")
            .with("ssl_ca", cert("ca.pem"))
    };
    // By `localhost` (the name in the certificate): both clients connect.
    let project1 = project(&[by("named", "localhost")], &cipher_and_copy("named", "named"));
    let output = run(&project1);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(!reported_cipher(&project1).is_empty());

    // By 127.0.0.1 (not in the certificate): both fail clearly.
    let project2 = project(&[by("ip", "127.0.0.1")], &extract_only("ip"));
    let (message, hint) = assert_failed(&run(&project2), "extract", "ip", "connection.tls");
    assert!(message.contains("not valid for name \"127.0.0.1\""), "{message}");
    assert!(hint.contains("VERIFY_CA"), "{hint}");
    let project3 = project(&[by("named", "localhost"), by("ip", "127.0.0.1")], &cipher_and_copy("named", "ip"));
    let (message, _) = assert_failed(&run(&project3), "copy", "ip", "connection.tls");
    assert!(message.contains("127.0.0.1"), "{message}");
}

#[test]
fn a_server_that_requires_secure_transport_refuses_disabled_with_a_message_to_enable_tls() {
    let db = mysql_tls::scratch_db(strict_port(), &[]);
    let disabled = TlsConnection::new("off", "127.0.0.1", strict_port(), &db.name).with("ssl_mode", "DISABLED");
    let project = project(&[disabled], &extract_only("off"));
    let (message, hint) = assert_failed(&run(&project), "extract", "off", "connection.auth_failed");
    assert!(message.contains("ssl_mode DISABLED") && message.contains("requires secure transport"), "{message}");
    assert!(hint.contains("ssl_mode: REQUIRED"), "{hint}");
    assert!(!project.file("out/one.csv").exists());
}

#[test]
fn required_against_a_server_without_tls_fails_and_preferred_falls_back_to_plaintext() {
    // The plain server of services.sh has no TLS.
    let db = common::mysql::ScratchDb::create(&[]);
    let host = common::mysql::host();
    let port = common::mysql::port();
    let required = TlsConnection::new("required", &host, port, &db.name).with("ssl_mode", "required");
    let preferred = TlsConnection::new("preferred", &host, port, &db.name);
    let tls_db = mysql_tls::scratch_db(tls_port(), &[]);
    let offered = TlsConnection::new("offered", "127.0.0.1", tls_port(), &tls_db.name);
    let project = project(&[required, preferred, offered], &extract_only("required"));
    let (message, hint) = assert_failed(&run(&project), "extract", "required", "connection.tls");
    assert!(message.contains("does not offer TLS, but ssl_mode is REQUIRED"), "{message}");
    assert!(hint.contains("PREFERRED"), "{hint}");

    let report = doctor(&project);
    let results = &report["results"]["mysql"];
    assert_eq!(results["required"]["status"], "failure", "{report}");
    assert!(results["required"]["message"].as_str().unwrap().contains("does not offer TLS"), "{report}");
    assert_eq!(results["preferred"]["status"], "success", "{report}");
    assert_eq!(results["preferred"]["tls"], serde_json::Value::Null, "{report}");
    assert!(results["preferred"]["message"].as_str().unwrap().contains("NOT encrypted"), "{report}");
    // PREFERRED (the default) where the server offers TLS: encrypted.
    assert_eq!(results["offered"]["status"], "success", "{report}");
    assert_eq!(results["offered"]["ssl_mode"], "PREFERRED", "{report}");
    assert!(results["offered"]["tls"]["version"].as_str().unwrap().starts_with("TLSv1."), "{report}");

    // The text report says it too.
    let text =
        project.osiris(&["connections", "doctor"]).env("TEST_PASSWORD", common::mysql::password()).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.lines().any(|l| l.contains("@mysql.offered") && l.contains("ok, TLS TLSv1.")), "{text}");
}

#[test]
fn a_client_certificate_logs_in_an_account_that_requires_one() {
    let db = mysql_tls::scratch_db(tls_port(), &[]);
    let with_cert =
        TlsConnection { user: "osiris_x509".into(), ..TlsConnection::new("x509", "localhost", tls_port(), &db.name) }
            .with("ssl_mode", "VERIFY_IDENTITY")
            .with("ssl_ca", cert("ca.pem"))
            .with("ssl_cert", cert("client-cert.pem"))
            .with("ssl_key", cert("client-key.pem"));
    let without =
        TlsConnection { user: "osiris_x509".into(), ..TlsConnection::new("nocert", "localhost", tls_port(), &db.name) }
            .with("ssl_mode", "REQUIRED");
    let project = project(&[with_cert, without], &cipher_and_copy("x509", "x509"));
    let output = run(&project);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        mysql_tls::query(tls_port(), &format!("SELECT COUNT(*) FROM `{}`.copied", db.name)),
        [[Some("500".to_string())]]
    );
    let report = doctor(&project);
    assert_eq!(report["results"]["mysql"]["x509"]["status"], "success", "{report}");
    assert_eq!(report["results"]["mysql"]["nocert"]["category"], "auth", "{report}");
}

#[test]
fn bad_tls_options_name_the_connection_and_what_is_allowed() {
    let bad_mode = TlsConnection::new("bad", "127.0.0.1", tls_port(), "mysql").with("ssl_mode", "sometimes");
    let bad_timeout = TlsConnection::new("slow", "127.0.0.1", tls_port(), "mysql").with("read_timeout", "soon");
    let half = TlsConnection::new("half", "127.0.0.1", tls_port(), "mysql").with("ssl_cert", cert("client-cert.pem"));
    let missing = TlsConnection::new("missing", "127.0.0.1", tls_port(), "mysql")
        .with("ssl_mode", "VERIFY_CA")
        .with("ssl_ca", "/nonexistent/ca.pem");
    // Option values are checked before the run starts: a usage error, exit 2, nothing connects.
    let project = project(&[bad_mode, bad_timeout, half, missing], &extract_only("bad"));
    let output = run(&project);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let result = stdout_json(&output);
    assert_eq!(result["phase"], "prepare", "{result}");
    let message = result["message"].as_str().unwrap();
    assert!(message.contains("step 'extract': `ssl_mode` of @mysql.bad is 'sometimes'"), "{message}");
    assert!(message.contains("DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY"), "{message}");
    assert!(!project.file("out/one.csv").exists());

    project.write("p.yaml", extract_only("slow"));
    let output = run(&project);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let message = stdout_json(&output)["message"].as_str().unwrap().to_string();
    assert!(message.contains("`read_timeout` of @mysql.slow is \"soon\", not a duration"), "{message}");
    assert!(message.contains("30s, 5m or 1h"), "{message}");

    // File problems show when connecting (the files must exist where the step runs).
    let report = doctor(&project);
    let results = &report["results"]["mysql"];
    assert!(results["half"]["message"].as_str().unwrap().contains("`ssl_key` must be set together"), "{report}");
    assert!(results["missing"]["message"].as_str().unwrap().contains("ssl_ca /nonexistent/ca.pem"), "{report}");
    assert!(results["bad"]["message"].as_str().unwrap().contains("is 'sometimes'"), "{report}");
}
