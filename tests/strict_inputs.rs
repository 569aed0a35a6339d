//! The CLI catches mistakes before they cost a run, through the real binary: `oml validate`
//! reports exactly what `compile` would; an unknown `--profile` or an undeclared `--param` is an
//! error with "did you mean" (unless the pipeline opts in); validation warnings are printed
//! before a run starts and carried in `--json`.

mod common;

use common::{Project, describe, stdout_json};
use serde_json::Value;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `(code, line, message)` of each error of a `--json` report.
fn errors(report: &Value) -> Vec<(String, u64, String)> {
    report["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {report}"))
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap().to_string(),
                e["line"].as_u64().unwrap_or(0),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Validates and compiles `oml` (as p.yaml) with `args`; asserts that validate fails (exit 1)
/// exactly where compile fails (exit 2) and returns their common errors.
fn validate_equals_compile(oml: &str, args: &[&str]) -> Vec<(String, u64, String)> {
    let project = Project::new();
    project.write("p.yaml", oml);
    let validated = project.osiris(&["oml", "validate", "p.yaml", "--json"]).args(args).output().unwrap();
    assert_eq!(validated.status.code(), Some(1), "validate must fail:\n{}", describe(&validated));
    let compiled = project.osiris(&["compile", "p.yaml", "--json"]).args(args).output().unwrap();
    assert_eq!(compiled.status.code(), Some(2), "compile must fail:\n{}", describe(&compiled));
    let (from_validate, from_compile) = (errors(&stdout_json(&validated)), errors(&stdout_json(&compiled)));
    assert_eq!(from_validate, from_compile, "validate and compile disagree");
    assert!(!project.file("build").exists(), "nothing compiled");
    // The text error lists the same problems and no longer sends the user to `validate`.
    let text = project.osiris(&["compile", "p.yaml"]).args(args).output().unwrap();
    let message = stderr(&text);
    for (code, line, _) in &from_compile {
        assert!(message.contains(&format!("p.yaml:{line}:")) && message.contains(code.as_str()), "{message}");
    }
    assert!(!message.contains("oml validate"), "{message}");
    from_compile
}

fn step(id: &str, component: &str, mode: &str, config: &str) -> String {
    format!("  - id: {id}\n    component: {component}\n    mode: {mode}\n    config: {config}\n")
}

fn oml(extra: &str, steps: &[String]) -> String {
    format!("oml_version: \"0.1.0\"\nname: p\n{extra}steps:\n{}", steps.concat())
}

fn csv_steps(out: &str) -> Vec<String> {
    vec![
        step("extract", "filesystem.csv_extractor", "read", "{path: data/in.csv}"),
        step("write", "filesystem.csv_writer", "write", &format!("{{path: \"{out}\"}}")),
    ]
}

#[test]
fn validate_reports_an_unresolved_parameter_like_compile() {
    let errors = validate_equals_compile(&oml("", &csv_steps("out/${params.day}.csv")), &[]);
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].0.as_str(), errors[0].1), ("unresolved_param", 11), "{errors:?}");
    assert!(errors[0].2.contains("'day'"), "{errors:?}");
}

#[test]
fn validate_reports_driver_errors_like_compile() {
    let steps = vec![
        step("ex", "mysql.extractor", "read", "{connection: \"@mysql.main\"}"),
        step("t", "sql.processor", "transform", "{query: \"SELEC * FROM ex\"}"),
        step("w", "mysql.writer", "write", "{connection: \"@mysql.main\", table: t, mode: upsert}"),
    ];
    let errors = validate_equals_compile(&oml("", &steps), &[]);
    let lines: Vec<u64> = errors.iter().map(|e| e.1).collect();
    assert_eq!(lines, vec![7, 11, 15], "{errors:?}");
    assert!(errors.iter().all(|e| e.0 == "invalid_config_value"), "{errors:?}");
    assert!(errors[0].2.contains("neither `query` nor `table`"), "{errors:?}");
    assert!(errors[1].2.contains("SQL syntax error"), "{errors:?}");
    assert!(errors[2].2.contains("`mode: upsert` needs `primary_key`"), "{errors:?}");
}

#[test]
fn validate_uses_param_and_profile_like_compile() {
    let project = Project::new();
    let text = oml(
        "params:\n  batch: {default: 10}\nprofiles:\n  prod: {params: {batch: -5}}\n",
        &[step(
            "ex",
            "mysql.extractor",
            "read",
            "{connection: \"@mysql.main\", table: t, batch_size: \"${params.batch}\"}",
        )],
    );
    project.write("p.yaml", &text);
    // Valid by default; the prod profile's value and a --param each break the driver's check.
    assert_eq!(project.run(&["oml", "validate", "p.yaml"]).status.code(), Some(0));
    for args in [&["--profile", "prod"][..], &["--param", "batch=-1"]] {
        let validated = project.osiris(&["oml", "validate", "p.yaml"]).args(args).output().unwrap();
        assert_eq!(validated.status.code(), Some(1), "{args:?}: {}", describe(&validated));
        assert!(
            String::from_utf8_lossy(&validated.stdout).contains("p.yaml:11:5: error[invalid_config_value]"),
            "{}",
            describe(&validated)
        );
    }
    validate_equals_compile(&text, &["--param", "batch=-1"]);
}

const PARAMS_OML: &str = "oml_version: \"0.1.0\"\nname: p\nparams:\n  min_amount: {default: 10}\n  out: out/dev.csv\nprofiles:\n  prod: {params: {out: out/prod.csv}}\nsteps:\n  - id: extract\n    component: filesystem.csv_extractor\n    mode: read\n    config: {path: data/in.csv}\n  - id: filter\n    component: sql.processor\n    mode: transform\n    config: {query: \"SELECT * FROM df_extract WHERE amount > ${params.min_amount}\"}\n  - id: write\n    component: filesystem.csv_writer\n    mode: write\n    config: {path: \"${params.out}\"}\n";

fn params_project() -> Project {
    let project = Project::new();
    project.write("data/in.csv", "id,amount\n1,5\n2,50\n");
    project.write("p.yaml", PARAMS_OML);
    project
}

/// Runs `command` (`compile`, `oml validate` or `run`) on p.yaml with `args`.
fn on_pipeline(project: &Project, command: &str, args: &[&str]) -> std::process::Output {
    let mut full: Vec<&str> = command.split(' ').collect();
    full.push("p.yaml");
    full.extend_from_slice(args);
    project.run(&full)
}

#[test]
fn a_misspelt_profile_fails_compile_validate_and_run() {
    let project = params_project();
    for (command, code) in [("compile", 2), ("oml validate", 1), ("run", 2)] {
        let output = on_pipeline(&project, command, &["--profile", "prdo"]);
        assert_eq!(output.status.code(), Some(code), "{command}: {}", describe(&output));
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), stderr(&output));
        assert!(text.contains("unknown profile 'prdo'"), "{command}: {text}");
        assert!(text.contains("did you mean `prod`?") && text.contains("known profiles: dev, prod"), "{text}");
    }
    assert!(!project.file("out").exists(), "no run wrote anything");
    assert!(project.run_dirs().is_empty());
    // The right spelling runs with the profile's values.
    let output = on_pipeline(&project, "run", &["--profile", "prod"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(project.file("out/prod.csv").is_file());
}

#[test]
fn profiles_of_osiris_yaml_are_known() {
    let project = params_project();
    project.write(
        "osiris.yaml",
        "filesystem:\n  profiles:\n    enabled: true\n    values: [dev, staging, prod]\n    default: dev\n",
    );
    let output = on_pipeline(&project, "compile", &["--profile", "staging"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let output = on_pipeline(&project, "compile", &["--profile", "stagin"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(stderr(&output).contains("did you mean `staging`?"), "{}", describe(&output));
}

#[test]
fn an_undeclared_param_fails_compile_validate_and_run() {
    let project = params_project();
    for (command, code) in [("compile", 2), ("oml validate", 1), ("run", 2)] {
        let output = on_pipeline(&project, command, &["--param", "min_amout=50"]);
        assert_eq!(output.status.code(), Some(code), "{command}: {}", describe(&output));
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), stderr(&output));
        assert!(text.contains("--param min_amout"), "{command}: {text}");
        assert!(text.contains("did you mean `min_amount`?"), "{text}");
        assert!(text.contains("known parameters: min_amount, out"), "{text}");
    }
    assert!(!project.file("out").exists());
    // --json names it as an error with its code.
    let output = on_pipeline(&project, "compile", &["--param", "min_amout=50", "--json"]);
    assert_eq!(stdout_json(&output)["errors"][0]["code"], "unknown_param", "{}", describe(&output));
    // The declared name works.
    let output = on_pipeline(&project, "run", &["--param", "min_amount=20"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(project.read_text("out/dev.csv"), "id,amount\n2,50\n");
}

#[test]
fn a_param_used_but_not_declared_is_known_and_a_pipeline_may_accept_any() {
    let project = Project::new();
    project.write("data/in.csv", "id\n1\n");
    project.write("p.yaml", oml("", &csv_steps("out/${params.day}.csv")));
    let output = on_pipeline(&project, "run", &["--param", "day=monday"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(project.file("out/monday.csv").is_file());
    let output = on_pipeline(&project, "run", &["--param", "day=monday", "--param", "region=eu"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(stderr(&output).contains("allow_undeclared_params: true"), "{}", describe(&output));
    // Opting in: parameters the pipeline does not use are accepted.
    project.write("p.yaml", oml("allow_undeclared_params: true\n", &csv_steps("out/${params.day}.csv")));
    for command in ["oml validate", "run"] {
        let output = on_pipeline(&project, command, &["--param", "day=tuesday", "--param", "region=eu"]);
        assert_eq!(output.status.code(), Some(0), "{command}: {}", describe(&output));
    }
    assert!(project.file("out/tuesday.csv").is_file());
    project.write("p.yaml", oml("allow_undeclared_params: yes please\n", &csv_steps("out/x.csv")));
    let output = on_pipeline(&project, "oml validate", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
}

const NEED_OML: &str = "oml_version: \"0.1.0\"\nname: p\nsteps:\n  - id: extract\n    component: filesystem.csv_extractor\n    mode: read\n    config: {path: data/in.csv}\n  - id: write\n    component: filesystem.csv_writer\n    mode: write\n    need: [extract]\n    config: {path: out/x.csv}\n";

#[test]
fn run_prints_validation_warnings_before_it_starts() {
    let project = Project::new();
    project.write("data/in.csv", "id\n1\n");
    project.write("p.yaml", NEED_OML);
    let output = project.run(&["run", "p.yaml"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let first = stderr(&output).lines().next().unwrap_or_default().to_string();
    assert_eq!(
        first,
        "p.yaml:11:5: warning[unknown_key] steps[1].need: unknown step key 'need' (ignored) — hint: did you mean 'needs'?",
        "{}",
        describe(&output)
    );
    // --json: on stderr too, and in the result.
    let output = project.run(&["run", "p.yaml", "--json"]);
    assert!(stderr(&output).contains("did you mean 'needs'?"), "{}", describe(&output));
    let warnings = &stdout_json(&output)["warnings"];
    assert_eq!(warnings[0]["code"], "unknown_key", "{warnings}");
    assert_eq!(warnings[0]["path"], "steps[1].need");
    assert_eq!(warnings[0]["hint"], "did you mean 'needs'?");
    // A failed run carries them as well.
    std::fs::remove_file(project.file("data/in.csv")).unwrap();
    let failed = project.run(&["run", "p.yaml", "--json"]);
    assert_eq!(failed.status.code(), Some(1), "{}", describe(&failed));
    assert_eq!(stdout_json(&failed)["warnings"][0]["code"], "unknown_key", "{}", describe(&failed));
    // compile prints them on stderr as well.
    let compiled = project.run(&["compile", "p.yaml"]);
    assert!(stderr(&compiled).contains("warning[unknown_key]"), "{}", describe(&compiled));
    assert!(!String::from_utf8_lossy(&compiled.stdout).contains("warning"), "{}", describe(&compiled));
}
