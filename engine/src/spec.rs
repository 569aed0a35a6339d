//! Component specifications: what a component is called, which modes it supports, which config
//! keys it takes (types, defaults, required keys, secrets) and which connection family it uses.
//!
//! A spec is the contract between a pipeline author and a driver: the validator checks OML steps
//! against it, the compiler fills defaults from it, `osiris components show` prints it and
//! `docs/components.md` is generated from it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::connections::secret_names::Declared;

/// What a step does with data. OML spells these `read`, `transform` and `write`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Produces batches from an external source (OML `read`).
    Extract,
    /// Consumes its inputs and produces batches.
    Transform,
    /// Consumes its inputs and writes them to an external target; produces no batches.
    Write,
}

impl Mode {
    /// Maps an OML mode (`read`, `transform`, `write`) to a component mode.
    pub fn from_oml(mode: &str) -> Option<Mode> {
        match mode {
            "read" => Some(Mode::Extract),
            "transform" => Some(Mode::Transform),
            "write" => Some(Mode::Write),
            _ => None,
        }
    }

    /// The component-side name (`extract`, `transform`, `write`), as written into `cfg/<step>.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Extract => "extract",
            Mode::Transform => "transform",
            Mode::Write => "write",
        }
    }

    /// Whether steps in this mode produce an output that downstream steps can read.
    pub fn produces_output(self) -> bool {
        !matches!(self, Mode::Write)
    }
}

/// The JSON type a config value must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    String,
    Integer,
    Number,
    Boolean,
    Object,
    Array,
    /// Any JSON value (the driver checks it).
    Any,
}

impl FieldType {
    /// Whether `value` is acceptable for this type (`null` is accepted for optional fields
    /// elsewhere, not here).
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            FieldType::String => value.is_string(),
            FieldType::Integer => value.is_i64() || value.is_u64(),
            FieldType::Number => value.is_number(),
            FieldType::Boolean => value.is_boolean(),
            FieldType::Object => value.is_object(),
            FieldType::Array => value.is_array(),
            FieldType::Any => true,
        }
    }

    /// Lower-case name used in messages and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Object => "object",
            FieldType::Array => "array",
            FieldType::Any => "any",
        }
    }
}

/// One key of a component's config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigField {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// Filled into `cfg/<step>.json` by the compiler when the step does not set the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Allowed values, when the key is an enumeration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<Value>,
    /// Secret keys must never be written inline in OML; they come from a connection.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
    /// The key looks like a secret by its name (`primary_key`) but is not one: where a connection
    /// carries it, it is a plain field (see `connections::secret_names`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_secret: bool,
    /// The key names a local file the step reads or writes (relative paths resolve against the
    /// connection's `base_dir`, else the working directory). Remote adapters upload inputs and
    /// download outputs by it, without interpreting the driver's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileRole>,
    pub description: String,
}

/// How a step uses the file a config key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileRole {
    Input,
    Output,
}

impl ConfigField {
    fn new(name: &str, field_type: FieldType, description: &str) -> Self {
        ConfigField {
            name: name.to_string(),
            field_type,
            required: false,
            default: None,
            allowed: Vec::new(),
            secret: false,
            not_secret: false,
            file: None,
            description: description.to_string(),
        }
    }

    /// A required key.
    pub fn required(name: &str, field_type: FieldType, description: &str) -> Self {
        ConfigField { required: true, ..Self::new(name, field_type, description) }
    }

    /// An optional key without a default.
    pub fn optional(name: &str, field_type: FieldType, description: &str) -> Self {
        Self::new(name, field_type, description)
    }

    /// An optional key with a default that the compiler fills in.
    pub fn with_default(name: &str, field_type: FieldType, default: Value, description: &str) -> Self {
        ConfigField { default: Some(default), ..Self::new(name, field_type, description) }
    }

    /// Restricts the key to these values.
    pub fn allowed<I: IntoIterator<Item = V>, V: Into<Value>>(mut self, values: I) -> Self {
        self.allowed = values.into_iter().map(Into::into).collect();
        self
    }

    /// Marks the key as a secret.
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// Marks a key whose name looks secret (`primary_key`) as not a secret.
    pub fn not_secret(mut self) -> Self {
        self.not_secret = true;
        self
    }

    /// Marks the key as naming a file the step reads.
    pub fn input_file(mut self) -> Self {
        self.file = Some(FileRole::Input);
        self
    }

    /// Marks the key as naming a file the step writes.
    pub fn output_file(mut self) -> Self {
        self.file = Some(FileRole::Output);
        self
    }
}

/// May a step override a field that its connection provides?
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverridePolicy {
    Allowed,
    Warning,
    Forbidden,
}

/// A field a connection provides (for example `host` of a MySQL connection).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectionField {
    pub name: String,
    #[serde(rename = "override")]
    pub override_policy: OverridePolicy,
    /// A secret, whatever its name says.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
    /// Not a secret, although its name looks like one (`ssl_key`, a file path).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_secret: bool,
}

impl ConnectionField {
    /// A connection field; its name decides whether it is secret.
    pub fn new(name: &str, override_policy: OverridePolicy) -> Self {
        ConnectionField { name: name.into(), override_policy, secret: false, not_secret: false }
    }

    /// A secret, whatever its name says.
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// Not a secret, although its name looks like one.
    pub fn not_secret(mut self) -> Self {
        self.not_secret = true;
        self
    }
}

/// Which connection family a component uses and what the connection provides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectionSpec {
    /// Family in `osiris_connections.yaml` (`mysql`, `filesystem`, ...).
    pub family: String,
    /// Must a step name a connection (or the family have a default alias)?
    pub required: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<ConnectionField>,
    /// Keys that Osiris's connection files carry for this family and that this engine accepts
    /// and ignores (`pool_size`, `echo`, ...). Every other key that no component of the family
    /// declares in `fields` is an error in the connections file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_keys: Vec<String>,
}

/// The full description of a component.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentSpec {
    /// `family.kind`, e.g. `filesystem.csv_writer`.
    pub name: String,
    pub version: String,
    /// One line for `components list`.
    pub title: String,
    /// Longer text for `components show` and the docs.
    pub description: String,
    pub modes: Vec<Mode>,
    pub config: Vec<ConfigField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionSpec>,
    /// A small OML step config shown in docs and `components show`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Value>,
}

impl ComponentSpec {
    /// The family part of the name (`filesystem` for `filesystem.csv_writer`).
    pub fn family(&self) -> &str {
        self.name.split('.').next().unwrap_or(&self.name)
    }

    /// Looks up a config key.
    pub fn field(&self, name: &str) -> Option<&ConfigField> {
        self.config.iter().find(|f| f.name == name)
    }

    /// Names of secret config keys and secret connection fields.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        let config = self.config.iter().filter(|f| f.secret).map(|f| f.name.as_str());
        let conn = self.connection.iter().flat_map(|c| c.fields.iter()).filter(|f| f.secret).map(|f| f.name.as_str());
        config.chain(conn)
    }

    /// What the spec declares about the secrecy of its config keys and connection fields (only
    /// the fields marked secret or not secret), for the name rule of connection fields.
    pub fn declared_secrecy(&self) -> Vec<Declared> {
        let config = self.config.iter().map(|f| (&f.name, f.secret, f.not_secret));
        let conn = self.connection.iter().flat_map(|c| &c.fields).map(|f| (&f.name, f.secret, f.not_secret));
        config
            .chain(conn)
            .filter_map(|(name, secret, not_secret)| match (secret, not_secret) {
                (true, _) => Some(Declared::secret(name.as_str())),
                (false, true) => Some(Declared::not_secret(name.as_str())),
                (false, false) => None,
            })
            .collect()
    }

    /// Whether the component runs in `mode`.
    pub fn supports(&self, mode: Mode) -> bool {
        self.modes.contains(&mode)
    }
}

impl ComponentSpec {
    /// The component's reference section in Markdown (`docs/components.md` is made of these).
    pub fn markdown(&self) -> String {
        let modes: Vec<&str> = self.modes.iter().map(|m| m.as_str()).collect();
        let mut out = format!("## `{}`\n\n{}\n\n", self.name, self.title);
        if !self.description.is_empty() {
            out.push_str(&format!("{}\n\n", self.description));
        }
        out.push_str(&format!("- version: {}\n- modes: {}\n", self.version, modes.join(", ")));
        match &self.connection {
            Some(c) => {
                let fields: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
                let ignored: Vec<String> = c.ignored_keys.iter().map(|k| format!("`{k}`")).collect();
                out.push_str(&format!(
                    "- connection: family `{}`, {}{}{}\n",
                    c.family,
                    if c.required { "required" } else { "optional" },
                    if fields.is_empty() { String::new() } else { format!("; provides {}", fields.join(", ")) },
                    if ignored.is_empty() {
                        String::new()
                    } else {
                        format!("; accepts and ignores Osiris's {}", ignored.join(", "))
                    }
                ));
            }
            None => out.push_str("- connection: none\n"),
        }
        out.push_str("\n| key | type | required | default | description |\n|---|---|---|---|---|\n");
        for f in &self.config {
            let mut description = f.description.replace('|', "\\|");
            if !f.allowed.is_empty() {
                let allowed: Vec<String> =
                    f.allowed.iter().map(|v| format!("`{}`", v.to_string().trim_matches('"'))).collect();
                description.push_str(&format!(" One of {}.", allowed.join(", ")));
            }
            if f.secret {
                description.push_str(" Secret: comes from a connection, never inline.");
            }
            match f.file {
                Some(FileRole::Input) => description.push_str(" Input file: remote runs upload it."),
                Some(FileRole::Output) => description.push_str(" Output file: remote runs download it."),
                None => {}
            }
            let default = f.default.as_ref().map(|d| format!("`{d}`")).unwrap_or_default();
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                f.name,
                f.field_type.as_str(),
                if f.required { "yes" } else { "" },
                default.replace('|', "\\|"),
                description
            ));
        }
        if let Some(example) = &self.example {
            out.push_str(&format!(
                "\nExample step config:\n\n```json\n{}\n```\n",
                serde_json::to_string_pretty(example).unwrap_or_default()
            ));
        }
        out
    }
}
