//! The `mysql.writer` driver: writes its single input into a MySQL/MariaDB table, atomically.
//!
//! - `append`: every row in one transaction (optionally after `DELETE FROM` the table in the
//!   same transaction, `truncate_before`); any failure rolls it back.
//! - `replace`: rows go into a staging table (`<table>__osiris_stage_<run>`, `LIKE` the target; see
//!   `side_tables.rs` for how one left by a killed run is dropped by the next),
//!   then `RENAME TABLE target TO old, stage TO target` swaps it in with one statement and the old
//!   table is dropped. A failure or cancellation drops the staging table; the target is untouched.
//! - `upsert`: `INSERT … ON DUPLICATE KEY UPDATE c = VALUES(c)` in one transaction, after checking
//!   that the table has a PRIMARY or UNIQUE key on exactly the `primary_key` columns.
//! - A missing table (with `create_if_missing`) is built as a staging table from the DDL derived
//!   from the Arrow schema ([`ddl`]), loaded, and renamed into place, so it appears complete or
//!   not at all.
//!
//! Rows are streamed as one `LOAD DATA LOCAL INFILE` when the server allows it (and the mode is
//! not upsert), else sent as multi-row `INSERT` statements of SQL literals ([`encode`]); any
//! warning of `LOAD DATA` fails the step (with `LOCAL`, data errors are only warnings). The
//! session has `NO_BACKSLASH_ESCAPES`, `STRICT_ALL_TABLES` and `NO_AUTO_VALUE_ON_ZERO`, `SET NAMES
//! utf8mb4` and `time_zone = '+00:00'`.

pub mod ddl;
pub mod encode;
pub mod side_tables;

use std::time::Duration;

use arrow_schema::{DataType, SchemaRef};
use async_trait::async_trait;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use osiris_engine::driver::{Driver, DriverError, StepContext, StepInput, StepIo, parse_config};
use osiris_engine::registry::Component;
use osiris_engine::spec::{ComponentSpec, ConfigField, FieldType, Mode};
use osiris_engine::telemetry::Event;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::errors::{map_write_error, stalled, within};
use crate::extract::quote_ident;
use crate::session::{Overrides, Target};
use crate::session::{connection_config_fields, connection_spec};
use encode::{RowPrinter, check_type};

pub const WRITER_NAME: &str = "mysql.writer";

/// How long cleanup after a failure (rollback, dropping the staging table) may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(20);
pub const DEFAULT_BATCH_SIZE: u64 = 1000;
pub const MAX_BATCH_SIZE: u64 = 100_000;
/// Statements are flushed once they reach this size (or `max_allowed_packet` minus a margin).
const SOFT_STATEMENT_BYTES: usize = 16 << 20;
/// Room left in `max_allowed_packet` for the packet header.
const PACKET_MARGIN: usize = 1024;
/// What the writer's sessions run on connect. `sql_mode` keeps the server's modes and adds
/// strictness (no silent truncation or clipping), literal backslashes and explicit zeros in
/// AUTO_INCREMENT columns.
const SESSION_INIT: [&str; 3] = [
    "SET NAMES utf8mb4",
    "SET time_zone = '+00:00'",
    "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES', \
     'NO_BACKSLASH_ESCAPES', 'NO_AUTO_VALUE_ON_ZERO')",
];

/// How rows reach the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    Append,
    Replace,
    Upsert,
}

/// How rows are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadMethod {
    /// `LOAD DATA LOCAL INFILE` when the server allows it and the mode is not `upsert`, else `INSERT`.
    Auto,
    /// Multi-row `INSERT` statements.
    Insert,
    /// One streamed `LOAD DATA LOCAL INFILE` (not with `upsert`).
    LoadData,
}

impl WriteMode {
    fn parse(key: &str, s: &str) -> Result<WriteMode, DriverError> {
        match s {
            "append" => Ok(WriteMode::Append),
            "replace" => Ok(WriteMode::Replace),
            "upsert" => Ok(WriteMode::Upsert),
            other => Err(invalid(format!("invalid `{key}` '{other}'"))
                .with_hint("use `append` (the default), `replace` or `upsert`")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WriteMode::Append => "append",
            WriteMode::Replace => "replace",
            WriteMode::Upsert => "upsert",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    table: Option<String>,
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    write_mode: Option<String>,
    #[serde(default)]
    primary_key: Option<Value>,
    #[serde(default)]
    upsert_keys: Option<Value>,
    #[serde(default)]
    create_if_missing: Option<bool>,
    #[serde(default)]
    create_table: Option<bool>,
    #[serde(default)]
    truncate_before: Option<bool>,
    #[serde(default)]
    batch_size: Option<u64>,
    #[serde(default)]
    load_method: Option<String>,
    #[serde(default)]
    pool_size: Option<u64>,
    #[serde(default)]
    pool_recycle: Option<u64>,
    #[serde(default)]
    echo: Option<bool>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    // Connection-provided; accepted so a config without a connection validates. The password
    // only ever comes from the bound connection.
    #[serde(default)]
    database: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<Value>,
}

/// Validated writer options.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub table: String,
    pub schema: Option<String>,
    pub mode: WriteMode,
    /// `primary_key` / `upsert_keys`: the key columns (upsert), also the PRIMARY KEY of a created table.
    pub keys: Vec<String>,
    pub create_if_missing: bool,
    pub truncate_before: bool,
    pub batch_size: usize,
    pub load_method: LoadMethod,
    pub echo: bool,
    overrides: Overrides,
}

fn invalid(msg: impl Into<String>) -> DriverError {
    DriverError::new("config.invalid", msg)
}

/// One of two synonymous keys: both set to different values is an error.
fn one_of<T: PartialEq + std::fmt::Debug>(
    a: (&str, Option<T>),
    b: (&str, Option<T>),
    show: impl Fn(&T) -> String,
) -> Result<Option<T>, DriverError> {
    match (a.1, b.1) {
        (Some(x), Some(y)) if x != y => Err(invalid(format!(
            "`{}: {}` and `{}: {}` disagree (they are two names of one setting)",
            a.0,
            show(&x),
            b.0,
            show(&y)
        ))
        .with_hint(format!("set only one of `{}` and `{}`", a.0, b.0))),
        (Some(x), _) => Ok(Some(x)),
        (None, y) => Ok(y),
    }
}

fn parse_keys(key: &str, v: Option<Value>) -> Result<Option<Vec<String>>, DriverError> {
    let bad = || {
        invalid(format!("`{key}` must be a column name or a list of column names"))
            .with_hint(format!("for example `{key}: id` or `{key}: [order_id, line_no]`"))
    };
    let keys = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => {
            items.into_iter().map(|i| i.as_str().map(str::to_string).ok_or_else(bad)).collect::<Result<_, _>>()?
        }
        Some(_) => return Err(bad()),
    };
    if keys.is_empty() || keys.iter().any(|k| k.trim().is_empty()) {
        return Err(bad());
    }
    let mut seen = std::collections::BTreeSet::new();
    for k in &keys {
        if !seen.insert(k.to_lowercase()) {
            return Err(invalid(format!("`{key}` names the column '{k}' twice")).with_hint("list each key column once"));
        }
    }
    Ok(Some(keys))
}

impl WriterOptions {
    pub fn parse(config: &Map<String, Value>) -> Result<Self, DriverError> {
        let raw: RawConfig = parse_config(config)?;
        let _ = (raw.pool_size, raw.pool_recycle, raw.password.is_some());
        let table = raw.table.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            invalid("`table` is not set")
                .with_hint("set `table` to the name of the table to write (e.g. `table: orders`)")
        })?;
        let mode = one_of(("mode", raw.mode), ("write_mode", raw.write_mode), |s| s.clone())?;
        let mode = match mode {
            None => WriteMode::Append,
            Some(m) => WriteMode::parse(if config.contains_key("mode") { "mode" } else { "write_mode" }, &m)?,
        };
        let keys = one_of(
            ("primary_key", parse_keys("primary_key", raw.primary_key)?),
            ("upsert_keys", parse_keys("upsert_keys", raw.upsert_keys)?),
            |k| format!("[{}]", k.join(", ")),
        )?
        .unwrap_or_default();
        if mode == WriteMode::Upsert && keys.is_empty() {
            return Err(DriverError::new(
                "config.missing_required_field",
                "`mode: upsert` needs `primary_key` (or `upsert_keys`): the columns that identify a row",
            )
            .with_hint(
                "add `primary_key: id` (or a list, `primary_key: [order_id, line_no]`) naming the columns of the \
                 table's PRIMARY KEY or a UNIQUE index",
            ));
        }
        let create_if_missing =
            one_of(("create_if_missing", raw.create_if_missing), ("create_table", raw.create_table), bool::to_string)?
                .unwrap_or(true);
        let batch_size = raw.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        if batch_size == 0 || batch_size > MAX_BATCH_SIZE {
            return Err(invalid(format!("invalid `batch_size` {batch_size}"))
                .with_hint(format!("use a number of rows per INSERT statement between 1 and {MAX_BATCH_SIZE}")));
        }
        let load_method = match raw.load_method.as_deref() {
            None | Some("auto") => LoadMethod::Auto,
            Some("insert") => LoadMethod::Insert,
            Some("load_data") => LoadMethod::LoadData,
            Some(other) => {
                return Err(invalid(format!("invalid `load_method` '{other}'"))
                    .with_hint("use `auto` (the default), `insert` or `load_data`"));
            }
        };
        if load_method == LoadMethod::LoadData && mode == WriteMode::Upsert {
            return Err(invalid("`load_method: load_data` cannot upsert (LOAD DATA has no ON DUPLICATE KEY UPDATE)")
                .with_hint("use `load_method: auto` or `insert` with `mode: upsert`"));
        }
        Ok(WriterOptions {
            table,
            schema: raw.schema.filter(|s| !s.trim().is_empty()),
            mode,
            keys,
            create_if_missing,
            truncate_before: raw.truncate_before.unwrap_or(false),
            batch_size: batch_size as usize,
            load_method,
            echo: raw.echo.unwrap_or(false),
            overrides: Overrides { host: raw.host, port: raw.port, database: raw.database, user: raw.user },
        })
    }

    /// `` `schema`.`table` `` or `` `table` ``, for `name` in the target's schema.
    fn qualified(&self, name: &str) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(name)),
            None => quote_ident(name),
        }
    }
}

/// The `mysql.writer` component.
pub struct MysqlWriter {
    spec: ComponentSpec,
}

impl Default for MysqlWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl MysqlWriter {
    pub fn new() -> Self {
        let modes = ["append", "replace", "upsert"];
        let spec = ComponentSpec {
            name: WRITER_NAME.into(),
            version: "0.1.0".into(),
            title: "Write rows into a MySQL or MariaDB table (append, replace or upsert), atomically".into(),
            description: "Writes its single input into `table`: `append` inserts every row in one transaction, \
                          `replace` loads a staging table and swaps it in with one RENAME, `upsert` runs \
                          INSERT … ON DUPLICATE KEY UPDATE on `primary_key` in one transaction. A failure leaves \
                          the table as it was. A missing table is created from the input's Arrow types \
                          (`create_if_missing`). Values are written exactly (see docs/mysql.md)."
                .into(),
            modes: vec![Mode::Write],
            config: connection_config_fields()
                .into_iter()
                .chain([
                    ConfigField::required("table", FieldType::String, "Table to write."),
                    ConfigField::optional("schema", FieldType::String, "Database that qualifies `table`."),
                    ConfigField::optional(
                        "mode",
                        FieldType::String,
                        "How rows are written: `append` (default), `replace` (atomic swap) or `upsert` (needs \
                     `primary_key`). Alias: `write_mode`.",
                    )
                    .allowed(modes),
                    ConfigField::optional("write_mode", FieldType::String, "Osiris's name for `mode`.").allowed(modes),
                    ConfigField::optional(
                        "primary_key",
                        FieldType::Any,
                        "Key column or list of columns: what `upsert` matches on (the table needs a PRIMARY or UNIQUE \
                     key on exactly these), and the PRIMARY KEY of a table the writer creates. Alias: \
                     `upsert_keys`.",
                    )
                    .not_secret(),
                    ConfigField::optional("upsert_keys", FieldType::Any, "Osiris's name for `primary_key`.")
                        .not_secret(),
                    ConfigField::optional(
                        "create_if_missing",
                        FieldType::Boolean,
                        "Create the table from the input's types when it does not exist (default true). Alias: \
                     `create_table`.",
                    ),
                    ConfigField::optional("create_table", FieldType::Boolean, "Osiris's name for `create_if_missing`."),
                    ConfigField::with_default(
                        "truncate_before",
                        FieldType::Boolean,
                        json!(false),
                        "Delete every row of the table first, in the same transaction as the insert (DELETE, not \
                     TRUNCATE, so that a failure restores them).",
                    ),
                    ConfigField::with_default(
                        "batch_size",
                        FieldType::Integer,
                        json!(DEFAULT_BATCH_SIZE),
                        "Rows per INSERT statement or LOAD DATA chunk (1 … 100000; a statement is also cut below the \
                     server's max_allowed_packet).",
                    ),
                    ConfigField::with_default(
                        "load_method",
                        FieldType::String,
                        json!("auto"),
                        "How rows are sent: `auto` streams one LOAD DATA LOCAL INFILE when the server allows it \
                     (local_infile=ON) and the mode is not upsert, else multi-row INSERTs; `insert` or \
                     `load_data` force one. Both are exact and strict (any warning of LOAD DATA fails the step).",
                    )
                    .allowed(["auto", "insert", "load_data"]),
                    ConfigField::with_default(
                        "pool_size",
                        FieldType::Integer,
                        json!(5),
                        "Accepted for Osiris compatibility; the writer uses one connection.",
                    ),
                    ConfigField::with_default(
                        "pool_recycle",
                        FieldType::Integer,
                        json!(3600),
                        "Accepted for Osiris compatibility.",
                    ),
                    ConfigField::with_default(
                        "echo",
                        FieldType::Boolean,
                        json!(false),
                        "Log the SQL sent to the server (DDL in full, INSERTs by their first line).",
                    ),
                ])
                .collect(),
            connection: Some(connection_spec()),
            example: Some(json!({"connection": "@mysql.default", "table": "orders", "mode": "replace"})),
        };
        MysqlWriter { spec }
    }
}

impl Component for MysqlWriter {
    fn spec(&self) -> &ComponentSpec {
        &self.spec
    }

    fn create(&self, config: &Map<String, Value>) -> Result<Box<dyn Driver>, DriverError> {
        Ok(Box::new(MysqlWriterDriver { opts: WriterOptions::parse(config)? }))
    }

    fn validate_connection(
        &self,
        step_id: &str,
        connection: &str,
        fields: &Map<String, Value>,
    ) -> Result<(), DriverError> {
        crate::session::validate_connection(step_id, connection, fields)
    }
}

/// Writes one input.
#[derive(Debug)]
pub struct MysqlWriterDriver {
    pub opts: WriterOptions,
}

#[async_trait]
impl Driver for MysqlWriterDriver {
    async fn run(self: Box<Self>, ctx: StepContext, mut io: StepIo) -> Result<(), DriverError> {
        let target = Target::resolve(&ctx.step_id, ctx.connection.as_ref(), &self.opts.overrides)?;
        let mut input = io.single_input().map_err(|e| DriverError {
            message: format!("step '{}' ({}): {}", ctx.step_id, target.w.connection, e.message),
            ..e
        })?;
        let mut job = Job {
            ctx: &ctx,
            t: &target,
            opts: &self.opts,
            conn: None,
            conn_id: 0,
            interrupted: false,
            in_tx: false,
            stage: None,
            tag: side_tables::new_tag(),
            done: false,
            ddl: Vec::new(),
            local_infile: false,
        };
        let result = job.run(&mut input).await;
        job.write_ddl_plan();
        match result {
            Ok(()) => {
                if let Some(conn) = job.conn.take() {
                    let _ = conn.disconnect().await;
                }
                Ok(())
            }
            Err(err) => Err(job.clean_up(err).await),
        }
    }
}

/// The state of one write, for cleaning up after a failure.
struct Job<'a> {
    ctx: &'a StepContext,
    t: &'a Target,
    opts: &'a WriterOptions,
    conn: Option<Conn>,
    /// Server thread id of `conn` (to KILL it when it cannot be used any more).
    conn_id: u32,
    /// A statement was abandoned mid-flight (cancellation) or the connection broke.
    interrupted: bool,
    /// A transaction is open on `conn`.
    in_tx: bool,
    /// The staging table (qualified), to drop unless it was renamed into place.
    stage: Option<String>,
    /// The run tag of this write's side tables (see [`side_tables`]).
    tag: String,
    /// The rows are in place (committed / renamed); later failures must not undo anything.
    done: bool,
    /// DDL statements run, for `ddl_plan.sql`.
    ddl: Vec<String>,
    /// The server accepts `LOAD DATA LOCAL INFILE` (`@@local_infile`).
    local_infile: bool,
}

/// The SQL text around the rows of one INSERT statement.
struct Insert {
    prefix: Vec<u8>,
    suffix: Vec<u8>,
}

/// One INSERT statement for the sender task.
struct Statement {
    sql: Vec<u8>,
    /// 1-based input row number of its first row, and its number of rows.
    first_row: u64,
    rows: usize,
}

/// Why printing statements stopped early.
enum Stop {
    Cancelled,
    /// The sender task ended (a statement failed); its outcome has the error.
    SenderGone,
    Failed(DriverError),
}

/// What the sender task hands back.
enum Sent {
    /// Every statement ran; the connection, for the COMMIT.
    Done(Conn),
    /// A statement failed (`what` it was doing); the connection when it is still usable.
    Failed { conn: Option<Conn>, err: mysql_async::Error, what: String },
    /// `LOAD DATA` ran but the server reported warnings (with `LOCAL`, data errors are warnings).
    Rejected { conn: Conn, warnings: String },
}

/// What the sender task needs besides its connection and its statements.
struct Sender {
    telemetry: osiris_engine::telemetry::StepTelemetry,
    /// (step, connection) when `echo` is on.
    echo: Option<(String, String)>,
    /// The table, for messages.
    table: String,
    read_timeout: Duration,
}

/// Runs the statements it receives, in order, on `conn`; stops at the first failure.
async fn send_statements(mut conn: Conn, mut rx: tokio::sync::mpsc::Receiver<Statement>, sender: Sender) -> Sent {
    let Sender { telemetry, echo, table, read_timeout } = sender;
    while let Some(s) = rx.recv().await {
        if let Some((step, connection)) = &echo {
            tracing::info!(step = %step, connection = %connection, sql = %first_line(&s.sql), rows = s.rows, bytes = s.sql.len(), "mysql.writer");
        }
        match within(read_timeout, conn.query_drop(s.sql.as_slice())).await {
            Ok(()) => {
                telemetry.add_rows_written(s.rows as u64);
                telemetry.add_bytes_written(s.sql.len() as u64);
            }
            Err(err) => {
                let usable = matches!(err, mysql_async::Error::Server(_));
                let what =
                    format!("writing input rows {}–{} into {table}", s.first_row, s.first_row + s.rows as u64 - 1);
                return Sent::Failed { conn: usable.then_some(conn), err, what };
            }
        }
    }
    Sent::Done(conn)
}

/// Runs one `LOAD DATA LOCAL INFILE` statement (`sql`) whose file is the stream of chunks it
/// receives, each cut into pieces of at most `piece` bytes (below the server's packet limit).
/// Afterwards any warning of level Warning or Error rejects the load: with `LOCAL`, the server
/// reports data errors (NULL into NOT NULL, truncation, duplicate keys…) as warnings.
async fn send_load(
    mut conn: Conn,
    rx: tokio::sync::mpsc::Receiver<Statement>,
    sender: Sender,
    sql: String,
    piece: usize,
) -> Sent {
    use futures::StreamExt;
    let Sender { telemetry, echo, table, read_timeout } = sender;
    let activity = Activity::new();
    let seen = activity.clone();
    if let Some((step, connection)) = &echo {
        tracing::info!(step = %step, connection = %connection, sql = %sql, "mysql.writer");
    }
    // The handler must be Sync, so it builds the (non-Sync) stream when the server asks for it.
    conn.set_infile_handler(async move {
        let chunks = futures::stream::unfold(rx, move |mut rx| {
            let telemetry = telemetry.clone();
            let seen = seen.clone();
            async move {
                // Waiting for the input is not a stall of the server.
                seen.waiting_for_input();
                let s = rx.recv().await;
                seen.active();
                let s = s?;
                telemetry.add_rows_written(s.rows as u64);
                telemetry.add_bytes_written(s.sql.len() as u64);
                let pieces: Vec<Vec<u8>> =
                    if s.sql.len() <= piece { vec![s.sql] } else { s.sql.chunks(piece).map(<[u8]>::to_vec).collect() };
                Some((futures::stream::iter(pieces.into_iter().map(|p| Ok(p.into()))), rx))
            }
        });
        Ok(chunks.flatten().boxed())
    });
    let what = format!("loading the input into {table}");
    let loaded = tokio::select! {
        r = conn.query_drop(sql.as_str()) => r,
        () = activity.stall(read_timeout) => Err(stalled()),
    };
    if let Err(err) = loaded {
        let usable = matches!(err, mysql_async::Error::Server(_));
        return Sent::Failed { conn: usable.then_some(conn), err, what };
    }
    if conn.get_warnings() == 0 {
        return Sent::Done(conn);
    }
    let shown: Result<Vec<(String, u32, String)>, _> = within(read_timeout, conn.query("SHOW WARNINGS LIMIT 10")).await;
    match shown {
        Err(err) => {
            let usable = matches!(err, mysql_async::Error::Server(_));
            Sent::Failed { conn: usable.then_some(conn), err, what }
        }
        Ok(rows) => {
            let bad: Vec<String> = rows
                .into_iter()
                .filter(|(level, _, _)| level != "Note")
                .map(|(_, code, message)| format!("{message} (warning {code})"))
                .collect();
            if bad.is_empty() { Sent::Done(conn) } else { Sent::Rejected { conn, warnings: bad.join("; ") } }
        }
    }
}

/// When a `LOAD DATA LOCAL` stream last moved: a chunk went to the server, or it waits for input.
#[derive(Clone)]
struct Activity {
    started: std::time::Instant,
    /// Milliseconds since `started` of the last move; `u64::MAX` while waiting for the input.
    last: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Activity {
    fn new() -> Activity {
        Activity { started: std::time::Instant::now(), last: Default::default() }
    }

    fn active(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last.store(now, std::sync::atomic::Ordering::Relaxed);
    }

    fn waiting_for_input(&self) {
        self.last.store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `limit` (never while the stream waits for its input).
    async fn stall(&self, limit: Duration) {
        let tick = (limit / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let limit_ms = limit.as_millis() as u64;
        loop {
            tokio::time::sleep(tick).await;
            let last = self.last.load(std::sync::atomic::Ordering::Relaxed);
            let now = self.started.elapsed().as_millis() as u64;
            if last != u64::MAX && now.saturating_sub(last) >= limit_ms {
                return;
            }
        }
    }
}

fn first_line(sql: &[u8]) -> String {
    let end = sql.iter().take(300).position(|&b| b == b'\n').unwrap_or(sql.len().min(300));
    String::from_utf8_lossy(&sql[..end]).into_owned()
}

impl Job<'_> {
    fn prefix(&self) -> String {
        format!("step '{}' ({})", self.t.w.step, self.t.w.connection)
    }

    /// `db.table` for messages.
    fn display_table(&self) -> String {
        format!("{}.{}", self.opts.schema.as_deref().unwrap_or(&self.t.w.database), self.opts.table)
    }

    fn cancelled(&self) -> bool {
        self.ctx.cancel.is_cancelled()
    }

    async fn connect(&mut self) -> Result<(), DriverError> {
        let conn = tokio::select! {
            biased;
            () = self.ctx.cancel.cancelled() => return Err(DriverError::cancelled()),
            r = self.t.connect_async(&SESSION_INIT) => r?,
        };
        self.conn_id = conn.id();
        self.conn = Some(conn);
        Ok(())
    }

    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("connected before running statements")
    }

    /// Runs a commit point (`COMMIT`, the `RENAME` that swaps a table in) to its end even when
    /// the step is cancelled meanwhile: abandoning it would leave its outcome unknown. Only a
    /// server silent for `read_timeout` cuts it off, and then the error says that the outcome is
    /// unknown, so that nobody re-runs an append whose rows may have landed.
    async fn exec_to_end(&mut self, sql: &[u8], what: &str) -> Result<(), DriverError> {
        if self.opts.echo {
            tracing::info!(step = %self.t.w.step, connection = %self.t.w.connection, sql = %first_line(sql), "mysql.writer");
        }
        let limit = self.t.read_timeout;
        let conn = self.conn.as_mut().expect("connected before running statements");
        within(limit, conn.query_drop(sql)).await.map_err(|e| {
            if !matches!(e, mysql_async::Error::Server(_)) {
                self.interrupted = true;
            }
            let error = map_write_error(e, &self.t.w, what);
            if error.code != "connection.timeout" {
                return error;
            }
            let table = self.opts.qualified(&self.opts.table);
            DriverError {
                message: format!("{}; the server may or may not have completed it", error.message),
                hint: Some(format!(
                    "check {table} before running the step again (an append whose COMMIT landed would add its rows twice); then raise read_timeout if the server is slow rather than gone"
                )),
                ..error
            }
        })
    }

    /// Runs one statement; `what` names it in errors.
    async fn exec(&mut self, sql: &[u8], what: &str) -> Result<(), DriverError> {
        if self.opts.echo {
            tracing::info!(step = %self.t.w.step, connection = %self.t.w.connection, sql = %first_line(sql), bytes = sql.len(), "mysql.writer");
        }
        let cancel = self.ctx.cancel.clone();
        let limit = self.t.read_timeout;
        let conn = self.conn.as_mut().expect("connected before running statements");
        let outcome = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            r = within(limit, conn.query_drop(sql)) => Some(r),
        };
        match outcome {
            None => {
                self.interrupted = true;
                Err(DriverError::cancelled())
            }
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => {
                if !matches!(e, mysql_async::Error::Server(_)) {
                    self.interrupted = true;
                }
                Err(map_write_error(e, &self.t.w, what))
            }
        }
    }

    /// Runs a DDL statement and records it for `ddl_plan.sql`.
    async fn ddl(&mut self, sql: String, what: &str) -> Result<(), DriverError> {
        self.exec(sql.as_bytes(), what).await?;
        self.ddl.push(sql);
        Ok(())
    }

    /// Runs the `RENAME` that puts the rows in place (uncancellable, see [`Job::exec_to_end`]).
    async fn rename(&mut self, sql: String, what: &str) -> Result<(), DriverError> {
        // The last moment to back out: the staging table's COMMIT took a while, and a run
        // cancelled meanwhile (Ctrl-C, its host gone) must not swap its rows in.
        if self.cancelled() {
            return Err(DriverError::cancelled());
        }
        self.exec_to_end(sql.as_bytes(), what).await?;
        self.ddl.push(sql);
        Ok(())
    }

    async fn run(&mut self, input: &mut StepInput) -> Result<(), DriverError> {
        self.connect().await?;
        // The literals rely on NO_BACKSLASH_ESCAPES; make sure the session has it.
        let limit = self.t.read_timeout;
        let (sql_mode, max_packet, local_infile): (String, u64, i64) =
            within(limit, self.conn().query_first("SELECT @@SESSION.sql_mode, @@max_allowed_packet, @@local_infile"))
                .await
                .map_err(|e| map_write_error(e, &self.t.w, "reading the session settings"))?
                .unwrap_or_default();
        self.local_infile = local_infile != 0;
        if !sql_mode.split(',').any(|m| m == "NO_BACKSLASH_ESCAPES") {
            return Err(DriverError::new(
                "write.failed",
                format!(
                    "{}: the server did not accept sql_mode NO_BACKSLASH_ESCAPES (sql_mode is '{sql_mode}')",
                    self.prefix()
                ),
            ));
        }
        let hard_cap = (max_packet as usize).saturating_sub(PACKET_MARGIN).max(4096);

        let schema = tokio::select! {
            biased;
            () = self.ctx.cancel.cancelled() => return Err(DriverError::cancelled()),
            s = input.reader.schema() => s?,
        };
        self.check_input(&schema)?;

        let target = self.opts.qualified(&self.opts.table);
        let existing = self.table_columns(&target).await?;
        match existing {
            None => {
                if !self.opts.create_if_missing {
                    return Err(DriverError::new(
                        "write.table_not_found",
                        format!(
                            "{}: table {} does not exist on {}:{} and `create_if_missing` is false",
                            self.prefix(),
                            self.display_table(),
                            self.t.w.host,
                            self.t.w.port
                        ),
                    )
                    .with_hint("create the table first, fix `table`/`schema`, or set `create_if_missing: true`"));
                }
                self.check_keys_in_input(&schema)?;
                self.prepare_side_tables().await?;
                let stage = self.side_table("stage");
                let ddl = ddl::create_table(&stage, &schema, &self.opts.keys).map_err(|e| {
                    DriverError::new(
                        "write.schema_mismatch",
                        format!("{}: cannot create table {}: {e}", self.prefix(), self.display_table()),
                    )
                    .with_hint("cast the column to a supported type in a SQL step before the writer")
                })?;
                self.stage = Some(stage.clone());
                self.ddl(ddl, "creating the staging table").await?;
                self.load(input, &stage, &schema, hard_cap).await?;
                self.rename(format!("RENAME TABLE {stage} TO {target}"), "renaming the staging table into place")
                    .await?;
                self.done = true;
                self.stage = None;
            }
            Some(columns) => {
                self.check_columns(&schema, &columns)?;
                match self.opts.mode {
                    WriteMode::Replace => {
                        self.prepare_side_tables().await?;
                        let stage = self.side_table("stage");
                        let old = self.side_table("old");
                        self.stage = Some(stage.clone());
                        self.ddl(format!("CREATE TABLE {stage} LIKE {target}"), "creating the staging table").await?;
                        self.load(input, &stage, &schema, hard_cap).await?;
                        self.rename(
                            format!("RENAME TABLE {target} TO {old}, {stage} TO {target}"),
                            "swapping the staging table in",
                        )
                        .await?;
                        self.done = true;
                        self.stage = None;
                        let drop_old = format!("DROP TABLE {old}");
                        if let Err(e) = self.exec_to_end(drop_old.as_bytes(), "dropping the replaced table").await {
                            tracing::warn!(step = %self.t.w.step, table = %old, error = %e.message, "mysql.writer: the new rows are in place, but the replaced table remains");
                        } else {
                            self.ddl.push(drop_old);
                        }
                    }
                    WriteMode::Append | WriteMode::Upsert => {
                        if self.opts.mode == WriteMode::Upsert {
                            self.check_keys_in_input(&schema)?;
                            self.check_unique_key(&target).await?;
                        }
                        self.load(input, &target, &schema, hard_cap).await?;
                        self.done = true;
                    }
                }
            }
        }
        Ok(())
    }

    /// The qualified name of this write's `kind` side table.
    fn side_table(&self, kind: &str) -> String {
        self.opts.qualified(&side_tables::name(&self.opts.table, kind, &self.tag))
    }

    /// Before the first side table: drops the side tables of earlier writes of this table that
    /// are over (a killed process, a lost server), then takes this write's lock so that no other
    /// writer takes its side tables for stale.
    async fn prepare_side_tables(&mut self) -> Result<(), DriverError> {
        let limit = self.t.read_timeout;
        let schema = self.opts.schema.clone().unwrap_or_else(|| self.t.w.database.clone());
        let table = self.opts.table.clone();
        match side_tables::drop_stale(self.conn(), &schema, &table, limit).await {
            Ok(dropped) => {
                for name in dropped {
                    tracing::warn!(step = %self.t.w.step, table = %name, "mysql.writer: dropped a staging table left by an earlier write that did not finish");
                }
            }
            Err(e @ mysql_async::Error::Server(_)) => {
                // Not being able to look (privileges) must not stop the write.
                tracing::warn!(step = %self.t.w.step, error = %e, "mysql.writer: cannot look for staging tables left by earlier writes");
            }
            Err(e) => {
                self.interrupted = true;
                return Err(map_write_error(e, &self.t.w, "looking for staging tables left by earlier writes"));
            }
        }
        let tag = self.tag.clone();
        match side_tables::claim(self.conn(), &tag, limit).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(DriverError::new(
                "write.failed",
                format!("{}: the server lock {} is taken", self.prefix(), side_tables::lock_name(&tag)),
            )
            .with_hint("run the step again")),
            Err(e) => {
                if !matches!(e, mysql_async::Error::Server(_)) {
                    self.interrupted = true;
                }
                Err(map_write_error(e, &self.t.w, "taking the staging lock"))
            }
        }
    }

    /// Column names unique (case-insensitively, like MySQL), types writable.
    fn check_input(&self, schema: &SchemaRef) -> Result<(), DriverError> {
        let mismatch = |msg: String| DriverError::new("write.schema_mismatch", format!("{}: {msg}", self.prefix()));
        if schema.fields().is_empty() {
            return Err(mismatch("the input has no columns".into())
                .with_hint("check the upstream step: the writer needs at least one column"));
        }
        let mut seen = std::collections::BTreeMap::new();
        for f in schema.fields() {
            if f.name().is_empty() {
                return Err(mismatch("the input has a column with an empty name".into())
                    .with_hint("name every column (e.g. with AS in a SQL step)"));
            }
            if let Some(prev) = seen.insert(f.name().to_lowercase(), f.name().clone()) {
                return Err(mismatch(format!(
                    "the input has the columns '{prev}' and '{}', which MySQL cannot tell apart (column names ignore case)",
                    f.name()
                ))
                .with_hint("rename one of them in a SQL step before the writer"));
            }
            if let Err(e) = check_type(f.data_type()) {
                return Err(DriverError::new(
                    "write.unsupported_type",
                    format!("{}: column '{}': {e}", self.prefix(), f.name()),
                )
                .with_hint("cast the column to a string or number in a SQL step before the writer"));
            }
        }
        Ok(())
    }

    fn check_keys_in_input(&self, schema: &SchemaRef) -> Result<(), DriverError> {
        let missing: Vec<&String> = self
            .opts
            .keys
            .iter()
            .filter(|k| !schema.fields().iter().any(|f| f.name().to_lowercase() == k.to_lowercase()))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        Err(DriverError::new(
            "write.schema_mismatch",
            format!(
                "{}: `primary_key` names {} that the input does not have; the input's columns are: {}",
                self.prefix(),
                missing.iter().map(|m| format!("'{m}'")).collect::<Vec<_>>().join(", "),
                names.join(", ")
            ),
        )
        .with_hint("fix `primary_key` (or `upsert_keys`) to name input columns"))
    }

    /// The table's column names, or `None` when it does not exist.
    async fn table_columns(&mut self, target: &str) -> Result<Option<Vec<String>>, DriverError> {
        let sql = format!("SELECT * FROM {target} LIMIT 0");
        let w = self.t.w.clone();
        let table_name = self.display_table();
        let limit = self.t.read_timeout;
        let conn = self.conn();
        match within(limit, conn.query_iter(sql)).await {
            Ok(result) => {
                let names = result.columns_ref().iter().map(|c| c.name_str().into_owned()).collect();
                within(limit, result.drop_result())
                    .await
                    .map_err(|e| map_write_error(e, &w, "reading the table's columns"))?;
                Ok(Some(names))
            }
            Err(mysql_async::Error::Server(e)) if e.code == 1146 => Ok(None),
            Err(e) => Err(map_write_error(e, &w, &format!("looking up table {table_name}"))),
        }
    }

    fn check_columns(&self, schema: &SchemaRef, columns: &[String]) -> Result<(), DriverError> {
        let lower: Vec<String> = columns.iter().map(|c| c.to_lowercase()).collect();
        let missing: Vec<String> = schema
            .fields()
            .iter()
            .filter(|f| !lower.contains(&f.name().to_lowercase()))
            .map(|f| format!("'{}'", f.name()))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(DriverError::new(
            "write.schema_mismatch",
            format!(
                "{}: table {} has no column {} of the input; the table's columns are: {}",
                self.prefix(),
                self.display_table(),
                missing.join(", "),
                columns.join(", ")
            ),
        )
        .with_hint(
            "add the columns to the table (ALTER TABLE), rename or drop them in a SQL step before the writer, or \
             drop the table so that `create_if_missing` creates it from the input",
        ))
    }

    /// Upsert needs a PRIMARY or UNIQUE key on exactly the `primary_key` columns.
    async fn check_unique_key(&mut self, target: &str) -> Result<(), DriverError> {
        let w = self.t.w.clone();
        let limit = self.t.read_timeout;
        let rows: Vec<mysql_async::Row> = within(limit, self.conn().query(format!("SHOW INDEX FROM {target}")))
            .await
            .map_err(|e| map_write_error(e, &w, "reading the table's keys"))?;
        let mut unique: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for row in rows {
            let non_unique: i64 = row.get::<Option<i64>, _>("Non_unique").flatten().unwrap_or(1);
            let key: Option<String> = row.get::<Option<String>, _>("Key_name").flatten();
            let column: Option<String> = row.get::<Option<String>, _>("Column_name").flatten();
            if let (0, Some(key)) = (non_unique, key) {
                unique.entry(key).or_default().push(column.unwrap_or_default());
            }
        }
        let mut wanted: Vec<String> = self.opts.keys.iter().map(|k| k.to_lowercase()).collect();
        wanted.sort();
        let matches = unique.values().any(|cols| {
            let mut c: Vec<String> = cols.iter().map(|c| c.to_lowercase()).collect();
            c.sort();
            c == wanted
        });
        if matches {
            return Ok(());
        }
        let found = if unique.is_empty() {
            "it has no PRIMARY or UNIQUE key".to_string()
        } else {
            let keys: Vec<String> = unique.iter().map(|(k, c)| format!("{k} ({})", c.join(", "))).collect();
            format!("its unique keys are {}", keys.join(", "))
        };
        Err(DriverError::new(
            "write.schema_mismatch",
            format!(
                "{}: upsert into {} needs a PRIMARY or UNIQUE key on exactly ({}), but {found}",
                self.prefix(),
                self.display_table(),
                self.opts.keys.join(", ")
            ),
        )
        .with_hint("set `primary_key` to the columns of one of the table's unique keys, or add such a key (ALTER TABLE … ADD UNIQUE)"))
    }

    /// `LOAD DATA LOCAL INFILE` in the default field format (see [`RowPrinter::tsv_row`]);
    /// binary columns arrive as hex and go through `UNHEX()`. The session has
    /// `NO_BACKSLASH_ESCAPES`, so `'\\'` is one backslash; tab and newline are written as themselves.
    fn load_statement(&self, into: &str, names: &[String], types: &[DataType]) -> String {
        let mut targets = Vec::with_capacity(names.len());
        let mut sets = Vec::new();
        for (i, (n, t)) in names.iter().zip(types).enumerate() {
            if encode::is_binary_type(t) {
                targets.push(format!("@osiris_{i}"));
                sets.push(format!("{} = UNHEX(@osiris_{i})", quote_ident(n)));
            } else {
                targets.push(quote_ident(n));
            }
        }
        let mut sql = format!(
            "LOAD DATA LOCAL INFILE 'osiris-input' INTO TABLE {into} CHARACTER SET utf8mb4 \
             FIELDS TERMINATED BY '\t' ENCLOSED BY '' ESCAPED BY '\\' LINES TERMINATED BY '\n' STARTING BY '' ({})",
            targets.join(", ")
        );
        if !sets.is_empty() {
            sql.push_str(" SET ");
            sql.push_str(&sets.join(", "));
        }
        sql
    }

    fn insert_statement(&self, into: &str, names: &[String]) -> Insert {
        let cols: Vec<String> = names.iter().map(|n| quote_ident(n)).collect();
        let prefix = format!("INSERT INTO {into} ({}) VALUES\n", cols.join(", ")).into_bytes();
        let suffix = if self.opts.mode == WriteMode::Upsert {
            let keys: Vec<String> = self.opts.keys.iter().map(|k| k.to_lowercase()).collect();
            let mut update: Vec<String> = names
                .iter()
                .filter(|n| !keys.contains(&n.to_lowercase()))
                .map(|n| format!("{0} = VALUES({0})", quote_ident(n)))
                .collect();
            if update.is_empty() {
                // Only key columns: a duplicate changes nothing.
                let k = quote_ident(&names[0]);
                update.push(format!("{k} = {k}"));
            }
            format!("\nON DUPLICATE KEY UPDATE {}", update.join(", ")).into_bytes()
        } else {
            Vec::new()
        };
        Insert { prefix, suffix }
    }

    /// Streams every input batch into `into` within one transaction and commits it. A sender
    /// task runs the INSERT statements on the connection while this task reads the input and
    /// prints the next statement, so client and server work overlap.
    async fn load(
        &mut self,
        input: &mut StepInput,
        into: &str,
        schema: &SchemaRef,
        hard_cap: usize,
    ) -> Result<(), DriverError> {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let names = names.as_slice();
        let input_types: Vec<DataType> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
        let input_types = input_types.as_slice();
        self.exec(b"START TRANSACTION", "starting a transaction").await?;
        self.in_tx = true;
        if self.opts.truncate_before && self.opts.mode != WriteMode::Replace && self.stage.is_none() {
            self.exec(format!("DELETE FROM {into}").as_bytes(), "deleting the table's rows (truncate_before)").await?;
        }
        let use_load = match self.opts.load_method {
            LoadMethod::Insert => false,
            LoadMethod::Auto => self.local_infile && self.opts.mode != WriteMode::Upsert,
            LoadMethod::LoadData => {
                if !self.local_infile {
                    return Err(DriverError::new(
                        "write.failed",
                        format!(
                            "{}: the server does not allow LOAD DATA LOCAL INFILE (local_infile is OFF)",
                            self.prefix()
                        ),
                    )
                    .with_hint("use `load_method: auto` or `insert`, or SET GLOBAL local_infile = 1 on the server"));
                }
                true
            }
        };
        let conn = self.conn.take().expect("connected before loading");
        let (tx, rx) = tokio::sync::mpsc::channel::<Statement>(1);
        let context = Sender {
            telemetry: self.ctx.telemetry.clone(),
            echo: self.opts.echo.then(|| (self.t.w.step.clone(), self.t.w.connection.clone())),
            table: self.display_table(),
            read_timeout: self.t.read_timeout,
        };
        let mut sender = if use_load {
            let sql = self.load_statement(into, names, input_types);
            let piece = hard_cap.min(4 << 20);
            tokio::spawn(send_load(conn, rx, context, sql, piece))
        } else {
            tokio::spawn(send_statements(conn, rx, context))
        };
        let stop = self.print_statements(input, into, names, hard_cap, use_load, &tx).await;
        drop(tx);
        let sent = if matches!(stop, Err(Stop::Cancelled)) {
            sender.abort();
            (&mut sender).await
        } else {
            tokio::select! {
                biased;
                () = self.ctx.cancel.cancelled() => {
                    sender.abort();
                    (&mut sender).await
                }
                r = &mut sender => r,
            }
        };
        let table_name = self.display_table();
        match sent {
            Ok(Sent::Done(conn)) => self.conn = Some(conn),
            Ok(Sent::Failed { conn, err, what }) => {
                self.interrupted = conn.is_none();
                self.conn = conn;
                let refused = matches!(&err, mysql_async::Error::Server(e) if e.code == 1148 || e.code == 3948);
                let err = map_write_error(err, &self.t.w, &what);
                return Err(if refused {
                    err.with_hint("the server refuses LOAD DATA LOCAL INFILE; set `load_method: insert`")
                } else {
                    err
                });
            }
            Ok(Sent::Rejected { conn, warnings }) => {
                self.conn = Some(conn);
                return Err(DriverError::new(
                    "write.failed",
                    format!("{}: loading the input into {table_name} failed: {warnings}", self.prefix()),
                )
                .with_hint("rows are numbered from 1 in input order; fix the data or the table definition"));
            }
            Err(join) => {
                // Aborted (cancellation) or panicked: the connection went with the task.
                self.interrupted = true;
                if join.is_panic() {
                    return Err(DriverError::new(
                        "write.failed",
                        format!("{}: the statement sender panicked", self.prefix()),
                    ));
                }
                return Err(DriverError::cancelled());
            }
        }
        match stop {
            Ok(()) if self.cancelled() => return Err(DriverError::cancelled()),
            Ok(()) => {}
            Err(Stop::Cancelled) => return Err(DriverError::cancelled()),
            Err(Stop::Failed(e)) => return Err(e),
            Err(Stop::SenderGone) => {
                return Err(DriverError::new(
                    "write.failed",
                    format!("{}: the statement sender stopped", self.prefix()),
                ));
            }
        }
        self.exec_to_end(b"COMMIT", "committing").await?;
        self.in_tx = false;
        Ok(())
    }

    /// Hands a statement (completed with `suffix`) to the sender task.
    async fn send(
        &self,
        tx: &tokio::sync::mpsc::Sender<Statement>,
        mut stmt: Statement,
        suffix: &[u8],
    ) -> Result<(), Stop> {
        stmt.sql.extend_from_slice(suffix);
        tokio::select! {
            biased;
            () = self.ctx.cancel.cancelled() => Err(Stop::Cancelled),
            r = tx.send(stmt) => r.map_err(|_| Stop::SenderGone),
        }
    }

    /// Reads every input batch and hands INSERT statements of up to `batch_size` rows (and below
    /// the packet limit) to the sender.
    async fn print_statements(
        &self,
        input: &mut StepInput,
        into: &str,
        names: &[String],
        hard_cap: usize,
        tsv: bool,
        tx: &tokio::sync::mpsc::Sender<Statement>,
    ) -> Result<(), Stop> {
        // LOAD DATA chunks are plain lines (the sender cuts them into packets); INSERTs have
        // their statement text around the rows and must each fit in one packet.
        let Insert { prefix, suffix } =
            if tsv { Insert { prefix: Vec::new(), suffix: Vec::new() } } else { self.insert_statement(into, names) };
        let soft_cap = if tsv { hard_cap.min(4 << 20) } else { hard_cap.min(SOFT_STATEMENT_BYTES) };
        let new_statement = |first_row: u64| {
            let mut sql = Vec::with_capacity(soft_cap.min(1 << 20));
            sql.extend_from_slice(&prefix);
            Statement { sql, first_row, rows: 0 }
        };
        let mut stmt = new_statement(1);
        let mut row_buf = Vec::with_capacity(1024);
        // 1-based number of the input row being printed, for messages.
        let mut row_no = 0u64;
        loop {
            let batch = tokio::select! {
                biased;
                () = self.ctx.cancel.cancelled() => return Err(Stop::Cancelled),
                b = input.reader.next_batch() => b.map_err(|e| Stop::Failed(e.into()))?,
            };
            let Some(batch) = batch else { break };
            if batch.num_columns() != names.len() {
                return Err(Stop::Failed(DriverError::new(
                    "write.schema_mismatch",
                    format!(
                        "{}: a batch has {} columns, the input's schema {}",
                        self.prefix(),
                        batch.num_columns(),
                        names.len()
                    ),
                )));
            }
            let printer = RowPrinter::new(batch.columns()).map_err(|e| {
                Stop::Failed(DriverError::new(
                    "write.unsupported_type",
                    format!("{}: column '{}': {}", self.prefix(), names[e.column], e.message),
                ))
            })?;
            for r in 0..batch.num_rows() {
                row_no += 1;
                row_buf.clear();
                let printed = if tsv { printer.tsv_row(r, &mut row_buf) } else { printer.row(r, &mut row_buf) };
                printed.map_err(|e| {
                    Stop::Failed(
                        DriverError::new(
                            "write.failed",
                            format!(
                                "{}: input row {row_no}, column '{}': {}",
                                self.prefix(),
                                names[e.column],
                                e.message
                            ),
                        )
                        .with_hint("fix or filter the value in a SQL step before the writer"),
                    )
                })?;
                if !tsv && prefix.len() + row_buf.len() + suffix.len() > hard_cap {
                    return Err(Stop::Failed(
                        DriverError::new(
                            "write.failed",
                            format!(
                                "{}: input row {row_no} needs a {} byte statement, more than the server's \
                                 max_allowed_packet ({} bytes) allows",
                                self.prefix(),
                                prefix.len() + row_buf.len() + suffix.len(),
                                hard_cap + PACKET_MARGIN
                            ),
                        )
                        .with_hint("raise max_allowed_packet on the server (SET GLOBAL max_allowed_packet = …)"),
                    ));
                }
                if stmt.rows > 0 && stmt.sql.len() + 2 + row_buf.len() + suffix.len() > soft_cap {
                    let full = std::mem::replace(&mut stmt, new_statement(row_no));
                    self.send(tx, full, &suffix).await?;
                }
                if stmt.rows > 0 && !tsv {
                    stmt.sql.extend_from_slice(b",\n");
                }
                stmt.sql.extend_from_slice(&row_buf);
                stmt.rows += 1;
                if stmt.rows == self.opts.batch_size {
                    let full = std::mem::replace(&mut stmt, new_statement(row_no + 1));
                    self.send(tx, full, &suffix).await?;
                }
            }
            if self.cancelled() {
                return Err(Stop::Cancelled);
            }
        }
        if stmt.rows > 0 {
            self.send(tx, stmt, &suffix).await?;
        }
        Ok(())
    }

    /// `artifacts/<step>/ddl_plan.sql`: the DDL this step ran, in order.
    fn write_ddl_plan(&self) {
        if self.ddl.is_empty() {
            return;
        }
        let mut text = format!(
            "-- mysql.writer step '{}' ({}): DDL run on database '{}', in order\n",
            self.t.w.step,
            self.t.w.connection,
            self.opts.schema.as_deref().unwrap_or(&self.t.w.database)
        );
        for s in &self.ddl {
            text.push_str(s);
            text.push_str(";\n");
        }
        let path = self.ctx.artifacts_dir.join("ddl_plan.sql");
        match std::fs::create_dir_all(&self.ctx.artifacts_dir).and_then(|()| std::fs::write(&path, text)) {
            Ok(()) => self.ctx.telemetry.event(Event::ArtifactCreated {
                step_id: self.t.w.step.clone(),
                artifact_type: "ddl_plan".into(),
                path: osiris_engine::runlog::artifact_log_path(&self.ctx.artifacts_dir, "ddl_plan.sql"),
            }),
            Err(e) => tracing::warn!(step = %self.t.w.step, error = %e, "mysql.writer: cannot write ddl_plan.sql"),
        }
    }

    /// After a failure: roll back and drop the staging table, on the same connection when it is
    /// still usable, else from a new one after killing the old one (the server then rolls back its
    /// transaction). Returns `err`, with a note when the cleanup itself failed.
    async fn clean_up(&mut self, mut err: DriverError) -> DriverError {
        if self.done {
            // Cannot happen today (nothing fails after the commit point); keep the rows.
            return err;
        }
        let stage = self.stage.clone();
        if !self.interrupted
            && let Some(conn) = self.conn.as_mut()
        {
            let in_tx = self.in_tx;
            let stage = stage.clone();
            let same = tokio::time::timeout(CLEANUP_TIMEOUT, async {
                if in_tx {
                    conn.query_drop("ROLLBACK").await?;
                }
                if let Some(stage) = &stage {
                    conn.query_drop(format!("DROP TABLE IF EXISTS {stage}")).await?;
                }
                Ok::<_, mysql_async::Error>(())
            })
            .await;
            if let Ok(Ok(())) = same {
                if let Some(conn) = self.conn.take() {
                    let _ = conn.disconnect().await;
                }
                return err;
            }
        }
        drop(self.conn.take());
        if self.conn_id == 0 && stage.is_none() {
            return err;
        }
        let id = self.conn_id;
        let target = self.t;
        let fresh = tokio::time::timeout(CLEANUP_TIMEOUT, async {
            let mut c = target.connect_async(&SESSION_INIT).await.map_err(|e| e.message)?;
            if id != 0 {
                // Fails harmlessly when the server already ended that connection.
                let _ = c.query_drop(format!("KILL CONNECTION {id}")).await;
            }
            if let Some(stage) = &stage {
                c.query_drop(format!("DROP TABLE IF EXISTS {stage}")).await.map_err(|e| e.to_string())?;
            }
            let _ = c.disconnect().await;
            Ok::<_, String>(())
        })
        .await;
        let problem = match fresh {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(format!("no answer within {} s", CLEANUP_TIMEOUT.as_secs())),
        };
        if let (Some(problem), Some(stage)) = (problem, &stage) {
            tracing::warn!(step = %self.t.w.step, table = %stage, error = %problem, "mysql.writer: cannot drop the staging table");
            let note = format!("the staging table {stage} could not be dropped ({problem}); drop it by hand");
            err.hint = Some(match err.hint.take() {
                Some(h) => format!("{h}; {note}"),
                None => note,
            });
        }
        err
    }
}
