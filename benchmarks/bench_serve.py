"""Load test of ``finloom serve`` on 127.0.0.1: requests/s, p50/p99, errors, peak RSS.

A small warehouse is built first, untimed, from the EDGAR folder (default
``<repo>/../shared/edgar``: its first ``--companies`` companies with companyfacts, loaded and
normalized by ``run_pipeline``), with a few metrics recorded into its metrics folder so
``/metrics`` has something to say. Then, for each rate-limit setting of ``--limits``
(default ``off`` and the default ``600/minute``), ``finloom serve`` starts on a free
127.0.0.1 port with ``FINLOOM_SERVE_TOKEN`` set, and ``benchmarks/locustfile.py`` runs
headless against it (``--users`` simulated clients, all from 127.0.0.1, so one rate-limit
window; ``--seconds`` long). The server's RSS is sampled every 0.1 s with psutil. Prints a
table and writes ``benchmarks/out/serve.json`` (locust's CSV files beside it).

    uv run python benchmarks/bench_serve.py [EDGAR_DIR] [--users 20] [--seconds 30]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import psutil
from provenance import DEFAULT_EDGAR, OUT, write_result

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_warehouse(edgar: Path, companies: int, db: Path) -> int:
    """Load and normalize the folder's first companies; record a few metrics. Facts."""
    from finloom_core.edgar.sources import FolderSource
    from finloom_core.pipeline import run_pipeline
    from finloom_core.settings import FinloomSettings
    from finloom_core.storage.database import open_warehouse
    from finloom_ops import metrics

    files = sorted((edgar / "companyfacts").glob("CIK*.json"))[:companies]
    run_pipeline(FolderSource(edgar), [int(f.stem[3:]) for f in files], db)
    with open_warehouse(db) as con:
        facts = int(con.execute("SELECT count(*) FROM facts").fetchall()[0][0])
    settings = FinloomSettings(_env_file=None, db_path=db)  # type: ignore[call-arg]
    recorded = metrics.activate(settings, db)
    recorded.facts_loaded.inc(facts)
    recorded.filings_downloaded.labels("downloaded").inc(len(files))
    recorded.last_success.labels("backfill").set(time.time())
    return facts


def start_server(home: Path, db: Path, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "finloom_cli.main", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--db", str(db)]  # fmt: skip
    server = subprocess.Popen(command, cwd=home, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"finloom serve never answered: {server.communicate()[1]}")


class PeakRss:
    """Samples a process's RSS every ``interval`` seconds in a thread; ``peak`` in bytes."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def aggregated(prefix: Path) -> dict[str, Any]:
    """The "Aggregated" row of locust's ``<prefix>_stats.csv`` and the failures by kind."""
    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    total = rows["Aggregated"]
    failures: dict[str, int] = {}
    with open(f"{prefix}_failures.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            failures[row["Error"]] = failures.get(row["Error"], 0) + int(row["Occurrences"])
    return {
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
        "requests_per_second": float(total["Requests/s"]),
        "p50_ms": float(total["50%"]),
        "p99_ms": float(total["99%"]),
        "max_ms": float(total["Max Response Time"]),
        "failures_by_kind": failures,
        "by_endpoint": {
            name: {
                "requests": int(row["Request Count"]),
                "p50_ms": float(row["50%"]),
                "p99_ms": float(row["99%"]),
            }
            for name, row in rows.items()
            if name != "Aggregated"
        },
    }


def run_one(home: Path, db: Path, limit: str, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    token = secrets.token_urlsafe(24)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "FINLOOM_SERVE_TOKEN": token,
        "FINLOOM_SERVE_RATE_LIMIT": limit,
        "FINLOOM_EDGAR_DATA_URL": "http://127.0.0.1:9",  # no User-Agent: SEC is never probed
        "FINLOOM_EDGAR_WWW_URL": "http://127.0.0.1:9",
    }
    prefix = OUT / f"serve_locust_{limit.replace('/', '_per_')}"
    server = start_server(home, db, port, env)
    try:
        with PeakRss(server.pid) as rss:
            idle = server.pid and psutil.Process(server.pid).memory_info().rss
            locust = subprocess.run(
                [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
                 "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.seconds}s",
                 "--host", f"http://127.0.0.1:{port}", "--csv", str(prefix), "--only-summary",
                 "--loglevel", "WARNING"],
                env={**os.environ, "FINLOOM_SERVE_TOKEN": token}, capture_output=True,
                text=True, timeout=args.seconds + 120, check=False,
            )  # fmt: skip
    finally:
        server.terminate()
        try:
            _, stderr = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            _, stderr = server.communicate()
    if not Path(f"{prefix}_stats.csv").exists():
        raise SystemExit(f"locust wrote no CSV (exit {locust.returncode}):\n{locust.stderr}")
    result = aggregated(prefix)
    result.update(
        rate_limit=limit,
        idle_rss_mib=round(idle / 2**20, 1),
        peak_rss_mib=round(rss.peak / 2**20, 1),
        server_tracebacks="Traceback" in stderr,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("edgar", nargs="?", type=Path, default=DEFAULT_EDGAR)
    parser.add_argument("--companies", type=int, default=4)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--spawn-rate", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--limits", nargs="+", default=["off", "600/minute"])
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="finloom-bench-serve-") as tmp:
        home = Path(tmp)
        db = home / "warehouse.duckdb"
        facts = build_warehouse(args.edgar, args.companies, db)
        runs = [run_one(home, db, limit, args) for limit in args.limits]
    result = {
        "finloom": version("finloom"),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "companies": args.companies,
        "facts": facts,
        "users": args.users,
        "seconds": args.seconds,
        "runs": runs,
    }
    path = write_result("serve", result)
    print(f"{args.users} users, {args.seconds} s, warehouse of {facts:,} facts")
    print("| rate limit | requests | req/s | p50 ms | p99 ms | errors | peak RSS MiB |")
    for run in runs:
        print(f"| {run['rate_limit']} | {run['requests']:,} | {run['requests_per_second']:.1f} "
              f"| {run['p50_ms']:.0f} | {run['p99_ms']:.0f} | {run['failures']:,} "
              f"{json.dumps(run['failures_by_kind'])} | {run['peak_rss_mib']} |")  # fmt: skip
    print(f"written to {path}")


if __name__ == "__main__":
    main()
