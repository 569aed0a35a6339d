//! `filesystem.csv_extractor` on real files through the real `osiris` binary: malformed input
//! (unterminated quotes, ragged rows, empty files), Osiris's options (`header` as a record number,
//! `parse_dates` as a list, `compression`) and compressed inputs made by the system's gzip,
//! bzip2, xz and zip commands (`scripts/services.sh` installs them).

mod common;

use std::process::{Command, Output};

use common::{Project, describe, sample_csv};

/// A pipeline reading `path` with the extra extractor `options` (YAML flow-map entries) and
/// writing what it read to `out/out.csv`.
fn pipeline(path: &str, options: &str) -> String {
    let options = if options.is_empty() { String::new() } else { format!(", {options}") };
    format!(
        "oml_version: \"0.1.0\"\nname: csv-files\nsteps:\n  - id: extract\n    component: filesystem.csv_extractor\n    \
         mode: read\n    config: {{path: \"{path}\"{options}}}\n  - id: write\n    component: filesystem.csv_writer\n    \
         mode: write\n    needs: [extract]\n    config: {{path: out/out.csv}}\n"
    )
}

/// Runs the pipeline; `out/out.csv` of an earlier run is removed first.
fn run(project: &Project, path: &str, options: &str) -> Output {
    let _ = std::fs::remove_file(project.file("out/out.csv"));
    project.write("p.yaml", pipeline(path, options));
    project.run(&["run", "p.yaml"])
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Asserts a failed run (exit 1) whose output names `needles`, and that no output file exists.
fn assert_fails_naming(project: &Project, output: &Output, needles: &[&str]) {
    assert_eq!(output.status.code(), Some(1), "{}", describe(output));
    let all = text(output);
    for needle in needles {
        assert!(all.contains(needle), "missing {needle:?} in:\n{}", describe(output));
    }
    assert!(!project.file("out/out.csv").exists(), "a failed run left out/out.csv");
}

#[test]
fn a_stray_quote_fails_naming_the_file_and_the_line_it_opened_on() {
    let project = Project::new();
    let mut csv = String::from("id,name\n1,a\n2,\"unclosed\n");
    for i in 3..=126_000 {
        csv.push_str(&format!("{i},row {i}\n"));
    }
    assert_eq!(csv.lines().count(), 126_001);
    project.write("data/big.csv", &csv);
    let output = run(&project, "data/big.csv", "");
    assert_fails_naming(&project, &output, &["extract.parse_error", "big.csv: line 3", "unterminated quote"]);
}

#[test]
fn ragged_rows_fail_naming_file_line_and_counts() {
    let project = Project::new();
    project.write("data/short.csv", "a,b,c\n1,2,3\n4,5\n");
    let output = run(&project, "data/short.csv", "");
    assert_fails_naming(&project, &output, &["short.csv: line 3", "the row has 2 fields but the header has 3"]);

    project.write("data/long.csv", "a,b\n1,2\n3,4\n5,6,7\n");
    // Beyond the inference sample too.
    let output = run(&project, "data/long.csv", "infer_rows: 1");
    assert_fails_naming(&project, &output, &["long.csv: line 4", "the row has 3 fields but the header has 2"]);

    project.write("data/nohead.csv", "1,2\n3\n");
    let output = run(&project, "data/nohead.csv", "header: false");
    assert_fails_naming(&project, &output, &["nohead.csv: line 2", "the row has 1 field but the first row has 2"]);
}

#[test]
fn an_empty_file_gives_no_rows_with_the_selected_columns() {
    let project = Project::new();
    project.write("data/empty.csv", "");
    let output = run(&project, "data/empty.csv", "");
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(project.read_text("out/out.csv"), "");
    let output = run(&project, "data/empty.csv", "columns: [id, name]");
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(project.read_text("out/out.csv"), "id,name\n");
}

#[test]
fn header_as_a_record_number_and_parse_dates_as_a_list() {
    let project = Project::new();
    let body = "id,at,day\n1,2024-01-31 10:00:00,2024-02-29\n2,2024-02-01 23:59:59.5,\n";
    project.write("data/in.csv", format!("exported by tool\nsecond preamble line\n{body}"));
    let output = run(&project, "data/in.csv", "header: 2");
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(project.read_text("out/out.csv"), body);
    // `header: 0` is the first record, like `true`.
    project.write("data/plain.csv", body);
    let output = run(&project, "data/plain.csv", "header: 0");
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(project.read_text("out/out.csv"), body);
    // No header: columns are numbered and the first record is data.
    let output = run(&project, "data/plain.csv", "header: null");
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(project.read_text("out/out.csv"), format!("0,1,2\n{body}"));
    // `parse_dates` names columns read as timestamps even when their text is not ISO-8601.
    let output = run(&project, "data/plain.csv", "parse_dates: [at, day]");
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        project.read_text("out/out.csv"),
        "id,at,day\n1,2024-01-31T10:00:00,2024-02-29\n2,2024-02-01T23:59:59.500,\n"
    );
    let output = run(&project, "data/plain.csv", "parse_dates: [id, nope]");
    assert_fails_naming(&project, &output, &["'nope'", "parse_dates"]);
    let output = run(&project, "data/plain.csv", "parse_dates: [id]");
    assert_fails_naming(&project, &output, &["column 'id'", "is not a timestamp"]);
}

/// Runs a system command that makes a compressed fixture; fails loudly when it is missing.
fn compress(project: &Project, program: &str, args: &[&str]) {
    let status =
        Command::new(program).args(args).current_dir(project.file("data")).status().unwrap_or_else(|e| {
            panic!("`{program}` is needed to make the fixture ({e}); run `bash scripts/services.sh`")
        });
    assert!(status.success(), "{program} {args:?}: {status}");
}

#[test]
fn compressed_inputs_read_by_suffix_and_by_option() {
    let project = Project::new();
    let sample = sample_csv();
    project.write("data/orders.csv", &sample);
    compress(&project, "gzip", &["-k", "orders.csv"]);
    compress(&project, "bzip2", &["-k", "orders.csv"]);
    compress(&project, "xz", &["-k", "orders.csv"]);
    compress(&project, "zip", &["-q", "orders.zip", "orders.csv"]);
    for file in ["orders.csv.gz", "orders.csv.bz2", "orders.csv.xz", "orders.zip"] {
        let output = run(&project, &format!("data/{file}"), "");
        assert!(output.status.success(), "{file}: {}", describe(&output));
        assert_eq!(project.read_text("out/out.csv"), sample, "{file}");
    }
    // An explicit codec for a name without the suffix; `none` reads the bytes as they are.
    for (file, codec) in
        [("orders.csv.gz", "gzip"), ("orders.csv.bz2", "bz2"), ("orders.csv.xz", "xz"), ("orders.zip", "zip")]
    {
        std::fs::copy(project.file(&format!("data/{file}")), project.file("data/renamed.dat")).unwrap();
        let output = run(&project, "data/renamed.dat", &format!("compression: {codec}"));
        assert!(output.status.success(), "{codec}: {}", describe(&output));
        assert_eq!(project.read_text("out/out.csv"), sample, "{codec}");
    }
    project.write("data/plain.gz", &sample);
    let output = run(&project, "data/plain.gz", "compression: none");
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(project.read_text("out/out.csv"), sample);
    // A plain file read as gzip, a truncated gzip file and a zip of two files fail clearly.
    let output = run(&project, "data/plain.gz", "");
    assert_fails_naming(&project, &output, &["extract.io_error", "plain.gz"]);
    let gz = project.read("data/orders.csv.gz");
    project.write("data/cut.csv.gz", &gz[..gz.len() / 2]);
    let output = run(&project, "data/cut.csv.gz", "");
    assert_fails_naming(&project, &output, &["extract.io_error", "cut.csv.gz"]);
    compress(&project, "zip", &["-q", "two.zip", "orders.csv", "plain.gz"]);
    let output = run(&project, "data/two.zip", "");
    assert_fails_naming(&project, &output, &["two.zip", "holds 2 files"]);
    let output = run(&project, "data/orders.csv", "compression: lz4");
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
}
