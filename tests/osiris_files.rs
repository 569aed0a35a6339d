//! Osiris projects as they are: the files Osiris writes and ships run here unchanged (issue 9, §3).
//!
//! - YAML with long comment blocks anywhere (the `osiris.yaml` of `osiris init`), for OML,
//!   `osiris.yaml` and `osiris_connections.yaml`;
//! - `filesystem.base_path: ""` (Osiris's default) is the project root;
//! - run logs are named after the pipeline `name`, builds after the file stem, as in Osiris;
//! - a build directory that Osiris compiled runs (`osiris run --last-compile`, or the manifest).

mod common;

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::mysql::{self, MysqlConnection, ScratchDb};
use common::parity::{LocalSandboxServer, Target};
use common::{Project, describe, sample_csv, stdout_json};

/// Osiris's own `osiris.yaml` files, as the steering repository's `shared/osiris-examples/` keeps
/// them beside this checkout (`OSIRIS_EXAMPLES_DIR` names another place).
fn osiris_example(name: &str) -> String {
    let dir = std::env::var("OSIRIS_EXAMPLES_DIR")
        .unwrap_or_else(|_| format!("{}/../shared/osiris-examples", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{dir}/{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read Osiris's example file {path}: {e}; set OSIRIS_EXAMPLES_DIR to the folder that holds it")
    })
}

/// A file of the build Osiris 0.5.7 compiled (see tests/osiris_examples/README.md).
fn osiris_build_file(name: &str) -> String {
    let path = format!("{}/tests/osiris_examples/build/movies_export/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// `n` comment lines, indented by `indent` spaces.
fn comments(n: usize, indent: usize, tag: &str) -> String {
    (0..n).map(|i| format!("{:indent$}# {tag} comment line {i}: keys: [not, yaml] - still a comment\n", "")).collect()
}

/// An OML pipeline with 100 comment lines at the top, before the `steps` block value, before
/// each sequence item, inside the nested `config` blocks and at the end.
fn commented_pipeline() -> String {
    let c = |indent, tag| comments(100, indent, tag);
    format!(
        "{top}oml_version: \"0.1.0\"\nname: Commented Copy\n{before_steps}steps:\n{item1}  - id: extract\n    component: filesystem.csv_extractor\n    mode: read\n    config:\n{in_config}      connection: \"@filesystem.data\"\n{between_keys}      path: orders.csv\n{item2}  - id: write\n    component: filesystem.csv_writer\n    mode: write\n{before_needs}    needs:\n{in_needs}      - extract\n    config:\n{in_config2}      path: out/copy.csv\n{end}",
        top = c(0, "top"),
        before_steps = c(0, "before steps"),
        item1 = c(2, "before item"),
        in_config = c(6, "config"),
        between_keys = c(6, "between keys"),
        item2 = c(2, "before item"),
        before_needs = c(4, "before needs"),
        in_needs = c(6, "in needs"),
        in_config2 = c(6, "config"),
        end = c(0, "end"),
    )
}

fn commented_osiris_yaml() -> String {
    let c = |indent, tag| comments(100, indent, tag);
    format!(
        "{top}version: '2.0'\n{before_fs}filesystem:\n{in_fs}  run_logs_dir: commented_logs\n{before_profiles}  profiles:\n{in_profiles}    enabled: true\n{before_values}    values:\n{in_values}      - dev\n      - prod\n    default: prod\n{end}",
        top = c(0, "top"),
        before_fs = c(0, "before filesystem"),
        in_fs = c(2, "filesystem"),
        before_profiles = c(2, "before profiles"),
        in_profiles = c(4, "profiles"),
        before_values = c(4, "before values"),
        in_values = c(6, "values"),
        end = c(0, "end"),
    )
}

fn commented_connections_yaml() -> String {
    let c = |indent, tag| comments(100, indent, tag);
    format!(
        "{top}version: 1\n{before_conns}connections:\n{in_conns}  filesystem:\n{in_family}    data:\n{in_alias}      default: true\n{between}      base_dir: data\n{end}",
        top = c(0, "top"),
        before_conns = c(0, "before connections"),
        in_conns = c(2, "connections"),
        in_family = c(4, "family"),
        in_alias = c(6, "alias"),
        between = c(6, "between keys"),
        end = c(0, "end"),
    )
}

#[test]
fn hundred_comment_lines_in_every_position_of_every_project_file() {
    let project = Project::new();
    project.write("osiris.yaml", commented_osiris_yaml());
    project.write("osiris_connections.yaml", commented_connections_yaml());
    project.write("data/orders.csv", sample_csv());
    project.write("commented.yaml", commented_pipeline());

    let validate = project.run(&["oml", "validate", "commented.yaml"]);
    assert_eq!(validate.status.code(), Some(0), "{}", describe(&validate));

    let compile = project.run(&["compile", "commented.yaml", "--json"]);
    assert_eq!(compile.status.code(), Some(0), "{}", describe(&compile));
    // `profiles.default: prod` in the commented osiris.yaml was read.
    assert_eq!(stdout_json(&compile)["profile"], "prod", "{}", describe(&compile));

    let run = project.run(&["run", "commented.yaml"]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    assert_eq!(project.read_text("out/copy.csv"), sample_csv());
    let runs = common::dir_entries(&project.file("commented_logs/prod/commented-copy"));
    assert_eq!(runs.len(), 1, "run_logs_dir from the commented osiris.yaml: {runs:?}\n{}", describe(&run));

    let list = project.run(&["connections", "list", "--json"]);
    assert_eq!(list.status.code(), Some(0), "{}", describe(&list));
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("\"data\"") && text.contains("filesystem"), "{}", describe(&list));
}

#[test]
fn a_yaml_error_after_long_comment_blocks_names_its_line() {
    let project = Project::new();
    project.write("osiris.yaml", format!("{}filesystem:\n  build_dir: [unclosed\n", comments(100, 0, "top")));
    project.write("p.yaml", commented_pipeline());
    let output = project.run(&["compile", "p.yaml"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line: u32 = stderr
        .split("osiris.yaml:")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no osiris.yaml:<line> in: {stderr}"));
    assert!((101..=103).contains(&line), "the error names the line past the comments: {stderr}");
}

/// The `osiris.yaml` that `osiris init` writes, unchanged but for its `base_path` (which points
/// at the scratch project, so the test also covers an absolute base path).
fn init_yaml_for(project: &Project) -> String {
    let original = osiris_example("osiris.init.yaml");
    let line = "  base_path: \"/srv/osiris-project\"";
    assert!(original.contains(line), "the example's base_path line changed");
    original.replace(line, &format!("  base_path: \"{}\"", project.file("base").display()))
}

#[test]
fn the_osiris_yaml_of_osiris_init_drives_compile_run_and_connections() {
    let project = Project::new();
    project.write("osiris.yaml", init_yaml_for(&project));
    project.write(
        "osiris_connections.yaml",
        "version: 1\nconnections:\n  filesystem:\n    data:\n      default: true\n      base_dir: data\n",
    );
    project.write("data/orders.csv", sample_csv());
    project.write("orders_copy.yaml", commented_pipeline());

    let compile = project.run(&["compile", "orders_copy.yaml", "--json"]);
    assert_eq!(compile.status.code(), Some(0), "{}", describe(&compile));
    let compiled = stdout_json(&compile);
    let manifest = compiled["manifest_path"].as_str().unwrap_or_default().to_string();
    assert!(
        manifest.starts_with("base/build/pipelines/dev/orders-copy/"),
        "build/ under base_path, named after the file stem: {manifest}"
    );

    let run = project.run(&["run", "--last-compile"]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    let run = project.run(&["run", "orders_copy.yaml"]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    assert_eq!(project.read_text("out/copy.csv"), sample_csv());
    let runs = common::dir_entries(&project.file("base/run_logs/dev/commented-copy"));
    assert_eq!(runs.len(), 2, "run logs under base_path, named after the pipeline name: {runs:?}");

    let list = project.run(&["connections", "list"]);
    assert_eq!(list.status.code(), Some(0), "{}", describe(&list));
    assert!(String::from_utf8_lossy(&list.stdout).contains("data"), "{}", describe(&list));
}

#[test]
fn an_empty_base_path_is_the_project_root() {
    let project = Project::new();
    let config = osiris_example("osiris.filesystem.yaml");
    assert!(config.contains("  base_path: \"\"\n"), "the example keeps Osiris's empty base_path");
    project.write("osiris.yaml", &config);
    project.write("data/orders.csv", sample_csv());
    project.write(
        "pipelines/orders_export.yaml",
        "oml_version: \"0.1.0\"\nname: Orders Export\nsteps:\n  - id: extract\n    component: filesystem.csv_extractor\n    mode: read\n    config: {path: data/orders.csv}\n  - id: write\n    component: filesystem.csv_writer\n    mode: write\n    config: {path: output/orders.csv}\n",
    );
    let run = project.run(&["run", "pipelines/orders_export.yaml"]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    assert_eq!(project.read_text("output/orders.csv"), sample_csv());
    // Build folder after the file stem, run logs after the pipeline name (as Osiris).
    assert_eq!(common::dir_entries(&project.file("build/pipelines/dev")), vec!["orders-export"]);
    assert_eq!(common::dir_entries(&project.file("run_logs/dev")), vec!["orders-export"]);
    let runs = common::dir_entries(&project.file("run_logs/dev/orders-export"));
    assert_eq!(runs.len(), 1, "{runs:?}");
}

#[test]
fn a_base_path_under_home_or_from_osiris_filesystem_base_is_used() {
    let project = Project::new();
    project.write("osiris.yaml", "filesystem:\n  base_path: \"~/osiris-base\"\n");
    project.write("data/orders.csv", sample_csv());
    project.write(
        "p.yaml",
        commented_pipeline()
            .replace("connection: \"@filesystem.data\"", "")
            .replace("path: orders.csv", "path: data/orders.csv"),
    );
    let run = project.osiris(&["run", "p.yaml"]).env("HOME", project.file("home")).output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    assert_eq!(common::dir_entries(&project.file("home/osiris-base/run_logs/dev")), vec!["commented-copy"]);
    assert!(!project.file("~").exists(), "no folder named ~");
    // $OSIRIS_FILESYSTEM_BASE overrides it, as in Osiris.
    let run = project.osiris(&["run", "p.yaml"]).env("OSIRIS_FILESYSTEM_BASE", "from-env").output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    assert_eq!(common::dir_entries(&project.file("from-env/run_logs/dev")), vec!["commented-copy"]);
}

#[test]
fn run_logs_are_named_after_the_pipeline_name_not_the_file() {
    let project = Project::new();
    project.write("data/orders.csv", sample_csv());
    project.write(
        "daily.yaml",
        "oml_version: \"0.1.0\"\nname: Nightly Orders_Export v2\nsteps:\n  - id: extract\n    component: filesystem.csv_extractor\n    mode: read\n    config: {path: data/orders.csv}\n  - id: write\n    component: filesystem.csv_writer\n    mode: write\n    config: {path: out.csv}\n",
    );
    let run = project.run(&["run", "daily.yaml", "--json"]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    let session_dir = stdout_json(&run)["session_dir"].as_str().unwrap_or_default().to_string();
    let relative = session_dir.strip_prefix(&format!("{}/", project.path().display())).unwrap_or(&session_dir);
    // Osiris: pipeline.id = name lower-cased with spaces as `_`, then slugified.
    assert!(relative.starts_with("run_logs/dev/nightly-orders-export-v2/"), "{relative}");
    assert_eq!(common::dir_entries(&project.file("build/pipelines/dev")), vec!["daily"]);
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(project.only_run_dir().join("status.json")).unwrap()).unwrap();
    assert_eq!(status["ok"], true);
}

/// The hash of the Osiris-compiled build in tests/osiris_examples/build/movies_export (its
/// directory name in Osiris's layout is `<short>-<hash>`).
const OSIRIS_BUILD_HASH: &str = "1b72dfdc636099550862e63d6a1fbe7c088de1191e096132353578982c7d1226";
const OSIRIS_BUILD_FILES: &[&str] = &[
    "manifest.yaml",
    "plan.json",
    "fingerprints.json",
    "run_summary.json",
    "cfg/extract-movies.json",
    "cfg/count-by-director.json",
    "cfg/write-counts.json",
    "cfg/write-movies.json",
];

/// A TCP forwarder to the test MySQL server that counts the connections it carried, to prove
/// which address the extractor used.
struct CountingForwarder {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl CountingForwarder {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                let server = TcpStream::connect((mysql::host(), mysql::port())).expect("the test MySQL server");
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        CountingForwarder { port, connections }
    }
}

/// Lays out the build exactly as Osiris 0.5.7 wrote it (`osiris compile movies_export.yaml` of
/// tests/osiris_examples/movies_export.yaml) with its pointer files as `osiris/cli/compile.py`
/// writes them (absolute manifest path, hash, profile; the per-pipeline pointer under the raw file
/// stem). Returns the manifest's path.
fn osiris_build(project: &Project) -> std::path::PathBuf {
    let build = format!("build/pipelines/dev/movies-export/{}-{OSIRIS_BUILD_HASH}", &OSIRIS_BUILD_HASH[..7]);
    for file in OSIRIS_BUILD_FILES {
        project.write(&format!("{build}/{file}"), osiris_build_file(file));
    }
    let manifest = project.file(&format!("{build}/manifest.yaml"));
    let pointer = format!("{}\n{OSIRIS_BUILD_HASH}\ndev\n", manifest.display());
    for at in [".osiris/index/last_compile.txt", ".osiris/index/latest/movies_export.txt"] {
        project.write(at, &pointer);
    }
    project.write("build/pipelines/dev/movies-export/LATEST", &pointer);
    manifest
}

#[test]
fn a_build_that_osiris_compiled_runs_by_last_compile_and_by_manifest() {
    let db = ScratchDb::create(&[
        "CREATE TABLE movies (id INT PRIMARY KEY, title VARCHAR(50), director_id INT)",
        "INSERT INTO movies VALUES (1, 'Alien', 1), (2, 'Heat', 2), (3, 'Aliens', 1)",
    ]);
    let forwarder = CountingForwarder::start();
    let project = Project::new();
    let manifest = osiris_build(&project);
    let connection = MysqlConnection { port: forwarder.port, ..MysqlConnection::new("movies", &db.name, "MOVIES_PW") };
    project.write("osiris_connections.yaml", mysql::connections_yaml(&[connection]));

    let manifest_arg = manifest.display().to_string();
    let server = LocalSandboxServer::start();
    let targets = [Target::local(), Target::process(), Target::e2b(&server)];
    let runs = [vec!["run", "--last-compile"], vec!["run", manifest_arg.as_str()]];
    for (target, args) in targets.iter().flat_map(|t| runs.iter().map(move |a| (t, a))) {
        let before = forwarder.connections.load(Ordering::SeqCst);
        let run = project
            .osiris(args)
            .args(&target.args)
            .env("MOVIES_PW", mysql::password())
            .envs(target.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(0), "{} {args:?}: {}", target.name, describe(&run));
        assert_eq!(project.read_text("output/director_counts.csv"), "director_id,films\n1,2\n2,1\n");
        assert_eq!(project.read_text("output/movies.csv"), "id;title;director_id\n1;Alien;1\n2;Heat;2\n3;Aliens;1\n");
        std::fs::remove_dir_all(project.file("output")).unwrap();
        // Osiris's cfg carries its spec's `host: localhost`, `port: 3306`; as in Osiris, the
        // connection's address is the one used.
        let used = forwarder.connections.load(Ordering::SeqCst) - before;
        assert!(used >= 1, "{}: the extractor bypassed the connection's port", target.name);
    }
    // Run logs are named after the manifest's pipeline.id (`movies_export`), as in Osiris.
    let runs = common::dir_entries(&project.file("run_logs/dev/movies-export"));
    assert_eq!(runs.len(), 6, "{runs:?}");
    let cleaned = project.run_dirs()[0].join("artifacts/extract-movies/cleaned_config.json");
    let cleaned = std::fs::read_to_string(cleaned).unwrap();
    assert!(!cleaned.contains("\"localhost\""), "Osiris's default host is not the step's: {cleaned}");
}

#[test]
fn an_edited_osiris_manifest_is_refused() {
    let project = Project::new();
    let manifest = osiris_build(&project);
    let text = std::fs::read_to_string(&manifest).unwrap().replace("id: write-movies", "id: write-films");
    std::fs::write(&manifest, text).unwrap();
    let run = project.run(&["run", "--last-compile"]);
    assert_eq!(run.status.code(), Some(2), "{}", describe(&run));
    assert!(String::from_utf8_lossy(&run.stderr).contains("does not match its manifest_hash"), "{}", describe(&run));
}
