//! CSV components: `filesystem.csv_extractor` and `filesystem.csv_writer`.

mod compression;
mod extract;
pub(crate) mod format;
mod infer;
mod reader;
mod write;

pub use write::CsvEncoder;

use osiris_engine::driver::{Driver, DriverError};
use osiris_engine::registry::Component;
use osiris_engine::spec::{ComponentSpec, ConfigField, FieldType, Mode};
use serde_json::{Map, Value, json};

/// Name of the CSV extractor component.
pub const EXTRACTOR_NAME: &str = "filesystem.csv_extractor";
/// Name of the CSV writer component.
pub const WRITER_NAME: &str = "filesystem.csv_writer";

/// `filesystem.csv_extractor`: reads a CSV file as a stream of batches with lossless type inference.
pub struct CsvExtractor {
    spec: ComponentSpec,
}

impl Default for CsvExtractor {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvExtractor {
    /// The component with its spec.
    pub fn new() -> Self {
        use FieldType::*;
        let config = vec![
            ConfigField::required(
                "path",
                String,
                "CSV file to read; relative paths resolve against the connection's base_dir, else the working directory",
            )
            .input_file(),
            ConfigField::with_default(
                "delimiter",
                String,
                json!(","),
                "Field delimiter: one ASCII character (`\\t` or `tab` for a tab)",
            ),
            ConfigField::with_default("encoding", String, json!("utf-8"), "Text encoding: utf-8, latin-1 or ascii"),
            ConfigField::with_default(
                "header",
                Any,
                json!(true),
                "true: the first record holds the column names; a number N (pandas): record N does, the N before it are skipped (`header: 0` is `true`); false or null: no header, columns are named 0, 1, 2, ...",
            ),
            ConfigField::optional("columns", Array, "Column names to keep, in this order"),
            ConfigField::with_default(
                "skip_rows",
                Integer,
                json!(0),
                "Records to skip at the start of the file, before the header (and before the records a numeric `header` skips)",
            ),
            ConfigField::optional("limit", Integer, "Maximum number of data rows to read"),
            ConfigField::optional(
                "na_values",
                Array,
                "Strings read as NULL, quoted or not (an unquoted empty field is always NULL)",
            ),
            ConfigField::with_default("chunk_size", Integer, json!(10000), "Rows per output batch"),
            ConfigField::with_default(
                "skip_blank_lines",
                Boolean,
                json!(true),
                "Blank lines are skipped (always: a blank line holds no record)",
            ),
            ConfigField::optional("comment", String, "Lines starting with this character are skipped"),
            ConfigField::optional(
                "dtype",
                Object,
                "Column → type (string, int64, uint64, float64, boolean, date, timestamp, timestamptz, decimal(p,s)) overriding inference; explicit types parse leniently",
            ),
            ConfigField::with_default(
                "infer_rows",
                Integer,
                json!(10000),
                "Rows sampled for type inference; 0 reads the whole file first (two passes)",
            ),
            ConfigField::optional(
                "parse_dates",
                Any,
                "A list of columns read as dates or timestamps: inferred when their text is ISO-8601, else parsed leniently as timestamps (`2024-01-31 10:00`); a value that does not parse fails the step. true/false are accepted for Osiris compatibility (ISO-8601 dates and timestamps are always recognised)",
            ),
            ConfigField::with_default(
                "compression",
                String,
                json!("infer"),
                "infer: by the file suffix (.gz, .bz2, .zip, .xz; others are plain); or gzip, bz2, zip (one file in the archive), xz, none. Decoded while reading (bytes_read counts the decoded bytes).",
            )
            .allowed(["infer", "gzip", "bz2", "zip", "xz", "none"]),
        ];
        let spec = ComponentSpec {
            name: EXTRACTOR_NAME.into(),
            version: "0.1.0".into(),
            title: "Read a CSV file".into(),
            description: "Streams a CSV file (RFC 4180: quoted fields, doubled quotes, embedded newlines; gzip, bzip2, xz or zip compressed) as Arrow batches in bounded memory. \
Types are inferred losslessly from a sample, only when every value is exactly the text the CSV writer prints back: int64, uint64 (integers above the int64 range), \
float64, decimal(p,s) (every value with the same s decimals, as DECIMAL prints them, e.g. `12.50`; precision at least 18, more when the data needs it; integers beyond 64 bits are decimal(p,0)), \
boolean, date, timestamp, and timestamp with zone (`...Z` or `...+02:00`, stored in UTC and written back with Z); otherwise string. \
NULL and the empty string stay apart, as in PostgreSQL's CSV format: an unquoted empty field is NULL, a quoted one (`\"\"`) is the empty string. \
`\"\"` is text no other type prints, so a column holding it is inferred as string; a column with an explicit non-string `dtype` reads it as NULL. \
A later value that does not fit the inferred type (`\"\"` included) fails with extract.parse_error naming line and column. \
Malformed input fails with extract.parse_error naming file and line: a quoted field never closed (the line where the quote opened), and a row with fewer or more fields than the header (without a header: the first row). \
A file without records (0 bytes, or only blank or comment lines) gives no rows, with the columns of `columns` (as strings unless `dtype` says otherwise) or none."
                .into(),
            modes: vec![Mode::Extract],
            config,
            connection: Some(crate::common::filesystem_connection()),
            example: Some(json!({"path": "data/customers.csv", "delimiter": ",", "header": true})),
        };
        CsvExtractor { spec }
    }
}

impl Component for CsvExtractor {
    fn spec(&self) -> &ComponentSpec {
        &self.spec
    }

    fn create(&self, config: &Map<String, Value>) -> Result<Box<dyn Driver>, DriverError> {
        let opts = extract::ExtractOptions::parse(config)?;
        Ok(Box::new(extract::CsvExtractorDriver { opts }))
    }

    fn check_connection<'a>(
        &'a self,
        connection: &'a osiris_engine::connections::BoundConnection,
    ) -> Option<futures::future::BoxFuture<'a, Result<(), DriverError>>> {
        Some(Box::pin(async move { crate::common::check_base_dir(connection) }))
    }
}

/// `filesystem.csv_writer`: writes its input as CSV, atomically (temporary file + rename).
pub struct CsvWriter {
    spec: ComponentSpec,
}

impl Default for CsvWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvWriter {
    /// The component with its spec.
    pub fn new() -> Self {
        use FieldType::*;
        let config = vec![
            ConfigField::required("path", String, "CSV file to write; relative paths resolve against the connection's base_dir, else the working directory")
                .output_file(),
            ConfigField::with_default("delimiter", String, json!(","), "Field delimiter: one ASCII character (`\\t` or `tab` for a tab)"),
            ConfigField::with_default("header", Boolean, json!(true), "Write a header line with the column names"),
            ConfigField::with_default("encoding", String, json!("utf-8"), "Text encoding: utf-8, latin-1 or ascii"),
            ConfigField::with_default("newline", String, json!("lf"), "Line terminator").allowed(["lf", "crlf"]),
            ConfigField::with_default("sort_columns", Boolean, json!(false), "Sort columns by name (Osiris's order) instead of keeping the source order"),
            ConfigField::with_default("create_dirs", Boolean, json!(true), "Create missing parent directories"),
            ConfigField::with_default("quoting", String, json!("minimal"), "minimal: quote only fields with a delimiter, quote or line break, and empty values; all: quote every value; nonnumeric: quote all values but numbers. NULL stays unquoted (except in a one-column file)")
                .allowed(["minimal", "all", "nonnumeric"]),
            ConfigField::optional("chunk_size", Integer, "Accepted for Osiris compatibility; ignored (batches are written as they arrive)"),
        ];
        let spec = ComponentSpec {
            name: WRITER_NAME.into(),
            version: "0.1.0".into(),
            title: "Write a CSV file".into(),
            description: "Writes its single input as RFC 4180 CSV: NULL as an empty unquoted field and an empty string (or empty binary) as `\"\"`, \
so NULL and the empty string stay apart as in PostgreSQL's CSV format (only in a one-column file is NULL written as `\"\"` too, since a blank line would be skipped, so it reads back as an empty string); \
exact decimals, integers and booleans plain, \
floats as the shortest round-trip text (Python repr style), dates YYYY-MM-DD, timestamps YYYY-MM-DDTHH:MM:SS[.fff] (UTC with Z when zoned), binary as lowercase hex. \
Columns keep the source order unless sort_columns. A regular file is written under a temporary name and renamed on success, so a failed run never leaves a truncated file (a run killed outright leaves the temporary file, which the next run writing the same path removes); a symlink's target is replaced that way and the link stays. A FIFO, a device (/dev/null) or /dev/stdout is written through, never replaced, with no atomicity: its reader sees rows as they come, and a failed run leaves what it wrote."
                .into(),
            modes: vec![Mode::Write],
            config,
            connection: Some(crate::common::filesystem_connection()),
            example: Some(json!({"path": "output/customers.csv", "delimiter": ",", "newline": "lf"})),
        };
        CsvWriter { spec }
    }
}

impl Component for CsvWriter {
    fn spec(&self) -> &ComponentSpec {
        &self.spec
    }

    fn create(&self, config: &Map<String, Value>) -> Result<Box<dyn Driver>, DriverError> {
        let opts = write::WriterOptions::parse(config)?;
        Ok(Box::new(write::CsvWriterDriver { opts }))
    }
}
