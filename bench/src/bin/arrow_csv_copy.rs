//! The anchor of the CSV → CSV comparison: arrow-rs's own CSV reader and writer, streaming
//! 8192-row batches, schema inferred from the first 10,000 rows. `arrow_csv_copy <in> <out>`.

use std::io::BufWriter;
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(input), Some(output)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: arrow_csv_copy <input.csv> <output.csv>");
        std::process::exit(2);
    };
    let format = arrow_csv::reader::Format::default().with_header(true);
    let (schema, _) = format.infer_schema(std::fs::File::open(input)?, Some(10_000))?;
    let reader = arrow_csv::ReaderBuilder::new(Arc::new(schema))
        .with_header(true)
        .with_batch_size(8192)
        .build(std::fs::File::open(input)?)?;
    let mut writer = arrow_csv::Writer::new(BufWriter::with_capacity(1 << 20, std::fs::File::create(output)?));
    for batch in reader {
        writer.write(&batch?)?;
    }
    Ok(())
}
