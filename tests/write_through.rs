//! File writers never replace what is not a regular file: a FIFO, a character device and the
//! process's own stdout are written through; a symlink's target is replaced atomically and the
//! link stays a link. Through the real `osiris` binary (which runs as root in CI, where replacing
//! `/dev/stdout` or `/dev/null` would succeed and break the machine).

mod common;

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use common::{Project, describe, dir_entries, sample_csv};

fn csv_copy(to: &str) -> String {
    format!(
        r#"oml_version: "0.1.0"
name: copy
steps:
  - id: extract
    component: filesystem.csv_extractor
    mode: read
    config: {{path: data/in.csv}}
  - id: write
    component: filesystem.csv_writer
    mode: write
    needs: [extract]
    config: {{path: "{to}"}}
"#
    )
}

fn parquet_copy(to: &str) -> String {
    csv_copy(to).replace("filesystem.csv_writer", "filesystem.parquet_writer")
}

fn project_writing_to(pipeline: &str) -> Project {
    let project = Project::new();
    project.write("data/in.csv", sample_csv());
    project.write("p.yaml", pipeline);
    project
}

fn no_temp_files(dir: &Path) {
    let names = dir_entries(dir);
    assert!(names.iter().all(|n| !n.contains(".osiris-tmp-") && !n.contains(".osiris-locking-")), "{names:?}");
}

#[test]
fn a_fifo_is_written_through_to_its_reader() {
    let project = project_writing_to(&csv_copy("out/pipe.csv"));
    std::fs::create_dir_all(project.file("out")).unwrap();
    let fifo = project.file("out/pipe.csv");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            std::fs::File::open(&fifo).unwrap().read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    let output = project.run(&["run", "p.yaml"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(String::from_utf8(reader.join().unwrap()).unwrap(), sample_csv());
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO is still a FIFO");
    no_temp_files(&project.file("out"));
}

#[test]
fn dev_null_is_written_through_and_stays_a_device() {
    for pipeline in [csv_copy("/dev/null"), parquet_copy("/dev/null")] {
        let project = project_writing_to(&pipeline);
        let output = project.run(&["run", "p.yaml"]);
        assert!(output.status.success(), "{}", describe(&output));
        assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device(), "/dev/null was replaced");
        no_temp_files(Path::new("/dev"));
    }
}

#[test]
fn dev_stdout_writes_to_stdout_and_stays_a_symlink() {
    let before = std::fs::read_link("/dev/stdout").unwrap();
    for target in ["local", "process"] {
        let project = project_writing_to(&csv_copy("/dev/stdout"));
        let output = project.run(&["run", "p.yaml", "--target", target]);
        assert!(output.status.success(), "{target}: {}", describe(&output));
        let stdout = String::from_utf8(output.stdout.clone()).unwrap();
        assert!(stdout.starts_with(&sample_csv()), "{target}: the rows come first on stdout: {}", describe(&output));
        assert!(stdout.contains("Run succeeded"), "{target}: then the summary: {}", describe(&output));
        assert!(std::fs::symlink_metadata("/dev/stdout").unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_link("/dev/stdout").unwrap(), before);
        no_temp_files(Path::new("/dev"));
    }
}

#[test]
fn a_symlinks_target_is_replaced_and_the_link_stays() {
    for (pipeline, parquet) in [(csv_copy("latest.csv"), false), (parquet_copy("latest.csv"), true)] {
        let project = project_writing_to(&pipeline);
        project.write("data/x.csv", "old contents\n");
        std::os::unix::fs::symlink("data/x.csv", project.file("latest.csv")).unwrap();
        let output = project.run(&["run", "p.yaml"]);
        assert!(output.status.success(), "{}", describe(&output));
        let link = project.file("latest.csv");
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "latest.csv is still a link");
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("data/x.csv"));
        let written = project.read("data/x.csv");
        if parquet {
            assert!(written.starts_with(b"PAR1") && written.ends_with(b"PAR1"), "a Parquet file");
        } else {
            assert_eq!(String::from_utf8(written).unwrap(), sample_csv());
        }
        no_temp_files(project.path());
        no_temp_files(&project.file("data"));
    }
}

#[test]
fn a_dangling_symlink_creates_its_target() {
    let project = project_writing_to(&csv_copy("latest.csv"));
    std::fs::create_dir_all(project.file("data/new")).unwrap();
    std::os::unix::fs::symlink("data/new/x.csv", project.file("latest.csv")).unwrap();
    let output = project.run(&["run", "p.yaml"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(std::fs::symlink_metadata(project.file("latest.csv")).unwrap().file_type().is_symlink());
    assert_eq!(project.read_text("data/new/x.csv"), sample_csv());
}
