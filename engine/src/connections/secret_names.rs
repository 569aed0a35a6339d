//! Which field names count as secrets.
//!
//! Osiris uses two lists: one to reject plaintext secrets written inline in OML (compile time) and
//! one to mask connection fields for display. Both are kept here, with the matching rules.
//!
//! Connection fields follow ONE rule, [`is_connection_secret`]: a field is secret when its name
//! says so ([`is_connection_secret_field`], at any depth of the connection) or when its value is a
//! URL/DSN carrying a password (`scheme://user:pass@host`, [`has_url_password`]).

/// Osiris's `COMMON_SECRET_NAMES`: config keys that must never hold a plaintext value in OML.
pub const COMMON_SECRET_NAMES: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "token",
    "secret",
    "secret_key",
    "service_key",
    "service_role_key",
    "api_key",
    "access_token",
    "refresh_token",
    "auth_token",
    "bearer_token",
    "client_secret",
    "client_key",
    "key",
    "dsn",
    "connection_string",
    "anon_key",
];

/// Osiris's masking list for connection fields (matched on the whole name and on its `_`-parts),
/// plus `dsn` and `connection_string` so that every name of [`COMMON_SECRET_NAMES`] is covered.
pub const MASKED_FIELD_NAMES: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "pwd",
    "secret",
    "key",
    "token",
    "auth",
    "credential",
    "api_key",
    "apikey",
    "access_token",
    "refresh_token",
    "private_key",
    "client_secret",
    "service_role_key",
    "anon_key",
    "access_key_id",
    "secret_access_key",
    "dsn",
    "connection_string",
];

/// Names that are never secrets even though they contain a secret-looking part.
const NEVER_SECRET: &[&str] = &["primary_key", "url"];

/// Whether an OML config key is a secret for the inline-secret check and for dropping keys from
/// `cfg/<step>.json`: the name (case-insensitive) is in [`COMMON_SECRET_NAMES`] or in
/// `spec_secrets`, and is not `primary_key`/`url`.
pub fn is_config_secret_key<'a>(name: &str, spec_secrets: impl IntoIterator<Item = &'a str>) -> bool {
    let lower = name.to_ascii_lowercase();
    if NEVER_SECRET.contains(&lower.as_str()) {
        return false;
    }
    COMMON_SECRET_NAMES.contains(&lower.as_str()) || spec_secrets.into_iter().any(|s| s.eq_ignore_ascii_case(&lower))
}

/// Whether a connection field name is secret (case-insensitive): never `primary_key`; else the
/// name is in `spec_secrets`; else (unless it is `url`) the name, one of its `_`-separated parts,
/// or its `_connection_string` suffix is in [`MASKED_FIELD_NAMES`]. Applies to keys at any depth.
pub fn is_connection_secret_field<'a>(name: &str, spec_secrets: impl IntoIterator<Item = &'a str>) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower == "primary_key" {
        return false;
    }
    if spec_secrets.into_iter().any(|s| s.eq_ignore_ascii_case(&lower)) {
        return true;
    }
    if NEVER_SECRET.contains(&lower.as_str()) {
        return false;
    }
    MASKED_FIELD_NAMES.contains(&lower.as_str())
        || lower.split('_').any(|part| MASKED_FIELD_NAMES.contains(&part))
        || lower.ends_with("_connection_string")
}

/// Whether `value` looks like a URL or DSN with a password in its userinfo
/// (`scheme://user:pass@host`): it contains `://`, and the text between the first `://` and the
/// last `@` contains a `:`. Deliberately broad (a `:` before an `@` in a query also counts), so a
/// password containing `/`, `?`, `#` or `@` is still caught.
pub fn has_url_password(value: &str) -> bool {
    let Some(start) = value.find("://") else { return false };
    let rest = &value[start + 3..];
    rest.rfind('@').is_some_and(|at| rest[..at].contains(':'))
}

/// THE rule for connection fields: a field (at any depth) is secret when its key is a secret name
/// ([`is_connection_secret_field`]) or its value, raw or with `${VAR}` substituted, is a string
/// with a URL password ([`has_url_password`]). `key` is `None` for list items.
pub fn is_connection_secret<'a>(
    key: Option<&str>,
    raw: &serde_json::Value,
    resolved: Option<&str>,
    spec_secrets: impl IntoIterator<Item = &'a str>,
) -> bool {
    if key.is_some_and(|k| is_connection_secret_field(k, spec_secrets)) {
        return true;
    }
    raw.as_str().is_some_and(has_url_password) || resolved.is_some_and(has_url_password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        assert!(is_config_secret_key("Password", []));
        assert!(is_config_secret_key("sql_pass", ["sql_pass"]));
        assert!(!is_config_secret_key("primary_key", ["primary_key"]));
        assert!(!is_config_secret_key("url", []));
        assert!(is_connection_secret_field("pg_password", []));
        assert!(is_connection_secret_field("service_role_key", []));
        assert!(!is_connection_secret_field("primary_key", []));
        assert!(!is_connection_secret_field("host", []));
        assert!(is_connection_secret_field("dsn", ["dsn"]));
        assert!(!is_connection_secret_field("url", []));
        assert!(is_connection_secret_field("url", ["url"]), "a spec may still mark url as secret");
    }

    #[test]
    fn every_common_secret_name_is_a_connection_secret() {
        for name in COMMON_SECRET_NAMES {
            assert!(is_connection_secret_field(name, []), "{name}");
        }
        for name in ["dsn", "DSN", "mysql_dsn", "connection_string", "pg_connection_string", "db_password"] {
            assert!(is_connection_secret_field(name, []), "{name}");
        }
        for name in ["host", "port", "database", "user", "base_dir", "primary_key", "url", "schema"] {
            assert!(!is_connection_secret_field(name, []), "{name}");
        }
    }

    #[test]
    fn url_passwords() {
        for v in [
            "mysql://u:pw@h/db",
            "postgresql://user:p/ss@host:5432/db",
            "mysql://u:p@ss@h",
            "https://u:${PW}@example.com",
            "jdbc:mysql://u:x#y@h",
        ] {
            assert!(has_url_password(v), "{v}");
        }
        for v in ["https://example.com/a@b", "mysql://user@host/db", "user:pw@host", "/data/dir", "", "http://h:80/x"] {
            assert!(!has_url_password(v), "{v}");
        }
        let url = serde_json::json!("mysql://u:pw@h");
        assert!(is_connection_secret(Some("url"), &url, None, []));
        assert!(is_connection_secret(None, &url, None, []));
        let var = serde_json::json!("${DATABASE_URL}");
        assert!(is_connection_secret(Some("url"), &var, Some("mysql://u:pw@h"), []));
        assert!(!is_connection_secret(Some("url"), &var, Some("https://h/x"), []));
        assert!(is_connection_secret(Some("dsn"), &var, Some("whatever"), []));
    }
}
