//! The `osiris` command line: argument parsing, dispatch, output and exit codes.
//!
//! Exit codes: 0 ok, 1 run failed (or `oml validate` found problems), 2 usage, validation or
//! compile error.

mod compile;
mod components;
mod connections;
mod oml;
mod progress;
mod project;
mod run;
mod sandbox;
mod signals;
mod worker;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use osiris_engine::spec::Mode;

/// Run declarative data pipelines (Osiris OML) on Apache Arrow: locally today, in a child
/// process or an E2B sandbox tomorrow, with identical results.
#[derive(Parser, Debug)]
#[command(name = "osiris", version, propagate_version = true, arg_required_else_help = true)]
#[command(
    after_help = "Examples:\n  osiris oml validate pipelines/orders.yaml\n  osiris compile pipelines/orders.yaml --profile prod --param since=2024-01-01\n  osiris run pipelines/orders.yaml --memory-budget 512MiB\n  osiris run --last-compile --json\n  osiris components show filesystem.csv_writer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Work with OML pipeline files.
    #[command(subcommand)]
    Oml(OmlCommand),
    /// Compile a pipeline into a deterministic, fingerprinted manifest under build/.
    Compile(CompileArgs),
    /// Compile (when given OML) and run a pipeline: locally, in a child worker process, or in an
    /// E2B sandbox (--target).
    Run(RunArgs),
    /// Run a prepared run and stream its telemetry home as Arrow IPC (started by the process and
    /// E2B adapters; not for everyday use).
    Worker(worker::WorkerArgs),
    /// Inspect connections from osiris_connections.yaml (secrets masked).
    #[command(subcommand)]
    Connections(ConnectionsCommand),
    /// Inspect the components (drivers) built into this binary.
    #[command(subcommand)]
    Components(ComponentsCommand),
    /// Run a local E2B-compatible sandbox server (`osiris sandbox serve`).
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
}

#[derive(Subcommand, Debug)]
enum OmlCommand {
    /// Check pipeline files and report every problem with file:line:column and a hint.
    /// Exits 0 when all files are valid, 1 when not.
    Validate {
        /// OML files to check.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// Print a JSON report instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug, Clone)]
struct PipelineArgs {
    /// Profile whose `profiles.<name>.params` apply (default: osiris.yaml's default, "dev").
    #[arg(long, short = 'p')]
    profile: Option<String>,
    /// Set a pipeline parameter (highest precedence); repeat for several.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
}

#[derive(Args, Debug)]
struct CompileArgs {
    /// The OML pipeline file.
    file: std::path::PathBuf,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Print a JSON result instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The OML pipeline file (or a compiled manifest.yaml).
    #[arg(required_unless_present = "last_compile", conflicts_with = "last_compile")]
    file: Option<std::path::PathBuf>,
    /// Run the most recent `osiris compile` output (.osiris/index/last_compile.txt).
    #[arg(long)]
    last_compile: bool,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Step-cache memory budget, e.g. 256MiB or 2GB; past it batches spill to disk
    /// (default: osiris.yaml `runtime.memory_budget`, else 256MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_budget: Option<u64>,
    /// Print a JSON result instead of text (no progress display).
    #[arg(long)]
    json: bool,
    /// Print every event and metric as a JSON line on stderr as it happens (no progress display).
    #[arg(long, short = 'v')]
    verbose: bool,
    /// Where the run executes: `local` (this process), `process` (a child `osiris worker`, which
    /// isolates crashes) or `e2b` (an E2B sandbox). Default: $OSIRIS_EXECUTION_TARGET, else
    /// osiris.yaml `runner.executor`, else local.
    #[arg(long, value_enum)]
    target: Option<Target>,
    /// Short for `--target e2b`.
    #[arg(long, conflicts_with = "target")]
    e2b: bool,
    #[command(flatten)]
    e2b_options: E2bArgs,
}

/// Options of E2B runs; given with another target they are an error, never ignored.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "E2B (with --e2b / --target e2b)")]
pub struct E2bArgs {
    /// Sandbox lifetime in seconds: the sandbox, and the run in it, are killed when it expires
    /// [default: 900].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub e2b_timeout: Option<u32>,
    /// vCPUs the sandbox must have. E2B sizes sandboxes by template, so a template with fewer
    /// fails the run before anything is uploaded; pick one with --e2b-template.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub e2b_cpu: Option<u32>,
    /// Memory the sandbox must have, e.g. 2GiB (checked like --e2b-cpu).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub e2b_mem: Option<u64>,
    /// Sandbox template (id or alias) [default: base].
    #[arg(long, value_name = "TEMPLATE")]
    pub e2b_template: Option<String>,
    /// Set a sandbox-wide environment variable (repeat for several). Not for secrets: connection
    /// secrets travel by themselves, to the worker process only.
    #[arg(long = "e2b-env", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub e2b_env: Vec<(String, String)>,
    /// Pass this variable of the host environment to the worker process (repeat for several).
    #[arg(long = "e2b-pass-env", value_name = "NAME")]
    pub e2b_pass_env: Vec<String>,
}

impl E2bArgs {
    /// The flags given, by name (for "only with --e2b" errors).
    pub fn given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        let flags = [
            ("--e2b-timeout", self.e2b_timeout.is_some()),
            ("--e2b-cpu", self.e2b_cpu.is_some()),
            ("--e2b-mem", self.e2b_mem.is_some()),
            ("--e2b-template", self.e2b_template.is_some()),
            ("--e2b-env", !self.e2b_env.is_empty()),
            ("--e2b-pass-env", !self.e2b_pass_env.is_empty()),
        ];
        for (flag, set) in flags {
            if set {
                given.push(flag);
            }
        }
        given
    }
}

/// Where a run executes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Local,
    Process,
    E2b,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Local => "local",
            Target::Process => "process",
            Target::E2b => "e2b",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Target::Local, Target::Process, Target::E2b].into_iter().find(|t| t.name() == text)
    }
}

#[derive(Subcommand, Debug)]
enum ConnectionsCommand {
    /// List connections per family with secrets masked and which env vars are set.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Really connect with every connection (MySQL: handshake and SELECT 1; filesystem: base_dir
    /// exists) and report latency and a category (ok, auth, network, config). Exits 1 when any
    /// connection fails.
    Doctor {
        /// Only this family.
        #[arg(long)]
        family: Option<String>,
        /// Only this alias.
        #[arg(long)]
        alias: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ComponentsCommand {
    /// List components with their modes.
    List {
        /// Only components supporting this mode.
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
        #[arg(long)]
        json: bool,
    },
    /// Show a component's spec: modes, config keys, defaults, secrets, connection family.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum ModeArg {
    Extract,
    Transform,
    Write,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Extract => Mode::Extract,
            ModeArg::Transform => Mode::Transform,
            ModeArg::Write => Mode::Write,
        }
    }
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("expected NAME=VALUE, got '{text}'"))?;
    if name.is_empty() {
        return Err(format!("parameter name is empty in '{text}'"));
    }
    Ok((name.to_string(), value.to_string()))
}

fn parse_size(text: &str) -> Result<u64, String> {
    osiris_engine::runtime::budget::parse_byte_size(text)
        .ok_or_else(|| format!("'{text}' is not a size; use e.g. 64MiB, 1GB or a number of bytes"))
}

/// What a command prints on success.
pub enum Outcome {
    Text(String),
    Json(serde_json::Value),
    /// Printed like `Json`/`Text` but exits with this code (validation failures, failed runs).
    WithCode(Box<Outcome>, u8),
}

impl Outcome {
    fn text(text: impl Into<String>) -> Self {
        Outcome::Text(text.into())
    }
    fn json(value: serde_json::Value) -> Self {
        Outcome::Json(value)
    }
}

/// A command failure: message, hint, exit code, and whether the user asked for JSON.
#[derive(Debug)]
pub struct CliError {
    message: String,
    hint: Option<String>,
    code: u8,
    /// The `--json` form, when it is more than `{status, message, hint}`.
    json: Option<serde_json::Value>,
}

impl CliError {
    /// Usage, validation or compile error (exit 2).
    fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        CliError { message: message.into(), hint: Some(hint.into()), code: 2, json: None }
    }

    /// A failed run (exit 1).
    fn run_failed(message: impl Into<String>, hint: Option<String>) -> Self {
        CliError { message: message.into(), hint, code: 1, json: None }
    }

    fn with_json(mut self, json: serde_json::Value) -> Self {
        self.json = Some(json);
        self
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    let json = wants_json(&cli.command);
    match dispatch(cli.command) {
        Ok(outcome) => print_outcome(outcome),
        Err(err) => {
            if json {
                let value = err.json.unwrap_or_else(
                    || serde_json::json!({"status": "error", "message": err.message, "hint": err.hint}),
                );
                emit(
                    &mut std::io::stdout(),
                    &format!("{}\n", serde_json::to_string_pretty(&value).unwrap_or_default()),
                );
            } else {
                let hint = err.hint.as_ref().map(|h| format!("hint: {h}\n")).unwrap_or_default();
                emit(&mut std::io::stderr(), &format!("error: {}\n{hint}", err.message));
            }
            ExitCode::from(err.code)
        }
    }
}

fn wants_json(command: &Command) -> bool {
    match command {
        Command::Oml(OmlCommand::Validate { json, .. }) => *json,
        Command::Compile(args) => args.json,
        Command::Run(args) => args.json,
        Command::Worker(_) => false,
        Command::Sandbox(sandbox::SandboxCommand::Serve(args)) => args.json(),
        Command::Sandbox(sandbox::SandboxCommand::StageBinary { json, .. }) => *json,
        Command::Connections(ConnectionsCommand::List { json } | ConnectionsCommand::Doctor { json, .. }) => *json,
        Command::Components(ComponentsCommand::List { json, .. } | ComponentsCommand::Show { json, .. }) => *json,
    }
}

/// Writes to stdout or stderr, ignoring a closed pipe (`osiris ... | head` must not panic).
pub fn emit(out: &mut dyn std::io::Write, text: &str) {
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

fn print_outcome(outcome: Outcome) -> ExitCode {
    match outcome {
        Outcome::Text(text) => {
            emit(&mut std::io::stdout(), &text);
            ExitCode::SUCCESS
        }
        Outcome::Json(value) => {
            emit(&mut std::io::stdout(), &format!("{}\n", serde_json::to_string_pretty(&value).unwrap_or_default()));
            ExitCode::SUCCESS
        }
        Outcome::WithCode(inner, code) => {
            print_outcome(*inner);
            ExitCode::from(code)
        }
    }
}

fn dispatch(command: Command) -> Result<Outcome, CliError> {
    let registry = osiris_adapters::components::builtin_registry();
    match command {
        Command::Oml(OmlCommand::Validate { files, json }) => oml::validate_files(&registry, &files, json),
        Command::Compile(args) => compile::command(&registry, &args),
        Command::Run(args) => run::command(registry, args),
        Command::Worker(args) => worker::command(registry, args),
        Command::Connections(ConnectionsCommand::List { json }) => connections::list(&registry, json),
        Command::Connections(ConnectionsCommand::Doctor { family, alias, json }) => {
            connections::doctor(&registry, family.as_deref(), alias.as_deref(), json)
        }
        Command::Components(ComponentsCommand::List { mode, json }) => {
            components::list(&registry, mode.map(Into::into), json)
        }
        Command::Components(ComponentsCommand::Show { name, json }) => components::show(&registry, &name, json),
        Command::Sandbox(command) => sandbox::command(command),
    }
}
