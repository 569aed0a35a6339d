#!/usr/bin/env bash
# Thin wrapper around bench/mysql_compare.py (MySQL -> CSV side by side: INTO OUTFILE, the mariadb
# client, ConnectorX, osiris). Every option passes through; see `bash bench/mysql_compare.sh --help`.
#
#   bash bench/mysql_compare.sh --self-check      # 20,000 rows, 1 run: proves the set-up works
#   bash bench/mysql_compare.sh --rows 1m         # bench.orders_1m, 3 runs
#   bash bench/mysql_compare.sh --rows 1m,10m     # both anchor sizes, plus the RSS scaling target
set -euo pipefail
py=$(command -v python3.11 || command -v python3) || { echo "error: python3 not found" >&2; exit 2; }
exec "$py" "$(dirname "$0")/mysql_compare.py" "$@"
