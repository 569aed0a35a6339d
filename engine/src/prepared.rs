//! `PreparedRun`: everything a run needs, without secret values. It serializes to one JSON
//! document and is the only thing that travels to a worker process or a sandbox.
//!
//! The shape follows Osiris's adapter contract: `plan` (the compiled manifest),
//! `resolved_connections` (descriptors whose secrets are environment-variable names),
//! `cfg_index` (every `cfg/<step>.json`), `io_layout`, `run_params`, `constraints` and
//! `metadata`. Every adapter executes the steps [`PreparedRun::steps`] derives from it, so a
//! worker cannot see anything the host did not prepare.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::connections::ConnectionDescriptor;
use crate::manifest::{Manifest, ManifestStep};
use crate::runtime::budget::DEFAULT_MEMORY_BUDGET;
use crate::spec::Mode;

/// A compiled pipeline bound to connections and limits, ready for an execution adapter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreparedRun {
    /// The compiled manifest, as in `manifest.yaml`.
    pub plan: Manifest,
    /// `@family.alias` → the connection with secret placeholders only.
    pub resolved_connections: BTreeMap<String, ResolvedConnection>,
    /// `cfg/<step>.json` (the manifest's `cfg_path`) → the step's compiled config.
    pub cfg_index: BTreeMap<String, Map<String, Value>>,
    /// Where the run writes its logs and artifacts, relative to its run directory.
    #[serde(default)]
    pub io_layout: IoLayout,
    pub run_params: RunParams,
    pub constraints: RunLimits,
    pub metadata: RunMetadata,
}

/// A connection as prepared: its descriptor and the steps that use it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResolvedConnection {
    #[serde(flatten)]
    pub descriptor: ConnectionDescriptor,
    /// Ids of the steps bound to this connection (explicitly or as the family default).
    pub used_by: Vec<String>,
}

/// Run-directory layout, relative to the run directory (Osiris's session layout).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoLayout {
    pub events: String,
    pub metrics: String,
    pub log: String,
    pub status: String,
    pub manifest: String,
    pub cfg_dir: String,
    pub artifacts_dir: String,
    pub spill_dir: String,
    /// Files steps read, as the drivers resolve them (relative paths against the run's base
    /// directory). Remote adapters upload these.
    #[serde(default)]
    pub inputs: Vec<StepFile>,
    /// Files steps write; remote adapters download those of succeeded steps.
    #[serde(default)]
    pub outputs: Vec<StepFile>,
}

/// A file a step reads or writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFile {
    pub step_id: String,
    /// Relative to the run's base directory, or absolute.
    pub path: String,
}

impl Default for IoLayout {
    fn default() -> Self {
        IoLayout {
            events: "events.jsonl".into(),
            metrics: "metrics.jsonl".into(),
            log: "osiris.log".into(),
            status: "status.json".into(),
            manifest: "manifest.yaml".into(),
            cfg_dir: "cfg".into(),
            artifacts_dir: "artifacts".into(),
            spill_dir: "spill".into(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }
}

/// The parameters a run was prepared with (no secrets).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunParams {
    pub profile: String,
    /// Effective pipeline parameters (already substituted into configs; kept for the record).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// Resource limits of a run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunLimits {
    /// Step-cache budget in bytes.
    pub memory_budget: u64,
    /// Target rows per batch.
    pub batch_size: usize,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits { memory_budget: DEFAULT_MEMORY_BUDGET, batch_size: 8192 }
    }
}

/// Identity of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunMetadata {
    /// `2025-10-07T14-22-19Z_<ULID>`; the run id and the `session` of every telemetry line.
    pub session_id: String,
    pub pipeline_id: String,
    /// Slug used in build and run-log paths.
    pub pipeline_slug: String,
    pub created_at: String,
    /// The compiler fingerprint of the plan (`sha256:<hex>`).
    pub compiler_fingerprint: String,
    pub manifest_hash: String,
    /// `local`, `process` or `e2b`.
    pub adapter_target: String,
}

/// One step as the runtime executes it, derived from the plan, its cfg and its connection.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedStep {
    pub id: String,
    pub component: String,
    pub mode: Mode,
    pub needs: Vec<String>,
    /// The driver config: `cfg/<id>.json` without `component`, `mode` and `connection`.
    pub config: Map<String, Value>,
    /// The connection, when the component uses one; secrets are environment-variable names.
    pub connection: Option<ConnectionDescriptor>,
}

/// A prepared run that does not hold together (a hand-edited or truncated document).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PreparedRunError {
    #[error("step '{step}': its config {cfg_path} is missing from the prepared run's cfg_index; prepare the run again")]
    MissingConfig { step: String, cfg_path: String },
    #[error(
        "step '{step}' is bound to connection {reference}, which the prepared run does not resolve; prepare the run again"
    )]
    MissingConnection { step: String, reference: String },
}

/// Config keys that describe the step, not the driver's work.
const STEP_KEYS: [&str; 3] = ["component", "mode", "connection"];

impl PreparedRun {
    /// The run id (`session` of every telemetry line).
    pub fn run_id(&self) -> &str {
        &self.metadata.session_id
    }

    /// The steps in plan order, each with its driver config and connection.
    pub fn steps(&self) -> Result<Vec<PreparedStep>, PreparedRunError> {
        self.plan.steps.iter().map(|mstep| self.step(mstep)).collect()
    }

    fn step(&self, mstep: &ManifestStep) -> Result<PreparedStep, PreparedRunError> {
        let id = mstep.id.as_str();
        let cfg = self
            .cfg_index
            .get(&mstep.cfg_path)
            .ok_or_else(|| PreparedRunError::MissingConfig { step: id.into(), cfg_path: mstep.cfg_path.clone() })?;
        let connection = self.connection_of(id, cfg)?;
        let mut config = cfg.clone();
        for key in STEP_KEYS {
            config.remove(key);
        }
        Ok(PreparedStep {
            id: id.into(),
            component: mstep.component.clone(),
            mode: mstep.mode,
            needs: mstep.needs.clone(),
            config,
            connection,
        })
    }

    /// The connection bound to `step`: the one whose `used_by` names it. A step whose cfg names
    /// a connection must find it resolved.
    fn connection_of(
        &self,
        step: &str,
        cfg: &Map<String, Value>,
    ) -> Result<Option<ConnectionDescriptor>, PreparedRunError> {
        if let Some(c) = self.resolved_connections.values().find(|c| c.used_by.iter().any(|s| s == step)) {
            return Ok(Some(c.descriptor.clone()));
        }
        match cfg.get("connection").and_then(Value::as_str) {
            Some(reference) => {
                Err(PreparedRunError::MissingConnection { step: step.into(), reference: reference.into() })
            }
            None => Ok(None),
        }
    }

    /// Builds a prepared run straight from steps, for tests and embedders that bypass the
    /// compiler. `plan` supplies the manifest identity; its steps are replaced by `steps`.
    pub fn from_steps(mut plan: Manifest, steps: Vec<PreparedStep>, limits: RunLimits, metadata: RunMetadata) -> Self {
        let mut cfg_index = BTreeMap::new();
        let mut resolved_connections: BTreeMap<String, ResolvedConnection> = BTreeMap::new();
        plan.steps = steps
            .into_iter()
            .map(|step| {
                let cfg_path = format!("cfg/{}.json", step.id);
                let mut cfg = step.config;
                cfg.insert("component".into(), Value::String(step.component.clone()));
                cfg_index.insert(cfg_path.clone(), cfg);
                if let Some(descriptor) = step.connection {
                    resolved_connections
                        .entry(descriptor.reference())
                        .or_insert_with(|| ResolvedConnection { descriptor, used_by: Vec::new() })
                        .used_by
                        .push(step.id.clone());
                }
                ManifestStep {
                    cfg_path,
                    driver: step.component.clone(),
                    component: step.component,
                    id: step.id,
                    mode: step.mode,
                    needs: step.needs,
                }
            })
            .collect();
        let run_params = RunParams { profile: plan.meta.profile.clone(), params: BTreeMap::new() };
        PreparedRun {
            plan,
            resolved_connections,
            cfg_index,
            io_layout: IoLayout::default(),
            run_params,
            constraints: limits,
            metadata,
        }
    }
}
