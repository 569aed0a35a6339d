//! The `mysql.extractor` driver: runs one query over the binary protocol and streams the rows
//! into Arrow RecordBatches of `batch_size` rows (never holding the result set in memory).

use std::time::Duration;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use osiris_engine::connections::BoundConnection;
use osiris_engine::driver::{Driver, DriverError, StepContext, StepIo, parse_config};
use osiris_engine::registry::Component;
use osiris_engine::spec::{ComponentSpec, ConfigField, FieldType, Mode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::decode::{DecodeError, RowDecoder};
use crate::errors::{connect_timeout, is_transient_wire, map_wire_error};
use crate::session::{Overrides, Target};
use crate::session::{connection_config_fields, connection_spec};
use crate::types::{Kind, ZeroDates, schema_of};
use crate::wire::{self, Buffered, Connection};
use arrow_schema::SchemaRef;
use mysql_common::packets::Column;
use osiris_engine::runtime::cache::OutputSink;

pub const EXTRACTOR_NAME: &str = "mysql.extractor";

/// Backoff before each retry of a transient connection failure (before any row was sent).
const RETRY_BACKOFF: [Duration; 3] = [Duration::from_millis(200), Duration::from_millis(800), Duration::from_secs(2)];
/// Most connections one partitioned read opens.
const MAX_PARTITIONS: u64 = 64;

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
    partition_on: Option<String>,
    #[serde(default)]
    partitions: Option<u64>,
    #[serde(default)]
    consistent_snapshot: Option<bool>,
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
    /// Integer column whose value range is split over `partitions` connections.
    pub partition_on: Option<String>,
    pub partitions: usize,
    /// Read inside `START TRANSACTION WITH CONSISTENT SNAPSHOT`.
    pub consistent_snapshot: bool,
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
        let partitions = raw.partitions.unwrap_or(1);
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(invalid(format!("invalid partitions {partitions}"))
                .with_hint(format!("use a number of connections between 1 and {MAX_PARTITIONS}")));
        }
        let partition_on = raw.partition_on.filter(|c| !c.trim().is_empty());
        match (&partition_on, partitions) {
            (None, 2..) => {
                return Err(invalid(format!("partitions is {partitions} but partition_on is not set"))
                    .with_hint("set `partition_on` to an integer column, such as the primary key"));
            }
            (Some(c), 1) => {
                return Err(invalid(format!("partition_on is '{c}' but partitions is 1"))
                    .with_hint("set `partitions` to the number of connections to read with (2 or more)"));
            }
            _ => {}
        }
        if partitions > 1 && (skip > 0 || keep.is_some()) {
            return Err(invalid("limit/offset with `query` cannot be combined with partitions")
                .with_hint("put LIMIT/OFFSET into the query, or use `table` with limit/offset"));
        }
        Ok(Options {
            sql,
            partition_on,
            partitions: partitions as usize,
            consistent_snapshot: raw.consistent_snapshot.unwrap_or(false),
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
            config: connection_config_fields()
                .into_iter()
                .chain([
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
                    ConfigField::with_default(
                        "echo",
                        FieldType::Boolean,
                        json!(false),
                        "Log the SQL sent to the server.",
                    ),
                    ConfigField::with_default(
                        "zero_dates",
                        FieldType::String,
                        json!("null"),
                        "What to do with zero dates (`0000-00-00`): read them as NULL, or fail the step.",
                    )
                    .allowed(["null", "error"]),
                    ConfigField::optional(
                        "partition_on",
                        FieldType::String,
                        "Integer column whose value range is split into `partitions` ranges, each read over its own \
                     connection at the same time. Batches arrive in no particular order across partitions.",
                    ),
                    ConfigField::with_default(
                        "partitions",
                        FieldType::Integer,
                        json!(1),
                        "Number of connections for a partitioned read (2–64, with `partition_on`).",
                    ),
                    ConfigField::with_default(
                        "consistent_snapshot",
                        FieldType::Boolean,
                        json!(false),
                        "Read inside START TRANSACTION WITH CONSISTENT SNAPSHOT (REPEATABLE READ): the rows are one \
                     point-in-time view of InnoDB tables. With partitions, each connection has its own snapshot.",
                    ),
                ])
                .collect(),
            connection: Some(connection_spec()),
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
        Some(Box::pin(async move { check(connection).await.map(|_| ()) }))
    }

    fn validate_connection(
        &self,
        step_id: &str,
        connection: &str,
        fields: &Map<String, Value>,
    ) -> Result<(), DriverError> {
        crate::session::validate_connection(step_id, connection, fields)
    }

    fn check_connection_details<'a>(
        &'a self,
        connection: &'a BoundConnection,
    ) -> Option<futures::future::BoxFuture<'a, Result<Map<String, Value>, DriverError>>> {
        Some(Box::pin(check(connection)))
    }
}

/// Streams one query.
#[derive(Debug)]
pub struct MysqlExtractorDriver {
    pub opts: Options,
}

impl MysqlExtractorDriver {
    fn target(&self, ctx: &StepContext) -> Result<Target, DriverError> {
        target_of(&self.opts, &ctx.step_id, ctx.connection.as_ref())
    }
}

/// Where to connect: the step's overrides (`host`, `port`) over its connection's fields.
fn target_of(opts: &Options, step_id: &str, conn: Option<&BoundConnection>) -> Result<Target, DriverError> {
    let overrides = Overrides {
        host: opts.host.clone(),
        port: opts.port,
        database: opts.database.clone(),
        user: opts.user.clone(),
    };
    Target::resolve(step_id, conn, &overrides)
}

/// `osiris connections doctor`: handshake, TLS as `ssl_mode` says, and the session's TLS status as
/// the server reports it, through the client the extractor uses. Details: `ssl_mode`, `tls`
/// (`{version, cipher}`, or null for plaintext) and a `summary` line.
async fn check(conn: &BoundConnection) -> Result<Map<String, Value>, DriverError> {
    let mut probe = Map::new();
    probe.insert("query".into(), json!("SELECT 1"));
    let opts = Options::parse(&probe)?;
    let target = target_of(&opts, "connections doctor", Some(conn))?;
    let mut connection =
        Connection::connect(&target.connect_options()).await.map_err(|e| map_wire_error(e, &target.w, true))?;
    let status = connection
        .query_rows("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
        .await
        .map_err(|e| map_wire_error(e, &target.w, false))?;
    connection.quit().await;
    let value = |name: &str| {
        status
            .iter()
            .find(|row| row.first().and_then(|n| n.as_deref()).is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .and_then(|row| row.get(1).cloned().flatten())
            .filter(|v| !v.is_empty())
    };
    let mode = target.tls.mode.as_str();
    let (tls, summary) = match (value("Ssl_version"), value("Ssl_cipher")) {
        (Some(version), Some(cipher)) => {
            let summary = format!("ok, TLS {version} ({cipher}), ssl_mode {mode}");
            (json!({"version": version, "cipher": cipher}), summary)
        }
        _ => (Value::Null, format!("ok, NOT encrypted (plaintext), ssl_mode {mode}")),
    };
    let mut details = Map::new();
    details.insert("ssl_mode".into(), json!(mode));
    details.insert("tls".into(), tls);
    details.insert("summary".into(), json!(summary));
    Ok(details)
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
    async fn attempt(&self, ctx: &StepContext, t: &Target, output: &mut OutputSink) -> Result<(), Failure> {
        if self.opts.partitions > 1 {
            return self.attempt_partitioned(ctx, t, output).await;
        }
        let conn = self.open(ctx, t).await?;
        let (skip, keep) = (self.opts.skip, self.opts.keep);
        self.stream(ctx, t, conn, &self.opts.sql, skip, keep, &mut Sink::Output(output)).await
    }

    /// Connects (with the connect timeout) and prepares the session: UTC, and the consistent
    /// snapshot when asked for.
    async fn open(&self, ctx: &StepContext, t: &Target) -> Result<Connection, Failure> {
        let early = |e: wire::WireError, connecting: bool| {
            let transient = is_transient_wire(&e);
            Failure::Early { err: map_wire_error(e, &t.w, connecting), transient }
        };
        let connect_options = t.connect_options();
        let connect = tokio::time::timeout(t.connect_timeout, Connection::connect(&connect_options));
        let mut conn = tokio::select! {
            () = ctx.cancel.cancelled() => return Err(Failure::Final(DriverError::cancelled())),
            r = connect => match r {
                Err(_) => return Err(Failure::Early { err: connect_timeout(&t.w, t.connect_timeout), transient: true }),
                Ok(r) => r.map_err(|e| early(e, true))?,
            },
        };
        let setup = async {
            conn.query_drop("SET time_zone = '+00:00'").await?;
            if self.opts.consistent_snapshot {
                conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await?;
                conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await?;
            }
            Ok(())
        };
        tokio::select! {
            () = ctx.cancel.cancelled() => return Err(Failure::Final(DriverError::cancelled())),
            r = setup => r.map_err(|e| early(e, false))?,
        }
        Ok(conn)
    }

    /// Runs `sql` on `conn` and streams its rows into `sink` as batches of `batch_size` rows,
    /// skipping `skip` rows and stopping after `keep`.
    #[allow(clippy::too_many_arguments)]
    async fn stream(
        &self,
        ctx: &StepContext,
        t: &Target,
        mut conn: Connection,
        sql: &str,
        mut skip: u64,
        mut keep: Option<u64>,
        sink: &mut Sink<'_>,
    ) -> Result<(), Failure> {
        let mut sent_any = false;
        let fail = |sent_any: bool, e: wire::WireError| {
            let transient = is_transient_wire(&e);
            let err = map_wire_error(e, &t.w, false);
            if sent_any { Failure::Final(err) } else { Failure::Early { err, transient } }
        };
        let columns = tokio::select! {
            () = ctx.cancel.cancelled() => return Err(Failure::Final(DriverError::cancelled())),
            r = conn.execute(sql) => r.map_err(|e| fail(false, e))?,
        };
        let kinds = kinds_of(t, &columns)?;
        let schema = schema_of(&columns, &kinds);
        sink.schema(schema.clone()).await.map_err(Failure::Final)?;
        let batch_size = self.opts.batch_size;
        let mut decoder = RowDecoder::new(&columns, &kinds, batch_size, self.opts.zero_dates);
        let decode_failure = |e: DecodeError| Failure::Final(decode_error(t, &columns, e));
        let mut in_batch = 0usize;
        let mut finished = false;
        while keep != Some(0) {
            // Rows already in the read buffer are decoded without awaiting anything; the socket
            // (and cancellation) is only waited on when the buffer runs dry.
            let packet = match conn.buffered_row().map_err(|e| fail(sent_any, e))? {
                Buffered::Row(p) => p,
                Buffered::End => {
                    finished = true;
                    break;
                }
                Buffered::NeedData => {
                    tokio::select! {
                        biased;
                        () = ctx.cancel.cancelled() => return Err(Failure::Final(DriverError::cancelled())),
                        r = conn.read_more() => r.map_err(|e| fail(sent_any, e))?,
                    }
                    continue;
                }
                Buffered::Split => {
                    let row = tokio::select! {
                        () = ctx.cancel.cancelled() => return Err(Failure::Final(DriverError::cancelled())),
                        r = conn.read_split_row() => r.map_err(|e| fail(sent_any, e))?,
                    };
                    match row {
                        Some(p) => p,
                        None => {
                            finished = true;
                            break;
                        }
                    }
                }
            };
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if let Some(k) = keep.as_mut() {
                *k -= 1;
            }
            decoder.append_row(conn.payload(&packet)).map_err(decode_failure)?;
            in_batch += 1;
            if in_batch == batch_size {
                self.flush(ctx, sink, &schema, &mut decoder, in_batch)
                    .await
                    .map_err(|e| e.into_failure(decode_failure))?;
                in_batch = 0;
                sent_any = true;
            }
        }
        if in_batch > 0 {
            self.flush(ctx, sink, &schema, &mut decoder, in_batch).await.map_err(|e| e.into_failure(decode_failure))?;
        }
        if finished {
            conn.quit().await;
        }
        // Otherwise enough rows were read: dropping the connection stops the server-side read
        // without draining the rest of the result.
        Ok(())
    }

    /// `partitions: N` over `partition_on`: the value range is cut into N ranges, each read over
    /// its own connection at the same time; batches go out in arrival order.
    async fn attempt_partitioned(&self, ctx: &StepContext, t: &Target, output: &mut OutputSink) -> Result<(), Failure> {
        let column = self.opts.partition_on.as_deref().expect("partitions > 1 requires partition_on");
        let mut first = self.open(ctx, t).await?;
        let bounds = self.bounds(ctx, t, &mut first, column).await?;
        let Some((low, high)) = bounds else {
            // No row has a value: one plain read.
            return self.stream(ctx, t, first, &self.opts.sql, 0, None, &mut Sink::Output(output)).await;
        };
        let queries = partition_queries(&self.opts.sql, column, low, high, self.opts.partitions);
        if self.opts.echo {
            for q in &queries {
                tracing::info!(step = %ctx.step_id, sql = %q, "mysql.extractor partition query");
            }
        }
        let mut connections = vec![first];
        for _ in 1..queries.len() {
            connections.push(self.open(ctx, t).await?);
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(2 * queries.len());
        let readers = futures::future::try_join_all(connections.into_iter().zip(&queries).map(|(conn, sql)| {
            let mut sink = Sink::Partition(tx.clone());
            async move { self.stream(ctx, t, conn, sql, 0, None, &mut sink).await }
        }));
        drop(tx);
        let forward = async {
            let mut schema: Option<SchemaRef> = None;
            let mut sent_any = false;
            while let Some(message) = rx.recv().await {
                match message {
                    Message::Schema(s) => match &schema {
                        None => {
                            output.set_schema(s.clone());
                            schema = Some(s);
                        }
                        Some(known) if known.fields() != s.fields() => {
                            return Err(DriverError::new(
                                "extract.decode_failed",
                                format!("step '{}': partitions returned different column types", t.w.step),
                            ));
                        }
                        Some(_) => {}
                    },
                    Message::Batch(batch) => {
                        output.send(batch).await?;
                        sent_any = true;
                    }
                }
            }
            Ok(sent_any)
        };
        let (read, forwarded) = tokio::join!(readers, forward);
        let sent_any = match forwarded {
            Ok(sent_any) => sent_any,
            Err(e) => return Err(Failure::Final(e)),
        };
        match read {
            Ok(_) => Ok(()),
            Err(Failure::Early { err, .. }) if sent_any => Err(Failure::Final(err)),
            Err(failure) => Err(failure),
        }
    }

    /// The smallest and largest value of the partition column in the query's result (`None`
    /// when every value is NULL or there are no rows).
    async fn bounds(
        &self,
        ctx: &StepContext,
        t: &Target,
        conn: &mut Connection,
        column: &str,
    ) -> Result<Option<(i128, i128)>, Failure> {
        let col = quote_ident(column);
        let sql = format!("SELECT MIN({col}), MAX({col}) FROM ({}) AS osiris_bounds", self.opts.sql);
        let read = async {
            let columns = conn.execute(&sql).await?;
            let row = conn.next_row().await?.map(|p| conn.payload(&p).to_vec());
            while conn.next_row().await?.is_some() {}
            Ok::<_, wire::WireError>((columns, row))
        };
        let (columns, row) = tokio::select! {
            () = ctx.cancel.cancelled() => return Err(Failure::Final(DriverError::cancelled())),
            r = read => r.map_err(|e| {
                let transient = is_transient_wire(&e);
                Failure::Early { err: map_wire_error(e, &t.w, false), transient }
            })?,
        };
        let kinds = kinds_of(t, &columns)?;
        let not_integer = || {
            Failure::Final(
                invalid(format!("step '{}': partition_on column '{column}' is not an integer column", t.w.step))
                    .with_hint("partition on an integer column such as the primary key"),
            )
        };
        if !kinds.iter().all(|k| k.is_integer()) {
            return Err(not_integer());
        }
        let Some(row) = row else { return Ok(None) };
        let mut decoder = RowDecoder::new(&columns, &kinds, 1, self.opts.zero_dates);
        decoder.append_row(&row).map_err(|e| Failure::Final(decode_error(t, &columns, e)))?;
        let arrays = decoder.finish().map_err(|e| Failure::Final(decode_error(t, &columns, e)))?;
        match (integer_at(&arrays[0]), integer_at(&arrays[1])) {
            (Some(low), Some(high)) => Ok(Some((low, high))),
            _ => Ok(None),
        }
    }

    async fn flush(
        &self,
        ctx: &StepContext,
        sink: &mut Sink<'_>,
        schema: &SchemaRef,
        decoder: &mut RowDecoder,
        rows: usize,
    ) -> Result<(), Flush> {
        let arrays = decoder.finish().map_err(Flush::Decode)?;
        let opts = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(schema.clone(), arrays, &opts).map_err(|e| {
            Flush::Send(DriverError::new("extract.decode_failed", format!("cannot build a batch: {e}")))
        })?;
        ctx.telemetry.add_rows_read(rows as u64);
        sink.batch(batch).await.map_err(Flush::Send)
    }
}

/// The Arrow kinds of a result's columns, or the error naming the first unsupported one.
fn kinds_of(t: &Target, columns: &[Column]) -> Result<Vec<Kind>, Failure> {
    columns
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
        .collect()
}

fn decode_error(t: &Target, columns: &[Column], e: DecodeError) -> DriverError {
    let name = |i: usize| columns.get(i).map(|c| c.name_str().into_owned()).unwrap_or_default();
    match e {
        DecodeError::ZeroDate { column } => DriverError::new(
            "extract.zero_date",
            format!("step '{}' ({}): column '{}' holds a zero date", t.w.step, t.w.connection, name(column)),
        )
        .with_hint("set `zero_dates: null` to read zero dates as NULL, or filter them in the query"),
        DecodeError::Invalid { column, message } => DriverError::new(
            "extract.decode_failed",
            format!("step '{}' ({}): column '{}': {message}", t.w.step, t.w.connection, name(column)),
        ),
    }
}

/// The value of a one-row integer array, `None` when NULL.
fn integer_at(array: &arrow_array::ArrayRef) -> Option<i128> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    if array.is_null(0) {
        return None;
    }
    Some(match array.data_type() {
        arrow_schema::DataType::Int8 => i128::from(array.as_primitive::<Int8Type>().value(0)),
        arrow_schema::DataType::Int16 => i128::from(array.as_primitive::<Int16Type>().value(0)),
        arrow_schema::DataType::Int32 => i128::from(array.as_primitive::<Int32Type>().value(0)),
        arrow_schema::DataType::Int64 => i128::from(array.as_primitive::<Int64Type>().value(0)),
        arrow_schema::DataType::UInt8 => i128::from(array.as_primitive::<UInt8Type>().value(0)),
        arrow_schema::DataType::UInt16 => i128::from(array.as_primitive::<UInt16Type>().value(0)),
        arrow_schema::DataType::UInt32 => i128::from(array.as_primitive::<UInt32Type>().value(0)),
        arrow_schema::DataType::UInt64 => i128::from(array.as_primitive::<UInt64Type>().value(0)),
        _ => return None,
    })
}

/// The query of each partition: contiguous ranges of `column` covering `low..=high`; the first
/// also takes the NULLs and everything below `low`, the last everything above its start, so rows
/// that change between the bounds query and the reads are still read exactly once.
pub fn partition_queries(sql: &str, column: &str, low: i128, high: i128, partitions: usize) -> Vec<String> {
    let col = quote_ident(column);
    let span = (high - low + 1).max(1);
    let n = (partitions as i128).min(span).max(1);
    let width = (span + n - 1) / n;
    let starts: Vec<i128> = (0..n).map(|k| low + k * width).collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, start)| {
            let condition = match (k == 0, starts.get(k + 1)) {
                (true, Some(next)) => format!("{col} < {next} OR {col} IS NULL"),
                (true, None) => "TRUE".to_string(),
                (false, Some(next)) => format!("{col} >= {start} AND {col} < {next}"),
                (false, None) => format!("{col} >= {start}"),
            };
            format!("SELECT * FROM ({sql}) AS osiris_partition WHERE {condition}")
        })
        .collect()
}

/// A batch stream's destination: the step's output, or the channel from a partition to it.
enum Sink<'a> {
    Output(&'a mut OutputSink),
    Partition(tokio::sync::mpsc::Sender<Message>),
}

enum Message {
    Schema(SchemaRef),
    Batch(RecordBatch),
}

impl Sink<'_> {
    async fn schema(&mut self, schema: SchemaRef) -> Result<(), DriverError> {
        match self {
            Sink::Output(output) => output.set_schema(schema),
            Sink::Partition(tx) => tx.send(Message::Schema(schema)).await.map_err(|_| DriverError::cancelled())?,
        }
        Ok(())
    }

    async fn batch(&mut self, batch: RecordBatch) -> Result<(), DriverError> {
        match self {
            Sink::Output(output) => output.send(batch).await.map_err(DriverError::from),
            Sink::Partition(tx) => tx.send(Message::Batch(batch)).await.map_err(|_| DriverError::cancelled()),
        }
    }
}

/// Why a batch could not be handed on.
enum Flush {
    Decode(DecodeError),
    Send(DriverError),
}

impl Flush {
    fn into_failure(self, decode_failure: impl Fn(DecodeError) -> Failure) -> Failure {
        match self {
            Flush::Decode(e) => decode_failure(e),
            Flush::Send(e) => Failure::Final(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::partition_queries;

    #[test]
    fn partitions_cover_the_range_once() {
        let q = partition_queries("SELECT * FROM t", "id", 1, 10, 3);
        assert_eq!(
            q,
            [
                "SELECT * FROM (SELECT * FROM t) AS osiris_partition WHERE `id` < 5 OR `id` IS NULL",
                "SELECT * FROM (SELECT * FROM t) AS osiris_partition WHERE `id` >= 5 AND `id` < 9",
                "SELECT * FROM (SELECT * FROM t) AS osiris_partition WHERE `id` >= 9",
            ]
        );
        // More partitions than values: one per value.
        assert_eq!(partition_queries("SELECT 1", "k", 7, 8, 16).len(), 2);
        // One value: one partition that takes everything.
        assert_eq!(
            partition_queries("SELECT 1", "k", 7, 7, 4),
            ["SELECT * FROM (SELECT 1) AS osiris_partition WHERE TRUE"]
        );
        // The whole signed 64-bit range does not overflow.
        assert_eq!(partition_queries("SELECT 1", "k", i64::MIN.into(), i64::MAX.into(), 4).len(), 4);
    }
}
