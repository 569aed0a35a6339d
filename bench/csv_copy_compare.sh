#!/usr/bin/env bash
# Side-by-side CSV → CSV comparison on a large generated file: osiris at the default step-cache
# budget and at a small one, against the anchor (arrow-rs's CSV reader + writer), in one run.
# Reports wall time, peak RSS and the ratios osiris / anchor.
#
# Usage: bash bench/csv_copy_compare.sh [rows]     (default 7,000,000 rows ≈ 1.2 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-7000000}"
cargo build --release --locked --workspace --bins >/dev/null
bin=target/release
work="${BENCH_DIR:-$(mktemp -d)}"
mkdir -p "$work/out"
[ -f "$work/orders.csv" ] || "$bin/gen_orders_csv" "$rows" "$work/orders.csv"
cat > "$work/copy.yaml" <<YAML
oml_version: "0.1.0"
name: csv-copy
steps:
  - id: extract
    component: filesystem.csv_extractor
    mode: read
    config: {path: orders.csv}
  - id: write
    component: filesystem.csv_writer
    mode: write
    config: {path: out/copy.csv}
YAML

# measure NAME COMMAND...: prints "NAME seconds max_rss_kib"
measure() {
  local name=$1; shift
  sync
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" >/dev/null 2>"$work/stderr.txt" || { cat "$work/stderr.txt" >&2; exit 1; }
  read -r secs rss < "$work/time.txt"
  echo "$name $secs $rss"
}

size=$(stat -c %s "$work/orders.csv")
echo "input: $rows rows, $size bytes"
results=$(cd "$work" && {
  measure anchor_arrow_csv "$OLDPWD/$bin/arrow_csv_copy" orders.csv out/anchor.csv
  measure osiris_default "$OLDPWD/$bin/osiris" run copy.yaml
  cmp -s orders.csv out/copy.csv && echo "check identical" || echo "check DIFFERENT"
  measure osiris_budget_1MiB "$OLDPWD/$bin/osiris" run copy.yaml --memory-budget 1MiB
  cmp -s orders.csv out/copy.csv && echo "check identical" || echo "check DIFFERENT"
})
echo "$results" | awk -v size="$size" '
  $1 == "check" { print "  output byte-identical to input: " $2; next }
  { t[$1] = $2; m[$1] = $3; order[++n] = $1 }
  END {
    printf "%-22s %9s %10s %12s %10s\n", "run", "wall s", "MB/s", "peak RSS MiB", "time ratio"
    for (i = 1; i <= n; i++) { k = order[i]
      printf "%-22s %9.2f %10.1f %12.1f %10.2f\n", k, t[k], size / t[k] / 1048576, m[k] / 1024, t[k] / t["anchor_arrow_csv"] }
  }'
