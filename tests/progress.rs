//! The live progress display of `osiris run`, through the real binary: on a real terminal (a pty
//! made by `script`) every line fits the terminal's width — read from the terminal, not from
//! `$COLUMNS` — with long step ids shortened, and a cancellation shows `cancelling… (steps: …)`;
//! without a terminal, a plain line per running step comes every interval (10 s; shortened here
//! with `OSIRIS_PROGRESS_INTERVAL`), transforms showing the rows they consume.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use common::{Project, describe};

const LONG_ID: &str = "extract_every_order_of_every_customer_in_every_region_since_2001";

fn pipeline() -> String {
    format!(
        r#"oml_version: "0.1.0"
name: slow
steps:
  - id: {LONG_ID}
    component: filesystem.csv_extractor
    mode: read
    config: {{path: data/in.csv}}
  - id: t
    component: sql.processor
    mode: transform
    needs: [{LONG_ID}]
    config: {{query: "SELECT id, name FROM df_{LONG_ID} WHERE id % 2 = 0"}}
  - id: write
    component: filesystem.csv_writer
    mode: write
    needs: [t]
    config: {{path: out/even.csv}}
"#
    )
}

/// Makes `data/in.csv` a FIFO fed with 2,000 rows every 100 ms for `seconds` (or without end).
fn slow_fifo(project: &Project, seconds: Option<f64>) {
    let path = project.file("data/in.csv");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success());
    std::thread::spawn(move || {
        let Ok(mut fifo) = std::fs::OpenOptions::new().write(true).open(&path) else { return };
        let _ = fifo.write_all(b"id,name\n");
        let started = std::time::Instant::now();
        let mut i = 0u64;
        while seconds.is_none_or(|s| started.elapsed().as_secs_f64() < s) {
            let mut chunk = String::new();
            for _ in 0..2000 {
                chunk.push_str(&format!("{i},name-{i}\n"));
                i += 1;
            }
            if fifo.write_all(chunk.as_bytes()).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

/// The count in `progress: <id> running, 1,234 rows …`.
fn rows_of(line: &str) -> u64 {
    let rows = line.split(", ").nth(1).unwrap().split(' ').next().unwrap();
    rows.replace(',', "").parse().unwrap()
}

#[test]
fn without_a_terminal_a_plain_line_per_running_step_comes_every_interval() {
    let project = Project::new();
    project.write("p.yaml", pipeline());
    slow_fifo(&project, Some(2.5));
    let output = project
        .osiris(&["run", "p.yaml"])
        .env("OSIRIS_PROGRESS_INTERVAL", "0.5")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let extract: Vec<&str> =
        stderr.lines().filter(|l| l.starts_with(&format!("progress: {LONG_ID} running, "))).collect();
    assert!(extract.len() >= 3, "a line every 0.5 s while the extractor runs: {}", describe(&output));
    let counts: Vec<u64> = extract.iter().map(|l| rows_of(l)).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]) && counts.last() > counts.first(), "{counts:?}");
    // The transform shows what it consumes and what it produces.
    let transform = stderr.lines().find(|l| l.starts_with("progress: t running, ")).unwrap_or_else(|| {
        panic!("no progress line of the transform: {}", describe(&output));
    });
    assert!(transform.contains(" → ") && transform.contains("rows/s"), "{transform}");
    assert!(stderr.lines().any(|l| l.starts_with("progress: write running, ")), "{stderr}");
    // No terminal escapes in a log.
    assert!(!stderr.contains('\x1b'), "{stderr}");
}

/// Runs `shell` in a pty of `cols` columns (`script`), returns everything the terminal showed.
/// `OSIRIS` in `shell` is the binary under test; `$COLUMNS` claims 300 columns.
fn in_a_terminal(project: &Project, cols: u16, shell: &str) -> std::process::Output {
    let osiris = env!("CARGO_BIN_EXE_osiris");
    let command = format!("stty cols {cols} rows 30; export COLUMNS=300; {}", shell.replace("OSIRIS", osiris));
    std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(project.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("OSIRIS_HOME", project.path())
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The lines the terminal showed, escapes removed, split at line feeds and carriage returns.
fn screen_lines(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            // CSI: parameters, then one final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain.split(['\n', '\r']).map(str::to_string).collect()
}

/// The progress display's lines: not the summary's `output:`/`run log:` paths nor the final
/// `error:`/`hint:` message, printed once the display is done (the terminal may wrap those).
fn display_lines(lines: &[String]) -> Vec<&String> {
    let after_the_display = ["run log:", "output:", "error:", "hint:"];
    lines.iter().filter(|l| !l.trim().is_empty() && !after_the_display.iter().any(|a| l.contains(a))).collect()
}

#[test]
fn on_a_terminal_every_line_fits_its_width_and_long_ids_are_shortened() {
    let project = Project::new();
    project.write("p.yaml", pipeline());
    slow_fifo(&project, Some(1.5));
    let cols = 50;
    let output = in_a_terminal(&project, cols, "OSIRIS run p.yaml");
    assert!(output.status.success(), "{}", describe(&output));
    let lines = screen_lines(&output.stdout);
    let shown = display_lines(&lines);
    assert!(shown.iter().any(|l| l.contains("running")), "the display ran: {lines:?}");
    for line in &shown {
        assert!(line.chars().count() < cols as usize, "wider than {cols} columns: {line:?}");
    }
    // The id is cut to what is left of 50 columns, not to the 300 that $COLUMNS claims.
    let prefix: String = LONG_ID.chars().take(8).collect();
    let id_lines: Vec<&&String> = shown.iter().filter(|l| l.contains(&prefix)).collect();
    assert!(!id_lines.is_empty() && id_lines.iter().all(|l| l.contains('…') && !l.contains(LONG_ID)), "{shown:?}");
    assert!(shown.iter().any(|l| l.contains(" → ")), "the transform shows rows in → out: {shown:?}");
}

#[test]
fn on_a_terminal_sigterm_shows_cancelling_with_the_running_steps() {
    let project = Project::new();
    project.write("p.yaml", pipeline());
    slow_fifo(&project, None);
    let cols = 72;
    // A background job of a non-interactive shell ignores SIGINT, so SIGTERM it is.
    let output = in_a_terminal(
        &project,
        cols,
        "OSIRIS run p.yaml & pid=$!; \
         while ! ls out/.even.csv.osiris-tmp-* >/dev/null 2>&1; do sleep 0.1; done; \
         sleep 1; kill -TERM $pid; wait $pid",
    );
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let lines = screen_lines(&output.stdout);
    let shown = display_lines(&lines);
    let cancelling = shown
        .iter()
        .find(|l| l.trim_start().starts_with("cancelling… (steps: "))
        .unwrap_or_else(|| panic!("no cancelling line: {shown:?}"));
    assert!(cancelling.contains("write") && cancelling.contains(", t"), "{cancelling}");
    for line in &shown {
        assert!(line.chars().count() < cols as usize, "wider than {cols} columns: {line:?}");
    }
    assert!(shown.iter().any(|l| l.contains("Run cancelled")), "{shown:?}");
}
