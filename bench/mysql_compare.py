#!/usr/bin/env python3
"""Side-by-side MySQL/MariaDB -> CSV export benchmark: osiris against the anchors, in one run.

See --help (and docs/benchmarks.md) for what it does. Python 3.9+ standard library only; the
ConnectorX exporter runs in its own venv (bench/cx_export.py).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import resource
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parent.parent
GEN_SQL = REPO / "bench" / "sql" / "gen_orders.sql"
CX_SCRIPT = REPO / "bench" / "cx_export.py"
DB = "bench"                       # the database gen_orders.sql creates the tables in
BENCH_USER = "osiris_bench"        # the account the exporters log in with (created by the harness)
PASSWORD_VAR = "OSIRIS_BENCH_MYSQL_PASSWORD"   # env var osiris's connections file refers to
DEFAULT_VENV = Path.home() / ".cache" / "osiris-bench-venv"
GIB = 1 << 30
ALL_TOOLS = ("outfile", "cli", "cx", "osiris", "osiris-tls")
DEFAULT_TOOLS = ("outfile", "cli", "cx", "osiris")

# The project's targets (docs/benchmarks.md): (key, description, goal, unit).
TARGET_WALL_RATIO = 0.65     # osiris wall / INTO OUTFILE wall
TARGET_CPU_US_ROW = 0.6      # osiris client CPU µs per row
TARGET_RSS_MIB = 100.0       # osiris peak RSS
TARGET_RSS_SCALING = 1.2     # osiris peak RSS at the largest size / at the smallest
# The CPU target read as a ratio to ConnectorX in the same run (0.6 against its 1.26 µs/row in the
# anchors), for machines whose CPU is slower or faster than the anchors' machine.
TARGET_CPU_VS_CX = 0.6 / 1.26

LOCK_FILE_TEXT = str(Path(tempfile.gettempdir()) / "osiris-mysql-bench.lock")
HELP_EPILOG = f"""\
what it does, in order
  1. Checks that MariaDB answers as root over the unix socket (--admin, default `mariadb -uroot`)
     and finds the server process (for its CPU time). Fails with a clear message if it cannot.
  2. Creates or refreshes the benchmark account `{BENCH_USER}`@`127.0.0.1`/`localhost` with a new
     random password (SELECT on {DB}.*, FILE for INTO OUTFILE). The password only ever reaches the
     exporters through a 0600 client option file and their child environment.
  3. Raises innodb_buffer_pool_size to at least --buffer-pool (SET GLOBAL) so the table stays in
     memory, creates a missing table with bench/sql/gen_orders.sql, and reads the whole table once
     (warm-up, outside the timing; it also counts the line breaks inside text values, which the
     row-count check needs).
  4. Runs the exporters round-robin: run 1 of every tool, then run 2, ... Before each run the
     output is deleted and `sync` runs, both outside the timing. Medians per tool are reported.

tools (--tools, default all)
  outfile  SELECT * ... INTO OUTFILE (the server writes the CSV; the mariadb client only waits)
  cli      mariadb --batch --quick --raw over TCP, stdout to a file (TSV)
  cx       ConnectorX (binary protocol) -> pyarrow.csv.write_csv, in the venv --venv (created with
           `python3 -m venv` + `pip install connectorx pyarrow` when missing; if that fails the tool
           is reported as "not available: <reason>")
  osiris   `osiris run` of mysql.extractor (query, batch_size 16384) -> filesystem.csv_writer; the
           release binary is built with `cargo build --release --locked --bin osiris` unless
           --osiris PATH is given. Its connections file reads the password from ${{{PASSWORD_VAR}}},
           set only in the child's environment. It connects with `ssl_mode: DISABLED` (plaintext),
           whatever the server offers.
  osiris-tls the same over TLS (`ssl_mode: REQUIRED`; added by --tls), to report the golden path
           with TLS next to plaintext from one run. The server must offer TLS: the plain test
           server has none; the TLS instance of scripts/mysql_tls_services.sh does:
             --tls --port 3307 --admin "mariadb --no-defaults -S /var/tmp/osiris-mysql-tls/run/tls.sock -uroot"

measured per run
  wall s         from spawning the exporter to reaping it (time.perf_counter)
  client CPU s   user+sys of the exporter and every child it waited for (os.wait4 rusage)
  peak RSS MiB   peak resident memory of the exporter and its children, 1 MiB = 2^20 bytes:
                 wait4's ru_maxrss when it exceeds the harness's own peak, else the high-water
                 mark (VmHWM) sampled from /proc every 20 ms. (A child of this Python process
                 starts with the harness's RSS as its ru_maxrss; GNU time forks from ~1 MiB.)
  server CPU s   utime+stime delta of mariadbd/mysqld from /proc/<pid>/stat (includes a little
                 background InnoDB work). A run during which other clients ran statements, or
                 other server threads burned CPU, is listed as disturbed under the table
  output MB      size of the file, 1 MB = 10^6 bytes
  rows           line breaks in the output minus header lines minus line breaks inside values;
                 a tool whose count is not the table's row count is flagged WRONG

targets (per size, from the same run): osiris wall / INTO OUTFILE wall <= {TARGET_WALL_RATIO}, osiris client
CPU <= {TARGET_CPU_US_ROW} µs/row (and, for machines of another speed, <= {TARGET_CPU_VS_CX:.3f} x ConnectorX's
client CPU, the same target relative to ConnectorX's 1.26 µs/row in the anchors), osiris peak RSS <=
{TARGET_RSS_MIB:g} MiB, and with two or more sizes
osiris peak RSS largest/smallest <= {TARGET_RSS_SCALING}. Each is printed as PASS or MISS.

output: the report is printed and written to OUT/report.md; OUT/report.json has every raw run.
one invocation at a time: a second one exits with an error while the first holds
{LOCK_FILE_TEXT}.

exit status: 0 when every available tool produced the right row count in every run; 1 when a
tool failed, was flagged, or osiris was not available; 2 on a set-up error (server unreachable,
wrong table, bad option).

examples
  python3 bench/mysql_compare.py --self-check            # 20,000 rows, 1 run: proves it works
  python3 bench/mysql_compare.py --rows 1m               # bench.orders_1m, 3 runs
  python3 bench/mysql_compare.py --rows 1m,10m --runs 3  # both sizes + the RSS scaling target
  python3 bench/mysql_compare.py --rows 1m --tools outfile,osiris --osiris target/release/osiris
  python3 bench/mysql_compare.py --rows 250000:orders_250k --keep-csv --out /data/bench
  python3 bench/mysql_compare.py --rows 1m --tls --port 3307 \\
      --admin "mariadb --no-defaults -S /var/tmp/osiris-mysql-tls/run/tls.sock -uroot"   # TLS vs plaintext
"""


class BenchError(Exception):
    """A set-up problem the user has to fix; printed without a traceback, exit 2."""


class Unavailable(Exception):
    """A tool that cannot run on this machine; it is reported, never silently dropped."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Options


@dataclass
class Size:
    rows: int
    table: str


def parse_count(text: str) -> int:
    m = re.fullmatch(r"(\d+)([kKmM]?)", text.replace("_", ""))
    if not m:
        raise BenchError(f"--rows: '{text}' is not a row count (e.g. 20000, 20k, 1m, 10m)")
    return int(m.group(1)) * {"": 1, "k": 1000, "m": 1_000_000}[m.group(2).lower()]


def default_table(rows: int) -> str:
    # The anchors' names: bench.orders (10M rows) and bench.orders_1m.
    if rows == 10_000_000:
        return "orders"
    if rows % 1_000_000 == 0:
        return f"orders_{rows // 1_000_000}m"
    if rows % 1000 == 0:
        return f"orders_{rows // 1000}k"
    return f"orders_{rows}"


def parse_sizes(spec: str, table: Optional[str]) -> list[Size]:
    sizes = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        count, _, name = part.partition(":")
        rows = parse_count(count)
        if rows <= 0:
            raise BenchError("--rows: the row count must be positive")
        sizes.append(Size(rows, name or default_table(rows)))
    if not sizes:
        raise BenchError("--rows: no size given")
    if table:
        if len(sizes) != 1:
            raise BenchError("--table works with a single --rows size; use --rows N:TABLE,M:TABLE2")
        sizes[0].table = table
    for s in sizes:
        if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", s.table):
            raise BenchError(f"table name '{s.table}': use letters, digits and _ only")
    if len({s.table for s in sizes}) != len(sizes):
        raise BenchError("--rows: two sizes map to the same table")
    return sorted(sizes, key=lambda s: s.rows)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="mysql_compare.py",
        description="Export the same MariaDB table to CSV with INTO OUTFILE, the mariadb client, "
        "ConnectorX and osiris, interleaved over N runs, and report medians, ratios and the "
        "project's targets.",
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rows", default="1m", metavar="SIZES",
                   help="comma-separated sizes: 1m (bench.orders_1m), 10m (bench.orders), or a count "
                        "(20000, 250k) with an optional :TABLE; a missing table is generated "
                        "(default: 1m)")
    p.add_argument("--table", help="table name for a single --rows size (default: derived from it)")
    p.add_argument("--runs", type=int, default=3, help="runs per tool and size (default: 3)")
    p.add_argument("--tls", action="store_true",
                   help="also run osiris over TLS (tool osiris-tls, ssl_mode REQUIRED) next to plaintext osiris")
    p.add_argument("--tools", default=",".join(DEFAULT_TOOLS),
                   help=f"comma-separated subset of {','.join(ALL_TOOLS)} (default: all)")
    p.add_argument("--out", type=Path,
                   help="output directory for report.md, report.json, work files and kept CSVs "
                        "(default: $BENCH_DIR, else a new directory under /tmp)")
    p.add_argument("--keep-csv", action="store_true",
                   help="keep each tool's last CSV in OUT/csv (default: delete after every run; "
                        "10M rows are ~2.3 GB per tool)")
    p.add_argument("--osiris", type=Path, metavar="PATH",
                   help="osiris binary to run (default: build the release binary of this checkout)")
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                   help=f"venv for ConnectorX + pyarrow (default: {DEFAULT_VENV})")
    p.add_argument("--host", default="127.0.0.1", help="server address for the exporters (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=3306, help="server port (default: 3306)")
    p.add_argument("--admin", default=None, metavar="CMD",
                   help="command that logs in as an administrator, e.g. 'mariadb -uroot' "
                        "(default: mariadb -uroot, or mysql -uroot when there is no mariadb)")
    p.add_argument("--buffer-pool", default="6G", metavar="SIZE",
                   help="raise innodb_buffer_pool_size to at least this (SET GLOBAL); 0 to leave "
                        "it alone (default: 6G)")
    p.add_argument("--outfile-dir", type=Path,
                   help="directory the server writes INTO OUTFILE files to (default: "
                        "@@secure_file_priv when set, else a new directory under /tmp owned by the "
                        "server's user)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds before a run is killed (default: 3600)")
    p.add_argument("--self-check", action="store_true",
                   help="quick end-to-end check: --rows 20000 (bench.orders_20k) --runs 1, every tool")
    args = p.parse_args(argv)
    if args.self_check:
        args.rows, args.runs, args.table = "20000", 1, None
    if args.runs < 1:
        raise BenchError("--runs must be at least 1")
    args.sizes = parse_sizes(args.rows, args.table)
    args.tool_names = [t.strip() for t in args.tools.split(",") if t.strip()]
    if args.tls and "osiris-tls" not in args.tool_names:
        args.tool_names.append("osiris-tls")
    unknown = [t for t in args.tool_names if t not in ALL_TOOLS]
    if unknown or not args.tool_names:
        raise BenchError(f"--tools: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(ALL_TOOLS)}")
    m = re.fullmatch(r"(\d+)([kKmMgG]?)", args.buffer_pool)
    if not m:
        raise BenchError("--buffer-pool: a size like 6G, 6144M or 0")
    args.buffer_pool_bytes = int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]
    return args


# ---------------------------------------------------------------------------------------------
# The server


class Server:
    """Administration through the admin command (root over the unix socket) and the server's
    process, whose CPU time is read from procfs."""

    def __init__(self, admin: Optional[str]):
        client = shutil.which("mariadb") or shutil.which("mysql")
        if not client:
            raise BenchError("no `mariadb` or `mysql` client on PATH (apt-get install mariadb-client)")
        self.client = client
        self.admin = shlex.split(admin) if admin else [client, "-uroot"]
        self.clk_tck = os.sysconf("SC_CLK_TCK")
        try:
            self.version = self.query("SELECT VERSION()")
        except BenchError as e:
            raise BenchError(
                f"cannot reach MariaDB as an administrator with `{shlex.join(self.admin)}`:\n  {e}\n"
                "Is the server running (bash scripts/services.sh starts a local one) and is this "
                "root (the socket login needs it)? Use --admin to log in differently."
            ) from None
        self.pid = self._find_pid()

    def sql(self, text: str, timeout: Optional[float] = None) -> str:
        """Runs SQL (fed on stdin, so no quoting problems) and returns the batch output."""
        try:
            r = subprocess.run(self.admin + ["--batch", "--skip-column-names"], input=text,
                               capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError as e:
            raise BenchError(f"cannot run `{self.admin[0]}`: {e.strerror}") from None
        except subprocess.TimeoutExpired:
            raise BenchError(f"the server did not answer within {timeout:g} s") from None
        if r.returncode != 0:
            raise BenchError((r.stderr.strip() or f"exit status {r.returncode}").splitlines()[-1])
        return r.stdout

    def query(self, text: str) -> str:
        """One value (first column of the first row); '' for an empty result, None as 'NULL'."""
        out = self.sql(text, timeout=600)    # a COUNT(*) of a cold 10M table takes a while
        return out.split("\n", 1)[0].split("\t")[0]

    def _find_pid(self) -> Optional[int]:
        # The pid file first (it is the server we talk to), then any mariadbd/mysqld process.
        candidates = []
        try:
            pid_file = Path(self.query("SELECT @@pid_file"))
            if not pid_file.is_absolute():
                pid_file = Path(self.query("SELECT @@datadir")) / pid_file
            candidates.append(int(pid_file.read_text().split()[0]))
        except (BenchError, OSError, ValueError, IndexError):
            pass
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if (d / "comm").read_text().strip() in ("mariadbd", "mysqld"):
                        candidates.append(int(d.name))
                except OSError:
                    pass
        for pid in candidates:
            if self.cpu_seconds(pid) is not None:
                return pid
        return None

    def cpu_seconds(self, pid: Optional[int] = None) -> Optional[float]:
        """utime + stime of the server process in seconds, None when unknown (remote server)."""
        pid = pid or self.pid
        if not pid:
            return None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2:].split()   # the command name may contain spaces
        return (int(fields[11]) + int(fields[12])) / self.clk_tck   # fields 14 and 15 of stat(5)

    def thread_cpu(self) -> dict[int, float]:
        """CPU seconds per server thread. With one thread per connection (MariaDB's default) the
        busiest thread during a run is the exporter's connection; CPU in the other threads is
        background InnoDB work or someone else's queries."""
        if not self.pid:
            return {}
        out = {}
        for task in Path(f"/proc/{self.pid}/task").glob("*"):
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            out[int(task.name)] = (int(fields[11]) + int(fields[12])) / self.clk_tck
        return out

    def other_clients(self) -> list[str]:
        """Statements other clients are running right now (not ours, not the server's own)."""
        try:
            out = self.sql(
                "SELECT user, LEFT(REPLACE(COALESCE(info, command), '\n', ' '), 60) "
                "FROM information_schema.processlist WHERE id <> CONNECTION_ID() "
                f"AND command NOT IN ('Sleep', 'Daemon', 'Binlog Dump') AND user NOT IN ('system user', '{BENCH_USER}')",
                timeout=60)
        except BenchError:
            return []
        return [line.replace("\t", ": ", 1) for line in out.splitlines() if line.strip()]

    def server_uid_gid(self) -> Optional[tuple[int, int]]:
        if not self.pid:
            return None
        st = os.stat(f"/proc/{self.pid}")
        return st.st_uid, st.st_gid


def ensure_account(server: Server, password: str) -> None:
    """The exporters' account: read the benchmark database, and FILE for INTO OUTFILE. The
    password is reset on every invocation, so it never has to be stored anywhere."""
    stmts = []
    for host in ("127.0.0.1", "localhost"):
        acct = f"'{BENCH_USER}'@'{host}'"
        stmts += [f"CREATE USER IF NOT EXISTS {acct} IDENTIFIED BY '{password}';",
                  f"ALTER USER {acct} IDENTIFIED BY '{password}';",
                  f"GRANT SELECT ON `{DB}`.* TO {acct};",
                  f"GRANT FILE ON *.* TO {acct};"]
    stmts.append(f"CREATE DATABASE IF NOT EXISTS `{DB}` CHARACTER SET utf8mb4;")
    try:
        server.sql("\n".join(stmts), timeout=60)
    except BenchError as e:
        raise BenchError(f"cannot create the benchmark account {BENCH_USER}: {e}") from None


def ensure_buffer_pool(server: Server, want: int) -> int:
    """Raises innodb_buffer_pool_size to `want` (never lowers it) so runs are warm-cache, like
    the anchors (6G). The resize is asynchronous; wait until the server reports it done."""
    current = int(server.query("SELECT @@innodb_buffer_pool_size"))
    if want <= 0 or current >= want:
        return current
    log(f"raising innodb_buffer_pool_size from {current / GIB:.2f} GiB to {want / GIB:.2f} GiB")
    server.sql(f"SET GLOBAL innodb_buffer_pool_size = {want}", timeout=60)
    for _ in range(240):
        status = server.sql("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_resize_status'", timeout=60)
        value = status.partition("\t")[2].strip()
        if not value or "ompleted" in value or "not needed" in value:
            break
        time.sleep(0.5)
    current = int(server.query("SELECT @@innodb_buffer_pool_size"))
    if current < want:
        log(f"warning: innodb_buffer_pool_size is {current} after the resize (wanted {want})")
    return current


def table_exists(server: Server, table: str) -> bool:
    return server.query(
        f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='{DB}' AND table_name='{table}'") == "1"


def ensure_table(server: Server, size: Size) -> None:
    """Generates a missing table with gen_orders.sql; refuses to touch one of the wrong size."""
    if table_exists(server, size.table):
        rows = int(server.query(f"SELECT COUNT(*) FROM `{DB}`.`{size.table}`"))
        if rows != size.rows:
            raise BenchError(f"{DB}.{size.table} has {rows:,} rows, not {size.rows:,}: drop it "
                             f"(DROP TABLE {DB}.{size.table}) or name another table with --rows {size.rows}:TABLE")
        return
    # gen_orders.sql builds into bench.orders_gen_tmp and renames at the end: a second
    # generation at the same time would destroy the first one's work.
    if table_exists(server, "orders_gen_tmp"):
        raise BenchError(f"{DB}.{size.table} is missing and {DB}.orders_gen_tmp exists: a generation "
                         "seems to be running. Wait for it (or drop orders_gen_tmp if it is stale).")
    log(f"generating {DB}.{size.table} ({size.rows:,} rows) with {GEN_SQL.relative_to(REPO)} …")
    started = time.perf_counter()
    script = f"SET @rows={size.rows}, @tbl='{size.table}';\n" + GEN_SQL.read_text()
    server.sql(script, timeout=6 * 3600)
    log(f"  generated in {time.perf_counter() - started:.1f} s")
    ensure_table(server, size)


def warm_up(server: Server, table: str) -> tuple[int, int]:
    """Reads every row and every text value once (so the timed runs find the table in the
    buffer pool) and returns (rows, line breaks inside text values). The row-count check needs
    the second number: those line breaks appear in every exporter's output."""
    cols = server.sql(
        "SELECT column_name FROM information_schema.columns WHERE table_schema='" + DB + "' AND "
        f"table_name='{table}' AND data_type IN ('char','varchar','tinytext','text','mediumtext',"
        "'longtext','enum','set','json') ORDER BY ordinal_position", timeout=60).split()
    newlines = " + ".join(f"COALESCE(SUM(LENGTH(`{c}`) - LENGTH(REPLACE(`{c}`, CHAR(10), ''))), 0)"
                          for c in cols) or "0"
    out = server.sql(f"SELECT COUNT(*), {newlines} FROM `{DB}`.`{table}`", timeout=3600)
    rows, breaks = out.split()[:2]
    return int(rows), int(breaks)


# ---------------------------------------------------------------------------------------------
# Tools


@dataclass
class Invocation:
    argv: list[str]
    output: Path                      # the file the tool writes
    header_lines: int                 # lines before the first row
    stdout_to_output: bool = False    # the tool prints the data; the harness opens the file
    env: dict = field(default_factory=dict)   # added to the harness's environment
    cwd: Optional[Path] = None


@dataclass
class Tool:
    name: str
    label: str
    prepare: Callable[["Context"], dict]              # returns facts for the report; may raise Unavailable
    invocation: Callable[["Context", Size], Invocation]
    info: dict = field(default_factory=dict)
    unavailable: Optional[str] = None


@dataclass
class Context:
    args: argparse.Namespace
    server: Server
    password: str
    out: Path
    work: Path
    csv_dir: Path
    outfile_dir: Optional[Path] = None
    created_outfile_dir: bool = False
    osiris: Optional[Path] = None
    venv_python: Optional[Path] = None

    def client_argv(self) -> list[str]:
        """The mariadb client logged in as the benchmark account over TCP; the password is in a
        0600 option file (must be the first option), never on the command line."""
        return [self.server.client, f"--defaults-extra-file={self.work / 'client.cnf'}",
                f"-h{self.args.host}", f"-P{self.args.port}", "--protocol=TCP"]


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def prepare_client(ctx: Context) -> None:
    write_private(ctx.work / "client.cnf", f"[client]\nuser={BENCH_USER}\npassword={ctx.password}\n")
    r = subprocess.run(ctx.client_argv() + ["-e", "SELECT 1"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise BenchError(f"the benchmark account cannot log in over TCP at {ctx.args.host}:{ctx.args.port}: "
                         f"{r.stderr.strip()}")


def outfile_prepare(ctx: Context) -> dict:
    """Finds a directory the server may and can write to. MariaDB shows @@secure_file_priv NULL
    when it is unset, which means no restriction (MySQL 8 uses NULL for "disabled"); then a
    fresh directory under /tmp owned by the server's user is used."""
    priv = ctx.server.query("SELECT @@secure_file_priv")
    if ctx.args.outfile_dir:
        ctx.outfile_dir = ctx.args.outfile_dir.resolve()
    elif priv and priv != "NULL":
        ctx.outfile_dir = Path(priv)
    else:
        ctx.outfile_dir = Path(tempfile.mkdtemp(prefix="osiris-bench-outfile-", dir="/tmp"))
        ctx.created_outfile_dir = True
        owner = ctx.server.server_uid_gid()
        if owner:
            os.chown(ctx.outfile_dir, *owner)
        else:
            os.chmod(ctx.outfile_dir, 0o1777)
    if "'" in str(ctx.outfile_dir) or "\\" in str(ctx.outfile_dir):
        raise Unavailable(f"the directory {ctx.outfile_dir} has a quote or backslash in its name")
    # A probe file: proves the privilege, the directory's permissions, and that the server's
    # /tmp is ours (a systemd PrivateTmp server writes somewhere we cannot see).
    probe = ctx.outfile_dir / f"osiris-bench-probe-{os.getpid()}.txt"
    remove(probe)
    r = subprocess.run(ctx.client_argv() + ["-e", f"SELECT 1 INTO OUTFILE '{probe}'"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise Unavailable(f"INTO OUTFILE '{ctx.outfile_dir}' fails (@@secure_file_priv={priv}; "
                          f"use --outfile-dir): {r.stderr.strip()}")
    if not probe.exists():
        raise Unavailable(f"the server wrote {probe} but it is not visible here (private /tmp?); "
                          "use --outfile-dir")
    remove(probe)
    return {"secure_file_priv": priv, "dir": str(ctx.outfile_dir)}


def outfile_invocation(ctx: Context, size: Size) -> Invocation:
    path = ctx.outfile_dir / f"osiris-bench-{size.table}.csv"
    sql = (f"SELECT * FROM `{DB}`.`{size.table}` INTO OUTFILE '{path}' FIELDS TERMINATED BY ',' "
           "OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n'")
    return Invocation(ctx.client_argv() + ["-e", sql], path, header_lines=0)


def cli_prepare(ctx: Context) -> dict:
    r = subprocess.run([ctx.server.client, "--version"], capture_output=True, text=True)
    return {"client": ctx.server.client, "version": r.stdout.strip()}


def cli_invocation(ctx: Context, size: Size) -> Invocation:
    argv = ctx.client_argv() + ["--batch", "--quick", "--raw", "-e", f"SELECT * FROM `{DB}`.`{size.table}`"]
    return Invocation(argv, ctx.csv_dir / f"{size.table}.cli.tsv", header_lines=1, stdout_to_output=True)


def cx_versions(python: Path) -> Optional[dict]:
    r = subprocess.run([str(python), str(CX_SCRIPT), "--versions"], capture_output=True, text=True, timeout=300)
    try:
        return json.loads(r.stdout) if r.returncode == 0 else None
    except ValueError:
        return None


def cx_prepare(ctx: Context) -> dict:
    """The venv is created once and reused; pip runs only when the imports fail."""
    venv = ctx.args.venv.expanduser()
    python = venv / "bin" / "python"
    if not python.exists():
        log(f"creating the ConnectorX venv {venv} …")
        r = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        if r.returncode != 0:
            raise Unavailable(f"python3 -m venv failed: {last_line(r.stderr or r.stdout)}")
    versions = cx_versions(python)
    if versions is None:
        log("installing connectorx and pyarrow into the venv (pip) …")
        r = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                            "connectorx", "pyarrow"], capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            raise Unavailable(f"pip install connectorx pyarrow failed: {last_line(r.stderr or r.stdout)}")
        versions = cx_versions(python)
        if versions is None:
            raise Unavailable("connectorx/pyarrow do not import after pip install")
    ctx.venv_python = python
    return {"venv": str(venv), **versions}


def cx_invocation(ctx: Context, size: Size) -> Invocation:
    url = f"mysql://{BENCH_USER}:{ctx.password}@{ctx.args.host}:{ctx.args.port}/{DB}"
    return Invocation([str(ctx.venv_python), str(CX_SCRIPT), str(ctx.csv_dir / f"{size.table}.cx.csv")],
                      ctx.csv_dir / f"{size.table}.cx.csv", header_lines=1,
                      env={"BENCH_MYSQL_URL": url, "BENCH_QUERY": f"SELECT * FROM {size.table}"})


def osiris_prepare(ctx: Context, home: str = "osiris", ssl_mode: str = "DISABLED") -> dict:
    info: dict = {}
    if ctx.osiris:
        binary = ctx.osiris
    elif ctx.args.osiris:
        binary = ctx.args.osiris.expanduser().resolve()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise Unavailable(f"--osiris {ctx.args.osiris}: not an executable file")
    else:
        binary = build_osiris(ctx)
        info["git"] = git_describe()
    ctx.osiris = binary
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True).stdout.strip()
    st = binary.stat()
    info.update(binary=str(binary), version=version, sha256=sha256_file(binary),
                mtime=datetime.datetime.fromtimestamp(st.st_mtime).isoformat(timespec="seconds"))
    # The connections file refers to the password by name; the value is only in the child's env.
    (ctx.work / home).mkdir(exist_ok=True)
    (ctx.work / home / "osiris_connections.yaml").write_text(
        "version: 1\nconnections:\n  mysql:\n    bench:\n      default: true\n"
        f"      host: {ctx.args.host}\n      port: {ctx.args.port}\n      database: {DB}\n"
        f"      user: {BENCH_USER}\n      password: ${{{PASSWORD_VAR}}}\n      ssl_mode: {ssl_mode}\n")
    info["ssl_mode"] = ssl_mode
    return info


def osiris_tls_prepare(ctx: Context) -> dict:
    have_ssl = ctx.server.query("SELECT @@have_ssl")
    if have_ssl != "YES":
        raise Unavailable(f"the server at {ctx.args.host}:{ctx.args.port} has no TLS (have_ssl {have_ssl}); "
                          "use the TLS instance of scripts/mysql_tls_services.sh (see --help)")
    info = osiris_prepare(ctx, home="osiris-tls", ssl_mode="REQUIRED")
    info["server_tls"] = ctx.server.query("SELECT @@tls_version")
    return info


def build_osiris(ctx: Context) -> Path:
    if not shutil.which("cargo"):
        raise Unavailable("cargo is not on PATH; pass --osiris PATH")
    log("building the release osiris binary (cargo build --release --locked --bin osiris) …")
    build_log = ctx.work / "cargo-build.log"
    with open(build_log, "w") as f:
        r = subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "osiris"],
                           cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise Unavailable(f"cargo build failed (see {build_log}): {last_line(build_log.read_text())}")
    meta = subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=REPO,
                          capture_output=True, text=True)
    target = Path(json.loads(meta.stdout)["target_directory"]) if meta.returncode == 0 else REPO / "target"
    return target / "release" / "osiris"


def osiris_invocation(ctx: Context, size: Size, home_name: str = "osiris") -> Invocation:
    home = ctx.work / home_name
    output = ctx.csv_dir / f"{size.table}.{home_name}.csv"
    pipeline = home / f"{size.table}.yaml"
    pipeline.write_text(
        'oml_version: "0.1.0"\n'
        f"name: mysql-compare-{size.table.replace('_', '-')}\n"
        "steps:\n"
        "  - id: extract\n    component: mysql.extractor\n    mode: read\n"
        f"    config: {{connection: \"@mysql.bench\", query: \"SELECT * FROM {size.table}\", batch_size: 16384}}\n"
        "  - id: write\n    component: filesystem.csv_writer\n    mode: write\n    needs: [extract]\n"
        f"    config: {{path: {json.dumps(str(output))}}}\n")
    return Invocation([str(ctx.osiris), "run", str(pipeline)], output, header_lines=1,
                      env={"OSIRIS_HOME": str(home), PASSWORD_VAR: ctx.password}, cwd=home)


TOOLS = {
    "outfile": ("SELECT INTO OUTFILE (server writes)", outfile_prepare, outfile_invocation),
    "cli": ("mariadb --batch --quick --raw (TCP, TSV)", cli_prepare, cli_invocation),
    "cx": ("ConnectorX -> pyarrow.csv (binary proto)", cx_prepare, cx_invocation),
    "osiris": ("osiris run (mysql.extractor -> csv_writer)", osiris_prepare, osiris_invocation),
    "osiris-tls": ("osiris run over TLS (ssl_mode REQUIRED)", osiris_tls_prepare,
                   lambda ctx, size: osiris_invocation(ctx, size, "osiris-tls")),
}


# ---------------------------------------------------------------------------------------------
# Measuring


def remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def last_line(text: str) -> str:
    """The line of a tool's stderr that says what went wrong: the last one, skipping hints."""
    lines = [l for l in text.strip().splitlines() if l.strip()]
    errors = [l for l in lines if not l.lower().startswith("hint:")]
    return (errors or lines or ["(no output)"])[-1]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_describe() -> str:
    r = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def count_line_breaks(path: Path) -> int:
    """LF bytes, plus one for a last line without a terminator. Fast (bytes.count, page cache)."""
    n, last = 0, b""
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):   # small chunks keep the harness's RSS low
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (1 if last not in (b"", b"\n") else 0)


def run_once(ctx: Context, tool: Tool, size: Size, run_no: int, expected_breaks: int) -> dict:
    """One timed run. Everything but spawning and reaping the exporter is outside the timing."""
    inv = tool.invocation(ctx, size)
    remove(inv.output)
    os.sync()
    err_path = ctx.work / "logs" / f"{size.table}.{tool.name}.run{run_no}.stderr"
    stdout = open(inv.output, "wb") if inv.stdout_to_output else subprocess.DEVNULL
    rec: dict = {"run": run_no, "loadavg_1m_before": round(os.getloadavg()[0], 2)}
    others = ctx.server.other_clients()          # before and after the run, outside the timing
    harness_maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    threads0 = ctx.server.thread_cpu()
    srv0 = ctx.server.cpu_seconds()
    started = time.perf_counter()
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(inv.argv, stdout=stdout, stderr=err, cwd=inv.cwd,
                                env={**os.environ, **inv.env}, start_new_session=True)
        timer = threading.Timer(ctx.args.timeout, kill_group, (proc.pid,))
        timer.start()
        rss = PeakRss(proc.pid)   # Popen returns after the exec, so it samples the exporter itself
        rss.start()
        try:
            # wait4 rather than Popen.wait: its rusage covers the exporter and every child it reaped.
            _, status, ru = os.wait4(proc.pid, 0)
        except BaseException:
            # Ctrl-C does not reach the exporter (own session, for the timeout's group kill).
            kill_group(proc.pid)
            proc.wait()
            raise
        wall = time.perf_counter() - started
        srv1 = ctx.server.cpu_seconds()
        threads1 = ctx.server.thread_cpu()
        timer.cancel()
        peak_rss_mib, rss_source = rss.stop(ru.ru_maxrss, harness_maxrss_kib)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if stdout is not subprocess.DEVNULL:
        stdout.close()
    rec.update(wall_s=wall, client_user_s=ru.ru_utime, client_sys_s=ru.ru_stime,
               client_cpu_s=ru.ru_utime + ru.ru_stime, peak_rss_mib=peak_rss_mib,
               peak_rss_source=rss_source, wait4_maxrss_mib=ru.ru_maxrss / 1024,
               harness_maxrss_mib=harness_maxrss_kib / 1024,
               server_cpu_s=(srv1 - srv0) if srv0 is not None and srv1 is not None else None,
               exit_code=proc.returncode)
    note_disturbance(rec, threads0, threads1, others + ctx.server.other_clients())
    if proc.returncode != 0:
        rec["error"] = (f"timed out after {ctx.args.timeout:g} s" if proc.returncode == -signal.SIGKILL
                        else f"exit {proc.returncode}: {last_line(err_path.read_text(errors='replace'))}")
    check_output(rec, inv, size, expected_breaks)
    finish_output(ctx, inv, tool, size)
    return rec


class PeakRss(threading.Thread):
    """Peak RSS of the exporter and its children, from the kernel's high-water mark (VmHWM in
    /proc/<pid>/status), sampled every 20 ms while it runs; the last sample is the peak up to a
    few ms before exit. Why not ru_maxrss from wait4: a child forked (or vforked) by this Python
    process records the harness's own RSS as its max RSS at exec, so every tool would show at
    least ~20-100 MiB. GNU time (the anchors' method) forks from a ~1 MiB process instead."""

    def __init__(self, pid: int, interval: float = 0.02):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_kib = 0
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            self.sample()
            if self.done.wait(self.interval):
                return

    def sample(self) -> None:
        for pid in self.tree(self.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            m = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
            if m:
                self.peak_kib = max(self.peak_kib, int(m.group(1)))

    @staticmethod
    def tree(pid: int) -> list[int]:
        pids, todo = [], [pid]
        while todo:
            p = todo.pop()
            pids.append(p)
            try:
                for task in Path(f"/proc/{p}/task").iterdir():
                    todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
        return pids

    def stop(self, wait4_maxrss_kib: int, harness_maxrss_kib: int) -> tuple[float, str]:
        """The peak in MiB and where it comes from. wait4's ru_maxrss is max(the harness's RSS
        at the fork, the exporter's own peak): when it is above the harness's peak it can only be
        the exporter's, and exact; otherwise the sampled VmHWM is the answer."""
        self.done.set()
        self.join()
        if wait4_maxrss_kib > harness_maxrss_kib:
            return wait4_maxrss_kib / 1024, "wait4"
        return self.peak_kib / 1024, "vmhwm"


def note_disturbance(rec: dict, threads0: dict, threads1: dict, others: list[str]) -> None:
    """Marks a run that shared the server with other work. Server CPU is the whole mariadbd
    process, so another client's export during the run inflates it (and the wall time); the run
    still counts, but the report says so."""
    deltas = sorted((threads1[t] - threads0.get(t, 0.0) for t in threads1), reverse=True)
    if deltas:
        rec["server_conn_cpu_s"] = deltas[0]               # the busiest thread: our connection
        rec["server_other_cpu_s"] = sum(deltas[1:])
    reasons = []
    if others:
        reasons.append("other clients: " + "; ".join(sorted(set(others))))
    other_cpu = rec.get("server_other_cpu_s", 0.0)
    if other_cpu > max(0.2, 0.15 * (rec.get("server_cpu_s") or 0.0)):
        reasons.append(f"{other_cpu:.2f} s of server CPU outside the exporter's connection")
    if reasons:
        rec["disturbed"] = "; ".join(reasons)


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def check_output(rec: dict, inv: Invocation, size: Size, expected_breaks: int) -> None:
    """Rows = line breaks - header lines - line breaks inside values; must equal the table's."""
    if not inv.output.exists():
        rec.update(output_bytes=0, rows=0)
    else:
        rec["output_bytes"] = inv.output.stat().st_size
        rec["rows"] = max(0, count_line_breaks(inv.output) - inv.header_lines - expected_breaks)
    rec["rows_ok"] = rec["rows"] == size.rows
    if not rec["rows_ok"] and "error" not in rec:
        rec["error"] = f"output has {rec['rows']:,} rows, the table {size.rows:,}"


def finish_output(ctx: Context, inv: Invocation, tool: Tool, size: Size) -> None:
    if not ctx.args.keep_csv:
        remove(inv.output)
    elif inv.output.exists() and inv.output.parent != ctx.csv_dir:
        # INTO OUTFILE wrote into the server's directory: keep the file next to the others.
        shutil.move(str(inv.output), str(ctx.csv_dir / f"{size.table}.{tool.name}.csv"))


def median(values: list) -> Optional[float]:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(runs: list[dict], rows: int) -> dict:
    ok = [r for r in runs if "error" not in r]
    s = {k: median([r[k] for r in ok]) for k in
         ("wall_s", "client_cpu_s", "server_cpu_s", "peak_rss_mib", "output_bytes", "rows")}
    s["runs_ok"], s["runs"] = len(ok), len(runs)
    s["wall_runs"] = [round(r["wall_s"], 3) for r in runs]
    if s["wall_s"]:
        s["rows_per_s"] = rows / s["wall_s"]
        s["client_cpu_us_per_row"] = s["client_cpu_s"] * 1e6 / rows
    s["errors"] = sorted({r["error"] for r in runs if "error" in r})
    s["disturbed"] = [f"run {r['run']}: {r['disturbed']}" for r in runs if "disturbed" in r]
    return s


# ---------------------------------------------------------------------------------------------
# Report


def fmt(v: Optional[float], spec: str) -> str:
    return "–" if v is None else format(v, spec)


def size_section(size: Size, result: dict, tools: list[Tool], runs: int) -> list[str]:
    outfile = result["tools"].get("outfile", {}).get("summary", {}).get("wall_s")
    lines = [f"## {DB}.{size.table}: {size.rows:,} rows, {runs} run(s) per tool, round-robin; medians",
             "",
             "| tool | wall s | rows/s | vs OUTFILE | client CPU s | client CPU µs/row | server CPU s "
             "| peak RSS MiB | output MB | rows | wall s of each run |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    notes, disturbed = [], []
    for tool in tools:
        if tool.unavailable:
            lines.append(f"| {tool.label} | not available: {tool.unavailable} |" + " |" * 9)
            continue
        s = result["tools"][tool.name]["summary"]
        ratio = s["wall_s"] / outfile if s["wall_s"] and outfile else None
        rows_cell = "ok" if not s["errors"] else "**WRONG/FAILED**"
        lines.append(
            f"| {tool.label} | {fmt(s['wall_s'], '.2f')} | {fmt(s.get('rows_per_s'), ',.0f')} "
            f"| {fmt(ratio, '.2f')} | {fmt(s['client_cpu_s'], '.2f')} | {fmt(s.get('client_cpu_us_per_row'), '.3f')} "
            f"| {fmt(s['server_cpu_s'], '.2f')} | {fmt(s['peak_rss_mib'], '.1f')} "
            f"| {fmt(s['output_bytes'] and s['output_bytes'] / 1e6, '.0f')} | {rows_cell} "
            f"| {' / '.join(f'{w:.2f}' for w in s['wall_runs'])} |")
        notes += [f"- {tool.label}: {e}" for e in s["errors"]]
        disturbed += [f"- {tool.label}, {d}" for d in s["disturbed"]]
    if notes:
        lines += ["", "Problems (medians use the good runs only):", *notes]
    if disturbed:
        lines += ["", "Runs that shared the server with other work (counted, but their wall and server "
                  "CPU are inflated; rerun on a quiet machine):", *disturbed]
    return lines + [""]


def targets(results: list[tuple[Size, dict]]) -> list[dict]:
    """The project's targets, each from numbers measured in this invocation."""
    out = []

    def osiris(result: dict) -> dict:
        return result["tools"].get("osiris", {}).get("summary", {})

    for size, result in results:
        o = osiris(result)
        outfile = result["tools"].get("outfile", {}).get("summary", {}).get("wall_s")
        wall = o.get("wall_s")
        out.append(target(f"osiris wall / INTO OUTFILE wall ({size.table})",
                          wall / outfile if wall and outfile else None, TARGET_WALL_RATIO, ".3f"))
        out.append(target(f"osiris client CPU µs/row ({size.table})", o.get("client_cpu_us_per_row"),
                          TARGET_CPU_US_ROW, ".3f"))
        cx = result["tools"].get("cx", {}).get("summary", {}).get("client_cpu_us_per_row")
        cpu = o.get("client_cpu_us_per_row")
        out.append(target(f"osiris client CPU / ConnectorX client CPU ({size.table})",
                          cpu / cx if cpu and cx else None, TARGET_CPU_VS_CX, ".3f"))
        out.append(target(f"osiris peak RSS MiB ({size.table})", o.get("peak_rss_mib"), TARGET_RSS_MIB, ".1f"))
    if len(results) >= 2:
        (small, rs), (big, rb) = results[0], results[-1]
        a, b = osiris(rs).get("peak_rss_mib"), osiris(rb).get("peak_rss_mib")
        out.append(target(f"osiris peak RSS {big.table} / {small.table}", b / a if a and b else None,
                          TARGET_RSS_SCALING, ".3f"))
    return out


def tls_section(results: list[tuple[Size, dict]]) -> list[str]:
    """osiris over TLS next to plaintext osiris, per size (only when osiris-tls ran)."""
    rows = []
    for size, result in results:
        plain = result["tools"].get("osiris", {}).get("summary", {})
        tls = result["tools"].get("osiris-tls", {}).get("summary", {})
        if not tls:
            continue
        pw, tw = plain.get("wall_s"), tls.get("wall_s")
        pc, tc = plain.get("client_cpu_us_per_row"), tls.get("client_cpu_us_per_row")
        rows.append(f"| {size.table} | {fmt(pw, '.3f')} | {fmt(tw, '.3f')} | "
                    f"{fmt(tw / pw if pw and tw else None, '.3f')} | {fmt(pc, '.3f')} | {fmt(tc, '.3f')} | "
                    f"{fmt(size.rows / tw / 1e6 if tw else None, '.2f')} |")
    if not rows:
        return []
    return ["## TLS vs plaintext (osiris)", "",
            "| table | plaintext wall s | TLS wall s | TLS / plaintext | plaintext CPU µs/row | TLS CPU µs/row "
            "| TLS M rows/s |", "|---|---:|---:|---:|---:|---:|---:|", *rows, ""]


def target(name: str, value: Optional[float], goal: float, spec: str) -> dict:
    verdict = "n/a" if value is None else ("PASS" if value <= goal else "MISS")
    return {"target": name, "value": value, "goal": goal, "result": verdict, "spec": spec}


def render(meta: dict, results: list[tuple[Size, dict]], tools: list[Tool], runs: int,
           tgs: list[dict]) -> str:
    lines = ["# MySQL → CSV side by side", "",
             f"{meta['started']} on {meta['host']} ({meta['cpus']} CPUs, 1-min load average "
             f"{meta['loadavg_start']} at the start, {meta['loadavg_end']} at the end); "
             f"server {meta['server_version']}, innodb_buffer_pool_size {meta['buffer_pool_bytes'] / GIB:.2f} GiB.",
             ""]
    for tool in tools:
        if tool.info:
            facts = ", ".join(f"{k} {v}" for k, v in tool.info.items() if k not in ("sha256",))
            lines.append(f"- {tool.label}: {facts}")
    lines.append("")
    for size, result in results:
        lines += size_section(size, result, tools, runs)
    lines += tls_section(results)
    lines += ["## Targets", "", "| target | value | goal | result |", "|---|---:|---:|---|"]
    for t in tgs:
        lines.append(f"| {t['target']} | {fmt(t['value'], t['spec'])} | ≤ {t['goal']:g} | {t['result']} |")
    lines += ["", "Wall time on a machine where client and server share one core is about client CPU + "
              "server CPU; see docs/benchmarks.md before comparing numbers across machines.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main


def make_out_dir(arg: Optional[Path]) -> Path:
    if arg:
        out = arg
    elif os.environ.get("BENCH_DIR"):
        out = Path(os.environ["BENCH_DIR"])
    else:
        return Path(tempfile.mkdtemp(prefix="osiris-mysql-bench-", dir="/tmp"))
    out.mkdir(parents=True, exist_ok=True)
    return out.resolve()


def prepare_tools(ctx: Context, names: list[str]) -> list[Tool]:
    tools = []
    for name in ALL_TOOLS:          # a fixed order, so the round-robin order is always the same
        if name not in names:
            continue
        label, prep, inv = TOOLS[name]
        tool = Tool(name, label, prep, inv)
        try:
            tool.info = prep(ctx)
        except Unavailable as e:
            tool.unavailable = str(e)
            log(f"{name}: not available: {e}")
        except (OSError, subprocess.SubprocessError) as e:
            tool.unavailable = f"{type(e).__name__}: {e}"
            log(f"{name}: not available: {tool.unavailable}")
        tools.append(tool)
    return tools


def run_size(ctx: Context, size: Size, tools: list[Tool]) -> dict:
    log(f"warm-up read of {DB}.{size.table} …")
    started = time.perf_counter()
    rows, breaks = warm_up(ctx.server, size.table)
    log(f"  {rows:,} rows, {breaks:,} line breaks inside values, {time.perf_counter() - started:.1f} s")
    result: dict = {"table": size.table, "rows": size.rows, "line_breaks_in_values": breaks,
                    "tools": {t.name: {"label": t.label, "runs": []} for t in tools if not t.unavailable}}
    for run_no in range(1, ctx.args.runs + 1):
        for tool in tools:
            if tool.unavailable:
                continue
            rec = run_once(ctx, tool, size, run_no, breaks)
            result["tools"][tool.name]["runs"].append(rec)
            log(f"  {size.table} run {run_no}/{ctx.args.runs} {tool.name:8s} wall {rec['wall_s']:7.2f} s  "
                f"client CPU {rec['client_cpu_s']:6.2f} s  server CPU {fmt(rec['server_cpu_s'], '6.2f')} s  "
                f"RSS {rec['peak_rss_mib']:7.1f} MiB  rows {rec['rows']:,}"
                + (f"  ERROR {rec['error']}" if "error" in rec else "")
                + (f"  (disturbed: {rec['disturbed']})" if "disturbed" in rec else ""))
    for tool in tools:
        if not tool.unavailable:
            entry = result["tools"][tool.name]
            entry["summary"] = summarize(entry["runs"], size.rows)
    return result


LOCK_FILE = Path(tempfile.gettempdir()) / "osiris-mysql-bench.lock"


def take_lock():
    """One invocation at a time on a machine: two would disturb each other's timings, and each
    resets the benchmark account's password. The lock is released when the process ends."""
    import fcntl
    f = open(LOCK_FILE, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "?"
        raise BenchError(f"another mysql_compare.py is running (pid {holder}, lock {LOCK_FILE}); "
                         "wait for it to finish") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    lock = take_lock()  # noqa: F841 (held until exit)
    server = Server(args.admin)
    pool = ensure_buffer_pool(server, args.buffer_pool_bytes)   # before a generation, too
    for size in args.sizes:         # every table first: a wrong one must not stop a half-done suite
        ensure_table(server, size)
    out = make_out_dir(args.out)
    work, csv_dir = out / "work", out / "csv"
    for d in (work, work / "logs", csv_dir):
        d.mkdir(parents=True, exist_ok=True)
    log(f"output directory: {out}")
    if server.pid is None:
        log("warning: the server process was not found in /proc: server CPU is not measured")
    password = secrets.token_hex(16)
    ensure_account(server, password)
    ctx = Context(args, server, password, out, work, csv_dir)
    try:
        prepare_client(ctx)
        tools = prepare_tools(ctx, args.tool_names)
        # The preparation can take an hour (a cold cargo build on a busy machine); re-set the
        # password before anything is timed, in case someone changed the account meanwhile.
        ensure_account(server, password)
        prepare_client(ctx)
        meta = {"started": datetime.datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
                "cpus": os.cpu_count(), "loadavg_start": round(os.getloadavg()[0], 2),
                "server_version": server.version, "server_pid": server.pid, "buffer_pool_bytes": pool,
                "runs": args.runs, "argv": argv, "harness_git": git_describe()}
        results = [(size, run_size(ctx, size, tools)) for size in args.sizes]
    finally:
        remove(work / "client.cnf")            # the only file holding the password
        if ctx.created_outfile_dir:
            shutil.rmtree(ctx.outfile_dir, ignore_errors=True)
    meta["loadavg_end"] = round(os.getloadavg()[0], 2)
    tgs = targets(results)
    report = render(meta, results, tools, args.runs, tgs)
    (out / "report.md").write_text(report)
    (out / "report.json").write_text(json.dumps({
        "meta": meta,
        "tools": {t.name: {"label": t.label, "unavailable": t.unavailable, **t.info} for t in tools},
        "sizes": [r for _, r in results],
        "targets": [{k: v for k, v in t.items() if k != "spec"} for t in tgs],
    }, indent=2, default=str))
    print(report)
    log(f"report: {out / 'report.md'}, raw runs: {out / 'report.json'}")
    failed = [t.name for t in tools if t.name == "osiris" and t.unavailable]
    failed += [name for _, r in results for name, e in r["tools"].items() if e["summary"]["errors"]]
    if args.self_check:
        print("self-check: " + ("OK" if not failed else "FAILED: " + ", ".join(sorted(set(failed)))))
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.version_info < (3, 9):
        sys.exit("mysql_compare.py needs Python 3.9 or newer")
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except subprocess.TimeoutExpired as e:
        print(f"error: `{shlex.join(map(str, e.cmd))}` did not finish within {e.timeout:g} s", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
