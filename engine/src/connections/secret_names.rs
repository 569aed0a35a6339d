//! Which field names count as secrets.
//!
//! Osiris uses two lists: one to reject plaintext secrets written inline in OML (compile time) and
//! one to mask connection fields for display. Both are kept here, with the matching rules.

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

/// Osiris's masking list for connection fields (matched on the whole name and on its `_`-parts).
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

/// Whether a connection field is secret: its name (case-insensitive) or one of its `_`-separated
/// parts is in [`MASKED_FIELD_NAMES`], or the name is in `spec_secrets`; `primary_key` never is.
pub fn is_connection_secret_field<'a>(name: &str, spec_secrets: impl IntoIterator<Item = &'a str>) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower == "primary_key" {
        return false;
    }
    if spec_secrets.into_iter().any(|s| s.eq_ignore_ascii_case(&lower)) {
        return true;
    }
    MASKED_FIELD_NAMES.contains(&lower.as_str()) || lower.split('_').any(|part| MASKED_FIELD_NAMES.contains(&part))
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
    }
}
