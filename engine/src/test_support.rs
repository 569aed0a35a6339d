//! Test components shared by the unit tests of the compiler, validator and preparation.

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::driver::{Driver, DriverError, StepContext, StepIo};
use crate::registry::{Component, Registry};
use crate::spec::{ComponentSpec, ConfigField, ConnectionField, ConnectionSpec, FieldType, Mode, OverridePolicy};

#[derive(Debug)]
pub struct NoopDriver;

#[async_trait]
impl Driver for NoopDriver {
    async fn run(self: Box<Self>, _ctx: StepContext, _io: StepIo) -> Result<(), DriverError> {
        Ok(())
    }
}

/// A component built from a spec; `create` rejects a negative `batch`.
pub struct TestComponent(pub ComponentSpec);

impl Component for TestComponent {
    fn spec(&self) -> &ComponentSpec {
        &self.0
    }
    fn create(&self, config: &Map<String, Value>) -> Result<Box<dyn Driver>, DriverError> {
        for key in ["component", "mode", "connection"] {
            if config.contains_key(key) {
                return Err(DriverError::new("config.invalid", format!("unexpected key '{key}'")));
            }
        }
        if config.get("batch").and_then(Value::as_i64).is_some_and(|b| b < 0) {
            return Err(DriverError::new("config.invalid", "batch must not be negative"));
        }
        Ok(Box::new(NoopDriver))
    }
}

/// `db.extractor` (connection family `db`, required), `db.writer`, `files.writer` (no connection).
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register(TestComponent(ComponentSpec {
        name: "db.extractor".into(),
        version: "0.1.0".into(),
        title: "test extractor".into(),
        description: "reads rows".into(),
        modes: vec![Mode::Extract],
        config: vec![
            ConfigField::required("query", FieldType::String, "SQL"),
            ConfigField::required("host", FieldType::String, "host"),
            ConfigField::with_default("port", FieldType::Integer, json!(3306), "port"),
            ConfigField::with_default("batch", FieldType::Integer, json!(1000), "batch size"),
            ConfigField::with_default("echo", FieldType::Boolean, json!(false), "echo"),
            ConfigField::optional("schema", FieldType::String, "schema"),
            ConfigField::optional("sql_pass", FieldType::String, "password").secret(),
        ],
        connection: Some(ConnectionSpec {
            family: "db".into(),
            required: true,
            fields: vec![
                ConnectionField::new("host", OverridePolicy::Allowed),
                ConnectionField::new("user", OverridePolicy::Forbidden),
                ConnectionField::new("password", OverridePolicy::Forbidden).secret(),
            ],
            // Accepted keys beyond `fields`; the secret tests' connection files carry the others.
            ignored_keys: ["pool_size", "dsn", "options", "b_password"].map(String::from).to_vec(),
        }),
        example: None,
    }))
    .unwrap();
    r.register(TestComponent(ComponentSpec {
        name: "files.writer".into(),
        version: "0.1.0".into(),
        title: "test writer".into(),
        description: "writes rows".into(),
        modes: vec![Mode::Write],
        config: vec![
            ConfigField::required("path", FieldType::String, "output path"),
            ConfigField::with_default("delimiter", FieldType::String, json!(","), "delimiter"),
            ConfigField::with_default("newline", FieldType::String, json!("lf"), "newline").allowed(["lf", "crlf"]),
            ConfigField::with_default("header", FieldType::Boolean, json!(true), "header"),
            ConfigField::with_default("batch", FieldType::Integer, json!(10), "batch"),
        ],
        connection: Some(ConnectionSpec {
            family: "files".into(),
            required: false,
            fields: vec![],
            ignored_keys: vec![],
        }),
        example: None,
    }))
    .unwrap();
    r.register(TestComponent(ComponentSpec {
        name: "db.transform".into(),
        version: "0.1.0".into(),
        title: "test transform".into(),
        description: "transforms rows".into(),
        modes: vec![Mode::Transform],
        config: vec![ConfigField::required("query", FieldType::String, "SQL")],
        connection: None,
        example: None,
    }))
    .unwrap();
    r
}
