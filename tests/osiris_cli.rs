//! Osiris's CLI spellings through the real binary, each with Osiris's meaning: the global
//! `--json`/`--verbose`, `compile --out`, `run --out`, `run --last-compile-in`, `run --dry-run`,
//! `components list --runnable`, and the E2B flags `--cpu`, `--memory-gb`, `--timeout`,
//! `--e2b-env-from`, `--e2b-install-deps` (against the local sandbox server); and `--e2b-mem N`
//! meaning N GB.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::mysql::{self, MysqlConnection, ScratchDb};
use common::parity::{LocalSandboxServer, Target};
use common::{Project, describe, stdout_json};

const ORDERS: &str = "order_id,amount\n1,2.5\n2,10.0\n";

/// A CSV → CSV pipeline named `name`, writing `out/<name>.csv`.
fn pipeline(name: &str) -> String {
    format!(
        "oml_version: \"0.1.0\"\nname: {name}\nsteps:\n  - id: extract\n    component: filesystem.csv_extractor\n    mode: read\n    config: {{path: data/orders.csv}}\n  - id: write\n    component: filesystem.csv_writer\n    mode: write\n    needs: [extract]\n    config: {{path: out/{name}.csv}}\n"
    )
}

fn csv_project() -> Project {
    let project = Project::new();
    project.write("data/orders.csv", ORDERS);
    project.write("p.yaml", pipeline("p"));
    project
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_global_json_and_verbose_flags_before_the_command_mean_the_commands_own() {
    let project = csv_project();
    let validated = project.run(&["--json", "oml", "validate", "p.yaml"]);
    assert_eq!(validated.status.code(), Some(0), "{}", describe(&validated));
    assert_eq!(stdout_json(&validated)["valid"], true);
    let compiled = project.run(&["--json", "compile", "p.yaml"]);
    assert_eq!(stdout_json(&compiled)["status"], "success", "{}", describe(&compiled));
    let components = project.run(&["--json", "components", "list"]);
    assert!(stdout_json(&components).as_array().is_some_and(|list| !list.is_empty()));
    let connections = project.run(&["--json", "connections", "list"]);
    assert!(stdout_json(&connections)["connections"].is_object(), "{}", describe(&connections));

    // `osiris --json --verbose run`: the JSON result on stdout, every event on stderr.
    let run = project.run(&["--json", "--verbose", "run", "p.yaml"]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    assert_eq!(stdout_json(&run)["status"], "success");
    let events: Vec<serde_json::Value> = stderr(&run).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(events.iter().any(|e| e["event"] == "run_end"), "no event lines on stderr:\n{}", describe(&run));
    let short = project.run(&["-v", "run", "p.yaml"]);
    assert!(stderr(&short).contains("\"event\":\"run_start\""), "{}", describe(&short));

    // A command without JSON output refuses the flag rather than ignoring it.
    let worker = project.run(&["--json", "worker", "--prepared", "x.json", "--run-dir", "r"]);
    assert_eq!(worker.status.code(), Some(2), "{}", describe(&worker));
    assert!(stderr(&worker).contains("--json does not apply to `osiris worker`"), "{}", describe(&worker));
}

#[test]
fn compile_out_copies_the_build_which_then_runs() {
    let project = csv_project();
    let output = project.run(&["compile", "p.yaml", "--out", "exported", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let result = stdout_json(&output);
    assert_eq!(result["out_dir"], "exported");
    let build = project.file(result["build_dir"].as_str().unwrap());
    for file in
        ["manifest.yaml", "plan.json", "fingerprints.json", "run_summary.json", "cfg/extract.json", "cfg/write.json"]
    {
        assert_eq!(project.read(&format!("exported/{file}")), std::fs::read(build.join(file)).unwrap(), "{file}");
    }
    let run = project.run(&["run", "exported/manifest.yaml"]);
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    assert_eq!(project.read_text("out/p.csv"), ORDERS);
}

#[test]
fn run_out_copies_the_artifacts_after_the_run() {
    let project = csv_project();
    let output = project.run(&["run", "p.yaml", "--out", "results", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(stdout_json(&output)["artifacts_dir"], "results");
    let run_dir = project.only_run_dir();
    for step in ["extract", "write"] {
        let copied = project.read(&format!("results/{step}/cleaned_config.json"));
        assert_eq!(copied, std::fs::read(run_dir.join(format!("artifacts/{step}/cleaned_config.json"))).unwrap());
    }
    // A failed run copies what it has too, as Osiris does.
    project.write("bad.yaml", pipeline("bad").replace("data/orders.csv", "data/missing.csv"));
    let failed = project.run(&["run", "bad.yaml", "--out", "failed-results"]);
    assert_eq!(failed.status.code(), Some(1), "{}", describe(&failed));
    assert!(project.file("failed-results/extract/cleaned_config.json").is_file(), "{}", describe(&failed));
}

#[test]
fn last_compile_in_takes_a_pipeline_slug_or_a_directory() {
    let project = csv_project();
    project.write("orders_etl.yaml", pipeline("orders-etl"));
    for file in ["orders_etl.yaml", "p.yaml"] {
        let output = project.run(&["compile", file]);
        assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    }
    // The last compile is p's; by slug, orders-etl's latest runs.
    let by_slug = project.run(&["run", "--last-compile-in", "orders-etl", "--json"]);
    assert_eq!(by_slug.status.code(), Some(0), "{}", describe(&by_slug));
    assert_eq!(project.read_text("out/orders-etl.csv"), ORDERS);
    assert!(!project.file("out/p.csv").exists());
    // A pipeline's build folder (its LATEST pointer).
    let by_dir = project.run(&["run", "--last-compile-in", "build/pipelines/dev/p"]);
    assert_eq!(by_dir.status.code(), Some(0), "{}", describe(&by_dir));
    assert_eq!(project.read_text("out/p.csv"), ORDERS);
    // A folder of `compile --out`.
    std::fs::remove_file(project.file("out/orders-etl.csv")).unwrap();
    assert!(project.run(&["compile", "orders_etl.yaml", "--out", "exported"]).status.success());
    let by_out = project.run(&["run", "--last-compile-in", "exported"]);
    assert_eq!(by_out.status.code(), Some(0), "{}", describe(&by_out));
    assert_eq!(project.read_text("out/orders-etl.csv"), ORDERS);
    // Without a value: $OSIRIS_LAST_COMPILE_DIR.
    std::fs::remove_file(project.file("out/p.csv")).unwrap();
    let from_env = project.osiris(&["run", "--last-compile-in"]).env("OSIRIS_LAST_COMPILE_DIR", "p").output().unwrap();
    assert_eq!(from_env.status.code(), Some(0), "{}", describe(&from_env));
    assert_eq!(project.read_text("out/p.csv"), ORDERS);
    // A typo names the compiled pipelines.
    let typo = project.run(&["run", "--last-compile-in", "orders-elt"]);
    assert_eq!(typo.status.code(), Some(2), "{}", describe(&typo));
    assert!(stderr(&typo).contains("did you mean `orders-etl`?"), "{}", describe(&typo));
    // It is a way to name the manifest: not together with a file.
    let both = project.run(&["run", "p.yaml", "--last-compile-in", "p"]);
    assert_eq!(both.status.code(), Some(2), "{}", describe(&both));
}

#[test]
fn dry_run_prepares_and_prints_the_plan_without_running() {
    let project = csv_project();
    let output = project.run(&["run", "p.yaml", "--dry-run", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let plan = stdout_json(&output);
    assert_eq!(plan["status"], "dry_run");
    assert_eq!(plan["target"], "local");
    let steps: Vec<&str> = plan["steps"].as_array().unwrap().iter().map(|s| s["step_id"].as_str().unwrap()).collect();
    assert_eq!(steps, vec!["extract", "write"]);
    assert_eq!(plan["outputs"][0]["path"], "out/p.csv");
    assert!(!project.file("out/p.csv").exists(), "nothing ran");
    assert!(project.run_dirs().is_empty(), "no run log");
    let text = project.run(&["run", "p.yaml", "--dry-run"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("nothing executed"), "{}", describe(&text));

    // Preparation runs: a connection whose variable is not set fails the dry run (exit 2).
    project.write(
        "osiris_connections.yaml",
        mysql::connections_yaml(&[MysqlConnection::new("db", "osiris_none", "DRY_RUN_UNSET_PW")]),
    );
    project.write(
        "m.yaml",
        "oml_version: \"0.1.0\"\nname: m\nsteps:\n  - id: extract\n    component: mysql.extractor\n    mode: read\n    config: {connection: \"@mysql.db\", query: \"SELECT 1\"}\n",
    );
    let unset = project.run(&["run", "m.yaml", "--dry-run"]);
    assert_eq!(unset.status.code(), Some(2), "{}", describe(&unset));
    assert!(stderr(&unset).contains("DRY_RUN_UNSET_PW"), "{}", describe(&unset));

    // The E2B options Osiris spells --cpu/--memory-gb/--timeout, shown without any E2B call
    // (no E2B_API_KEY needed); --e2b-install-deps says it has no effect.
    let e2b = project.run(&[
        "run",
        "p.yaml",
        "--dry-run",
        "--json",
        "--e2b",
        "--cpu",
        "2",
        "--memory-gb",
        "8",
        "--timeout",
        "60",
        "--e2b-install-deps",
    ]);
    assert_eq!(e2b.status.code(), Some(0), "{}", describe(&e2b));
    let sandbox = &stdout_json(&e2b)["e2b"];
    assert_eq!(sandbox["min_cpu"], 2);
    assert_eq!(sandbox["min_memory_mib"], 8192);
    assert_eq!(sandbox["timeout_seconds"], 60);
    assert!(stderr(&e2b).contains("--e2b-install-deps has no effect"), "{}", describe(&e2b));
    // What the adapter would refuse before creating a sandbox, the dry run refuses too.
    let unset = project.run(&["run", "p.yaml", "--dry-run", "--e2b", "--e2b-pass-env", "OSIRIS_TEST_SURELY_UNSET"]);
    assert_eq!(unset.status.code(), Some(2), "{}", describe(&unset));
    assert!(stderr(&unset).contains("OSIRIS_TEST_SURELY_UNSET is not set"), "{}", describe(&unset));
}

#[test]
fn a_bare_e2b_mem_is_gigabytes_and_units_are_kept() {
    let project = csv_project();
    let mib = |args: &[&str]| {
        let output = project.osiris(&["run", "p.yaml", "--dry-run", "--json", "--e2b"]).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
        stdout_json(&output)["e2b"]["min_memory_mib"].as_u64().unwrap()
    };
    assert_eq!(mib(&["--e2b-mem", "8"]), 8 * 1024);
    assert_eq!(mib(&["--e2b-mem", "512MiB"]), 512);
    assert_eq!(mib(&["--e2b-mem", "2GiB"]), 2048);
    assert_eq!(mib(&["--memory-gb", "4"]), 4096);
    let bad = project.run(&["run", "p.yaml", "--e2b", "--e2b-mem", "lots"]);
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
    // Osiris's E2B spellings are E2B options like the others: refused without --e2b.
    for flag in [&["--cpu", "2"][..], &["--memory-gb", "4"], &["--timeout", "60"], &["--e2b-install-deps"]] {
        let output = project.osiris(&["run", "p.yaml"]).args(flag).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{flag:?}: {}", describe(&output));
        assert!(stderr(&output).contains("only apply to E2B runs"), "{}", describe(&output));
    }
}

#[test]
fn components_list_runnable_lists_every_component() {
    let project = Project::new();
    let all = project.run(&["components", "list", "--json"]);
    let runnable = project.run(&["components", "list", "--runnable", "--json"]);
    assert_eq!(runnable.status.code(), Some(0), "{}", describe(&runnable));
    assert_eq!(stdout_json(&all), stdout_json(&runnable));
    assert!(stdout_json(&runnable).as_array().unwrap().iter().all(|c| c["runnable"] == true));
    let text = project.run(&["components", "list", "--runnable"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("mysql.writer"), "{}", describe(&text));
}

#[test]
fn osiris_e2b_flags_reach_the_sandbox() {
    let server = LocalSandboxServer::start();
    let target = Target::e2b(&server);
    let e2b = |project: &Project, extra: &[&str]| {
        project
            .osiris(&["run", "p.yaml", "--json"])
            .args(&target.args)
            .args(extra)
            .envs(target.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap()
    };
    let project = csv_project();
    // --cpu and --memory-gb size the sandbox like --e2b-cpu / --e2b-mem.
    let too_many = e2b(&project, &["--cpu", "64"]);
    assert_eq!(too_many.status.code(), Some(1), "{}", describe(&too_many));
    assert!(stdout_json(&too_many)["message"].as_str().unwrap().contains("asks for 64"), "{}", describe(&too_many));
    let too_much = e2b(&project, &["--memory-gb", "100000"]);
    assert_eq!(too_much.status.code(), Some(1), "{}", describe(&too_much));
    let message = stdout_json(&too_much)["message"].as_str().unwrap().to_string();
    assert!(message.contains(&format!("asks for {} MiB", 100_000u64 * 1024)), "{message}");
    let fits = e2b(&project, &["--cpu", "1", "--memory-gb", "1", "--e2b-install-deps"]);
    assert_eq!(fits.status.code(), Some(0), "{}", describe(&fits));
    assert_eq!(project.read_text("out/p.csv"), ORDERS);
    assert!(stderr(&fits).contains("--e2b-install-deps has no effect"), "{}", describe(&fits));

    // --e2b-env-from puts a file's variables into the sandbox; --timeout bounds its lifetime.
    let db = ScratchDb::create(&[]);
    let sleepy = Project::new();
    sleepy
        .write("osiris_connections.yaml", mysql::connections_yaml(&[MysqlConnection::new("db", &db.name, "FLAGS_PW")]));
    sleepy.write(
        "p.yaml",
        "oml_version: \"0.1.0\"\nname: sleepy\nsteps:\n  - id: extract\n    component: mysql.extractor\n    mode: read\n    config: {connection: \"@mysql.db\", query: \"SELECT SLEEP(60) AS slept\"}\n  - id: write\n    component: filesystem.csv_writer\n    mode: write\n    needs: [extract]\n    config: {path: out/slow.csv}\n",
    );
    sleepy
        .write("sandbox.env", "# sandbox-wide settings\nFROM_ENV_FILE=file-value-7\nexport SECOND_ONE=\"two words\"\n");
    let started = std::time::Instant::now();
    let host = sleepy
        .osiris(&["run", "p.yaml", "--json", "--e2b", "--e2b-env-from", "sandbox.env", "--timeout", "5"])
        .envs(target.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("FLAGS_PW", mysql::password())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_until("the worker runs the step", Duration::from_secs(60), || {
        common::step_event_logged(&sleepy, "step_start", "extract")
    });
    let environ = worker_environ(server.root.path()).expect("a worker runs in the sandbox");
    for var in ["FROM_ENV_FILE=file-value-7", "SECOND_ONE=two words"] {
        assert!(environ.iter().any(|e| e == var), "{var} not in the sandbox: {environ:?}");
    }
    let output = host.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    // The sandbox's 5 s lifetime ended the 60 s query. (Which words the message uses depends on
    // how the adapter attributes the kill, which is not this flag's business.)
    assert!(started.elapsed() < Duration::from_secs(45), "the run took {:?}", started.elapsed());
    assert_eq!(stdout_json(&output)["failed_step"], "extract", "{}", describe(&output));
    let missing = sleepy.run(&["run", "p.yaml", "--e2b", "--e2b-env-from", "nope.env"]);
    assert_eq!(missing.status.code(), Some(2), "{}", describe(&missing));
    assert!(stderr(&missing).contains("--e2b-env-from nope.env"), "{}", describe(&missing));
}

/// The environment of the worker this test's sandbox server started (found by its command line
/// and its working directory under the server's root).
fn worker_environ(root: &std::path::Path) -> Option<Vec<String>> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let cmdline = std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&str> = cmdline.split('\0').collect();
        let in_root = std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(root));
        if args.contains(&"worker") && args.contains(&"--prepared") && in_root {
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            return Some(String::from_utf8_lossy(&environ).split('\0').map(str::to_string).collect());
        }
    }
    None
}

/// The commands the README says take `--json` (the list after "`--json` prints the result as JSON
/// instead of text on:").
fn readme_json_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("`--json` prints the result as JSON instead of text on:").expect("the README lists them");
    let list = &readme[start..];
    let list = &list[list.find("on:").unwrap() + 3..list.find(". ").unwrap()];
    list.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

#[test]
fn every_command_the_readme_says_takes_json_describes_it_in_its_help() {
    let commands = readme_json_commands();
    assert!(commands.len() >= 9 && commands.contains(&"connections doctor".to_string()), "{commands:?}");
    let project = Project::new();
    for command in &commands {
        let mut args: Vec<&str> = command.split(' ').collect();
        args.push("--help");
        let output = project.run(&args);
        assert_eq!(output.status.code(), Some(0), "{command}: {}", describe(&output));
        let help = String::from_utf8_lossy(&output.stdout).into_owned();
        let lines: Vec<&str> = help.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.trim_start().starts_with("--json"))
            .unwrap_or_else(|| panic!("{command}: no --json in\n{help}"));
        // clap puts the description on the flag's line, or on the next one when it is long.
        let mut description = lines[at].trim_start().trim_start_matches("--json").trim();
        if description.is_empty() {
            description = lines.get(at + 1).map_or("", |l| l.trim());
            assert!(!lines[at + 1].trim_start().starts_with('-'), "{command}: --json is not described:\n{help}");
        }
        assert!(description.len() >= 10, "{command}: --json is not described:\n{help}");
    }
    let top = project.run(&["--help"]);
    let help = String::from_utf8_lossy(&top.stdout).into_owned();
    assert!(help.contains("--json") && help.contains("--verbose"), "{help}");
    assert!(!help.contains("today") && !help.contains("tomorrow"), "stale text in --help:\n{help}");
}
