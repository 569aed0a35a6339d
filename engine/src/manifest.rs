//! The compiled manifest (`manifest.yaml`): the deterministic, fingerprinted form of a pipeline.
//!
//! Field names follow Osiris's manifest. Serialized through `serde_json::Value` its keys come out
//! sorted, which is what makes the YAML and the hashes canonical.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::spec::Mode;

/// `manifest.yaml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub meta: ManifestMeta,
    /// The OML `metadata` block, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// The OML `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub pipeline: ManifestPipeline,
    pub steps: Vec<ManifestStep>,
}

/// `meta:` of the manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestMeta {
    /// The only time-varying field; excluded from every hash.
    pub generated_at: String,
    /// Hex sha256 over the manifest (without `generated_at`, the hash fields and `manifest_fp`).
    pub manifest_hash: String,
    pub manifest_short: String,
    pub oml_version: String,
    pub profile: String,
    /// Literally `${run_id}`, as in Osiris.
    pub run_id: String,
    pub toolchain: Toolchain,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Toolchain {
    pub compiler: String,
    pub registry: String,
}

/// `pipeline:` of the manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestPipeline {
    pub fingerprints: Fingerprints,
    /// The pipeline id: OML `name`, lower-cased, spaces as `_`.
    pub id: String,
    pub version: String,
}

/// `pipeline.fingerprints` (each `sha256:<hex>`), also written to `fingerprints.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fingerprints {
    pub compiler_fp: String,
    pub manifest_fp: String,
    pub oml_fp: String,
    pub params_fp: String,
    pub profile: String,
    pub registry_fp: String,
}

/// One step of the manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestStep {
    /// `cfg/<id>.json`, relative to the manifest.
    pub cfg_path: String,
    pub component: String,
    /// The runtime driver (the component name).
    pub driver: String,
    pub id: String,
    /// The component mode (`extract`, `transform`, `write`).
    pub mode: Mode,
    /// Resolved dependencies (an absent OML `needs` means the previous step).
    pub needs: Vec<String>,
}
