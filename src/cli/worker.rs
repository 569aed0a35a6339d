//! `osiris worker`: runs a prepared run exactly as the local adapter would and streams its
//! telemetry home as Arrow IPC — over ipc-channel (`--ipc`, the process adapter) or stdout
//! (`--prepared`, the E2B adapter). Log lines go to stderr. Secrets come from the environment.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use osiris_adapters::process::{WorkerConnection, connect_to_host};
use osiris_adapters::worker::host_watch::HostWatch;
use osiris_adapters::worker::{self, Transport, WorkerEnv};
use osiris_engine::connections::ProcessEnv;
use osiris_engine::prepared::PreparedRun;
use osiris_engine::registry::Registry;
use tokio_util::sync::CancellationToken;

use super::{CliError, Outcome};

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("source").required(true))]
pub struct WorkerArgs {
    /// The prepared run (JSON, as `prepared_run.json` in a run log); telemetry goes to stdout.
    #[arg(long, value_name = "FILE", group = "source")]
    prepared: Option<PathBuf>,
    /// Connect to a host's ipc-channel server of this name; it sends the run and takes the
    /// telemetry.
    #[arg(long, value_name = "NAME", group = "source")]
    ipc: Option<String>,
    /// Where artifacts and spill files go.
    #[arg(long, value_name = "DIR")]
    run_dir: PathBuf,
    /// Relative paths in step configs resolve against this directory (default: the working
    /// directory).
    #[arg(long, value_name = "DIR")]
    base_dir: Option<PathBuf>,
    /// Expect a heartbeat from the host on stdin at least every SECONDS; cancel the run (writers
    /// roll back) when one is missing or stdin ends. Remote hosts pass it.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    heartbeat_timeout: Option<u64>,
}

pub fn command(registry: Registry, args: WorkerArgs) -> Result<Outcome, CliError> {
    let base_dir = match args.base_dir {
        Some(dir) => dir,
        None => std::env::current_dir()
            .map_err(|e| CliError::usage(format!("cannot read the working directory: {e}"), "pass --base-dir"))?,
    };
    let connection = match (&args.prepared, &args.ipc) {
        (Some(file), _) => from_file(file)?,
        (None, Some(name)) => connect_to_host(name).map_err(|e| CliError::run_failed(e.to_string(), None))?,
        (None, None) => return Err(CliError::usage("no run to execute", "pass --prepared FILE or --ipc NAME")),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::run_failed(format!("cannot start the async runtime: {e}"), None))?;
    let WorkerConnection { prepared, transport, host } = connection;
    if let Some(seconds) = args.heartbeat_timeout {
        host.watch_heartbeats(std::io::stdin(), Duration::from_secs(seconds));
    }
    let env = WorkerEnv { registry, secrets: Arc::new(ProcessEnv), run_dir: args.run_dir, base_dir, host };
    let report = runtime.block_on(async move {
        cancel_on_signals(env.host.cancel_token().clone());
        worker::run(prepared, env, transport, std::io::stderr()).await
    });
    match report {
        Ok(report) if report.succeeded() => Ok(Outcome::text("")),
        Ok(_) => Ok(Outcome::WithCode(Box::new(Outcome::text("")), 1)),
        Err(e) => Err(CliError::run_failed(e.to_string(), e.hint().map(str::to_string))),
    }
}

/// Reads `--prepared FILE`; telemetry goes to stdout, one flush per chunk so that the host sees
/// it as it happens.
fn from_file(file: &PathBuf) -> Result<WorkerConnection, CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display()), "pass an existing file"))?;
    let prepared: PreparedRun = serde_json::from_str(&text).map_err(|e| {
        CliError::usage(
            format!("{} is not a prepared run: {e}", file.display()),
            "the host and the worker must be the same osiris version",
        )
    })?;
    let mut stdout = std::io::stdout();
    let transport: Transport = Box::new(move |bytes| {
        stdout.write_all(bytes)?;
        stdout.flush()
    });
    Ok(WorkerConnection { prepared, transport, host: HostWatch::new(CancellationToken::new()) })
}

/// SIGINT, SIGTERM and SIGHUP cancel the run: steps roll back and the report still goes home.
/// (Ctrl-C and a closed terminal reach the whole process group, the worker included; systemd
/// and `docker stop` may signal every process of the unit or container.)
fn cancel_on_signals(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    for kind in [SignalKind::interrupt(), SignalKind::terminate(), SignalKind::hangup()] {
        let cancel = cancel.clone();
        if let Ok(mut signals) = signal(kind) {
            tokio::spawn(async move {
                if signals.recv().await.is_some() {
                    cancel.cancel();
                }
            });
        }
    }
}
