//! The `osiris` command line: argument parsing, dispatch, output and exit codes.
//!
//! Exit codes: 0 ok, 1 run failed (or `oml validate` found problems), 2 usage, validation or
//! compile error.

mod compile;
mod components;
mod connections;
mod dry_run;
mod last_compile;
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

/// Run declarative data pipelines (Osiris OML) on Apache Arrow: in this process, in a child
/// worker process or in an E2B sandbox, with identical results.
#[derive(Parser, Debug)]
#[command(name = "osiris", version, propagate_version = true, arg_required_else_help = true)]
#[command(
    after_help = "Examples:\n  osiris oml validate pipelines/orders.yaml\n  osiris compile pipelines/orders.yaml --profile prod --param since=2024-01-01\n  osiris run pipelines/orders.yaml --memory-budget 512MiB\n  osiris run --last-compile --json\n  osiris components show filesystem.csv_writer"
)]
struct Cli {
    /// Print the command's result as JSON (Osiris's global spelling of the command's own
    /// `--json`; `osiris --json run ...` = `osiris run ... --json`).
    #[arg(long)]
    json: bool,
    /// Verbose output (Osiris's global spelling): for `run` the same as `run --verbose`; the
    /// other commands have nothing more to print.
    #[arg(long, short = 'v')]
    verbose: bool,
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
    /// Check pipeline files and report every problem `osiris compile` would, with
    /// file:line:column and a hint: the structure, then a full compile in memory (parameters,
    /// profile, every step's config as its driver checks it, the connections it uses); nothing
    /// is written. Exits 0 when all files are valid, 1 when not.
    Validate(ValidateArgs),
}

#[derive(Args, Debug)]
struct ValidateArgs {
    /// OML files to check.
    #[arg(required = true)]
    files: Vec<std::path::PathBuf>,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Print a JSON report instead of text (`{valid, file, errors, warnings, ...}`; several
    /// files: `{files: [...], all_valid}`).
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug, Clone)]
struct PipelineArgs {
    /// Profile whose `profiles.<name>.params` apply (default: osiris.yaml's default, "dev"). It
    /// must be one the pipeline (`profiles:`) or osiris.yaml (`filesystem.profiles.values`)
    /// declares: a misspelt profile is an error, not a run with the defaults.
    #[arg(long, short = 'p')]
    profile: Option<String>,
    /// Set a pipeline parameter (highest precedence); repeat for several. The pipeline must
    /// declare it under `params:` or use it as `${params.NAME}` (unless it sets
    /// `allow_undeclared_params: true`): a misspelt name is an error.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
}

#[derive(Args, Debug)]
struct CompileArgs {
    /// The OML pipeline file.
    file: std::path::PathBuf,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Also copy the compiled files (manifest.yaml, cfg/, plan.json, ...) into DIR, which
    /// `osiris run DIR/manifest.yaml` runs. The build directory and the `--last-compile`
    /// pointers are written as always. (Osiris parses `--out` but ignores it.)
    #[arg(long, value_name = "DIR")]
    out: Option<std::path::PathBuf>,
    /// Print a JSON result instead of text: `{status, manifest_path, build_dir, manifest_hash,
    /// ..., warnings}`, or `{status: "error", errors: [...]}`.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The OML pipeline file (or a compiled manifest.yaml).
    #[arg(required_unless_present_any = ["last_compile", "last_compile_in"], conflicts_with_all = ["last_compile", "last_compile_in"])]
    file: Option<std::path::PathBuf>,
    /// Run the most recent `osiris compile` output (.osiris/index/last_compile.txt).
    #[arg(long, conflicts_with = "last_compile_in")]
    last_compile: bool,
    /// Run the latest compile of one pipeline: a pipeline slug (`.osiris/index/latest/<slug>.txt`,
    /// as in Osiris), or a directory holding a `LATEST` pointer (`build/pipelines/<profile>/<slug>`),
    /// a project's `.osiris/index/last_compile.txt` or a `manifest.yaml` (`compile --out DIR`).
    /// Without a value: $OSIRIS_LAST_COMPILE_DIR.
    #[arg(long, value_name = "SLUG|DIR", num_args = 0..=1, default_missing_value = "")]
    last_compile_in: Option<String>,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// After the run (succeeded or failed), copy its `artifacts/` into DIR, as Osiris does.
    #[arg(long, value_name = "DIR")]
    out: Option<std::path::PathBuf>,
    /// Compile and prepare (connections resolved, environment variables checked), then print
    /// what would run, where, with which E2B options, without running anything or creating a
    /// run log.
    #[arg(long)]
    dry_run: bool,
    /// Step-cache memory budget, e.g. 256MiB or 2GB; past it batches spill to disk
    /// (default: osiris.yaml `runtime.memory_budget`, else 256MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_budget: Option<u64>,
    /// Print a JSON result instead of text (no progress display): `{status, session_dir,
    /// outputs, steps, warnings, ...}`; a failed run adds `error_code` and `failed_step`.
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
    /// [default: 900]. `--timeout` is Osiris's spelling.
    #[arg(long, visible_alias = "timeout", value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub e2b_timeout: Option<u32>,
    /// vCPUs the sandbox must have. E2B sizes sandboxes by template, so a template with fewer
    /// fails the run before anything is uploaded; pick one with --e2b-template. `--cpu` is
    /// Osiris's spelling.
    #[arg(long, visible_alias = "cpu", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub e2b_cpu: Option<u32>,
    /// Memory the sandbox must have (checked like --e2b-cpu): a bare number is GB (GiB, as E2B
    /// counts), as in Osiris (`--e2b-mem 4`), or a size with its unit (`512MiB`, `2GiB`).
    /// `--memory-gb` is Osiris's spelling.
    #[arg(long, visible_alias = "memory-gb", value_name = "GB|SIZE", value_parser = parse_gigabytes)]
    pub e2b_mem: Option<u64>,
    /// Sandbox template (id or alias) [default: base].
    #[arg(long, value_name = "TEMPLATE")]
    pub e2b_template: Option<String>,
    /// Set a sandbox-wide environment variable (repeat for several). Not for secrets: connection
    /// secrets travel by themselves, to the worker process only.
    #[arg(long = "e2b-env", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub e2b_env: Vec<(String, String)>,
    /// Set the sandbox-wide environment variables of a `.env`-style file (`NAME=VALUE` lines;
    /// repeat for several files). Like --e2b-env: not for secrets.
    #[arg(long = "e2b-env-from", value_name = "FILE")]
    pub e2b_env_from: Vec<std::path::PathBuf>,
    /// Pass this variable of the host environment to the worker process (repeat for several).
    #[arg(long = "e2b-pass-env", value_name = "NAME")]
    pub e2b_pass_env: Vec<String>,
    /// Accepted for Osiris compatibility and has no effect: the worker is this one `osiris`
    /// binary, with no dependencies to install in the sandbox (a note says so on stderr).
    #[arg(long)]
    pub e2b_install_deps: bool,
}

impl E2bArgs {
    /// The sandbox-wide variables: every `--e2b-env-from` file's pairs, then `--e2b-env` (which
    /// wins for a name set by both).
    pub fn sandbox_env(&self) -> Result<Vec<(String, String)>, CliError> {
        let mut env = Vec::new();
        for file in &self.e2b_env_from {
            let text = std::fs::read_to_string(file).map_err(|e| {
                CliError::usage(
                    format!("--e2b-env-from {}: {e}", file.display()),
                    "name an existing file of NAME=VALUE lines",
                )
            })?;
            env.extend(osiris_engine::connections::dotenv::parse_dotenv(&text));
        }
        env.extend(self.e2b_env.iter().cloned());
        Ok(env)
    }

    /// The flags given, by name (for "only with --e2b" errors).
    pub fn given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        let flags = [
            ("--e2b-timeout", self.e2b_timeout.is_some()),
            ("--e2b-cpu", self.e2b_cpu.is_some()),
            ("--e2b-mem", self.e2b_mem.is_some()),
            ("--e2b-template", self.e2b_template.is_some()),
            ("--e2b-env", !self.e2b_env.is_empty()),
            ("--e2b-env-from", !self.e2b_env_from.is_empty()),
            ("--e2b-pass-env", !self.e2b_pass_env.is_empty()),
            ("--e2b-install-deps", self.e2b_install_deps),
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
    /// List connections per family with secrets masked and which env vars are set; exits 1 when
    /// an entry has a key its family does not know.
    List {
        /// Print `{connections: {family: {alias: {config, env_vars, is_default}}}}` as JSON.
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
        /// Print `{results: {family: {alias: {status, category, latency_ms, message}}}, all_ok}`
        /// as JSON.
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
        /// Only components this binary can run (Osiris's filter): every built-in component has
        /// a driver, so all of them.
        #[arg(long)]
        runnable: bool,
        /// Print a JSON list (`[{name, version, modes, description, runnable, connection_family}]`).
        #[arg(long)]
        json: bool,
    },
    /// Show a component's spec: modes, config keys, defaults, secrets, connection family.
    Show {
        name: String,
        /// Print the spec as JSON.
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

/// `--e2b-mem`: a bare number is GiB (Osiris's `--memory-gb`), anything else a size with its unit.
fn parse_gigabytes(text: &str) -> Result<u64, String> {
    if let Ok(gigabytes) = text.trim().parse::<u64>() {
        return gigabytes
            .checked_mul(1 << 30)
            .filter(|bytes| *bytes > 0)
            .ok_or_else(|| format!("'{text}' is not a memory size; use a number of GB like 4, or e.g. 512MiB"));
    }
    osiris_engine::runtime::budget::parse_byte_size(text)
        .ok_or_else(|| format!("'{text}' is not a memory size; use a number of GB like 4, or e.g. 512MiB"))
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
    let mut command = cli.command;
    if let Err(err) = apply_global_flags(&mut command, cli.json, cli.verbose) {
        emit(&mut std::io::stderr(), &format!("error: {}\n", err.message));
        return ExitCode::from(err.code);
    }
    let json = wants_json(&command);
    match dispatch(command) {
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

/// Osiris's global `--json` / `--verbose` (before the subcommand) become the subcommand's own.
fn apply_global_flags(command: &mut Command, json: bool, verbose: bool) -> Result<(), CliError> {
    if verbose && let Command::Run(args) = command {
        args.verbose = true;
    }
    if !json {
        return Ok(());
    }
    match command {
        Command::Oml(OmlCommand::Validate(args)) => args.json = true,
        Command::Compile(args) => args.json = true,
        Command::Run(args) => args.json = true,
        Command::Worker(_) => {
            return Err(CliError::usage(
                "--json does not apply to `osiris worker`: its stdout is the telemetry stream",
                "drop --json",
            ));
        }
        Command::Sandbox(sandbox::SandboxCommand::Serve(args)) => args.set_json(),
        Command::Sandbox(sandbox::SandboxCommand::StageBinary { json, .. }) => *json = true,
        Command::Connections(ConnectionsCommand::List { json } | ConnectionsCommand::Doctor { json, .. }) => {
            *json = true
        }
        Command::Components(ComponentsCommand::List { json, .. } | ComponentsCommand::Show { json, .. }) => {
            *json = true
        }
    }
    Ok(())
}

fn wants_json(command: &Command) -> bool {
    match command {
        Command::Oml(OmlCommand::Validate(args)) => args.json,
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
        Command::Oml(OmlCommand::Validate(args)) => oml::validate_files(&registry, &args),
        Command::Compile(args) => compile::command(&registry, &args),
        Command::Run(args) => run::command(registry, args),
        Command::Worker(args) => worker::command(registry, args),
        Command::Connections(ConnectionsCommand::List { json }) => connections::list(&registry, json),
        Command::Connections(ConnectionsCommand::Doctor { family, alias, json }) => {
            connections::doctor(&registry, family.as_deref(), alias.as_deref(), json)
        }
        Command::Components(ComponentsCommand::List { mode, runnable: _, json }) => {
            // `--runnable` keeps every component: each built-in one has a driver.
            components::list(&registry, mode.map(Into::into), json)
        }
        Command::Components(ComponentsCommand::Show { name, json }) => components::show(&registry, &name, json),
        Command::Sandbox(command) => sandbox::command(command),
    }
}
