//! `osiris sandbox serve`: the local E2B-compatible sandbox server.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use osiris_adapters::binary::ShippedBinary;
use osiris_adapters::sandbox::SandboxServer;

use super::{CliError, Outcome, emit};

#[derive(Subcommand, Debug)]
pub enum SandboxCommand {
    /// Serve E2B's control-plane API and envd locally, so that `osiris run --e2b` and the
    /// official E2B SDKs run sandboxes as local processes, without an E2B account.
    ///
    /// Each sandbox is a directory under --root used as its home (`/home/user` maps into it).
    /// There is NO isolation: sandbox processes run as the user running this command. Runs
    /// until Ctrl-C or SIGTERM, then kills every sandbox.
    #[command(
        after_help = "Examples:\n  osiris sandbox serve --api-key dev-key\n  E2B_API_KEY=dev-key osiris sandbox serve --root /tmp/sandboxes --keep\n\nThen, in another shell, use the lines it prints:\n  export E2B_API_KEY=dev-key E2B_API_URL=http://127.0.0.1:3000 E2B_SANDBOX_URL=http://127.0.0.1:49983"
    )]
    Serve(ServeArgs),
    /// Copy this osiris binary into DIR at the path the E2B adapter looks for
    /// (`.osiris/bin/osiris-<sha256 prefix>`): DIR then serves as a template directory
    /// (`serve --template-dir NAME=DIR`), or as the home directory of a custom E2B template, and
    /// `--e2b --e2b-template NAME` runs skip the binary upload.
    StageBinary {
        /// The template's home directory.
        dir: PathBuf,
        /// Print a JSON result.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address of the control-plane API (E2B_API_URL); port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    api_addr: SocketAddr,
    /// Address of envd, shared by every sandbox (E2B_SANDBOX_URL); port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:49983")]
    envd_addr: SocketAddr,
    /// Directory for sandbox homes (default: a new temporary directory, removed on exit).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// The API key clients must send (X-API-Key). Required.
    #[arg(long, env = "E2B_API_KEY", hide_env_values = true, value_name = "KEY")]
    api_key: Option<String>,
    /// Keep sandbox directories after their sandbox is killed or expires.
    #[arg(long)]
    keep: bool,
    /// Allow listening on a non-loopback address: anyone who can reach it and knows the key
    /// runs commands as you.
    #[arg(long)]
    allow_remote: bool,
    /// Print one JSON line `{"api_url": …, "envd_url": …, "root": …}` once listening.
    #[arg(long)]
    json: bool,
    /// Sandboxes created from template NAME start with the files of DIR in their home (repeat for
    /// several); see `osiris sandbox stage-binary`.
    #[arg(long = "template-dir", value_name = "NAME=DIR", value_parser = parse_template)]
    template_dirs: Vec<(String, PathBuf)>,
}

fn parse_template(text: &str) -> Result<(String, PathBuf), String> {
    let (name, dir) = text.split_once('=').ok_or_else(|| format!("expected NAME=DIR, got '{text}'"))?;
    if name.is_empty() || !std::path::Path::new(dir).is_dir() {
        return Err(format!("'{text}': NAME must not be empty and DIR must be an existing directory"));
    }
    Ok((name.to_string(), PathBuf::from(dir)))
}

impl ServeArgs {
    pub fn json(&self) -> bool {
        self.json
    }

    /// Osiris's global `--json` before the subcommand.
    pub fn set_json(&mut self) {
        self.json = true;
    }
}

pub fn command(command: SandboxCommand) -> Result<Outcome, CliError> {
    match command {
        SandboxCommand::Serve(args) => serve(args),
        SandboxCommand::StageBinary { dir, json } => stage_binary(&dir, json),
    }
}

fn stage_binary(dir: &std::path::Path, json: bool) -> Result<Outcome, CliError> {
    let binary = ShippedBinary::current().map_err(|e| CliError::run_failed(e.to_string(), None))?;
    let staged = binary
        .stage_into(dir)
        .map_err(|e| CliError::run_failed(e.to_string(), Some("check that the directory is writable".into())))?;
    if json {
        return Ok(Outcome::Json(serde_json::json!({"path": staged, "sha256": binary.sha256})));
    }
    Ok(Outcome::Text(format!("staged {} (sha256 {})\n", staged.display(), binary.sha256)))
}

fn serve(args: ServeArgs) -> Result<Outcome, CliError> {
    for addr in [args.api_addr, args.envd_addr] {
        if !addr.ip().is_loopback() && !args.allow_remote {
            return Err(CliError::usage(
                format!("{addr} is not a loopback address: sandbox processes run as you, unisolated"),
                "bind 127.0.0.1, or pass --allow-remote if the network is trusted",
            ));
        }
    }
    let Some(api_key) = args.api_key.clone().filter(|k| !k.is_empty()) else {
        return Err(CliError::usage(
            "no API key: the server refuses to run without one",
            "pass --api-key KEY or set E2B_API_KEY; clients send the same key",
        ));
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::run_failed(format!("cannot start the async runtime: {e}"), None))?;
    runtime.block_on(async move {
        let mut builder =
            SandboxServer::builder().api_key(api_key).api_addr(args.api_addr).envd_addr(args.envd_addr).keep(args.keep);
        for (name, dir) in &args.template_dirs {
            builder = builder.template_dir(name.clone(), dir.clone());
        }
        if let Some(root) = &args.root {
            builder = builder.root(root);
        }
        let server = builder.bind().await.map_err(|e| {
            CliError::run_failed(e.to_string(), Some("pick other addresses with --api-addr/--envd-addr".into()))
        })?;
        announce(&server, args.json);
        let signal = wait_for_signal().await;
        eprintln!("osiris sandbox serve: {signal}, killing {} sandbox(es)", server.sandbox_count());
        server.shutdown().await;
        Ok(Outcome::text(""))
    })
}

/// Prints where the server listens and how to point clients at it.
fn announce(server: &osiris_adapters::sandbox::RunningServer, json: bool) {
    let text = if json {
        let line = serde_json::json!({
            "api_url": server.api_url(),
            "envd_url": server.envd_url(),
            "root": server.root(),
        });
        format!("{line}\n")
    } else {
        format!(
            "E2B-compatible sandbox server (no isolation: sandboxes run as local processes)\n  api:  {}\n  envd: {}\n  root: {}\n\nPoint the E2B SDK or `osiris run --e2b` at it (with the same API key in E2B_API_KEY):\n  export E2B_API_URL={} E2B_SANDBOX_URL={}\n\nCtrl-C stops it and kills every sandbox.\n",
            server.api_url(),
            server.envd_url(),
            server.root().display(),
            server.api_url(),
            server.envd_url(),
        )
    };
    emit(&mut std::io::stdout(), &text);
}

async fn wait_for_signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "interrupted";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = term.recv() => "terminated",
    }
}
