#!/usr/bin/env bash
# The main job, the golden path: make sure a local MariaDB runs (installing and starting it when
# absent), load the sample movies database, and export every table to CSV with one SQL transform.
# Then run the file-only example (CSV → CSV + Parquet).
# Usage: bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

bash scripts/services.sh
mariadb -h "${OSIRIS_TEST_MYSQL_HOST:-127.0.0.1}" -P "${OSIRIS_TEST_MYSQL_PORT:-3306}" \
  -u "${OSIRIS_TEST_MYSQL_USER:-osiris_test}" -p"${OSIRIS_TEST_MYSQL_PASSWORD:-osiris_test}" < examples/mysql/movies.sql
echo "loaded the sample database osiris_movies (examples/mysql/movies.sql)"

cargo build --locked --bin osiris
osiris=target/debug/osiris

# examples/osiris_connections.yaml names the password variable; secrets travel only that way.
export OSIRIS_HOME="$PWD/examples"
export OSIRIS_DEMO_MYSQL_PASSWORD="${OSIRIS_TEST_MYSQL_PASSWORD:-osiris_test}"

echo
echo "== MySQL → CSV, with a SQL transform (examples/pipelines/movies_to_csv.yaml) =="
$osiris run examples/pipelines/movies_to_csv.yaml
echo
echo "== output/movies/director_ratings.csv =="
cat output/movies/director_ratings.csv

echo
echo "== CSV → CSV + Parquet (examples/pipelines/orders_fanout.yaml) =="
$osiris run examples/pipelines/orders_fanout.yaml
cmp examples/data/orders.csv output/orders.csv && echo "output/orders.csv is byte-identical to examples/data/orders.csv"
