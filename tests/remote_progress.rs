//! The host's live progress display moves during remote runs (`--target process`, `--e2b`) and
//! ends on the true totals. The display only draws on a terminal, so the host runs under
//! `script`, which gives it a pseudo-terminal, and the test reads what it drew.

mod common;

use std::process::Command;

use common::mysql::{self, MysqlConnection, ScratchDb};
use common::parity::{LocalSandboxServer, Target};
use common::{Project, describe};

const ROWS: u64 = 100_000;

/// 100,000 rows, with a one-second pause every 20,000: the counts must be seen to move
/// (`seq_1_to_N` is MariaDB's SEQUENCE engine).
const PAUSING_ROWS: &str =
    "SELECT seq AS id, CONCAT('name-', seq) AS name FROM seq_1_to_100000 WHERE seq % 20000 <> 0 OR SLEEP(1) = 0";

fn project(db: &ScratchDb) -> Project {
    let project = Project::new();
    project.write(
        "osiris_connections.yaml",
        mysql::connections_yaml(&[MysqlConnection::new("db", &db.name, "PROGRESS_PW")]),
    );
    project.write(
        "p.yaml",
        format!(
            "oml_version: \"0.1.0\"\nname: progress\nsteps:\n  - id: extract\n    component: mysql.extractor\n    mode: read\n    config: {{connection: \"@mysql.db\", query: \"{PAUSING_ROWS}\"}}\n  - id: write\n    component: filesystem.csv_writer\n    mode: write\n    needs: [extract]\n    config: {{path: out/rows.csv}}\n"
        ),
    );
    project
}

/// Runs `osiris run p.yaml ARGS` on a pseudo-terminal; returns what it drew.
fn run_on_a_terminal(project: &Project, args: &[String], env: &[(String, String)]) -> String {
    let mut command = vec![shell_quote(env!("CARGO_BIN_EXE_osiris")), "run".into(), "p.yaml".into()];
    command.extend(args.iter().map(|a| shell_quote(a)));
    let output = Command::new("script")
        .args(["-q", "-e", "-c", &command.join(" "), "/dev/null"])
        .current_dir(project.path())
        .env("OSIRIS_HOME", project.path())
        .env("PROGRESS_PW", mysql::password())
        .env("COLUMNS", "160")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("`script` (util-linux) runs the host on a pseudo-terminal");
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The row counts the display showed for `step`, in the order it drew them.
fn counts_drawn(screen: &str, step: &str) -> Vec<u64> {
    screen
        .split(['\n', '\r'])
        .map(strip_ansi)
        .filter(|line| line.split_whitespace().next() == Some(step))
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "rows")?;
            words.get(at.checked_sub(1)?)?.replace(',', "").parse().ok()
        })
        .collect()
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn assert_live_and_exact(screen: &str, target: &str) {
    for step in ["extract", "write"] {
        let counts = counts_drawn(screen, step);
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{target}/{step}: counts went back: {counts:?}");
        let mut moving: Vec<u64> = counts.iter().copied().filter(|&c| c > 0 && c < ROWS).collect();
        moving.dedup();
        assert!(moving.len() >= 3, "{target}/{step}: the count did not move during the run: {counts:?}\n{screen}");
        assert_eq!(counts.last(), Some(&ROWS), "{target}/{step}: the display did not end on the total: {counts:?}");
    }
}

#[test]
fn process_runs_show_live_counts_and_end_on_the_totals() {
    let db = ScratchDb::create(&[]);
    let project = project(&db);
    let screen = run_on_a_terminal(&project, &["--target".into(), "process".into()], &[]);
    assert_live_and_exact(&screen, "process");
    assert_eq!(project.read_text("out/rows.csv").lines().count() as u64, ROWS + 1);
}

#[test]
fn e2b_runs_show_live_counts_and_end_on_the_totals() {
    let db = ScratchDb::create(&[]);
    let project = project(&db);
    let server = LocalSandboxServer::start();
    let target = Target::e2b(&server);
    let screen = run_on_a_terminal(&project, &target.args, &target.env);
    assert_live_and_exact(&screen, "e2b");
    assert_eq!(project.read_text("out/rows.csv").lines().count() as u64, ROWS + 1);
}
