//! The hot paths of the MySQL → CSV golden path, each side by side with an anchor on the same data:
//!
//! * `row_decode`: binary-protocol row packets of the benchmark `orders` table (12 columns) →
//!   Arrow arrays with osiris's decoder, against mysql_common decoding the same packets into
//!   `Row`s of `Value`s (what mysql_async does for every row, before any Arrow work).
//! * `csv_encode`: the decoded batch → CSV with osiris's encoder, against arrow-csv's writer.
//! * `step_cache`: batches through the step cache to one consumer, in memory and spilled to disk.
//!
//! Run: `cargo bench --workspace --bench hot_paths` and report osiris / anchor ratios.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mysql_common::constants::{ColumnFlags, ColumnType};
use mysql_common::io::ParseBuf;
use mysql_common::packets::Column;
use mysql_common::proto::Binary;
use mysql_common::row::RowDeserializer;
use mysql_common::value::ServerSide;
use osiris_driver_files::csv::CsvEncoder;
use osiris_driver_mysql::decode::RowDecoder;
use osiris_driver_mysql::types::{Kind, ZeroDates, schema_of};
use osiris_engine::runtime::budget::MemoryBudget;
use osiris_engine::runtime::cache::StepOutput;
use osiris_engine::telemetry::Telemetry;
use tokio_util::sync::CancellationToken;

const ROWS: usize = 65_536;
const UTF8MB4: u16 = 45;

/// The columns of `bench.orders` as MariaDB describes them.
fn orders_columns() -> Vec<Column> {
    let col = |name: &str, ty, flags, len, decimals, charset| {
        Column::new(ty)
            .with_name(name.as_bytes())
            .with_flags(flags)
            .with_column_length(len)
            .with_decimals(decimals)
            .with_character_set(charset)
    };
    let not_null = ColumnFlags::NOT_NULL_FLAG;
    let none = ColumnFlags::empty();
    vec![
        col("id", ColumnType::MYSQL_TYPE_LONGLONG, not_null, 20, 0, 63),
        col("customer_id", ColumnType::MYSQL_TYPE_LONG, not_null, 11, 0, 63),
        col("quantity", ColumnType::MYSQL_TYPE_SHORT, none, 6, 0, 63),
        col("is_paid", ColumnType::MYSQL_TYPE_TINY, none, 1, 0, 63),
        col("amount", ColumnType::MYSQL_TYPE_NEWDECIMAL, none, 14, 2, 63),
        col("weight", ColumnType::MYSQL_TYPE_DOUBLE, none, 22, 31, 63),
        col("product_name", ColumnType::MYSQL_TYPE_VAR_STRING, not_null, 256, 0, UTF8MB4),
        col("coupon_code", ColumnType::MYSQL_TYPE_VAR_STRING, none, 128, 0, UTF8MB4),
        col("order_date", ColumnType::MYSQL_TYPE_DATE, none, 10, 0, 63),
        col("created_at", ColumnType::MYSQL_TYPE_DATETIME, none, 26, 6, 63),
        col("updated_at", ColumnType::MYSQL_TYPE_TIMESTAMP, none, 19, 0, 63),
        col("notes", ColumnType::MYSQL_TYPE_BLOB, none, 262_140, 0, UTF8MB4),
    ]
}

fn lenenc_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    assert!(bytes.len() < 251);
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

/// One binary-protocol row packet payload resembling `gen_orders.sql`'s row `n`.
fn orders_row(n: u64) -> Vec<u8> {
    let mut row = vec![0u8];
    let bitmap_at = row.len();
    row.extend_from_slice(&[0, 0]); // (12 + 2 + 7) / 8 bytes
    let null = |row: &mut Vec<u8>, col: usize| row[bitmap_at + (col + 2) / 8] |= 1 << ((col + 2) % 8);
    row.extend_from_slice(&(n as i64).to_le_bytes());
    row.extend_from_slice(&((n * 7919 % 100_000) as i32).to_le_bytes());
    if n.is_multiple_of(97) {
        null(&mut row, 2);
    } else {
        row.extend_from_slice(&(((n % 200) as i16) - 20).to_le_bytes());
    }
    row.push((n % 2) as u8);
    lenenc_bytes(&mut row, format!("{}.{:02}", n * 37 % 100_000, n % 100).as_bytes());
    row.extend_from_slice(&((n as f64) * 0.123_456_789_012_345_6).to_le_bytes());
    let name = if n.is_multiple_of(250) { format!("Widget \"{n}\", deluxe") } else { format!("Product {}", n % 5000) };
    lenenc_bytes(&mut row, name.as_bytes());
    if n.is_multiple_of(53) {
        null(&mut row, 7);
    } else {
        lenenc_bytes(&mut row, format!("C{:06}", n % 9973).as_bytes());
    }
    let (y, m, d) = (2015 + (n % 10) as u16, 1 + (n % 12) as u8, 1 + (n % 28) as u8);
    row.push(4);
    row.extend_from_slice(&y.to_le_bytes());
    row.extend_from_slice(&[m, d]);
    row.push(11);
    row.extend_from_slice(&y.to_le_bytes());
    row.extend_from_slice(&[m, d, (n % 24) as u8, (n % 60) as u8, (n * 7 % 60) as u8]);
    row.extend_from_slice(&((n * 7919 % 1_000_000) as u32).to_le_bytes());
    row.push(7);
    row.extend_from_slice(&(y + 5).to_le_bytes());
    row.extend_from_slice(&[m, d, (n % 24) as u8, (n % 60) as u8, (n * 3 % 60) as u8]);
    let notes = format!("{{\"source\": \"web\", \"items\": {}, \"comment\": \"fast, please\", \"ref\": {n}}}", n % 9);
    lenenc_bytes(&mut row, notes.as_bytes());
    row
}

fn decode_rows(columns: &[Column], kinds: &[Kind], rows: &[Vec<u8>]) -> RecordBatch {
    let mut decoder = RowDecoder::new(columns, kinds, rows.len(), ZeroDates::Null);
    for row in rows {
        decoder.append_row(row).unwrap();
    }
    RecordBatch::try_new(schema_of(columns, kinds), decoder.finish().unwrap()).unwrap()
}

fn row_decode(c: &mut Criterion, columns: &[Column], kinds: &[Kind], rows: &[Vec<u8>]) {
    let mut group = c.benchmark_group("row_decode");
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function("osiris_row_decoder_to_arrow", |b| b.iter(|| decode_rows(columns, kinds, rows)));
    let shared: Arc<[Column]> = columns.to_vec().into();
    group.bench_function("anchor_mysql_common_rows", |b| {
        b.iter(|| {
            for row in rows {
                let parsed = ParseBuf(row).parse::<RowDeserializer<ServerSide, Binary>>(shared.clone()).unwrap();
                std::hint::black_box(parsed.into_inner());
            }
        })
    });
    group.finish();
}

fn csv_encode(c: &mut Criterion, batch: &RecordBatch) {
    let schema: &Schema = &batch.schema();
    let mut probe = Vec::new();
    let config = serde_json::json!({"path": "unused.csv"});
    let mut encoder = CsvEncoder::from_config(schema, config.as_object().unwrap()).unwrap();
    encoder.encode(batch, &mut probe).unwrap();
    let mut group = c.benchmark_group("csv_encode");
    group.throughput(Throughput::Bytes(probe.len() as u64));
    let mut out = Vec::with_capacity(probe.len() * 2);
    group.bench_function("osiris_csv_encoder", |b| {
        b.iter(|| {
            out.clear();
            encoder.encode(batch, &mut out).unwrap();
        })
    });
    group.bench_function("anchor_arrow_csv_writer", |b| {
        b.iter(|| {
            out.clear();
            let mut writer = arrow_csv::WriterBuilder::new().with_header(false).build(&mut out);
            writer.write(batch).unwrap();
        })
    });
    group.finish();
}

fn step_cache(c: &mut Criterion, batch: &RecordBatch) {
    const BATCHES: usize = 16;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bytes = batch.get_array_memory_size() as u64;
    let mut group = c.benchmark_group("step_cache");
    group.throughput(Throughput::Elements((BATCHES * batch.num_rows()) as u64));
    group.sample_size(20);
    for (name, budget) in [("in_memory", 64 * bytes), ("spilled", 1)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let output = StepOutput::new("s", Arc::new(MemoryBudget::new(budget)), dir.path().join("s.arrows"));
                    let telemetry = Telemetry::disabled().step("s");
                    let cancel = CancellationToken::new();
                    let mut reader = output.reader(cancel.clone(), telemetry.counters().clone());
                    let mut sink = output.sink(cancel, telemetry);
                    sink.set_schema(batch.schema());
                    let produce = async {
                        for _ in 0..BATCHES {
                            sink.send(batch.clone()).await.unwrap();
                        }
                        drop(sink);
                        output.finish(true);
                    };
                    let consume = async {
                        let mut rows = 0;
                        while let Some(b) = reader.next_batch().await.unwrap() {
                            rows += b.num_rows();
                        }
                        rows
                    };
                    let ((), rows) = tokio::join!(produce, consume);
                    assert_eq!(rows, BATCHES * batch.num_rows());
                })
            })
        });
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    let columns = orders_columns();
    let kinds: Vec<Kind> = columns.iter().map(|c| Kind::of(c).unwrap()).collect();
    let rows: Vec<Vec<u8>> = (1..=ROWS as u64).map(orders_row).collect();
    row_decode(c, &columns, &kinds, &rows);
    let batch = decode_rows(&columns, &kinds, &rows);
    csv_encode(c, &batch);
    step_cache(c, &batch);
}

criterion_group!(benches, bench);
criterion_main!(benches);
