//! The `mysql.extractor` driver: runs one query over the binary protocol and streams the rows
//! into Arrow RecordBatches of `batch_size` rows (never holding the result set in memory).

use std::time::Duration;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use osiris_engine::connections::BoundConnection;
use osiris_engine::driver::{Driver, DriverError, StepContext, StepIo, parse_config};
use osiris_engine::registry::Component;
use osiris_engine::spec::{
    ComponentSpec, ConfigField, ConnectionField, ConnectionSpec, FieldType, Mode, OverridePolicy,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::errors::{Where, connect_timeout, is_transient, map_error};
use crate::types::{ColumnBuilder, DecodeError, Kind, ZeroDates, schema_of};

pub const EXTRACTOR_NAME: &str = "mysql.extractor";

/// Backoff before each retry of a transient connection failure (before any row was sent).
const RETRY_BACKOFF: [Duration; 3] = [Duration::from_millis(200), Duration::from_millis(800), Duration::from_secs(2)];
const CONNECT_TIMEOUT_SECS: u64 = 30;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    table: Option<String>,
    #[serde(default)]
    columns: Option<Vec<String>>,
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    batch_size: Option<u64>,
    #[serde(default)]
    pool_size: Option<u64>,
    #[serde(default)]
    pool_recycle: Option<u64>,
    #[serde(default)]
    echo: Option<bool>,
    #[serde(default)]
    zero_dates: Option<ZeroDates>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    // Connection-provided; accepted so a config without a connection validates, never used
    // for secrets (the password only ever comes from the bound connection).
    #[serde(default)]
    database: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<Value>,
}

/// Validated options.
#[derive(Debug, Clone)]
pub struct Options {
    /// The SQL sent to the server.
    pub sql: String,
    /// Rows to skip / keep client-side (only for `query`; `table` puts them in the SQL).
    pub skip: u64,
    pub keep: Option<u64>,
    pub batch_size: usize,
    pub echo: bool,
    pub zero_dates: ZeroDates,
    host: Option<String>,
    port: Option<u16>,
    database: Option<String>,
    user: Option<String>,
}

fn invalid(msg: impl Into<String>) -> DriverError {
    DriverError::new("config.invalid", msg)
}

/// Backquotes an identifier (`a.b` stays one identifier; backquotes inside are doubled).
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

impl Options {
    pub fn parse(config: &Map<String, Value>) -> Result<Self, DriverError> {
        let raw: RawConfig = parse_config(config)?;
        let _ = (raw.pool_size, raw.pool_recycle, raw.password.is_some());
        let batch_size = raw.batch_size.unwrap_or(10_000);
        if batch_size == 0 || batch_size > 10_000_000 {
            return Err(invalid(format!("invalid batch_size {batch_size}"))
                .with_hint("use a number of rows between 1 and 10000000"));
        }
        let query = raw.query.filter(|q| !q.trim().is_empty());
        let table = raw.table.filter(|t| !t.trim().is_empty());
        let (sql, skip, keep) = match (query, table) {
            (Some(_), Some(_)) => {
                return Err(invalid("both `query` and `table` are set").with_hint("set either `query` or `table`"));
            }
            (None, None) => {
                return Err(invalid("neither `query` nor `table` is set")
                    .with_hint("set `query` to a SELECT, or `table` (with optional `columns`)"));
            }
            // Osiris ignores `columns` with `query`; limit/offset are applied to the rows read so
            // the query runs unchanged.
            (Some(q), None) => (q, raw.offset.unwrap_or(0), raw.limit),
            (None, Some(t)) => {
                let cols = match &raw.columns {
                    Some(c) if !c.is_empty() => c.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", "),
                    _ => "*".to_string(),
                };
                let mut sql = format!("SELECT {cols} FROM ");
                if let Some(s) = raw.schema.as_deref().filter(|s| !s.is_empty()) {
                    sql.push_str(&quote_ident(s));
                    sql.push('.');
                }
                sql.push_str(&quote_ident(&t));
                let offset = raw.offset.unwrap_or(0);
                match (raw.limit, offset) {
                    (Some(l), 0) => sql.push_str(&format!(" LIMIT {l}")),
                    (Some(l), o) => sql.push_str(&format!(" LIMIT {l} OFFSET {o}")),
                    (None, 0) => {}
                    (None, o) => sql.push_str(&format!(" LIMIT 18446744073709551615 OFFSET {o}")),
                }
                (sql, 0, None)
            }
        };
        Ok(Options {
            sql,
            skip,
            keep,
            batch_size: batch_size as usize,
            echo: raw.echo.unwrap_or(false),
            zero_dates: raw.zero_dates.unwrap_or(ZeroDates::Null),
            host: raw.host,
            port: raw.port,
            database: raw.database,
            user: raw.user,
        })
    }
}

/// The `mysql.extractor` component.
pub struct MysqlExtractor {
    spec: ComponentSpec,
}

impl Default for MysqlExtractor {
    fn default() -> Self {
        Self::new()
    }
}

impl MysqlExtractor {
    pub fn new() -> Self {
        let conn_field =
            |name: &str, policy, secret| ConnectionField { name: name.into(), override_policy: policy, secret };
        let spec = ComponentSpec {
            name: EXTRACTOR_NAME.into(),
            version: "0.1.0".into(),
            title: "Read rows from MySQL or MariaDB with a query or a table".into(),
            description: "Runs `query` (or `SELECT columns FROM table`) over the binary protocol and streams the \
                          rows as Arrow batches of `batch_size` rows. Types map exactly (see docs/mysql.md); \
                          TIMESTAMP values are read in UTC. Transient connection failures are retried with \
                          backoff before the first row."
                .into(),
            modes: vec![Mode::Extract],
            config: vec![
                ConfigField::optional(
                    "host",
                    FieldType::String,
                    "Server host (from the connection; default localhost).",
                ),
                ConfigField::optional("port", FieldType::Integer, "Server port (from the connection; default 3306)."),
                ConfigField::required("database", FieldType::String, "Database (from the connection)."),
                ConfigField::required("user", FieldType::String, "User (from the connection)."),
                ConfigField::required("password", FieldType::String, "Password (from the connection).").secret(),
                ConfigField::optional("query", FieldType::String, "SELECT to run. Set `query` or `table`."),
                ConfigField::optional("table", FieldType::String, "Table to read (`SELECT columns FROM table`)."),
                ConfigField::optional(
                    "columns",
                    FieldType::Array,
                    "Columns to read with `table` (ignored with `query`, like Osiris).",
                ),
                ConfigField::optional("schema", FieldType::String, "Database that qualifies `table`."),
                ConfigField::optional("limit", FieldType::Integer, "Read at most this many rows."),
                ConfigField::with_default("offset", FieldType::Integer, json!(0), "Skip this many rows first."),
                ConfigField::with_default("batch_size", FieldType::Integer, json!(10000), "Rows per Arrow batch."),
                ConfigField::with_default(
                    "pool_size",
                    FieldType::Integer,
                    json!(5),
                    "Accepted for Osiris compatibility; the extractor uses one connection.",
                ),
                ConfigField::with_default(
                    "pool_recycle",
                    FieldType::Integer,
                    json!(3600),
                    "Accepted for Osiris compatibility.",
                ),
                ConfigField::with_default("echo", FieldType::Boolean, json!(false), "Log the SQL sent to the server."),
                ConfigField::with_default(
                    "zero_dates",
                    FieldType::String,
                    json!("null"),
                    "What to do with zero dates (`0000-00-00`): read them as NULL, or fail the step.",
                )
                .allowed(["null", "error"]),
            ],
            connection: Some(ConnectionSpec {
                family: "mysql".into(),
                required: true,
                fields: vec![
                    conn_field("host", OverridePolicy::Allowed, false),
                    conn_field("port", OverridePolicy::Allowed, false),
                    conn_field("schema", OverridePolicy::Allowed, false),
                    conn_field("database", OverridePolicy::Forbidden, false),
                    conn_field("user", OverridePolicy::Forbidden, false),
                    conn_field("password", OverridePolicy::Forbidden, true),
                ],
            }),
            example: Some(
                json!({"connection": "@mysql.default", "query": "SELECT id, name, created_at FROM customers"}),
            ),
        };
        MysqlExtractor { spec }
    }
}

impl Component for MysqlExtractor {
    fn spec(&self) -> &ComponentSpec {
        &self.spec
    }

    fn create(&self, config: &Map<String, Value>) -> Result<Box<dyn Driver>, DriverError> {
        Ok(Box::new(MysqlExtractorDriver { opts: Options::parse(config)? }))
    }

    fn check_connection<'a>(
        &'a self,
        connection: &'a BoundConnection,
    ) -> Option<futures::future::BoxFuture<'a, Result<(), DriverError>>> {
        Some(Box::pin(check(connection)))
    }
}

/// Streams one query.
#[derive(Debug)]
pub struct MysqlExtractorDriver {
    pub opts: Options,
}

struct Target {
    w: Where,
    password: String,
}

impl MysqlExtractorDriver {
    fn target(&self, ctx: &StepContext) -> Result<Target, DriverError> {
        target_of(&self.opts, &ctx.step_id, ctx.connection.as_ref())
    }
}

/// Where to connect: the step's overrides (`host`, `port`) over its connection's fields.
fn target_of(opts: &Options, step_id: &str, conn: Option<&BoundConnection>) -> Result<Target, DriverError> {
    {
        let connection = conn.map(|c| format!("@{}.{}", c.family, c.alias)).unwrap_or_else(|| "@mysql".into());
        let field = |name: &str| conn.and_then(|c| c.get_string(name)).filter(|s| !s.is_empty());
        let host = opts.host.clone().or_else(|| field("host")).unwrap_or_else(|| "localhost".into());
        let port = match opts.port {
            Some(p) => p,
            None => match field("port") {
                None => 3306,
                Some(p) => p.parse().map_err(|_| {
                    invalid(format!("step '{step_id}': port '{p}' of {connection} is not a port number"))
                })?,
            },
        };
        let missing = |what: &str| {
            DriverError::new("connection.invalid", format!("step '{step_id}': connection {connection} has no `{what}`"))
                .with_hint(format!("add `{what}` to {connection} in osiris_connections.yaml"))
        };
        let database = field("database").or_else(|| opts.database.clone()).ok_or_else(|| missing("database"))?;
        let user = field("user").or_else(|| opts.user.clone()).ok_or_else(|| missing("user"))?;
        let password = conn.and_then(|c| c.get_string("password")).unwrap_or_default();
        Ok(Target { w: Where { step: step_id.to_string(), connection, host, port, database, user }, password })
    }
}

/// `osiris connections doctor`: handshake and `SELECT 1`.
async fn check(conn: &BoundConnection) -> Result<(), DriverError> {
    let probe = json!({"query": "SELECT 1"});
    let opts = Options::parse(probe.as_object().expect("a JSON object"))?;
    let target = target_of(&opts, "connections doctor", Some(conn))?;
    let mut connection = Conn::new(opts_of(&target)).await.map_err(|e| map_error(e, &target.w, true))?;
    connection.query_drop("SELECT 1").await.map_err(|e| map_error(e, &target.w, false))?;
    let _ = connection.disconnect().await;
    Ok(())
}

fn opts_of(t: &Target) -> OptsBuilder {
    // Field by field, never a URL: error messages of the library then cannot contain the password.
    OptsBuilder::default()
        .ip_or_hostname(t.w.host.clone())
        .tcp_port(t.w.port)
        .user(Some(t.w.user.clone()))
        .pass(Some(t.password.clone()))
        .db_name(Some(t.w.database.clone()))
        .prefer_socket(false)
        .init(vec!["SET NAMES utf8mb4", "SET time_zone = '+00:00'"])
}

/// Outcome of one attempt.
enum Failure {
    /// Failed before any row was sent; `transient` says whether a retry may help.
    Early { err: DriverError, transient: bool },
    /// Failed after rows were sent, or for good.
    Final(DriverError),
}

#[async_trait]
impl Driver for MysqlExtractorDriver {
    async fn run(self: Box<Self>, ctx: StepContext, mut io: StepIo) -> Result<(), DriverError> {
        let mut output = io.take_output()?;
        let target = self.target(&ctx)?;
        if self.opts.echo {
            tracing::info!(step = %ctx.step_id, connection = %target.w.connection, sql = %self.opts.sql, "mysql.extractor query");
        }
        let mut attempt = 0;
        loop {
            match self.attempt(&ctx, &target, &mut output).await {
                Ok(()) => return Ok(()),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Early { err, transient }) => {
                    if !transient || attempt >= RETRY_BACKOFF.len() {
                        return Err(err);
                    }
                    tracing::warn!(step = %ctx.step_id, attempt = attempt + 1, error = %err.message, "mysql.extractor retrying");
                    tokio::select! {
                        () = ctx.cancel.cancelled() => return Err(DriverError::cancelled()),
                        () = tokio::time::sleep(RETRY_BACKOFF[attempt]) => {}
                    }
                    attempt += 1;
                }
            }
        }
    }
}

impl MysqlExtractorDriver {
    async fn attempt(
        &self,
        ctx: &StepContext,
        t: &Target,
        output: &mut osiris_engine::runtime::cache::OutputSink,
    ) -> Result<(), Failure> {
        let early = |e: mysql_async::Error, connecting: bool| {
            let transient = is_transient(&e);
            Failure::Early { err: map_error(e, &t.w, connecting), transient }
        };
        let connect = tokio::time::timeout(Duration::from_secs(CONNECT_TIMEOUT_SECS), Conn::new(opts_of(t)));
        let mut conn = tokio::select! {
            () = ctx.cancel.cancelled() => return Err(Failure::Final(DriverError::cancelled())),
            r = connect => match r {
                Err(_) => return Err(Failure::Early { err: connect_timeout(&t.w, CONNECT_TIMEOUT_SECS), transient: true }),
                Ok(r) => r.map_err(|e| early(e, true))?,
            },
        };
        let mut result = tokio::select! {
            () = ctx.cancel.cancelled() => return Err(Failure::Final(DriverError::cancelled())),
            r = conn.exec_iter(self.opts.sql.as_str(), ()) => r.map_err(|e| early(e, false))?,
        };
        let columns = result.columns().unwrap_or_else(|| Vec::new().into());
        let kinds: Vec<Kind> = columns
            .iter()
            .map(|c| {
                Kind::of(c).map_err(|ty| {
                    Failure::Final(
                        DriverError::new(
                            "extract.type_unsupported",
                            format!(
                                "step '{}' ({}): column '{}' has MySQL type {ty}, which has no Arrow mapping",
                                t.w.step,
                                t.w.connection,
                                c.name_str()
                            ),
                        )
                        .with_hint("CAST the column to CHAR or BINARY in the query"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let schema = schema_of(&columns, &kinds);
        output.set_schema(schema.clone());
        let batch_size = self.opts.batch_size;
        let mut builders: Vec<ColumnBuilder> = kinds.iter().map(|k| ColumnBuilder::new(*k, batch_size)).collect();
        let mut in_batch = 0usize;
        let mut sent_any = false;
        let mut skip = self.opts.skip;
        let mut keep = self.opts.keep;
        let fail = |sent_any: bool, err: DriverError, transient: bool| {
            if sent_any { Failure::Final(err) } else { Failure::Early { err, transient } }
        };
        loop {
            if keep == Some(0) {
                // Enough rows: dropping the connection below stops the server-side read.
                break;
            }
            let row = tokio::select! {
                biased;
                () = ctx.cancel.cancelled() => return Err(Failure::Final(DriverError::cancelled())),
                r = result.next() => r,
            };
            let row = match row {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => {
                    let transient = is_transient(&e);
                    return Err(fail(sent_any, map_error(e, &t.w, false), transient));
                }
            };
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if let Some(k) = keep.as_mut() {
                *k -= 1;
            }
            for (i, (b, kind)) in builders.iter_mut().zip(&kinds).enumerate() {
                let v = row.as_ref(i).unwrap_or(&mysql_async::Value::NULL);
                if let Err(e) = b.append(*kind, v, self.opts.zero_dates) {
                    let name = columns[i].name_str();
                    let err = match e {
                        DecodeError::ZeroDate => DriverError::new(
                            "extract.zero_date",
                            format!("step '{}' ({}): column '{name}' holds a zero date", t.w.step, t.w.connection),
                        )
                        .with_hint("set `zero_dates: null` to read zero dates as NULL, or filter them in the query"),
                        DecodeError::Invalid(msg) => DriverError::new(
                            "extract.decode_failed",
                            format!("step '{}' ({}): column '{name}': {msg}", t.w.step, t.w.connection),
                        ),
                    };
                    return Err(Failure::Final(err));
                }
            }
            in_batch += 1;
            if in_batch == batch_size {
                self.flush(ctx, output, &schema, &mut builders, in_batch).await.map_err(Failure::Final)?;
                in_batch = 0;
                sent_any = true;
            }
        }
        if in_batch > 0 {
            self.flush(ctx, output, &schema, &mut builders, in_batch).await.map_err(Failure::Final)?;
        }
        if keep == Some(0) {
            // Stop reading a result we no longer need: close the connection without draining it.
            drop(result);
            drop(conn);
        } else {
            drop(result);
            let _ = conn.disconnect().await;
        }
        Ok(())
    }

    async fn flush(
        &self,
        ctx: &StepContext,
        output: &mut osiris_engine::runtime::cache::OutputSink,
        schema: &arrow_schema::SchemaRef,
        builders: &mut [ColumnBuilder],
        rows: usize,
    ) -> Result<(), DriverError> {
        let arrays = builders.iter_mut().map(ColumnBuilder::finish).collect();
        let opts = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(schema.clone(), arrays, &opts)
            .map_err(|e| DriverError::new("extract.decode_failed", format!("cannot build a batch: {e}")))?;
        ctx.telemetry.add_rows_read(rows as u64);
        output.send(batch).await?;
        Ok(())
    }
}
