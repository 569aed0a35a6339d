//! `PreparedRun`: everything a run needs, without secret values. It serializes to one JSON
//! document and is the only thing that travels to a worker process or a sandbox.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::connections::ConnectionDescriptor;
use crate::manifest::Manifest;
use crate::runtime::budget::DEFAULT_MEMORY_BUDGET;
use crate::spec::Mode;

/// A compiled pipeline bound to connections and limits, ready for an execution adapter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreparedRun {
    pub manifest: Manifest,
    /// Steps in manifest order.
    pub steps: Vec<PreparedStep>,
    /// Effective pipeline parameters (already substituted into configs; kept for the record).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    pub limits: RunLimits,
    pub metadata: RunMetadata,
}

/// One step as the runtime executes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreparedStep {
    pub id: String,
    pub component: String,
    pub mode: Mode,
    pub needs: Vec<String>,
    /// The driver config: `cfg/<id>.json` without `component`, `mode` and `connection`.
    pub config: Map<String, Value>,
    /// The connection, when the component uses one; secrets are environment-variable names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionDescriptor>,
}

/// Resource limits of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// `2025-10-07T14-22-19Z_<ULID>`; also the `session` of every telemetry line.
    pub run_id: String,
    pub pipeline_id: String,
    /// Slug used in build and run-log paths.
    pub pipeline_slug: String,
    pub profile: String,
    /// `local`, `process` or `e2b`.
    pub adapter: String,
    pub created_at: String,
}
