#!/usr/bin/env bash
# The main job: run the bundled example pipeline on the bundled data and show what it wrote.
# Usage: bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --locked --bin osiris
osiris=target/debug/osiris

$osiris run examples/pipelines/orders_fanout.yaml
echo
echo "== output/orders.csv (identical to examples/data/orders.csv) =="
cmp examples/data/orders.csv output/orders.csv && echo "byte-identical: yes"
ls -l output/orders.csv output/orders.parquet
