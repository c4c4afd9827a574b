"""A bulk archive backfilled locally against the same with its parse on a Dask cluster.

A synthetic companyfacts.zip (``make_synthetic_archive.py``; built here when missing) is
loaded by the ``backfill`` flow (no quality flow) into a fresh database twice a round:

- local: the parse in the flow's task runner, the facts parsed by DuckDB's JSON reader
  inside the writer's load transaction;
- dask: ``FINLOOM_DASK_ADDRESS`` set to a ``distributed.LocalCluster`` of ``--workers``
  worker processes (one thread each) started beforehand (its start-up is reported, not
  timed): the workers parse each batch into Parquet, the writer bulk-loads it.

Median of ``--repeat`` rounds (alternating which goes first); both warehouses' facts are
compared row for row (``EXCEPT ALL``). On a 2-core machine the writer and the workers
share the same two cores, and DuckDB's JSON reader already uses both in a local run.

    uv run python benchmarks/bench_dask.py [--archive /tmp/dask/cf300.zip] [--companies 300]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
from provenance import REPO, quiet_prefect, write_result


def _archive(path: Path, companies: int) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        script = REPO / "benchmarks" / "make_synthetic_archive.py"
        cmd = [sys.executable, str(script), "--companies", str(companies), "--out", str(path)]
        subprocess.run(cmd, check=True)
    return path


def _run(archive: Path, db: Path, batch_size: int | None) -> tuple[float, int]:
    from flows.backfill import backfill

    started = time.perf_counter()
    summary = backfill(source=str(archive), db_path=str(db), batch_size=batch_size, quality=False)
    return time.perf_counter() - started, int(summary["facts"])


def _differing(a: Path, b: Path) -> int:
    """Facts in one warehouse and not the other (EXCEPT ALL, both ways)."""
    tables = []
    for db in (a, b):
        with duckdb.connect(str(db), read_only=True) as con:
            tables.append(con.sql("SELECT * FROM facts").to_arrow_table())
    with duckdb.connect() as con:
        con.register("one", tables[0])
        con.register("two", tables[1])
        return sum(
            int(con.execute(f"SELECT count(*) FROM ({q})").fetchall()[0][0])
            for q in ("FROM one EXCEPT ALL FROM two", "FROM two EXCEPT ALL FROM one")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", type=Path, default=Path("/tmp/dask/cf300.zip"))
    parser.add_argument("--companies", type=int, default=300, help="when building the archive")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    archive = _archive(args.archive, args.companies)

    quiet_prefect()
    for name in [n for n in os.environ if n.startswith("FINLOOM_")]:
        del os.environ[name]
    from distributed import LocalCluster
    from prefect.testing.utilities import prefect_test_harness

    logging.getLogger("prefect").setLevel(logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.WARNING)
    times: dict[str, list[float]] = {"local": [], "dask": []}
    facts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="finloom-bench-dask-") as tmp, prefect_test_harness(90):
        os.environ["FINLOOM_STATE_DIR"] = str(Path(tmp) / "state")
        started = time.perf_counter()
        cluster = LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        cluster_seconds = time.perf_counter() - started
        try:
            for round_ in range(args.repeat):
                order = ["local", "dask"] if round_ % 2 == 0 else ["dask", "local"]
                for mode in order:
                    db = Path(tmp) / f"{mode}-{round_}.duckdb"
                    if mode == "dask":
                        os.environ["FINLOOM_DASK_ADDRESS"] = cluster.scheduler_address
                    else:
                        os.environ.pop("FINLOOM_DASK_ADDRESS", None)
                    seconds, facts[mode] = _run(archive, db, args.batch_size)
                    times[mode].append(seconds)
                    print(f"round {round_ + 1} {mode}: {seconds:.1f} s, {facts[mode]:,} facts")
            os.environ.pop("FINLOOM_DASK_ADDRESS", None)
            differing = _differing(Path(tmp) / "local-0.duckdb", Path(tmp) / "dask-0.duckdb")
        finally:
            cluster.close()
    local, dask = statistics.median(times["local"]), statistics.median(times["dask"])
    result: dict[str, Any] = {
        "archive": str(archive),
        "archive_bytes": archive.stat().st_size,
        "facts": facts,
        "facts_differing": differing,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "cluster_start_seconds": round(cluster_seconds, 2),
        "seconds": {k: [round(s, 2) for s in v] for k, v in times.items()},
        "median_seconds": {"local": round(local, 2), "dask": round(dask, 2)},
        "speedup_local_over_dask": round(local / dask, 2),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
    }
    path = write_result("dask", result)
    print(f"local {local:.1f} s, dask ({args.workers} workers) {dask:.1f} s: "
          f"{local / dask:.2f}x; facts differing: {differing}; -> {path}")  # fmt: skip
    return 0 if differing == 0 and facts["local"] == facts["dask"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
