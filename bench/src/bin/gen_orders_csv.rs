//! Writes the synthetic orders CSV: `gen_orders_csv <rows> <path>` (about 150 bytes per row;
//! 7,000,000 rows ≈ 1 GB).

use std::io::BufWriter;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(rows), Some(path)) = (args.get(1).and_then(|r| r.parse::<u64>().ok()), args.get(2)) else {
        eprintln!("usage: gen_orders_csv <rows> <path>");
        std::process::exit(2);
    };
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    osiris_bench::datagen::write_orders_csv(&mut out, rows)
}
