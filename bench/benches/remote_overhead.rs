//! Local against E2B: the same pipelines through `osiris run --target local` and `--e2b` against
//! the local sandbox server (`osiris sandbox serve`, loopback), side by side in one run; with
//! `E2B_API_KEY` set and `OSIRIS_BENCH_REAL_E2B=1`, also against real E2B.
//!
//! Two pipelines: an extractor feeding 1 writer (2 steps) and 9 writers (10 steps), on a small
//! CSV, so that the time is the adapters' and not the data's. From the medians:
//! - fixed overhead = e2b(2 steps) − local(2 steps), with the binary already in the sandbox (a
//!   template that carries it) and, separately, with the upload;
//! - per-step overhead = ((e2b(10) − e2b(2)) − (local(10) − local(2))) / 8.
//!
//! Both run the real binary, as a user would (process start and compile are in both and cancel
//! out). Build it first: `cargo build --release --bin osiris` (or set `OSIRIS_BIN`).
//! Run: `cargo bench --workspace --bench remote_overhead`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

const API_KEY: &str = "bench-local-key";
const WRITERS: [usize; 2] = [1, 9];

/// Every measured duration, by bench id, for the derived figures printed at the end.
static SAMPLES: Mutex<BTreeMap<String, Vec<Duration>>> = Mutex::new(BTreeMap::new());

fn osiris_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("OSIRIS_BIN") {
        return PathBuf::from(bin);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("target");
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or(root);
    for profile in ["release", "debug"] {
        let bin = target.join(profile).join("osiris");
        if bin.is_file() {
            return bin;
        }
    }
    panic!("no osiris binary: run `cargo build --release --bin osiris` first, or set OSIRIS_BIN");
}

fn pipeline(writers: usize) -> String {
    let mut text = String::from(
        "oml_version: \"0.1.0\"\nname: overhead\nsteps:\n  - id: extract\n    component: filesystem.csv_extractor\n    mode: read\n    config: {path: data/orders.csv}\n",
    );
    for i in 0..writers {
        text.push_str(&format!(
            "  - id: write-{i}\n    component: filesystem.csv_writer\n    mode: write\n    needs: [extract]\n    config: {{path: out/orders-{i}.csv}}\n"
        ));
    }
    text
}

/// `osiris sandbox serve` on ephemeral loopback ports; killed on drop.
struct Server {
    child: Child,
    api_url: String,
    envd_url: String,
}

impl Server {
    fn start(bin: &Path, root: &Path, template: Option<(&str, &Path)>) -> Server {
        let mut cmd = Command::new(bin);
        cmd.args(["sandbox", "serve", "--api-addr", "127.0.0.1:0", "--envd-addr", "127.0.0.1:0", "--json"])
            .arg("--root")
            .arg(root)
            .args(["--api-key", API_KEY]);
        if let Some((name, dir)) = template {
            cmd.arg("--template-dir").arg(format!("{name}={}", dir.display()));
        }
        let mut child =
            cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("osiris sandbox serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line).expect("the server prints its URLs as JSON");
        Server {
            child,
            api_url: ready["api_url"].as_str().unwrap().to_string(),
            envd_url: ready["envd_url"].as_str().unwrap().to_string(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a measured run reaches its target.
struct Target {
    name: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

fn run_once(bin: &Path, project: &Path, writers: usize, target: &Target) -> Duration {
    let started = Instant::now();
    let output = Command::new(bin)
        .current_dir(project)
        .args(["run", &format!("p{writers}.yaml"), "--json"])
        .args(&target.args)
        .envs(target.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(output.status.success(), "{} failed: {}", target.name, String::from_utf8_lossy(&output.stdout));
    elapsed
}

fn bench(c: &mut Criterion) {
    let bin = osiris_bin();
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join("data")).unwrap();
    let mut csv = String::from("order_id,customer_id,amount\n");
    for i in 0..200 {
        csv.push_str(&format!("{i},{},{}.5\n", i % 17, i * 3));
    }
    std::fs::write(project.path().join("data/orders.csv"), csv).unwrap();
    for writers in WRITERS {
        std::fs::write(project.path().join(format!("p{writers}.yaml")), pipeline(writers)).unwrap();
    }
    // A template that already carries the binary, as a custom E2B template would.
    let template = tempfile::tempdir().unwrap();
    let staged = Command::new(&bin).args(["sandbox", "stage-binary"]).arg(template.path()).output().unwrap();
    assert!(staged.status.success(), "{}", String::from_utf8_lossy(&staged.stderr));
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&bin, root.path(), Some(("osiris-bench", template.path())));
    let e2b_env = vec![
        ("E2B_API_KEY".to_string(), API_KEY.to_string()),
        ("E2B_API_URL".to_string(), server.api_url.clone()),
        ("E2B_SANDBOX_URL".to_string(), server.envd_url.clone()),
    ];
    let mut targets = vec![
        Target { name: "local", args: vec!["--target".into(), "local".into()], env: vec![] },
        Target {
            name: "e2b-local-server",
            args: vec!["--e2b".into(), "--e2b-template".into(), "osiris-bench".into()],
            env: e2b_env.clone(),
        },
        Target { name: "e2b-local-server-upload", args: vec!["--e2b".into()], env: e2b_env },
    ];
    if std::env::var_os("E2B_API_KEY").is_some() && std::env::var_os("OSIRIS_BENCH_REAL_E2B").is_some() {
        targets.push(Target { name: "e2b-real", args: vec!["--e2b".into()], env: vec![] });
    }

    let mut group = c.benchmark_group("remote_overhead");
    group.sample_size(10).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(1));
    for target in &targets {
        for writers in WRITERS {
            let id = format!("{}/{}_steps", target.name, writers + 1);
            group.bench_function(&id, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let took = run_once(&bin, project.path(), writers, target);
                        SAMPLES.lock().unwrap().entry(id.clone()).or_default().push(took);
                        total += took;
                    }
                    total
                })
            });
        }
    }
    group.finish();
    report(&targets);
}

fn median(id: &str) -> Option<f64> {
    let samples = SAMPLES.lock().unwrap();
    let mut v: Vec<f64> = samples.get(id)?.iter().map(Duration::as_secs_f64).collect();
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// The derived figures, next to the targets (per step ≤ 5 ms, fixed ≤ 250 ms).
fn report(targets: &[Target]) {
    let (small, large) = (WRITERS[0] + 1, WRITERS[1] + 1);
    let Some(local_small) = median(&format!("local/{small}_steps")) else { return };
    let Some(local_large) = median(&format!("local/{large}_steps")) else { return };
    println!(
        "\nremote_overhead (medians; local {small} steps {:.1} ms, {large} steps {:.1} ms)",
        local_small * 1e3,
        local_large * 1e3
    );
    for target in targets.iter().filter(|t| t.name != "local") {
        let (Some(s), Some(l)) =
            (median(&format!("{}/{small}_steps", target.name)), median(&format!("{}/{large}_steps", target.name)))
        else {
            continue;
        };
        let fixed = (s - local_small) * 1e3;
        let per_step = ((l - s) - (local_large - local_small)) / (large - small) as f64 * 1e3;
        let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
        println!(
            "  {:<26} fixed overhead {fixed:>8.1} ms [{} ≤ 250 ms]   per-step overhead {per_step:>6.2} ms [{} ≤ 5 ms]",
            target.name,
            verdict(fixed <= 250.0),
            verdict(per_step <= 5.0)
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
