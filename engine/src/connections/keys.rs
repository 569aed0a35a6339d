//! Which keys a connection entry may carry: what the components of its family declare
//! ([`ConnectionSpec::fields`](crate::spec::ConnectionSpec), plus the Osiris keys they accept and
//! ignore, [`ConnectionSpec::ignored_keys`](crate::spec::ConnectionSpec)), and the keys of the
//! connections file format itself ([`ENTRY_KEYS`]). Anything else is an error naming the file,
//! line, family and alias, with "did you mean": a `databse` must not be ignored until the
//! connection fails, nor an `ssl_mode` silently do nothing.
//!
//! A family no component of this binary uses (an Osiris file's `supabase:` block) is not checked:
//! no step can use it, and its keys are another tool's business.

use std::collections::BTreeSet;

use serde_json::Value;

use super::file::{ALLOW_UNKNOWN_KEYS, ConnectionFileError, ConnectionsFile};
use crate::compile::Compiled;
use crate::pipeline::validate::{Diagnostic, Severity};
use crate::registry::Registry;

/// Keys of every entry, whatever its family: `default` (picks the default alias),
/// `allow_unknown_keys` (turns this check off for the entry) and what Osiris's files carry as
/// metadata (`description`, `alias`, `type`; accepted and ignored).
pub const ENTRY_KEYS: &[&str] = &["default", ALLOW_UNKNOWN_KEYS, "description", "alias", "type"];

/// The keys an entry of `family` may have, sorted; `None` when no component uses the family.
pub fn allowed_keys(registry: &Registry, family: &str) -> Option<Vec<String>> {
    let mut keys: BTreeSet<String> = BTreeSet::new();
    let mut known = false;
    for connection in registry.iter().filter_map(|c| c.spec().connection.clone()) {
        if connection.family != family {
            continue;
        }
        known = true;
        keys.extend(connection.fields.into_iter().map(|f| f.name));
        keys.extend(connection.ignored_keys);
    }
    if !known {
        return None;
    }
    keys.extend(ENTRY_KEYS.iter().map(|k| k.to_string()));
    Some(keys.into_iter().collect())
}

/// The family and alias (`None`: the default alias) the step with config `cfg` connects with:
/// its `connection: "@family.alias"`, else the family's default when its component requires a
/// connection.
pub fn step_connection(
    cfg: &serde_json::Map<String, Value>,
    spec: &crate::spec::ComponentSpec,
) -> Option<(String, Option<String>)> {
    match (cfg.get("connection").and_then(Value::as_str), &spec.connection) {
        (Some(reference), _) => {
            let (family, alias) = reference.trim_start_matches('@').split_once('.').unwrap_or((reference, ""));
            Some((family.to_string(), Some(alias.to_string())))
        }
        (None, Some(c)) if c.required => Some((c.family.clone(), None)),
        _ => None,
    }
}

/// `unknown_connection_key` errors of the entries `compiled`'s steps use (each entry once).
/// Entries the file does not have are left to the run, which needs them (compile does not).
pub fn compiled_key_diagnostics(compiled: &Compiled, file: &ConnectionsFile, registry: &Registry) -> Vec<Diagnostic> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for step in &compiled.manifest.steps {
        let (Some(component), Some(cfg)) = (registry.get(&step.component), compiled.step_config(&step.id)) else {
            continue;
        };
        let Some((family, alias)) = step_connection(cfg, component.spec()) else { continue };
        let Some(allowed) = allowed_keys(registry, &family) else { continue };
        if let Err(err) = file.check_keys(&family, alias.as_deref(), &allowed)
            && seen.insert(err.to_string())
        {
            out.extend(diagnostics(&err));
        }
    }
    out
}

/// Every entry of `file` checked: `unknown_connection_key` errors, and an `unchecked_family`
/// warning for each family no component uses.
pub fn file_diagnostics(file: &ConnectionsFile, registry: &Registry) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    for family in file.families() {
        let Some(allowed) = allowed_keys(registry, family) else {
            warnings.push(
                Diagnostic::new(
                    Severity::Warning,
                    "unchecked_family",
                    &format!("connections.{family}"),
                    format!("no component of this osiris uses family '{family}': no step can use its connections, and their keys are not checked"),
                )
                .with_hint("`osiris components list` shows the families components use")
                .at(file.path.as_ref().map(|p| p.display().to_string()).as_deref(), None),
            );
            continue;
        };
        for alias in file.aliases(family) {
            if let Err(err) = file.check_keys(family, Some(alias), &allowed) {
                errors.extend(diagnostics(&err));
            }
        }
    }
    (errors, warnings)
}

/// One diagnostic per unknown key of an [`UnknownKeys`](ConnectionFileError::UnknownKeys) error
/// (none for other errors).
pub fn diagnostics(err: &ConnectionFileError) -> Vec<Diagnostic> {
    let ConnectionFileError::UnknownKeys { path, family, alias, keys, allowed } = err else {
        return Vec::new();
    };
    keys.iter()
        .map(|k| {
            let hint = format!(
                "{}a {family} connection takes: {} (see docs/connections.md)",
                k.suggestion.as_ref().map(|s| format!("did you mean '{s}'? ")).unwrap_or_default(),
                allowed.join(", ")
            );
            let mut d = Diagnostic::new(
                Severity::Error,
                "unknown_connection_key",
                &format!("connections.{family}.{alias}.{}", k.key),
                k.message(family, alias),
            )
            .with_hint(hint)
            .at(Some(path), None);
            d.line = k.line;
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::registry;

    const FILE: &str = "connections:\n  db:\n    main:\n      default: true\n      host: h\n      databse: x\n      pool_size: 5\n      description: main db\n    shared:\n      allow_unknown_keys: true\n      host: h\n      other_tool_setting: 1\n  supabase:\n    main: {url: x}\n";

    #[test]
    fn allowed_keys_come_from_the_family_specs() {
        let reg = registry();
        let keys = allowed_keys(&reg, "db").unwrap();
        for key in ["host", "user", "password", "pool_size", "default", "description", "alias", "type"] {
            assert!(keys.iter().any(|k| k == key), "{key} not in {keys:?}");
        }
        assert!(allowed_keys(&reg, "supabase").is_none());
    }

    #[test]
    fn unknown_keys_name_file_line_family_alias_and_a_suggestion() {
        let reg = registry();
        let file = ConnectionsFile::parse(FILE, Some(std::path::Path::new("/p/osiris_connections.yaml"))).unwrap();
        let allowed = allowed_keys(&reg, "db").unwrap();
        let err = file.check_keys("db", None, &allowed).unwrap_err();
        let message = err.to_string();
        assert!(
            message
                .starts_with("/p/osiris_connections.yaml:6: unknown key 'databse' in connection @db.main (family db)"),
            "{message}"
        );
        let d = diagnostics(&err);
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].code.as_str(), d[0].line), ("unknown_connection_key", Some(6)));
        assert_eq!(d[0].path, "connections.db.main.databse");
        // The opted-in entry passes, and the flag is not a connection field.
        assert!(file.check_keys("db", Some("shared"), &allowed).is_ok());
        let resolved = file.resolve("db", Some("shared"), &[], &std::collections::BTreeMap::new()).unwrap();
        assert!(!resolved.descriptor.fields.contains_key(ALLOW_UNKNOWN_KEYS));
        let (errors, warnings) = file_diagnostics(&file, &reg);
        assert_eq!(errors, d);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].code, "unchecked_family");
    }
}
