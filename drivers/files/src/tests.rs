//! Driver tests on real files in temporary directories.

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::*;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use osiris_engine::registry::{Component, Registry};
use serde_json::json;

use crate::testkit::{config, extract, write};
use crate::{CsvExtractor, CsvWriter, ParquetExtractor, ParquetWriter};

const MIXED: &str = "id,code,price,ratio,flag,day,ts,name,note,empty\n\
1,007,1.50,1.5,true,2024-01-31,2024-01-31T10:00:00,Zoë,\"say \"\"hi\"\"\",\n\
2,010,2.00,100.0,false,2024-02-29,2024-02-29T23:59:59.500,\"Łódź, PL\",\"line1\nline2\",\n\
3,,3,1e-05,,1999-12-31,1999-12-31T00:00:00.000001,,plain,\n\
-4,0,,nan,true,,,日本,\"a,b\",\n";

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn no_temp_files(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return true };
    entries.into_iter().all(|e| !e.unwrap().file_name().to_string_lossy().contains(crate::atomic::TEMP_MARKER))
}

async fn csv_to_csv(dir: &Path, input: &str, read_cfg: serde_json::Value, write_cfg: serde_json::Value) -> Vec<u8> {
    std::fs::write(dir.join("in.csv"), input).unwrap();
    let (schema, batches, _) = extract(&CsvExtractor::new(), read_cfg, dir).await.unwrap();
    write(&CsvWriter::new(), write_cfg, dir, schema, batches, true).await.unwrap();
    std::fs::read(dir.join("out.csv")).unwrap()
}

#[tokio::test]
async fn csv_inference_keeps_text_exact() {
    let dir = tmp();
    std::fs::write(dir.path().join("in.csv"), MIXED).unwrap();
    let (schema, batches, tel) = extract(&CsvExtractor::new(), json!({"path": "in.csv"}), dir.path()).await.unwrap();
    let types: Vec<DataType> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
    assert_eq!(
        types,
        vec![
            DataType::Int64,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Float64,
            DataType::Boolean,
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
        ]
    );
    let batch = arrow_select_concat(&schema, &batches);
    assert_eq!(batch.num_rows(), 4);
    assert_eq!(batch.column(1).as_string::<i32>().value(0), "007");
    assert!(batch.column(1).is_null(2));
    assert_eq!(batch.column(2).as_string::<i32>().value(0), "1.50");
    assert_eq!(batch.column(7).as_string::<i32>().value(1), "Łódź, PL");
    assert_eq!(batch.column(8).as_string::<i32>().value(0), "say \"hi\"");
    assert_eq!(batch.column(8).as_string::<i32>().value(1), "line1\nline2");
    assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(3), -4);
    assert_eq!(batch.column(3).as_primitive::<Float64Type>().value(2), 1e-5);
    assert_eq!(batch.column(9).null_count(), 4);
    assert_eq!(tel.counters().rows_read.load(std::sync::atomic::Ordering::Relaxed), 4);
    assert_eq!(tel.counters().bytes_read.load(std::sync::atomic::Ordering::Relaxed), MIXED.len() as u64);
}

fn arrow_select_concat(schema: &SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    arrow_select::concat::concat_batches(schema, batches).unwrap()
}

#[tokio::test]
async fn csv_to_csv_is_byte_identical() {
    let dir = tmp();
    let out =
        csv_to_csv(dir.path(), MIXED, json!({"path": "in.csv", "chunk_size": 2}), json!({"path": "out.csv"})).await;
    assert_eq!(String::from_utf8(out).unwrap(), MIXED);
    assert!(no_temp_files(dir.path()));
}

#[tokio::test]
async fn csv_parquet_csv_is_byte_identical() {
    for compression in ["snappy", "zstd", "none", "lz4", "gzip"] {
        let dir = tmp();
        let d = dir.path();
        std::fs::write(d.join("in.csv"), MIXED).unwrap();
        let (schema, batches, _) = extract(&CsvExtractor::new(), json!({"path": "in.csv"}), d).await.unwrap();
        write(
            &ParquetWriter::new(),
            json!({"path": "mid/x.parquet", "compression": compression}),
            d,
            schema,
            batches,
            true,
        )
        .await
        .unwrap();
        let (schema, batches, _) =
            extract(&ParquetExtractor::new(), json!({"path": "mid/x.parquet", "batch_size": 3}), d).await.unwrap();
        write(&CsvWriter::new(), json!({"path": "out.csv"}), d, schema, batches, true).await.unwrap();
        assert_eq!(std::fs::read_to_string(d.join("out.csv")).unwrap(), MIXED, "{compression}");
        assert!(no_temp_files(&d.join("mid")));
    }
}

#[tokio::test]
async fn crlf_files_round_trip() {
    let dir = tmp();
    let input = MIXED.replace(",\n", ",\r\n").replacen("empty\n", "empty\r\n", 1);
    let out =
        csv_to_csv(dir.path(), &input, json!({"path": "in.csv"}), json!({"path": "out.csv", "newline": "crlf"})).await;
    // Embedded newlines inside quotes stay LF; record ends become CRLF.
    assert_eq!(String::from_utf8(out).unwrap(), input);
}

#[tokio::test]
async fn sort_columns_and_delimiters() {
    let dir = tmp();
    let out = csv_to_csv(
        dir.path(),
        "b;a;c\n1;x y;2.5\n",
        json!({"path": "in.csv", "delimiter": ";"}),
        json!({"path": "out.csv", "sort_columns": true}),
    )
    .await;
    assert_eq!(out, b"a,b,c\nx y,1,2.5\n");
    let out = csv_to_csv(
        dir.path(),
        "b\ta\n1\tx,y\n",
        json!({"path": "in.csv", "delimiter": "\t"}),
        json!({"path": "out.csv", "delimiter": "\\t"}),
    )
    .await;
    assert_eq!(out, b"b\ta\n1\tx,y\n");
    let out = csv_to_csv(
        dir.path(),
        "1,a\n2,b\n",
        json!({"path": "in.csv", "header": false}),
        json!({"path": "out.csv", "header": false, "quoting": "all"}),
    )
    .await;
    assert_eq!(out, b"\"1\",\"a\"\n\"2\",\"b\"\n");
}

#[tokio::test]
async fn header_false_names_columns_by_position() {
    let dir = tmp();
    std::fs::write(dir.path().join("in.csv"), "1,a\n2,b\n").unwrap();
    let (schema, _, _) =
        extract(&CsvExtractor::new(), json!({"path": "in.csv", "header": false}), dir.path()).await.unwrap();
    assert_eq!(schema.field(0).name(), "0");
    assert_eq!(schema.field(1).name(), "1");
}

#[tokio::test]
async fn writer_formats_values() {
    let dir = tmp();
    let schema = Arc::new(Schema::new(vec![
        Field::new("dec", DataType::Decimal128(10, 2), true),
        Field::new("f", DataType::Float64, true),
        Field::new("ts_utc", DataType::Timestamp(TimeUnit::Millisecond, Some("+02:00".into())), true),
        Field::new("d64", DataType::Date64, true),
        Field::new("bin", DataType::Binary, true),
        Field::new("t", DataType::Time64(TimeUnit::Microsecond), true),
        Field::new("u", DataType::UInt8, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    let dec =
        Decimal128Array::from(vec![Some(1250), Some(-5), None, Some(0), Some(100), Some(-123456), Some(7), Some(1)])
            .with_precision_and_scale(10, 2)
            .unwrap();
    let f = Float64Array::from(vec![
        Some(1.5),
        Some(100.0),
        None,
        Some(0.0001),
        Some(1e16),
        Some(1.2345678901234568e17),
        Some(1e-5),
        Some(f64::NAN),
    ]);
    let ts =
        TimestampMillisecondArray::from(vec![Some(0), Some(1_500), None, Some(-1), Some(0), Some(0), Some(0), Some(0)])
            .with_timezone("+02:00");
    let d64 = Date64Array::from(vec![Some(0), Some(86_400_000), None, Some(-1), Some(0), Some(0), Some(0), Some(0)]);
    let bin = BinaryArray::from(vec![
        Some(&b"\x00\xff"[..]),
        Some(b""),
        None,
        Some(b"A"),
        Some(b""),
        Some(b""),
        Some(b""),
        Some(b""),
    ]);
    let t = Time64MicrosecondArray::from(vec![
        Some(0),
        Some(3_723_000_001),
        None,
        Some(1),
        Some(0),
        Some(0),
        Some(0),
        Some(0),
    ]);
    let u = UInt8Array::from(vec![Some(255), Some(0), None, Some(1), Some(2), Some(3), Some(4), Some(5)]);
    let s = StringArray::from(vec![
        Some("a\"b"),
        Some(""),
        None,
        Some("x\ry"),
        Some("s"),
        Some("s"),
        Some("s"),
        Some(" lead"),
    ]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(dec),
        Arc::new(f),
        Arc::new(ts),
        Arc::new(d64),
        Arc::new(bin),
        Arc::new(t),
        Arc::new(u),
        Arc::new(s),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    let tel =
        write(&CsvWriter::new(), json!({"path": "out.csv"}), dir.path(), schema, vec![batch], true).await.unwrap();
    let text = std::fs::read_to_string(dir.path().join("out.csv")).unwrap();
    let want = "dec,f,ts_utc,d64,bin,t,u,s\n\
12.50,1.5,1970-01-01T00:00:00Z,1970-01-01,00ff,00:00:00,255,\"a\"\"b\"\n\
-0.05,100.0,1970-01-01T00:00:01.500Z,1970-01-02,\"\",01:02:03.000001,0,\"\"\n\
,,,,,,,\n\
0.00,0.0001,1969-12-31T23:59:59.999Z,1969-12-31,41,00:00:00.000001,1,\"x\ry\"\n\
1.00,1e+16,1970-01-01T00:00:00Z,1970-01-01,\"\",00:00:00,2,s\n\
-1234.56,1.2345678901234568e+17,1970-01-01T00:00:00Z,1970-01-01,\"\",00:00:00,3,s\n\
0.07,1e-05,1970-01-01T00:00:00Z,1970-01-01,\"\",00:00:00,4,s\n\
0.01,nan,1970-01-01T00:00:00Z,1970-01-01,\"\",00:00:00,5, lead\n";
    assert_eq!(text, want);
    assert_eq!(tel.counters().rows_written.load(std::sync::atomic::Ordering::Relaxed), 8);
    assert_eq!(tel.counters().bytes_written.load(std::sync::atomic::Ordering::Relaxed), want.len() as u64);
}

#[tokio::test]
async fn single_column_empty_values_do_not_become_blank_lines() {
    let dir = tmp();
    let input = "a\nx\n\"\"\ny\n";
    let out = csv_to_csv(dir.path(), input, json!({"path": "in.csv"}), json!({"path": "out.csv"})).await;
    assert_eq!(String::from_utf8(out).unwrap(), input);
}

/// Unquoted empty fields (NULL) and `""` (empty strings), in string and typed columns.
const NULL_VS_EMPTY: &str = "id,code,n,note\n\
1,\"\",5,\"\"\n\
2,,,\n\
3,x,-7,\"a,b\"\n\
4,\"\",,plain\n\
5,,8,\"\"\n";

/// Checks the Arrow values read from [`NULL_VS_EMPTY`] (by either extractor).
fn check_null_vs_empty(schema: &SchemaRef, batches: &[RecordBatch]) {
    assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
    assert_eq!(schema.field(2).data_type(), &DataType::Int64);
    let b = arrow_select_concat(schema, batches);
    let code = b.column(1).as_string::<i32>();
    let n = b.column(2).as_primitive::<Int64Type>();
    let note = b.column(3).as_string::<i32>();
    let values =
        |a: &StringArray| (0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i).to_string())).collect::<Vec<_>>();
    let v = |s: &str| Some(s.to_string());
    assert_eq!(values(code), vec![v(""), None, v("x"), v(""), None]);
    assert_eq!(values(note), vec![v(""), None, v("a,b"), v("plain"), v("")]);
    assert_eq!(n.iter().collect::<Vec<_>>(), vec![Some(5), None, Some(-7), None, Some(8)]);
}

#[tokio::test]
async fn quoted_empty_is_an_empty_string_and_unquoted_empty_is_null() {
    let dir = tmp();
    let d = dir.path();
    std::fs::write(d.join("in.csv"), NULL_VS_EMPTY).unwrap();
    let (schema, batches, _) =
        extract(&CsvExtractor::new(), json!({"path": "in.csv", "chunk_size": 2}), d).await.unwrap();
    check_null_vs_empty(&schema, &batches);

    // CSV → CSV.
    write(&CsvWriter::new(), json!({"path": "out.csv"}), d, schema.clone(), batches.clone(), true).await.unwrap();
    assert_eq!(std::fs::read_to_string(d.join("out.csv")).unwrap(), NULL_VS_EMPTY);

    // CSV → Parquet → CSV, with the values checked in between.
    write(&ParquetWriter::new(), json!({"path": "x.parquet"}), d, schema, batches, true).await.unwrap();
    let (schema, batches, _) =
        extract(&ParquetExtractor::new(), json!({"path": "x.parquet", "batch_size": 2}), d).await.unwrap();
    check_null_vs_empty(&schema, &batches);
    write(&CsvWriter::new(), json!({"path": "out.csv"}), d, schema, batches, true).await.unwrap();
    assert_eq!(std::fs::read_to_string(d.join("out.csv")).unwrap(), NULL_VS_EMPTY);

    // Also with CRLF line ends.
    let crlf = NULL_VS_EMPTY.replace('\n', "\r\n");
    let out = csv_to_csv(d, &crlf, json!({"path": "in.csv"}), json!({"path": "out.csv", "newline": "crlf"})).await;
    assert_eq!(String::from_utf8(out).unwrap(), crlf);
}

#[tokio::test]
async fn quoted_empty_in_typed_columns() {
    let dir = tmp();
    let d = dir.path();
    // Unquoted empty fields are NULL and leave the inferred type alone.
    std::fs::write(d.join("in.csv"), "i,f,b,day\n1,1.5,true,2024-01-01\n,,,\n3,2.5,false,2024-01-03\n").unwrap();
    let (schema, batches, _) = extract(&CsvExtractor::new(), json!({"path": "in.csv"}), d).await.unwrap();
    let types: Vec<&DataType> = schema.fields().iter().map(|f| f.data_type()).collect();
    assert_eq!(types, [&DataType::Int64, &DataType::Float64, &DataType::Boolean, &DataType::Date32]);
    let b = arrow_select_concat(&schema, &batches);
    assert_eq!(b.column(0).as_primitive::<Int64Type>().iter().collect::<Vec<_>>(), vec![Some(1), None, Some(3)]);
    assert!((0..4).all(|c| b.column(c).is_null(1)));

    // `""` is a value no other type prints, so inference keeps the column as strings (lossless).
    std::fs::write(d.join("in.csv"), "i,j\n1,1\n\"\",\n3,3\n").unwrap();
    let (schema, batches, _) = extract(&CsvExtractor::new(), json!({"path": "in.csv"}), d).await.unwrap();
    assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
    assert_eq!(schema.field(1).data_type(), &DataType::Int64);
    let b = arrow_select_concat(&schema, &batches);
    assert_eq!(b.column(0).as_string::<i32>().value(1), "");
    assert!(b.column(0).is_valid(1) && b.column(1).is_null(1));

    // An explicit type reads `""` as NULL.
    let cfg = json!({"path": "in.csv", "dtype": {"i": "int64", "j": "decimal(5,1)"}});
    let (schema, batches, _) = extract(&CsvExtractor::new(), cfg, d).await.unwrap();
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    let b = arrow_select_concat(&schema, &batches);
    assert_eq!(b.column(0).as_primitive::<Int64Type>().iter().collect::<Vec<_>>(), vec![Some(1), None, Some(3)]);

    // Beyond the sample, `""` in an inferred int64 column does not fit, like any other text.
    std::fs::write(d.join("in.csv"), "i\n1\n2\n\"\"\n").unwrap();
    let err = extract(&CsvExtractor::new(), json!({"path": "in.csv", "infer_rows": 2}), d).await.unwrap_err();
    assert_eq!(err.code, "extract.parse_error");
    assert!(err.message.contains("line 4") && err.message.contains("\"\""), "{}", err.message);
    // `na_values` still applies to quoted fields.
    let (schema, _, _) =
        extract(&CsvExtractor::new(), json!({"path": "in.csv", "infer_rows": 2, "na_values": [""]}), d).await.unwrap();
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
}

#[tokio::test]
async fn writer_quotes_empty_values_but_not_nulls() {
    let dir = tmp();
    let d = dir.path();
    let schema = Arc::new(Schema::new(vec![
        Field::new("s", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
        Field::new("b", DataType::Binary, true),
        Field::new("ls", DataType::LargeUtf8, true),
        Field::new("sv", DataType::Utf8View, true),
        Field::new("z", DataType::Null, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![Some(""), None, Some("a")])),
        Arc::new(Int64Array::from(vec![Some(1), None, Some(2)])),
        Arc::new(BinaryArray::from(vec![Some(&b""[..]), None, Some(b"\x01")])),
        Arc::new(LargeStringArray::from(vec![Some(""), None, Some("a")])),
        Arc::new(StringViewArray::from(vec![Some(""), None, Some("a")])),
        Arc::new(NullArray::new(3)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    let cases = [
        ("minimal", "s,n,b,ls,sv,z\n\"\",1,\"\",\"\",\"\",\n,,,,,\na,2,01,a,a,\n"),
        (
            "nonnumeric",
            "\"s\",\"n\",\"b\",\"ls\",\"sv\",\"z\"\n\"\",1,\"\",\"\",\"\",\n,,,,,\n\"a\",2,\"01\",\"a\",\"a\",\n",
        ),
        (
            "all",
            "\"s\",\"n\",\"b\",\"ls\",\"sv\",\"z\"\n\"\",\"1\",\"\",\"\",\"\",\n,,,,,\n\"a\",\"2\",\"01\",\"a\",\"a\",\n",
        ),
    ];
    for (quoting, want) in cases {
        write(
            &CsvWriter::new(),
            json!({"path": "out.csv", "quoting": quoting}),
            d,
            schema.clone(),
            vec![batch.clone()],
            true,
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read_to_string(d.join("out.csv")).unwrap(), want, "{quoting}");
    }

    // One column: an empty string is `""`; so is NULL, since a blank line would be skipped.
    let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
    let batch =
        RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec![Some(""), None, Some("a")]))])
            .unwrap();
    for quoting in ["minimal", "nonnumeric"] {
        write(
            &CsvWriter::new(),
            json!({"path": "out.csv", "quoting": quoting}),
            d,
            schema.clone(),
            vec![batch.clone()],
            true,
        )
        .await
        .unwrap();
        let want = if quoting == "minimal" { "s\n\"\"\n\"\"\na\n" } else { "\"s\"\n\"\"\n\"\"\n\"a\"\n" };
        assert_eq!(std::fs::read_to_string(d.join("out.csv")).unwrap(), want, "{quoting}");
    }
}

#[tokio::test]
async fn empty_and_header_only_files() {
    let dir = tmp();
    let d = dir.path();
    std::fs::write(d.join("in.csv"), "a,b\n").unwrap();
    let (schema, batches, _) = extract(&CsvExtractor::new(), json!({"path": "in.csv"}), d).await.unwrap();
    assert_eq!(schema.fields().len(), 2);
    assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
    assert!(batches.is_empty());
    write(&CsvWriter::new(), json!({"path": "out.csv"}), d, schema, batches, true).await.unwrap();
    assert_eq!(std::fs::read(d.join("out.csv")).unwrap(), b"a,b\n");

    std::fs::write(d.join("in.csv"), "").unwrap();
    let (schema, batches, _) = extract(&CsvExtractor::new(), json!({"path": "in.csv"}), d).await.unwrap();
    assert!(schema.fields().is_empty());
    assert!(batches.is_empty());
    write(&CsvWriter::new(), json!({"path": "out.csv"}), d, schema.clone(), batches, true).await.unwrap();
    assert_eq!(std::fs::read(d.join("out.csv")).unwrap(), b"");
    let err = write(&ParquetWriter::new(), json!({"path": "out.parquet"}), d, schema, vec![], true).await.unwrap_err();
    assert_eq!(err.code, "write.empty_schema");
}

#[tokio::test]
async fn failed_upstream_leaves_no_file() {
    let dir = tmp();
    let d = dir.path();
    std::fs::write(d.join("in.csv"), MIXED).unwrap();
    let (schema, batches, _) =
        extract(&CsvExtractor::new(), json!({"path": "in.csv", "chunk_size": 1}), d).await.unwrap();
    for component in [&CsvWriter::new() as &dyn Component, &ParquetWriter::new()] {
        let err = write(component, json!({"path": "out/target"}), d, schema.clone(), batches.clone(), false)
            .await
            .unwrap_err();
        assert!(err.is_cancellation(), "{}: {}", err.code, err.message);
        assert!(!d.join("out/target").exists());
        assert!(no_temp_files(&d.join("out")));
    }
    // A batch whose schema differs from the declared one fails the upstream mid-stream.
    let other = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
    let bad = RecordBatch::try_new(other, vec![Arc::new(Int64Array::from(vec![1]))]).unwrap();
    let mut mixed = batches.clone();
    mixed.insert(2, bad);
    std::fs::create_dir_all(d.join("out")).unwrap();
    std::fs::write(d.join("out/target"), "previous").unwrap();
    let err =
        write(&CsvWriter::new(), json!({"path": "out/target"}), d, schema.clone(), mixed, true).await.unwrap_err();
    assert!(err.is_cancellation(), "{}", err.code);
    assert_eq!(std::fs::read_to_string(d.join("out/target")).unwrap(), "previous");
    assert!(no_temp_files(&d.join("out")));
}

#[tokio::test]
async fn unwritable_path_is_a_clear_error() {
    let dir = tmp();
    let d = dir.path();
    std::fs::write(d.join("blocker"), "a file, not a directory").unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
    for component in [&CsvWriter::new() as &dyn Component, &ParquetWriter::new()] {
        let err =
            write(component, json!({"path": "blocker/out.csv"}), d, schema.clone(), vec![], true).await.unwrap_err();
        assert_eq!(err.code, "write.io_error");
        assert!(err.message.contains("blocker"), "{}", err.message);
        assert!(err.hint.is_some());
        let err =
            write(component, json!({"path": "blocker/out.csv", "create_dirs": false}), d, schema.clone(), vec![], true)
                .await
                .unwrap_err();
        assert_eq!(err.code, "write.io_error");
    }
}

#[tokio::test]
async fn parse_error_beyond_the_sample_names_line_and_column() {
    let dir = tmp();
    let d = dir.path();
    std::fs::write(d.join("in.csv"), "id,n\n1,10\n2,20\n3,\"x\ny\"\n4,007\n").unwrap();
    let err = extract(&CsvExtractor::new(), json!({"path": "in.csv", "infer_rows": 2}), d).await.unwrap_err();
    assert_eq!(err.code, "extract.parse_error");
    assert!(
        err.message.contains("line 4") && err.message.contains("'n'") && err.message.contains("x\\ny"),
        "{}",
        err.message
    );
    assert!(err.hint.as_deref().unwrap_or("").contains("infer_rows"));
    // Whole-file inference sees the text and keeps everything exact.
    let (schema, batches, _) =
        extract(&CsvExtractor::new(), json!({"path": "in.csv", "infer_rows": 0}), d).await.unwrap();
    assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 4);
    // As does an explicit dtype.
    let (schema, _, _) =
        extract(&CsvExtractor::new(), json!({"path": "in.csv", "infer_rows": 2, "dtype": {"n": "string"}}), d)
            .await
            .unwrap();
    assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
}

#[tokio::test]
async fn extractor_options() {
    let dir = tmp();
    let d = dir.path();
    std::fs::write(d.join("in.csv"), "# comment\nskip me\na,b,c\n1,NA,+3\n# c2\n2,y,04\n3,z,5\n").unwrap();
    let cfg = json!({
        "path": "in.csv", "skip_rows": 1, "columns": ["c", "a", "b"], "na_values": ["NA"], "limit": 2,
        "comment": "#", "dtype": {"c": "int64", "b": "decimal(5,2)"}, "chunk_size": 1
    });
    let err = extract(&CsvExtractor::new(), cfg.clone(), d).await.unwrap_err();
    assert_eq!(err.code, "extract.parse_error");
    assert!(err.message.contains("'b'") && err.message.contains("decimal(5,2)"), "{}", err.message);
    let mut cfg = cfg;
    cfg["dtype"] = json!({"c": "int64"});
    let (schema, batches, _) = extract(&CsvExtractor::new(), cfg, d).await.unwrap();
    assert_eq!(schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), ["c", "a", "b"]);
    assert_eq!(batches.len(), 2);
    let b = arrow_select_concat(&schema, &batches);
    assert_eq!(b.column(0).as_primitive::<Int64Type>().values().to_vec(), vec![3, 4]);
    assert!(b.column(2).is_null(0));
    assert_eq!(b.column(2).as_string::<i32>().value(1), "y");

    let err = extract(&CsvExtractor::new(), json!({"path": "in.csv", "columns": ["zz"]}), d).await.unwrap_err();
    assert_eq!(err.code, "extract.column_not_found");
    let err = extract(&CsvExtractor::new(), json!({"path": "missing.csv"}), d).await.unwrap_err();
    assert_eq!(err.code, "extract.file_not_found");
    assert!(err.message.contains("missing.csv") && err.hint.is_some());
}

#[tokio::test]
async fn latin1_round_trip() {
    let dir = tmp();
    let d = dir.path();
    let bytes = b"name\ncaf\xe9\n\xc5ngstr\xf6m\n".to_vec();
    std::fs::write(d.join("in.csv"), &bytes).unwrap();
    let (schema, batches, _) =
        extract(&CsvExtractor::new(), json!({"path": "in.csv", "encoding": "latin-1"}), d).await.unwrap();
    assert_eq!(batches[0].column(0).as_string::<i32>().value(0), "café");
    write(
        &CsvWriter::new(),
        json!({"path": "out.csv", "encoding": "latin-1"}),
        d,
        schema.clone(),
        batches.clone(),
        true,
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(d.join("out.csv")).unwrap(), bytes);
    let err = extract(&CsvExtractor::new(), json!({"path": "in.csv"}), d).await.unwrap_err();
    assert_eq!(err.code, "extract.encoding_error");
    let err = write(&CsvWriter::new(), json!({"path": "out.csv", "encoding": "ascii"}), d, schema, batches, true)
        .await
        .unwrap_err();
    assert_eq!(err.code, "write.encoding_error");
}

#[tokio::test]
async fn parquet_projection_and_limit() {
    let dir = tmp();
    let d = dir.path();
    std::fs::write(d.join("in.csv"), "a,b,c\n1,x,1.5\n2,y,2.5\n3,z,3.5\n").unwrap();
    let (schema, batches, _) = extract(&CsvExtractor::new(), json!({"path": "in.csv"}), d).await.unwrap();
    write(&ParquetWriter::new(), json!({"path": "t.parquet", "row_group_size": 2}), d, schema, batches, true)
        .await
        .unwrap();
    let (schema, batches, tel) =
        extract(&ParquetExtractor::new(), json!({"path": "t.parquet", "columns": ["c", "a"], "limit": 2}), d)
            .await
            .unwrap();
    assert_eq!(schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), ["c", "a"]);
    let b = arrow_select_concat(&schema, &batches);
    assert_eq!(b.num_rows(), 2);
    assert_eq!(b.column(1).as_primitive::<Int64Type>().values().to_vec(), vec![1, 2]);
    assert_eq!(tel.counters().rows_read.load(std::sync::atomic::Ordering::Relaxed), 2);
    let err =
        extract(&ParquetExtractor::new(), json!({"path": "t.parquet", "columns": ["nope"]}), d).await.unwrap_err();
    assert_eq!(err.code, "extract.column_not_found");
    let err = extract(&ParquetExtractor::new(), json!({"path": "in.csv"}), d).await.unwrap_err();
    assert_eq!(err.code, "extract.read_error");
    let err = extract(&ParquetExtractor::new(), json!({"path": "nope.parquet"}), d).await.unwrap_err();
    assert_eq!(err.code, "extract.file_not_found");
}

#[test]
fn create_rejects_bad_configs() {
    let (ce, cw, pe, pw) = (CsvExtractor::new(), CsvWriter::new(), ParquetExtractor::new(), ParquetWriter::new());
    let bad: Vec<(&dyn Component, serde_json::Value)> = vec![
        (&ce as &dyn Component, json!({"path": "a.csv", "bogus": 1})),
        (&ce as &dyn Component, json!({})),
        (&ce as &dyn Component, json!({"path": "a.csv", "delimiter": ",,"})),
        (&ce as &dyn Component, json!({"path": "a.csv", "encoding": "utf-16"})),
        (&ce as &dyn Component, json!({"path": "a.csv", "dtype": {"a": "int128"}})),
        (&ce as &dyn Component, json!({"path": "a.csv", "dtype": {"a": "decimal(40,2)"}})),
        (&ce as &dyn Component, json!({"path": "a.csv", "chunk_size": 0})),
        (&ce as &dyn Component, json!({"path": "a.csv", "comment": "##"})),
        (&ce as &dyn Component, json!({"path": "a.csv", "header": "infer"})),
        (&ce as &dyn Component, json!({"path": "a.csv", "header": -1})),
        (&ce as &dyn Component, json!({"path": "a.csv", "parse_dates": "day"})),
        (&ce as &dyn Component, json!({"path": "a.csv", "parse_dates": [1]})),
        (&ce as &dyn Component, json!({"path": "a.csv", "compression": "lz4"})),
        (&cw, json!({"path": "a.csv", "newline": "cr"})),
        (&cw, json!({"path": "a.csv", "quoting": "none"})),
        (&cw, json!({"path": "a.csv", "delimiter": "\""})),
        (&cw, json!({"path": "a.csv", "write_mode": "replace"})),
        (&pw, json!({"path": "a.parquet", "compression": "brotli"})),
        (&pw, json!({"path": "a.parquet", "row_group_size": 0})),
        (&pe, json!({"path": "a.parquet", "batch_size": 0})),
        (&pe, json!({"path": "a.parquet", "extra": true})),
    ];
    for (component, cfg) in bad {
        let err = component.create(&config(cfg.clone())).unwrap_err();
        assert_eq!(err.code, "config.invalid", "{cfg}");
    }
    let good: Vec<(&dyn Component, serde_json::Value)> = vec![
        (
            &ce as &dyn Component,
            json!({"path": "a.csv", "delimiter": "\t", "encoding": "latin-1", "dtype": {"x": "decimal(10,2)"}}),
        ),
        (&ce, json!({"path": "a.csv", "header": 2, "parse_dates": ["d"], "compression": "gzip"})),
        (&ce, json!({"path": "a.csv", "header": null, "parse_dates": true, "compression": "none"})),
        (&cw, json!({"path": "a.csv", "newline": "crlf", "quoting": "all", "chunk_size": 1000})),
        (&pw, json!({"path": "a.parquet", "compression": "zstd"})),
    ];
    for (component, cfg) in good {
        assert!(component.create(&config(cfg.clone())).is_ok(), "{cfg}");
    }
}

#[test]
fn register_adds_all_components_with_spec_defaults() {
    let mut registry = Registry::new();
    crate::register(&mut registry).unwrap();
    for name in crate::component_names() {
        let c = registry.get(name).unwrap();
        assert_eq!(c.spec().version, "0.1.0");
        // The spec defaults alone (plus required keys) make a valid config.
        let mut cfg = serde_json::Map::new();
        for f in &c.spec().config {
            if let Some(d) = &f.default {
                cfg.insert(f.name.clone(), d.clone());
            }
            if f.required {
                cfg.insert(f.name.clone(), json!("x"));
            }
        }
        assert!(c.create(&cfg).is_ok(), "{name}");
    }
    assert!(crate::register(&mut registry).is_err());
}

/// The upstream fails after the writer has already written part of the file.
#[tokio::test]
async fn failure_mid_stream_removes_the_temporary_file() {
    use osiris_engine::driver::{StepInput, StepIo};
    use osiris_engine::runtime::budget::MemoryBudget;
    use osiris_engine::runtime::cache::StepOutput;
    use osiris_engine::telemetry::Telemetry;
    use tokio_util::sync::CancellationToken;

    for component in [&CsvWriter::new() as &dyn Component, &ParquetWriter::new()] {
        let dir = tmp();
        let d = dir.path().to_path_buf();
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let driver = component.create(&config(json!({"path": "out/t.dat"}))).unwrap();
        let out = StepOutput::new("up", Arc::new(MemoryBudget::new(1 << 20)), d.join("up.arrows"));
        let tel = Telemetry::disabled().step("s");
        let cancel = CancellationToken::new();
        let reader = out.reader(cancel.clone(), tel.counters().clone());
        let mut sink = out.sink(cancel.clone(), Telemetry::disabled().step("up"));
        let io = StepIo {
            inputs: vec![StepInput { step_id: "up".into(), table_name: "df_up".into(), reader }],
            output: None,
        };
        let produce = async {
            sink.set_schema(schema.clone());
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2, 3]))]).unwrap();
            sink.send(batch).await.unwrap();
            // Wait until the writer has its temporary file open and has consumed the batch.
            for _ in 0..500 {
                if std::fs::read_dir(d.join("out")).map(|mut r| r.next().is_some()).unwrap_or(false)
                    && tel.counters().rows_written.load(std::sync::atomic::Ordering::Relaxed) == 3
                {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            assert!(!no_temp_files(&d.join("out")), "the writer should be mid-stream");
            out.finish(false);
        };
        let (r, ()) = tokio::join!(driver.run(crate::testkit::ctx(&d, tel.clone()), io), produce);
        let err = r.unwrap_err();
        assert_eq!(err.code, "run.upstream_failed");
        assert!(!d.join("out/t.dat").exists());
        assert!(no_temp_files(&d.join("out")));
    }
}

/// Extractor and writer connected through one step-cache edge with a tiny budget (backpressure
/// and spilling), on a file larger than the inference sample.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_csv_to_csv_through_the_cache() {
    use osiris_engine::driver::{StepInput, StepIo};
    use osiris_engine::runtime::budget::MemoryBudget;
    use osiris_engine::runtime::cache::StepOutput;
    use osiris_engine::telemetry::Telemetry;
    use std::fmt::Write as _;
    use tokio_util::sync::CancellationToken;

    let dir = tmp();
    let d = dir.path().to_path_buf();
    let mut input = String::from("id,name,amount,ok,day\n");
    for i in 0..30_000i64 {
        let _ = writeln!(input, "{i},\"n,{i}\",{},{},2024-01-{:02}", (i as f64) / 8.0, i % 2 == 0, i % 28 + 1);
    }
    std::fs::write(d.join("big.csv"), &input).unwrap();
    let extractor =
        CsvExtractor::new().create(&config(json!({"path": "big.csv", "chunk_size": 1000, "infer_rows": 100}))).unwrap();
    let writer = CsvWriter::new().create(&config(json!({"path": "copy.csv"}))).unwrap();
    let out = StepOutput::new("read", Arc::new(MemoryBudget::new(64 * 1024)), d.join("read.arrows"));
    let cancel = CancellationToken::new();
    let read_tel = Telemetry::disabled().step("read");
    let write_tel = Telemetry::disabled().step("write");
    let reader = out.reader(cancel.clone(), write_tel.counters().clone());
    let sink = out.sink(cancel.clone(), read_tel.clone());
    let read = async {
        let r = extractor
            .run(crate::testkit::ctx(&d, read_tel.clone()), StepIo { inputs: vec![], output: Some(sink) })
            .await;
        out.finish(r.is_ok());
        r
    };
    let io = StepIo {
        inputs: vec![StepInput { step_id: "read".into(), table_name: "df_read".into(), reader }],
        output: None,
    };
    let (r1, r2) = tokio::join!(read, writer.run(crate::testkit::ctx(&d, write_tel.clone()), io));
    r1.unwrap();
    r2.unwrap();
    assert_eq!(std::fs::read_to_string(d.join("copy.csv")).unwrap(), input);
    assert_eq!(write_tel.counters().rows_written.load(std::sync::atomic::Ordering::Relaxed), 30_000);
    assert_eq!(read_tel.counters().bytes_read.load(std::sync::atomic::Ordering::Relaxed), input.len() as u64);
}

/// What the CSV writer prints for DECIMAL, BIGINT UNSIGNED and zoned timestamps reads back as
/// those types, and CSV → CSV and CSV → Parquet → CSV keep the bytes.
#[tokio::test]
async fn exact_decimals_unsigned_integers_and_zoned_timestamps_round_trip() {
    let input = "dec,big,at,huge\n\
                 12.50,18446744073709551615,2024-01-31T10:00:00Z,123456789012345678901234567890\n\
                 -0.05,1,1970-01-01T00:00:00.000001Z,-1\n\
                 ,,,\n";
    let dir = tmp();
    let d = dir.path();
    std::fs::write(d.join("in.csv"), input).unwrap();
    let (schema, batches, _) = extract(&CsvExtractor::new(), json!({"path": "in.csv"}), d).await.unwrap();
    let types: Vec<DataType> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
    assert_eq!(
        types,
        vec![
            DataType::Decimal128(18, 2),
            DataType::UInt64,
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            DataType::Decimal128(30, 0),
        ]
    );
    let b = arrow_select_concat(&schema, &batches);
    assert_eq!(b.column(0).as_primitive::<Decimal128Type>().value(1), -5);
    assert_eq!(b.column(1).as_primitive::<UInt64Type>().value(0), u64::MAX);
    assert_eq!(b.column(2).as_primitive::<TimestampMicrosecondType>().value(1), 1);
    write(&CsvWriter::new(), json!({"path": "out.csv"}), d, schema.clone(), batches.clone(), true).await.unwrap();
    assert_eq!(std::fs::read_to_string(d.join("out.csv")).unwrap(), input);
    write(&ParquetWriter::new(), json!({"path": "x.parquet"}), d, schema, batches, true).await.unwrap();
    let (schema, batches, _) = extract(&ParquetExtractor::new(), json!({"path": "x.parquet"}), d).await.unwrap();
    write(&CsvWriter::new(), json!({"path": "out.csv"}), d, schema, batches, true).await.unwrap();
    assert_eq!(std::fs::read_to_string(d.join("out.csv")).unwrap(), input);
    // An offset is the same instant in UTC, written back with Z.
    let out =
        csv_to_csv(d, "at\n2024-01-31T12:30:00+02:30\n", json!({"path": "in.csv"}), json!({"path": "out.csv"})).await;
    assert_eq!(String::from_utf8(out).unwrap(), "at\n2024-01-31T10:00:00Z\n");
}

#[tokio::test]
async fn malformed_rows_and_empty_files() {
    let dir = tmp();
    let d = dir.path();
    std::fs::write(d.join("in.csv"), "a,b\n1,2\n3\n").unwrap();
    let err = extract(&CsvExtractor::new(), json!({"path": "in.csv"}), d).await.unwrap_err();
    assert_eq!(err.code, "extract.parse_error");
    assert!(err.message.contains("line 3") && err.message.contains("1 field but the header has 2"), "{}", err.message);
    std::fs::write(d.join("in.csv"), "a,b\n1,\"x\n2,y\n").unwrap();
    let err = extract(&CsvExtractor::new(), json!({"path": "in.csv"}), d).await.unwrap_err();
    assert_eq!(err.code, "extract.parse_error");
    assert!(err.message.contains("in.csv: line 2") && err.message.contains("unterminated"), "{}", err.message);
    // Only comment and blank lines: no records, the selected columns typed by dtype.
    std::fs::write(d.join("in.csv"), "# nothing today\n\n").unwrap();
    let cfg = json!({"path": "in.csv", "comment": "#", "columns": ["id", "at"], "dtype": {"id": "int64"}, "parse_dates": ["at"]});
    let (schema, batches, _) = extract(&CsvExtractor::new(), cfg, d).await.unwrap();
    assert!(batches.is_empty());
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert_eq!(schema.field(1).data_type(), &DataType::Timestamp(TimeUnit::Microsecond, None));
}

#[tokio::test]
async fn gzip_input_streams_by_suffix() {
    use std::io::Write;
    let dir = tmp();
    let d = dir.path();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(MIXED.as_bytes()).unwrap();
    std::fs::write(d.join("in.csv.gz"), gz.finish().unwrap()).unwrap();
    let (schema, batches, tel) =
        extract(&CsvExtractor::new(), json!({"path": "in.csv.gz", "chunk_size": 1}), d).await.unwrap();
    write(&CsvWriter::new(), json!({"path": "out.csv"}), d, schema, batches, true).await.unwrap();
    assert_eq!(std::fs::read_to_string(d.join("out.csv")).unwrap(), MIXED);
    // Bytes read count the decoded CSV.
    assert_eq!(tel.counters().bytes_read.load(std::sync::atomic::Ordering::Relaxed), MIXED.len() as u64);
}

/// Durations (MySQL TIME) print as MySQL's TIME text and survive Parquet with their unit.
#[tokio::test]
async fn durations_print_as_mysql_time_through_parquet() {
    let dir = tmp();
    let d = dir.path();
    let schema = Arc::new(Schema::new(vec![
        Field::new("s", DataType::Duration(TimeUnit::Second), true),
        Field::new("ms", DataType::Duration(TimeUnit::Millisecond), true),
        Field::new("us", DataType::Duration(TimeUnit::Microsecond), true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(DurationSecondArray::from(vec![Some(45_296), Some(-3_020_399), None])),
            Arc::new(DurationMillisecondArray::from(vec![Some(-3_723_250), Some(0), None])),
            Arc::new(DurationMicrosecondArray::from(vec![Some(45_296_500_000), Some(86_400_000_001), None])),
        ],
    )
    .unwrap();
    let want = "s,ms,us\n12:34:56,-01:02:03.250,12:34:56.500000\n-838:59:59,00:00:00.000,24:00:00.000001\n,,\n";
    write(&CsvWriter::new(), json!({"path": "out.csv"}), d, schema.clone(), vec![batch.clone()], true).await.unwrap();
    assert_eq!(std::fs::read_to_string(d.join("out.csv")).unwrap(), want);
    write(&ParquetWriter::new(), json!({"path": "t.parquet"}), d, schema.clone(), vec![batch], true).await.unwrap();
    let (back, batches, _) = extract(&ParquetExtractor::new(), json!({"path": "t.parquet"}), d).await.unwrap();
    assert_eq!(
        back.fields().iter().map(|f| f.data_type().clone()).collect::<Vec<_>>(),
        schema.fields().iter().map(|f| f.data_type().clone()).collect::<Vec<_>>()
    );
    write(&CsvWriter::new(), json!({"path": "out.csv"}), d, back, batches, true).await.unwrap();
    assert_eq!(std::fs::read_to_string(d.join("out.csv")).unwrap(), want);
}
