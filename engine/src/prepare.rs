//! Preparation: a [`Compiled`] pipeline bound to connections and limits becomes a
//! [`PreparedRun`] — without any secret value.
//!
//! Every step's connection is resolved: an explicit `connection: "@family.alias"`, else the
//! family's default alias when the component's spec requires a connection; components whose
//! connection is optional (files) get none unless the step names one.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::compile::Compiled;
use crate::connections::file::{ConnectionFileError, ConnectionsFile};
use crate::connections::keys::{allowed_keys, step_connection};
use crate::connections::secret_names::Declared;
use crate::connections::{ConnectionDescriptor, SecretSource};
use crate::prepared::{IoLayout, PreparedRun, ResolvedConnection, RunLimits, RunMetadata, RunParams, StepFile};
use crate::registry::Registry;
use crate::spec::{ComponentSpec, FileRole};

/// Identity of the run being prepared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunInputs {
    /// `2025-10-07T14-22-19Z_<ULID>`.
    pub run_id: String,
    /// `local`, `process` or `e2b`.
    pub adapter: String,
    /// RFC 3339 time the run was created.
    pub created_at: String,
}

/// Preparation errors. Messages name the step and the connection, never a secret value.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The manifest names a component that this build does not have.
    #[error("step '{step}': unknown component '{component}'; recompile the pipeline with this osiris version")]
    UnknownComponent {
        /// The step id.
        step: String,
        /// The component.
        component: String,
    },
    /// A manifest step has no config.
    #[error("step '{step}' has no compiled config; recompile the pipeline")]
    MissingConfig {
        /// The step id.
        step: String,
    },
    /// The step's connection could not be resolved.
    #[error("step '{step}': connection {reference}: {source}")]
    Connection {
        /// The step id.
        step: String,
        /// `@family.alias` or `@family (default)`.
        reference: String,
        /// Why.
        #[source]
        source: Box<ConnectionFileError>,
    },
    /// An option of the step's connection has a bad value (the component says which and why).
    #[error("{message}{}", hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    ConnectionOption {
        /// The step id.
        step: String,
        /// The component's message (naming the step, the connection and the option).
        message: String,
        /// What to do.
        hint: Option<String>,
    },
}

/// Builds the [`PreparedRun`] of `compiled`. Returns it with the synthetic secret variables of
/// secrets written literally in the connections file (`(name, value)`); the caller puts those
/// into the environment of the process that binds connections (for example through
/// [`crate::connections::dotenv::LayeredEnv`]) and never serializes them.
pub fn prepare(
    compiled: &Compiled,
    connections: &ConnectionsFile,
    registry: &Registry,
    env: &dyn SecretSource,
    run: RunInputs,
    limits: RunLimits,
) -> Result<(PreparedRun, Vec<(String, String)>), PrepareError> {
    let mut cfg_index = BTreeMap::new();
    let mut resolved_connections: BTreeMap<String, ResolvedConnection> = BTreeMap::new();
    let mut secret_env: Vec<(String, String)> = Vec::new();
    let mut io_layout = IoLayout::default();
    for mstep in &compiled.manifest.steps {
        let component = registry.get(&mstep.component).ok_or_else(|| PrepareError::UnknownComponent {
            step: mstep.id.clone(),
            component: mstep.component.clone(),
        })?;
        let spec = component.spec();
        let cfg =
            compiled.step_config(&mstep.id).ok_or_else(|| PrepareError::MissingConfig { step: mstep.id.clone() })?;
        cfg_index.insert(mstep.cfg_path.clone(), cfg.clone());
        let files = step_files(&mstep.id, spec, cfg);
        let Some((family, alias)) = step_connection(cfg, spec) else {
            io_layout.add(files, None);
            continue;
        };
        let shown = match &alias {
            Some(alias) => format!("@{family}.{alias}"),
            None => format!("@{family} (default alias)"),
        };
        let connection_error = |source| PrepareError::Connection {
            step: mstep.id.clone(),
            reference: shown.clone(),
            source: Box::new(source),
        };
        if let Some(allowed) = allowed_keys(registry, &family) {
            connections.check_keys(&family, alias.as_deref(), &allowed).map_err(connection_error)?;
        }
        // Every component of the family declares its own secret fields; binding with all of them
        // keeps one descriptor per connection, whichever steps share it.
        let declared = family_declared_secrecy(registry, &family);
        let resolved = connections.resolve(&family, alias.as_deref(), &declared, env).map_err(connection_error)?;
        let mut descriptor = resolved.descriptor;
        let label = format!("@{}.{}", descriptor.family, descriptor.alias);
        component
            .validate_connection(&mstep.id, &label, &descriptor.fields)
            .map_err(|e| PrepareError::ConnectionOption { step: mstep.id.clone(), message: e.message, hint: e.hint })?;
        io_layout.add(files, descriptor.fields.get("base_dir").and_then(Value::as_str));
        if let Some(shared) = resolved_connections.get_mut(&descriptor.reference()) {
            shared.used_by.push(mstep.id.clone());
            continue;
        }
        for (name, value) in resolved.synthetic_env {
            add_synthetic_secret(&mut secret_env, &mut descriptor, name, value);
        }
        resolved_connections
            .insert(descriptor.reference(), ResolvedConnection { descriptor, used_by: vec![mstep.id.clone()] });
    }
    let manifest = &compiled.manifest;
    let prepared = PreparedRun {
        plan: manifest.clone(),
        resolved_connections,
        cfg_index,
        io_layout,
        run_params: RunParams { profile: compiled.profile.clone(), params: compiled.params.clone() },
        constraints: limits,
        metadata: RunMetadata {
            session_id: run.run_id,
            pipeline_id: manifest.pipeline.id.clone(),
            pipeline_slug: compiled.pipeline_slug.clone(),
            created_at: run.created_at,
            compiler_fingerprint: manifest.pipeline.fingerprints.compiler_fp.clone(),
            manifest_hash: manifest.meta.manifest_hash.clone(),
            adapter_target: run.adapter,
        },
    };
    Ok((prepared, secret_env))
}

/// The files a step's config names, by the keys its spec marks as files.
fn step_files(step_id: &str, spec: &ComponentSpec, cfg: &serde_json::Map<String, Value>) -> Vec<(FileRole, StepFile)> {
    spec.config
        .iter()
        .filter_map(|field| {
            let path = cfg.get(&field.name).and_then(Value::as_str)?;
            Some((field.file?, StepFile { step_id: step_id.to_string(), path: path.to_string() }))
        })
        .collect()
}

impl IoLayout {
    /// Records step files, resolved against the connection's `base_dir` as the drivers do.
    fn add(&mut self, files: Vec<(FileRole, StepFile)>, base_dir: Option<&str>) {
        for (role, mut file) in files {
            if let Some(base) = base_dir.filter(|_| !std::path::Path::new(&file.path).is_absolute()) {
                file.path = std::path::Path::new(base).join(&file.path).to_string_lossy().into_owned();
            }
            match role {
                FileRole::Input => self.inputs.push(file),
                FileRole::Output => self.outputs.push(file),
            }
        }
    }
}

/// What the components of `family` declare about the secrecy of field names (see
/// [`Declared`]). A name one component declares secret stays secret whatever another says.
pub fn family_declared_secrecy(registry: &Registry, family: &str) -> Vec<Declared> {
    let mut declared: BTreeMap<String, bool> = BTreeMap::new();
    let specs = registry.iter().map(|c| c.spec()).filter(|s| s.connection.as_ref().is_some_and(|c| c.family == family));
    for d in specs.flat_map(ComponentSpec::declared_secrecy) {
        *declared.entry(d.name.to_ascii_lowercase()).or_insert(d.secret) |= d.secret;
    }
    declared.into_iter().map(|(name, secret)| Declared { name, secret }).collect()
}

/// Records the synthetic variable of a secret written literally in the connections file.
fn add_synthetic_secret(
    secret_env: &mut Vec<(String, String)>,
    descriptor: &mut ConnectionDescriptor,
    name: String,
    value: String,
) {
    match secret_env.iter().find(|(k, _)| *k == name) {
        None => secret_env.push((name, value)),
        Some((_, same)) if *same == value => {}
        // Another connection's secret has the same synthetic name (`a_b`.`c` and `a`.`b_c`):
        // give this one a fresh name instead of sharing the other's value.
        Some(_) => {
            let fresh = (2..)
                .map(|n| format!("{name}_{n}"))
                .find(|n| !secret_env.iter().any(|(k, _)| k == n))
                .unwrap_or_default();
            for var in descriptor.secrets.values_mut().filter(|v| **v == name) {
                var.clone_from(&fresh);
            }
            secret_env.push((fresh, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::compile::Compiler;
    use crate::test_support::registry;

    #[test]
    fn a_family_declares_what_its_specs_mark() {
        let declared = family_declared_secrecy(&registry(), "db");
        assert_eq!(declared, vec![Declared::secret("password"), Declared::secret("sql_pass")]);
        assert!(family_declared_secrecy(&registry(), "nothing").is_empty());
    }

    const OML: &str = r#"oml_version: "0.1.0"
name: prep
steps:
  - id: explicit
    component: db.extractor
    mode: read
    config: {connection: "@db.main", query: "SELECT 1"}
  - id: by-default
    component: db.extractor
    mode: read
    needs: []
    config: {query: "SELECT 2"}
  - id: write
    component: files.writer
    mode: write
    needs: [explicit]
    config: {path: out.csv}
"#;

    const CONNS: &str = r#"connections:
  db:
    main:
      host: ${DB_HOST}
      user: admin
      password: ${DB_PASSWORD}
    fallback:
      default: true
      host: fallback.local
      password: "literal-secret-123"
"#;

    fn run() -> RunInputs {
        RunInputs {
            run_id: "2025-01-01T00-00-00Z_01J".into(),
            adapter: "local".into(),
            created_at: "2025-01-01T00:00:00Z".into(),
        }
    }

    fn env() -> BTreeMap<String, String> {
        [("DB_HOST".to_string(), "db.local".to_string()), ("DB_PASSWORD".to_string(), "env-secret-456".to_string())]
            .into()
    }

    #[test]
    fn prepared_run_has_no_secret_values() {
        let reg = registry();
        let compiled = Compiler::new(&reg).compile(Path::new("prep.yaml"), OML).unwrap();
        let conns = ConnectionsFile::parse(CONNS, None).unwrap();
        let (prepared, secret_env) = prepare(&compiled, &conns, &reg, &env(), run(), RunLimits::default()).unwrap();
        let json = serde_json::to_string(&prepared).unwrap();
        assert!(!json.contains("env-secret-456"), "{json}");
        assert!(!json.contains("literal-secret-123"), "{json}");
        let steps = prepared.steps().unwrap();
        let explicit = &steps[0];
        let c = explicit.connection.as_ref().unwrap();
        assert_eq!((c.alias.as_str(), c.fields["host"].as_str()), ("main", Some("db.local")));
        assert_eq!(c.secrets["/password"], "DB_PASSWORD");
        assert!(!explicit.config.contains_key("connection") && !explicit.config.contains_key("component"));
        assert_eq!(explicit.config["port"], 3306);
        let by_default = steps[1].connection.as_ref().unwrap();
        assert_eq!(by_default.alias, "fallback");
        assert_eq!(by_default.secrets["/password"], "OSIRIS_SECRET_DB_FALLBACK_PASSWORD");
        assert_eq!(
            secret_env,
            vec![("OSIRIS_SECRET_DB_FALLBACK_PASSWORD".to_string(), "literal-secret-123".to_string())]
        );
        assert!(steps[2].connection.is_none());
        assert_eq!(steps[2].needs, vec!["explicit"]);
        assert_eq!(prepared.metadata.pipeline_slug, "prep");
        // Binding reads the value from the environment only now.
        let bound = c.bind(&env()).unwrap();
        assert_eq!(bound.get_string("password").as_deref(), Some("env-secret-456"));
        // The PreparedRun round-trips through JSON.
        let back: PreparedRun = serde_json::from_str(&json).unwrap();
        assert_eq!(back, prepared);
    }

    #[test]
    fn prepared_run_has_the_adapter_contract_fields_and_fails_fast_without_a_cfg() {
        let reg = registry();
        let compiled = Compiler::new(&reg).compile(Path::new("prep.yaml"), OML).unwrap();
        let conns = ConnectionsFile::parse(CONNS, None).unwrap();
        let (prepared, _) = prepare(&compiled, &conns, &reg, &env(), run(), RunLimits::default()).unwrap();
        let json = serde_json::to_value(&prepared).unwrap();
        for key in ["plan", "resolved_connections", "cfg_index", "io_layout", "run_params", "constraints", "metadata"] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }
        assert_eq!(json["metadata"]["adapter_target"], "local");
        assert_eq!(json["resolved_connections"]["@db.main"]["used_by"], serde_json::json!(["explicit"]));
        assert_eq!(json["resolved_connections"]["@db.main"]["secrets"]["/password"], "DB_PASSWORD");
        assert_eq!(json["cfg_index"]["cfg/write.json"]["path"], "out.csv");
        let mut broken = prepared.clone();
        broken.cfg_index.remove("cfg/write.json");
        assert_eq!(
            broken.steps().unwrap_err().to_string(),
            "step 'write': its config cfg/write.json is missing from the prepared run's cfg_index; prepare the run again"
        );
        let mut unbound = prepared;
        unbound.resolved_connections.clear();
        assert!(unbound.steps().unwrap_err().to_string().contains("connection @db.main"));
    }

    #[test]
    fn colliding_synthetic_names_do_not_share_a_value() {
        let reg = registry();
        let oml =
            OML.replace("config: {query: \"SELECT 2\"}", "config: {connection: \"@db.a_b\", query: \"SELECT 2\"}");
        let oml = oml.replace("@db.main", "@db.a");
        let conns = "connections:\n  db:\n    a:\n      b_password: first-1\n    a_b:\n      password: second-2\n";
        let compiled = Compiler::new(&reg).compile(Path::new("prep.yaml"), &oml).unwrap();
        let conns = ConnectionsFile::parse(conns, None).unwrap();
        let (prepared, secret_env) = prepare(&compiled, &conns, &reg, &env(), run(), RunLimits::default()).unwrap();
        let env: BTreeMap<String, String> = secret_env.into_iter().collect();
        let steps = prepared.steps().unwrap();
        let first = steps[0].connection.as_ref().unwrap().bind(&env).unwrap();
        let second = steps[1].connection.as_ref().unwrap().bind(&env).unwrap();
        assert_eq!(first.get_string("b_password").as_deref(), Some("first-1"));
        assert_eq!(second.get_string("password").as_deref(), Some("second-2"));
    }

    #[test]
    fn nested_and_dsn_secrets_stay_out_of_the_prepared_run() {
        let reg = registry();
        let compiled = Compiler::new(&reg).compile(Path::new("prep.yaml"), OML).unwrap();
        let conns = "connections:\n  db:\n    main:\n      host: h\n      dsn: \"mysql://u:${DB_PASSWORD}@h/db\"\n      options: {password: nested-literal-7}\n    fallback: {default: true, host: f}\n";
        let conns = ConnectionsFile::parse(conns, None).unwrap();
        let (prepared, _) = prepare(&compiled, &conns, &reg, &env(), run(), RunLimits::default()).unwrap();
        let json = serde_json::to_string(&prepared).unwrap();
        for secret in ["env-secret-456", "nested-literal-7"] {
            assert!(!json.contains(secret), "{secret} in {json}");
        }
        let c = prepared.steps().unwrap()[0].connection.clone().unwrap();
        assert!(c.secrets.contains_key("/dsn") && c.secrets.contains_key("/options/password"), "{c:?}");
    }

    #[test]
    fn connection_errors_name_step_and_reference() {
        let reg = registry();
        let compiled = Compiler::new(&reg).compile(Path::new("prep.yaml"), OML).unwrap();
        let conns = ConnectionsFile::parse(CONNS, None).unwrap();
        let mut e = env();
        e.remove("DB_PASSWORD");
        let err = prepare(&compiled, &conns, &reg, &e, run(), RunLimits::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "step 'explicit': connection @db.main: Environment variable 'DB_PASSWORD' not set for password in db.main; export it or add it to .env"
        );
        let err = prepare(&compiled, &ConnectionsFile::empty(), &reg, &env(), run(), RunLimits::default()).unwrap_err();
        assert!(err.to_string().contains("no connections configured"), "{err}");
    }
}
