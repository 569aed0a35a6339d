#!/usr/bin/env python3
"""The golden path (MySQL -> CSV) through `osiris run --target local` and `--e2b` against the
local sandbox server (`osiris sandbox serve` on loopback), round-robin in one invocation.

Target: the --e2b throughput within 10 % of local, excluding the download of the output file.
Reported per target (medians): wall time; wall time minus `e2b_collect` (the download of the CSV
and the artifacts, and the sandbox kill); the worker's own `execution_duration`; rows/s. The
sandbox template carries the binary (as a custom E2B template would), so the upload of the
binary is not in the figures; the fixed overheads are the criterion bench `remote_overhead`'s.

Needs what bench/mysql_compare.py needs (a local MariaDB as root over the unix socket, cargo);
it reuses that harness's account and table set-up (bench.orders_1m by default).

    python3 bench/remote_compare.py                 # 1M rows, 3 runs per target
    python3 bench/remote_compare.py --rows 250k --runs 5 --osiris target/release/osiris
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mysql_compare as mc  # noqa: E402  (the shared MySQL set-up)

API_KEY = "remote-compare-key"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="1m", help="table size as in mysql_compare.py (default 1m = bench.orders_1m)")
    p.add_argument("--runs", type=int, default=3, help="runs per target (default 3)")
    p.add_argument("--osiris", type=Path, help="the osiris binary (default: cargo build --release)")
    p.add_argument("--admin", default=None, help="admin client command (default: mariadb -uroot)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3306)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p.parse_args()


def start_server(osiris: Path, root: Path, template: Path) -> tuple[subprocess.Popen, dict]:
    staged = subprocess.run([str(osiris), "sandbox", "stage-binary", str(template)], capture_output=True, text=True)
    if staged.returncode != 0:
        raise SystemExit(f"osiris sandbox stage-binary failed: {staged.stderr.strip()}")
    server = subprocess.Popen(
        [str(osiris), "sandbox", "serve", "--api-addr", "127.0.0.1:0", "--envd-addr", "127.0.0.1:0", "--json",
         "--root", str(root), "--api-key", API_KEY, "--template-dir", f"osiris-bench={template}"],
        stdout=subprocess.PIPE, text=True)
    ready = json.loads(server.stdout.readline())
    return server, ready


def metrics_of(session_dir: str) -> dict:
    out = {}
    for line in Path(session_dir, "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        if "step_id" not in m:
            out[m["metric"]] = m["value"]
    return out


def run_once(osiris: Path, home: Path, pipeline: Path, env: dict, extra: list[str]) -> dict:
    started = time.perf_counter()
    r = subprocess.run([str(osiris), "run", str(pipeline), "--json", *extra], cwd=home, env=env,
                       capture_output=True, text=True)
    wall = time.perf_counter() - started
    if r.returncode != 0:
        raise SystemExit(f"osiris run {' '.join(extra)} failed: {r.stdout[-2000:]}{r.stderr[-2000:]}")
    result = json.loads(r.stdout)
    metrics = metrics_of(result["session_dir"])
    return {"wall": wall, "rows": result["total_rows"], "execution": metrics.get("execution_duration"),
            "collect": metrics.get("e2b_collect", 0.0), "create": metrics.get("e2b_sandbox_create"),
            "upload": metrics.get("e2b_upload")}


def main() -> int:
    args = parse_args()
    size = mc.parse_sizes(args.rows, None)[0]
    server = mc.Server(args.admin)
    password = secrets.token_hex(12)
    mc.ensure_account(server, password)
    mc.ensure_table(server, size)
    if args.osiris:
        osiris = args.osiris.resolve()
    else:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "osiris"], cwd=mc.REPO, check=True)
        osiris = mc.REPO / "target" / "release" / "osiris"

    with tempfile.TemporaryDirectory(prefix="osiris-remote-compare-") as tmp:
        tmp = Path(tmp)
        home = tmp / "project"
        home.mkdir()
        (home / "osiris_connections.yaml").write_text(
            "version: 1\nconnections:\n  mysql:\n    bench:\n      default: true\n"
            f"      host: {args.host}\n      port: {args.port}\n      database: {mc.DB}\n"
            f"      user: {mc.BENCH_USER}\n      password: ${{{mc.PASSWORD_VAR}}}\n")
        pipeline = home / "golden.yaml"
        pipeline.write_text(
            'oml_version: "0.1.0"\nname: remote-compare\nsteps:\n'
            "  - id: extract\n    component: mysql.extractor\n    mode: read\n"
            f"    config: {{connection: \"@mysql.bench\", query: \"SELECT * FROM {size.table}\", batch_size: 16384}}\n"
            "  - id: write\n    component: filesystem.csv_writer\n    mode: write\n    needs: [extract]\n"
            "    config: {path: out/orders.csv}\n")
        proc, ready = start_server(osiris, tmp / "sandboxes", tmp / "template")
        try:
            base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OSIRIS_", "E2B_"))}
            base_env.update({"OSIRIS_HOME": str(home), mc.PASSWORD_VAR: password})
            e2b_env = dict(base_env, E2B_API_KEY=API_KEY, E2B_API_URL=ready["api_url"],
                           E2B_SANDBOX_URL=ready["envd_url"])
            targets = {
                "local": (base_env, ["--target", "local"]),
                "e2b": (e2b_env, ["--e2b", "--e2b-template", "osiris-bench"]),
            }
            results: dict[str, list[dict]] = {name: [] for name in targets}
            for run in range(args.runs):
                for name, (env, extra) in targets.items():
                    rec = run_once(osiris, home, pipeline, env, extra)
                    results[name].append(rec)
                    mc.log(f"run {run + 1}/{args.runs} {name}: {rec['wall']:.2f} s wall, collect {rec['collect']:.2f} s")
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    report = {}
    for name in results:
        report[name] = {
            "wall_s": med(name, "wall"),
            "wall_excl_download_s": statistics.median(r["wall"] - r["collect"] for r in results[name]),
            "execution_s": med(name, "execution"),
            "rows": results[name][0]["rows"],
        }
        report[name]["rows_per_s"] = report[name]["rows"] / report[name]["wall_excl_download_s"]
    ratio = report["e2b"]["wall_excl_download_s"] / report["local"]["wall_s"]
    report["ratio_e2b_excl_download_vs_local"] = ratio
    report["ratio_execution"] = report["e2b"]["execution_s"] / report["local"]["execution_s"]
    report["target"] = "e2b throughput within 10 % of local (ratio <= 1.10)"
    report["verdict"] = "PASS" if ratio <= 1.10 else "MISS"
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"\nMySQL -> CSV, {size.rows:,} rows ({mc.DB}.{size.table}), {args.runs} runs per target, medians")
        print(f"{'target':<8} {'wall s':>8} {'wall - download s':>18} {'worker exec s':>14} {'rows/s':>12}")
        for name in ("local", "e2b"):
            r = report[name]
            print(f"{name:<8} {r['wall_s']:>8.2f} {r['wall_excl_download_s']:>18.2f} {r['execution_s']:>14.2f} {r['rows_per_s']:>12,.0f}")
        print(f"e2b (excluding the download) / local wall = {ratio:.3f}  [{report['verdict']}: <= 1.10]")
        print(f"worker execution e2b / local = {report['ratio_execution']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
