//! Which field names count as secrets.
//!
//! Osiris uses two lists: one to reject plaintext secrets written inline in OML (compile time) and
//! one to mask connection fields for display. Both are kept here, with the matching rules.
//!
//! Connection fields follow ONE rule, [`is_connection_secret`]: a field is secret when its name
//! means a secret ([`is_connection_secret_field`]: a secret word anywhere in the normalised name,
//! at any depth of the connection, unless a component spec declares the name not secret) or when
//! its value is a URL/DSN carrying a password (`scheme://user:pass@host`, [`has_url_password`]).

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

/// The words that make a connection field secret wherever they occur in its normalised name
/// ([`normalised_name`]): `dbPassword`, `password2`, `sslPassword`, `secretAccessKey`,
/// `private-key`, `clientSecret`, `api-key`, `bearer`, `passphrase`, `auth_header`, ... . Broader
/// than Osiris's masking list on purpose: a field wrongly taken for a secret still reaches its
/// driver (it only travels as an environment variable and shows as `***MASKED***`), while a
/// secret taken for a plain field would be written in clear into `prepared_run.json`.
pub const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "key",
    "credential",
    "private",
    "auth",
    "bearer",
    "passphrase",
    "dsn",
    "connectionstring",
];

/// Words that make a field secret only as a whole part of its name (`db_pass`, `sslPass`), since
/// inside a word they are not (`compass`, `bypass_cache`).
const SECRET_PARTS: &[&str] = &["pass"];

/// What a component spec says about a field name, which overrides the name rule: `secret: true`
/// for a secret whose name does not say so (`sql_pass`, `dsn`), `secret: false` for a field whose
/// name looks secret but is not (`primary_key`, `upsert_keys`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declared {
    /// The field name (matched case-insensitively).
    pub name: String,
    /// Whether it is a secret.
    pub secret: bool,
}

impl Declared {
    /// A field the spec declares secret.
    pub fn secret(name: impl Into<String>) -> Self {
        Declared { name: name.into(), secret: true }
    }

    /// A field the spec declares not secret.
    pub fn not_secret(name: impl Into<String>) -> Self {
        Declared { name: name.into(), secret: false }
    }
}

/// `name` lower-cased without the separators `-`, `_`, `.` and spaces (so camelCase boundaries
/// vanish too): `secretAccessKey`, `secret-access.key` and `SECRET_ACCESS_KEY` are all
/// `secretaccesskey`.
pub fn normalised_name(name: &str) -> String {
    name.chars().filter(|c| !matches!(c, '-' | '_' | '.' | ' ')).flat_map(char::to_lowercase).collect()
}

/// The lower-cased parts of `name`, split at separators and camelCase boundaries
/// (`sslPass` → `ssl`, `pass`).
fn name_parts(name: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut previous_lower = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.' | ' ') {
            parts.push(String::new());
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower {
            parts.push(String::new());
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        if let Some(last) = parts.last_mut() {
            last.extend(c.to_lowercase());
        }
    }
    parts.retain(|p| !p.is_empty());
    parts
}

/// Config keys that are never secrets even though they contain a secret-looking part.
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

/// Whether a connection field name is secret, at any depth of the connection: what a component
/// spec declares about the name ([`Declared`], case-insensitive) decides; else the name is secret
/// when its normalised form contains one of [`SECRET_WORDS`] or one of its parts is `pass`.
pub fn is_connection_secret_field(name: &str, declared: &[Declared]) -> bool {
    if let Some(d) = declared.iter().find(|d| d.name.eq_ignore_ascii_case(name)) {
        return d.secret;
    }
    let normalised = normalised_name(name);
    SECRET_WORDS.iter().any(|w| normalised.contains(w))
        || name_parts(name).iter().any(|p| SECRET_PARTS.contains(&p.as_str()))
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
pub fn is_connection_secret(
    key: Option<&str>,
    raw: &serde_json::Value,
    resolved: Option<&str>,
    declared: &[Declared],
) -> bool {
    if key.is_some_and(|k| is_connection_secret_field(k, declared)) {
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
        assert!(is_connection_secret_field("pg_password", &[]));
        assert!(is_connection_secret_field("service_role_key", &[]));
        assert!(!is_connection_secret_field("host", &[]));
        assert!(is_connection_secret_field("dsn", &[Declared::secret("dsn")]));
        assert!(is_connection_secret_field("sql_pass", &[Declared::secret("SQL_PASS")]));
        assert!(!is_connection_secret_field("url", &[]));
        assert!(is_connection_secret_field("url", &[Declared::secret("url")]), "a spec may still mark url as secret");
        assert!(!is_connection_secret_field("primary_key", &[Declared::not_secret("primary_key")]));
        assert!(!is_connection_secret_field("Upsert_Keys", &[Declared::not_secret("upsert_keys")]));
    }

    #[test]
    fn secrets_by_meaning() {
        for name in [
            "passphrase",
            "api-key",
            "dbPassword",
            "password2",
            "sslPassword",
            "bearer",
            "secretAccessKey",
            "private-key",
            "clientSecret",
            "AUTH_HEADER",
            "x.api.token",
            "db_pass",
            "sslPass",
            "credentials",
            "primary_key",
            "mysql_dsn",
            "pg-connection-string",
        ] {
            assert!(is_connection_secret_field(name, &[]), "{name}");
        }
        for name in
            ["host", "port", "database", "user", "base_dir", "url", "schema", "compass", "bypass_cache", "passage"]
        {
            assert!(!is_connection_secret_field(name, &[]), "{name}");
        }
        assert_eq!(normalised_name("secretAccess-Key.x_y"), "secretaccesskeyxy");
        assert_eq!(name_parts("sslPass_x-y2Z"), vec!["ssl", "pass", "x", "y2", "z"]);
    }

    #[test]
    fn every_common_secret_name_is_a_connection_secret() {
        for name in COMMON_SECRET_NAMES {
            assert!(is_connection_secret_field(name, &[]), "{name}");
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
        assert!(is_connection_secret(Some("url"), &url, None, &[]));
        assert!(is_connection_secret(None, &url, None, &[]));
        let var = serde_json::json!("${DATABASE_URL}");
        assert!(is_connection_secret(Some("url"), &var, Some("mysql://u:pw@h"), &[]));
        assert!(!is_connection_secret(Some("url"), &var, Some("https://h/x"), &[]));
        assert!(is_connection_secret(Some("dsn"), &var, Some("whatever"), &[]));
    }
}
