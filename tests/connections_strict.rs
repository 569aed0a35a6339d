//! Connection entries are checked, through the real binary: a key no component of the family
//! declares is an error naming the file, line, family and alias, with "did you mean", in
//! `connections list`/`doctor`, `compile`, `oml validate` and `run`; the keys Osiris's own files
//! carry are accepted (and a run with them works against the real MariaDB); an empty password
//! variable is reported as empty, not as unset.

mod common;

use common::mysql::{self, ScratchDb};
use common::{Project, describe, stdout_json};

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A MySQL entry on the test server with `extra` lines (6-space indented keys) after `database`.
fn mysql_entry(alias: &str, database: &str, extra: &str) -> String {
    format!(
        "    {alias}:\n      host: {}\n      port: {}\n      database: {database}\n{extra}      user: {}\n      password: ${{STRICT_PW}}\n",
        mysql::host(),
        mysql::port(),
        mysql::user()
    )
}

const PIPELINE: &str = "oml_version: \"0.1.0\"\nname: strict\nsteps:\n  - id: extract\n    component: mysql.extractor\n    mode: read\n    config: {connection: \"@mysql.main\", query: \"SELECT 1 AS one\"}\n  - id: write\n    component: filesystem.csv_writer\n    mode: write\n    needs: [extract]\n    config: {path: out/one.csv}\n";

fn project(connections: &str) -> Project {
    let project = Project::new();
    project.write("osiris_connections.yaml", connections);
    project.write("p.yaml", PIPELINE);
    project
}

#[test]
fn a_misspelt_connection_key_fails_every_command_that_reads_the_entry() {
    // `databse` for `database`, on line 6.
    let text = format!(
        "version: 1\nconnections:\n  mysql:\n    main:\n      host: {}\n      databse: x\n      database: x\n      user: u\n      password: ${{STRICT_PW}}\n",
        mysql::host()
    );
    let project = project("connections: {}\n");
    // Compiled while the file had no entry (compile leaves missing entries to the run).
    assert!(project.run(&["compile", "p.yaml"]).status.success());
    project.write("osiris_connections.yaml", &text);
    let file = project.file("osiris_connections.yaml").display().to_string();
    let at_line = format!("{file}:6: ");
    let message = "unknown key 'databse' in connection @mysql.main (family mysql)";
    // The run of a compiled manifest checks the entry when it prepares the run.
    let expected = format!("{at_line}{message}; did you mean 'database'?");
    let run = project.osiris(&["run", "--last-compile"]).env("STRICT_PW", "x").output().unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", describe(&run));
    assert!(stderr(&run).contains(&expected), "{}", describe(&run));
    let takes =
        stderr(&run).lines().find_map(|l| l.trim().strip_prefix("a mysql connection takes: ")).map(str::to_owned);
    let takes = takes.unwrap_or_else(|| panic!("no list of the keys a mysql connection takes: {}", describe(&run)));
    for key in ["alias", "allow_unknown_keys", "charset", "database", "password", "ssl_mode", "read_timeout"] {
        assert!(takes.split(", ").any(|k| k == key), "{key} missing from: {takes}");
    }
    // The run of OML reports it while compiling.
    let run = project.osiris(&["run", "p.yaml"]).env("STRICT_PW", "x").output().unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", describe(&run));
    let text = stderr(&run);
    assert!(text.contains(&format!("{at_line}error[unknown_connection_key]")) && text.contains(message), "{text}");
    assert!(text.contains("did you mean 'database'?"), "{text}");
    assert!(project.run_dirs().is_empty(), "no run started");

    let compiled = project.run(&["compile", "p.yaml", "--json"]);
    assert_eq!(compiled.status.code(), Some(2), "{}", describe(&compiled));
    let error = &stdout_json(&compiled)["errors"][0];
    assert_eq!(error["code"], "unknown_connection_key", "{error}");
    assert_eq!(error["file"], file.as_str());
    assert_eq!(error["line"], 6);
    assert_eq!(error["path"], "connections.mysql.main.databse");
    assert!(error["hint"].as_str().unwrap().starts_with("did you mean 'database'?"), "{error}");

    let validated = project.run(&["oml", "validate", "p.yaml"]);
    assert_eq!(validated.status.code(), Some(1), "{}", describe(&validated));
    assert!(
        stdout(&validated).contains(&format!("{file}:6: error[unknown_connection_key]")),
        "{}",
        describe(&validated)
    );

    let listed = project.run(&["connections", "list"]);
    assert_eq!(listed.status.code(), Some(1), "{}", describe(&listed));
    assert!(
        stdout(&listed).contains("@mysql.main") && stdout(&listed).contains("did you mean 'database'?"),
        "{}",
        describe(&listed)
    );
    let listed = project.run(&["connections", "list", "--json"]);
    assert_eq!(stdout_json(&listed)["errors"][0]["line"], 6, "{}", describe(&listed));

    let doctor = project.run(&["connections", "doctor", "--json"]);
    assert_eq!(doctor.status.code(), Some(1), "{}", describe(&doctor));
    let result = &stdout_json(&doctor)["results"]["mysql"]["main"];
    assert_eq!((result["status"].as_str(), result["category"].as_str()), (Some("error"), Some("config")), "{result}");
    assert!(result["message"].as_str().unwrap().contains(&expected), "{result}");
}

#[test]
fn a_misspelt_filesystem_key_fails_the_run_too() {
    let project = Project::new();
    project.write("data/in.csv", "id\n1\n");
    project.write("osiris_connections.yaml", "connections:\n  filesystem:\n    local:\n      base_dri: data\n");
    project.write(
        "p.yaml",
        "oml_version: \"0.1.0\"\nname: fs\nsteps:\n  - id: extract\n    component: filesystem.csv_extractor\n    mode: read\n    config: {connection: \"@filesystem.local\", path: in.csv}\n",
    );
    let run = project.run(&["run", "p.yaml"]);
    assert_eq!(run.status.code(), Some(2), "{}", describe(&run));
    let text = stderr(&run);
    assert!(text.contains("osiris_connections.yaml:4: error[unknown_connection_key]"), "{text}");
    assert!(text.contains("unknown key 'base_dri' in connection @filesystem.local (family filesystem)"), "{text}");
    assert!(text.contains("did you mean 'base_dir'?"), "{text}");
}

#[test]
fn the_keys_of_osiris_connection_files_are_accepted_and_the_run_works() {
    let db = ScratchDb::create(&[]);
    // As Osiris's `osiris init` template and connection schema write them.
    let osiris_keys = "      pool_size: 5\n      max_overflow: 10\n      pool_recycle: 3600\n      echo: false\n      charset: utf8mb4\n      timeout: 30\n      write_timeout: 10\n      description: \"Primary database\"\n      alias: main\n      type: mysql\n      default: true\n";
    let text = format!(
        "version: \"1.0\"\nconnections:\n  mysql:\n{}  supabase:\n    primary:\n      default: true\n      project_id: ${{SUPABASE_PROJECT_ID}}\n  duckdb:\n    memory: {{database: \":memory:\"}}\n",
        mysql_entry("main", &db.name, osiris_keys)
    );
    let project = project(&text);
    let run = project.osiris(&["run", "p.yaml"]).env("STRICT_PW", mysql::password()).output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    assert_eq!(project.read_text("out/one.csv"), "one\n1\n");
    let doctor = project
        .osiris(&["connections", "doctor", "--family", "mysql", "--json"])
        .env("STRICT_PW", mysql::password())
        .output()
        .unwrap();
    assert_eq!(doctor.status.code(), Some(0), "{}", describe(&doctor));
    // Families no component uses are listed, not checked, with a warning.
    let listed = project.run(&["connections", "list", "--json"]);
    assert_eq!(listed.status.code(), Some(0), "{}", describe(&listed));
    let warnings = stdout_json(&listed)["warnings"].clone();
    let unchecked: Vec<&str> = warnings.as_array().unwrap().iter().map(|w| w["path"].as_str().unwrap()).collect();
    assert_eq!(unchecked, vec!["connections.supabase", "connections.duckdb"], "{warnings}");
    let text = project.run(&["connections", "list"]);
    assert!(stdout(&text).contains("warning[unchecked_family] connections.supabase"), "{}", describe(&text));
}

#[test]
fn allow_unknown_keys_accepts_an_entry_shared_with_other_tools() {
    let db = ScratchDb::create(&[]);
    let text = format!(
        "connections:\n  mysql:\n{}",
        mysql_entry("main", &db.name, "      allow_unknown_keys: true\n      other_tool_option: 7\n")
    );
    let project = project(&text);
    let run = project.osiris(&["run", "p.yaml"]).env("STRICT_PW", mysql::password()).output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    assert_eq!(project.run(&["connections", "list"]).status.code(), Some(0));
}

#[test]
fn an_empty_password_variable_is_called_empty() {
    let db = ScratchDb::create(&[]);
    let project = project(&format!("connections:\n  mysql:\n{}", mysql_entry("main", &db.name, "")));
    let run = project.osiris(&["run", "p.yaml"]).env("STRICT_PW", "").output().unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", describe(&run));
    assert!(
        stderr(&run).contains("Environment variable 'STRICT_PW' is empty for password in mysql.main; give it a value"),
        "{}",
        describe(&run)
    );
    let unset = project.osiris(&["run", "p.yaml"]).env_remove("STRICT_PW").output().unwrap();
    assert!(stderr(&unset).contains("Environment variable 'STRICT_PW' not set for password"), "{}", describe(&unset));
    // In `.env` as `STRICT_PW=` too.
    project.write(".env", "STRICT_PW=\n");
    let from_dotenv = project.osiris(&["run", "p.yaml"]).env_remove("STRICT_PW").output().unwrap();
    assert!(stderr(&from_dotenv).contains("'STRICT_PW' is empty"), "{}", describe(&from_dotenv));
    let listed = project.run(&["connections", "list"]);
    assert!(stdout(&listed).contains("env STRICT_PW: ✗ EMPTY"), "{}", describe(&listed));
    let doctor = project.run(&["connections", "doctor", "--json"]);
    let message = stdout_json(&doctor)["results"]["mysql"]["main"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("'STRICT_PW' is empty"), "{message}");
}
