//! `osiris run FILE | --last-compile`: compile when given OML, prepare, execute with the chosen
//! adapter (local, process or e2b), show progress, report where outputs and logs are.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use osiris_adapters::e2b::E2bClient;
use osiris_adapters::e2b::adapter::{E2bAdapter, E2bOptions};
use osiris_adapters::local::LocalAdapter;
use osiris_adapters::process::ProcessAdapter;
use osiris_adapters::{AdapterError, ExecResult, ExecutionAdapter, ExecutionContext, FailureSource, run_prepared};
use osiris_engine::compile::{self, Compiled};
use osiris_engine::connections::file::ConnectionsFile;
use osiris_engine::pipeline::validate::Diagnostic;
use osiris_engine::prepare::{RunInputs, prepare};
use osiris_engine::prepared::{PreparedRun, RunLimits};
use osiris_engine::registry::Registry;
use osiris_engine::runlog::{RunDir, RunIds};
use osiris_engine::runtime::StepStatus;
use osiris_engine::runtime::budget::DEFAULT_MEMORY_BUDGET;
use osiris_engine::spec::Mode;
use osiris_engine::telemetry::{Record, TelemetrySink};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::compile::{compile_and_write, compile_error, copy_tree, print_warnings};
use super::progress::{ProgressMode, group_thousands};
use super::project::Project;
use super::signals::{self, Cancellation, RunWatch};
use super::{CliError, Outcome, RunArgs, Target};

pub fn command(registry: Registry, args: RunArgs) -> Result<Outcome, CliError> {
    let started = std::time::Instant::now();
    let project = Project::load()?;
    let target = choose_target(&project, &args)?;
    let stray = args.e2b_options.given();
    if target != Target::E2b && !stray.is_empty() {
        return Err(CliError::usage(
            format!("{} only apply to E2B runs, and this run's target is {}", stray.join(", "), target.name()),
            "add --e2b, or drop the E2B options",
        ));
    }
    let sandbox_env = args.e2b_options.sandbox_env()?;
    if args.e2b_options.e2b_install_deps {
        super::emit(
            &mut std::io::stderr(),
            "note: --e2b-install-deps has no effect: the worker is this one osiris binary, with no dependencies to install\n",
        );
    }
    let compiled = load_pipeline(&project, &registry, &args)?;
    // Before anything runs, with --json too (its result carries them as `warnings` as well).
    print_warnings(&compiled.warnings);
    let compile_seconds = started.elapsed().as_secs_f64();

    let connections = ConnectionsFile::load(project.home.as_deref(), &project.cwd)
        .map_err(|e| CliError::usage(e.to_string(), "fix osiris_connections.yaml (see docs/connections.md)"))?;
    let ids = RunIds::generate();
    let limits = RunLimits {
        memory_budget: args.memory_budget.or(project.config.memory_budget).unwrap_or(DEFAULT_MEMORY_BUDGET),
        batch_size: project.config.batch_size.unwrap_or(RunLimits::default().batch_size),
    };
    let inputs = RunInputs {
        run_id: ids.run_id.clone(),
        adapter: target.name().into(),
        created_at: ids.started_at.to_rfc3339(),
    };
    let env = project.secrets(&[]);
    let (prepared, secret_env) = prepare(&compiled, &connections, &registry, &env, inputs, limits)
        .map_err(|e| prepare_error(&e.to_string(), args.json))?;
    if args.dry_run {
        return super::dry_run::report(&compiled, &prepared, target, &args, &sandbox_env);
    }

    let run_dir = create_run_dir(&project, &compiled, &ids, &prepared)?;
    // Spill files of earlier runs of this pipeline that were killed before they could clean up.
    osiris_engine::runtime::cache::remove_abandoned_spills(run_dir.path());
    let outputs = output_paths(&project, &prepared);
    let progress = ProgressMode::choose(args.json, args.verbose);
    let cancel = CancellationToken::new();
    let ctx = ExecutionContext {
        run_dir: run_dir.clone(),
        base_dir: project.cwd.clone(),
        secrets: Arc::new(project.secrets(&secret_env)),
        cancel: cancel.clone(),
        extra_sinks: if args.verbose { vec![Arc::new(VerboseSink) as Arc<dyn TelemetrySink>] } else { vec![] },
        on_start: None,
    };
    let adapter = make_adapter(target, registry, &args, sandbox_env)?;
    let (result, cancelled_by) = execute(prepared, ctx, adapter, cancel, progress)?;
    if let Some(out) = &args.out {
        copy_artifacts(run_dir.path(), out)?;
    }
    let timing = Timing {
        compile_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
        progress_shown: progress.draws_steps(),
        cancelled_by,
    };
    report(&project, &result, &run_dir, &outputs, &args, &timing, &compiled.warnings)
}

fn load_pipeline(project: &Project, registry: &Registry, args: &RunArgs) -> Result<Compiled, CliError> {
    let precompiled = args.file.as_deref().is_none_or(is_manifest);
    if precompiled && (args.pipeline.profile.is_some() || !args.pipeline.params.is_empty()) {
        return Err(CliError::usage(
            "--profile and --param apply when a pipeline is compiled, not to an already compiled manifest",
            "pass the OML file instead (`osiris run pipeline.yaml --param ...`) or recompile with `osiris compile`",
        ));
    }
    let manifest_path = match &args.file {
        None => super::last_compile::manifest(project, args.last_compile_in.as_deref())?,
        Some(file) if is_manifest(file) => file.clone(),
        Some(file) => return compile_and_write(project, registry, file, &args.pipeline).map(|(compiled, _)| compiled),
    };
    compile::load_compiled(&manifest_path, registry).map_err(|e| compile_error(&manifest_path, e))
}

/// A compiled `manifest.yaml` (rather than OML) has top-level `meta`, `pipeline` and `steps`.
fn is_manifest(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else { return false };
    let top: Vec<&str> = text.lines().filter(|l| !l.starts_with([' ', '-', '#', '.']) && l.contains(':')).collect();
    ["meta:", "pipeline:", "steps:"].iter().all(|k| top.iter().any(|l| l.starts_with(k)))
        && !top.iter().any(|l| l.starts_with("oml_version:"))
}

/// `run --out DIR`: the run's `artifacts/`, copied into DIR after the run, as Osiris does.
fn copy_artifacts(run_dir: &Path, out: &Path) -> Result<(), CliError> {
    let artifacts = run_dir.join("artifacts");
    if !artifacts.is_dir() {
        return std::fs::create_dir_all(out).map_err(|e| out_error(out, e));
    }
    copy_tree(&artifacts, out).map_err(|e| out_error(out, e))
}

fn out_error(out: &Path, e: std::io::Error) -> CliError {
    CliError::run_failed(
        format!("the run finished, but its artifacts cannot be copied into {}: {e}", out.display()),
        Some("check that --out names a writable directory; the run log has them".into()),
    )
}

fn prepare_error(message: &str, as_json: bool) -> CliError {
    let hint = "check osiris_connections.yaml, the environment variables it names and .env (see docs/connections.md)";
    let err = CliError::usage(message, hint);
    if as_json {
        err.with_json(json!({"status": "error", "phase": "prepare", "message": message, "hint": hint}))
    } else {
        err
    }
}

/// `--target`/`--e2b`, else `$OSIRIS_EXECUTION_TARGET`, else `runner.executor`, else local.
fn choose_target(project: &Project, args: &RunArgs) -> Result<Target, CliError> {
    if args.e2b {
        return Ok(Target::E2b);
    }
    if let Some(target) = args.target {
        return Ok(target);
    }
    if let Some(value) = std::env::var("OSIRIS_EXECUTION_TARGET").ok().filter(|v| !v.is_empty()) {
        return Target::parse(&value).ok_or_else(|| {
            CliError::usage(
                format!("OSIRIS_EXECUTION_TARGET={value} is not an execution target"),
                "set it to local, process or e2b, or unset it",
            )
        });
    }
    Ok(project.config.executor.as_deref().and_then(Target::parse).unwrap_or(Target::Local))
}

fn make_adapter(
    target: Target,
    registry: Registry,
    args: &RunArgs,
    sandbox_env: Vec<(String, String)>,
) -> Result<Box<dyn ExecutionAdapter>, CliError> {
    let program = || {
        std::env::current_exe()
            .map_err(|e| CliError::run_failed(format!("cannot locate the osiris binary to start a worker: {e}"), None))
    };
    match target {
        Target::Local => Ok(Box::new(LocalAdapter::new(registry))),
        Target::Process => Ok(Box::new(ProcessAdapter::new(program()?).echo_stderr(args.verbose))),
        Target::E2b => {
            let client = E2bClient::from_env().map_err(|e| {
                CliError::usage(e.to_string(), "see docs/remote.md (E2B) for the variables a remote run reads")
            })?;
            let e2b = &args.e2b_options;
            let defaults = E2bOptions::default();
            let options = E2bOptions {
                template: e2b.e2b_template.clone().unwrap_or(defaults.template),
                timeout: e2b.e2b_timeout.map_or(defaults.timeout, |s| Duration::from_secs(s.into())),
                min_cpu: e2b.e2b_cpu,
                min_memory_bytes: e2b.e2b_mem,
                env: sandbox_env,
                pass_env: e2b.e2b_pass_env.clone(),
                echo_stderr: args.verbose,
            };
            Ok(Box::new(E2bAdapter::new(client, options, program()?)))
        }
    }
}

fn create_run_dir(
    project: &Project,
    compiled: &Compiled,
    ids: &RunIds,
    prepared: &PreparedRun,
) -> Result<RunDir, CliError> {
    let root = project.base_dir.join(&project.config.run_logs_dir);
    let io_err = |e: std::io::Error| {
        CliError::run_failed(
            format!("cannot create the run log under {}: {e}", root.display()),
            Some("check that the directory is writable".into()),
        )
    };
    let run_dir = RunDir::create(&root, &compiled.profile, &compiled.run_log_slug(), ids, compiled.manifest_short())
        .map_err(io_err)?;
    let cfgs: Vec<(String, String)> =
        compiled.steps.iter().filter_map(|s| compiled.cfg_json(&s.id).map(|json| (s.id.clone(), json))).collect();
    run_dir.write_compiled(&compiled.manifest_yaml(), &cfgs).map_err(io_err)?;
    run_dir.write_prepared(prepared).map_err(io_err)?;
    Ok(run_dir)
}

/// The files the steps write (the keys their specs mark as output files), resolved as the file
/// drivers resolve them: against the step's connection `base_dir`, then the working directory.
fn output_paths(project: &Project, prepared: &PreparedRun) -> Vec<(String, PathBuf)> {
    prepared.io_layout.outputs.iter().map(|f| (f.step_id.clone(), project.cwd.join(&f.path))).collect()
}

fn execute(
    prepared: PreparedRun,
    mut ctx: ExecutionContext,
    mut adapter: Box<dyn ExecutionAdapter>,
    cancel: CancellationToken,
    progress: ProgressMode,
) -> Result<(ExecResult, Option<Cancellation>), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::run_failed(format!("cannot start the async runtime: {e}"), None))?;
    let watch = RunWatch::default();
    let display = Arc::new(std::sync::Mutex::new(None));
    let (slot, steps) = (display.clone(), watch.clone());
    ctx.on_start = Some(Box::new(move |progress_steps| {
        let _ = steps.steps.set(progress_steps.clone());
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = progress.start(progress_steps, steps);
    }));
    let handlers = watch.clone();
    let result = runtime.block_on(async move {
        signals::install(cancel, handlers, progress.draws_cancellation())?;
        run_prepared(adapter.as_mut(), prepared, ctx).await.map_err(|e| match &e {
            AdapterError::Preflight { message, hint } => {
                CliError::usage(message.clone(), hint.clone().unwrap_or_else(|| "see docs/remote.md".into()))
            }
            _ => CliError::run_failed(e.to_string(), e.hint().map(str::to_string)),
        })
    });
    drop(display.lock().unwrap_or_else(|p| p.into_inner()).take());
    Ok((result?, watch.cancelled_by.get().copied()))
}

/// How long the command took, and whether the progress display was on screen.
struct Timing {
    compile_seconds: f64,
    total_seconds: f64,
    progress_shown: bool,
    /// The signal that cancelled the run, if one did.
    cancelled_by: Option<Cancellation>,
}

fn report(
    project: &Project,
    result: &ExecResult,
    run_dir: &RunDir,
    outputs: &[(String, PathBuf)],
    args: &RunArgs,
    timing: &Timing,
    warnings: &[Diagnostic],
) -> Result<Outcome, CliError> {
    let run = &result.report;
    let session_dir = run_dir.path().display().to_string();
    let steps: Vec<Value> = run
        .steps
        .iter()
        .map(|s| {
            json!({"step_id": s.step_id, "component": s.component, "status": s.status,
                   "rows_in": s.rows_in, "rows_out": s.rows_out, "rows_read": s.rows_read,
                   "rows_written": s.rows_written, "duration_seconds": s.duration_seconds})
        })
        .collect();
    let written: Vec<Value> = outputs
        .iter()
        .filter(|(step, _)| run.steps.iter().any(|s| &s.step_id == step && s.status == StepStatus::Succeeded))
        .map(|(step, path)| json!({"step_id": step, "path": project.show(path)}))
        .collect();

    if !run.succeeded() {
        let (message, hint, step, code) = match &run.failure {
            Some(f) => (
                format!("step '{}' ({}) failed [{}]: {}", f.step_id, f.component, f.code, f.message),
                f.hint.clone(),
                Some(f.step_id.clone()),
                f.code.clone(),
            ),
            None => (cancelled_message(run, timing.cancelled_by), None, None, "run.cancelled".into()),
        };
        let json = json!({
            "status": "error", "phase": "execute", "message": message, "hint": hint,
            "failed_step": step, "error_code": code, "source": result.source,
            "execution_type": adapter_name(result),
            "session_id": result.run_id, "session_dir": session_dir, "steps": steps,
            "warnings": warnings,
        });
        if !args.json {
            super::emit(&mut std::io::stdout(), &summary(run, project, run_dir, &written, timing));
        }
        return Err(CliError::run_failed(message, hint).with_json(json));
    }
    if args.json {
        return Ok(Outcome::json(json!({
            "status": "success",
            "message": format!("Pipeline executed successfully ({})", adapter_name(result)),
            "session_id": result.run_id,
            "session_dir": session_dir,
            "artifacts_dir": args.out.as_ref().map_or_else(
                || run_dir.path().join("artifacts").display().to_string(),
                |out| out.display().to_string(),
            ),
            "execution_type": adapter_name(result),
            "adapter": result.details,
            "duration": {"total": timing.total_seconds, "compile": timing.compile_seconds},
            "total_rows": run.total_rows,
            "cache_peak_bytes": run.cache_peak_bytes,
            "outputs": written,
            "steps": steps,
            "warnings": warnings,
        })));
    }
    let mut text = summary(run, project, run_dir, &written, timing);
    if let Some(out) = &args.out {
        text.push_str(&format!("  artifacts copied to: {}\n", project.show(out)));
    }
    Ok(Outcome::text(text))
}

/// `the run was cancelled by SIGTERM; cancelled steps: a, b`.
fn cancelled_message(run: &osiris_engine::runtime::RunReport, by: Option<Cancellation>) -> String {
    let by = by.map(|c| format!(" by {}", c.name())).unwrap_or_default();
    let steps = run.cancelled_steps();
    if steps.is_empty() {
        format!("the run was cancelled{by} before all steps completed")
    } else {
        format!("the run was cancelled{by} before all steps completed; cancelled steps: {}", steps.join(", "))
    }
}

/// The adapter that ran: `status.json`'s `sandbox_id` is the adapter name except for E2B, whose
/// sandbox id is in the details.
fn adapter_name(result: &ExecResult) -> &str {
    match result.source {
        FailureSource::Remote => "e2b",
        FailureSource::Local => result.status.sandbox_id.as_str(),
    }
}

fn summary(
    run: &osiris_engine::runtime::RunReport,
    project: &Project,
    run_dir: &RunDir,
    written: &[Value],
    timing: &Timing,
) -> String {
    let mut text = String::new();
    // The progress display already left one line per step on the terminal.
    for s in run.steps.iter().filter(|_| !timing.progress_shown) {
        let rows = if s.mode == Mode::Write { s.rows_in } else { s.rows_out };
        let status = match s.status {
            StepStatus::Succeeded => "✓",
            StepStatus::Failed => "✗",
            _ => "-",
        };
        text.push_str(&format!(
            "  {status} {:<28} {:>14} rows  {:>7.2}s{}\n",
            s.step_id,
            group_thousands(rows),
            s.duration_seconds,
            if s.status == StepStatus::Cancelled { "  (cancelled)" } else { "" }
        ));
    }
    let verdict = match run.outcome() {
        "success" => "✓ Run succeeded",
        "cancelled" => "✗ Run cancelled",
        _ => "✗ Run failed",
    };
    text.push_str(&format!("{verdict} in {:.2}s ({} rows)\n", timing.total_seconds, group_thousands(run.total_rows)));
    for output in written {
        text.push_str(&format!("  output:  {}\n", output["path"].as_str().unwrap_or_default()));
    }
    text.push_str(&format!("  run log: {}\n", project.show(run_dir.path())));
    text
}

/// `--verbose`: every event and metric as a JSON line on stderr.
struct VerboseSink;

impl TelemetrySink for VerboseSink {
    fn record(&self, record: &Record) {
        if let Ok(line) = serde_json::to_string(record) {
            super::emit(&mut std::io::stderr(), &format!("{line}\n"));
        }
    }
}
