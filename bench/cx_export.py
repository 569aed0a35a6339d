"""ConnectorX -> pyarrow.csv.write_csv: one of the exporters of bench/mysql_compare.py.

Runs inside the benchmark venv (connectorx + pyarrow), never with the harness's own interpreter.
The connection URL (it holds the password) and the query come from the environment, so they are
not visible in `ps`:

    BENCH_MYSQL_URL='mysql://user:pw@127.0.0.1:3306/bench' BENCH_QUERY='SELECT * FROM t' \
        python cx_export.py OUT.csv
    python cx_export.py --versions      # prints {"connectorx": ..., "pyarrow": ...} and exits

This is the anchors' "ConnectorX -> pyarrow.csv, TCP, binary proto" exporter: ConnectorX reads the
whole result into an Arrow table (binary protocol by default), then pyarrow writes it as CSV.
"""

import json
import os
import sys


def main() -> int:
    import connectorx as cx
    import pyarrow
    import pyarrow.csv as pacsv

    if sys.argv[1:] == ["--versions"]:
        print(json.dumps({"connectorx": getattr(cx, "__version__", "?"), "pyarrow": pyarrow.__version__}))
        return 0
    if len(sys.argv) != 2:
        print("usage: cx_export.py OUT.csv | --versions", file=sys.stderr)
        return 2
    table = cx.read_sql(os.environ["BENCH_MYSQL_URL"], os.environ["BENCH_QUERY"], return_type="arrow")
    pacsv.write_csv(table, sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
