"""Orchestration overhead: the ``backfill`` flow against finloom_core called directly.

Both ingest the same EDGAR folder (default ``<repo>/../shared/edgar``: 34 companies, 17 of
them with companyfacts, 258,602 facts) into a fresh DuckDB file: resolve every company the
folder holds, then download -> parse -> load in batches. The Prefect API is up before timing
starts (the server ``PREFECT_API_URL`` names, or else Prefect's test harness, a temporary
local server), so the figure is the cost of flow and task runs, not of starting a server.
Median of ``--repeat`` alternating runs.

``flow`` runs as ``finloom backfill`` does without a server (no heartbeat thread);
``flow_heartbeats`` keeps Prefect's default flow-run heartbeats, as deployment runs do: their
thread sleeps in 1 s steps and is joined at the end of the run, a fixed ~1 s per run.

    uv run python benchmarks/bench_overhead.py [EDGAR_DIR] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from provenance import DEFAULT_EDGAR, OUT, REPO, quiet_prefect

sys.path.insert(0, str(REPO))


def _direct(edgar: Path, db: Path, batch_size: int) -> int:
    from finloom_core.edgar.sources import SourceSpec, open_source
    from finloom_core.pipeline import run_pipeline
    from finloom_core.settings import load_settings

    memory_limit = load_settings().duckdb_memory_limit  # as the flow reads it
    source = open_source(SourceSpec(str(edgar)))
    try:
        outcomes = run_pipeline(
            source, source.available_ciks(), db, batch_size=batch_size, memory_limit=memory_limit
        )
    finally:
        source.close()
    return sum(o.facts for o in outcomes)


def _flow(edgar: Path, db: Path, batch_size: int) -> int:
    """The flow as ``finloom backfill`` runs it without a server: no heartbeat thread."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return _flow_with_heartbeats(edgar, db, batch_size)


def _flow_with_heartbeats(edgar: Path, db: Path, batch_size: int) -> int:
    """The flow with Prefect's default heartbeats, as a deployment run on a worker."""
    from flows.backfill import backfill

    # quality=False: the direct path runs no quality checks either, so the comparison
    # stays the orchestration overhead of the same work (the quality run is timed apart)
    run = backfill(source=str(edgar), db_path=str(db), batch_size=batch_size, quality=False)
    return int(run["facts"])


RUNS = {"direct": _direct, "flow": _flow, "flow_heartbeats": _flow_with_heartbeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("edgar", nargs="?", type=Path, default=DEFAULT_EDGAR)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=25)
    args = parser.parse_args()

    quiet_prefect()
    from prefect.testing.utilities import prefect_test_harness

    logging.getLogger("prefect").setLevel(logging.WARNING)
    times: dict[str, list[float]] = {name: [] for name in RUNS}
    facts: dict[str, int] = {}
    # a running server when PREFECT_API_URL is set, else Prefect's test harness
    api = nullcontext() if os.environ.get("PREFECT_API_URL") else prefect_test_harness(90)
    with api, tempfile.TemporaryDirectory() as tmp:
        # warm-up: imports, Arrow's first-use cost, the flow's first registration
        _direct(args.edgar, Path(tmp, "warm-direct.duckdb"), args.batch_size)
        _flow(args.edgar, Path(tmp, "warm-flow.duckdb"), args.batch_size)
        for i in range(args.repeat):
            for name, run in RUNS.items():
                db = Path(tmp, f"{name}-{i}.duckdb")
                start = time.perf_counter()
                facts[name] = run(args.edgar, db, args.batch_size)
                times[name].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in times.items()}
    overhead = median["flow"] / median["direct"] - 1
    overhead_heartbeats = median["flow_heartbeats"] / median["direct"] - 1
    result = {
        "edgar": str(args.edgar),
        "api": os.environ.get("PREFECT_API_URL") or "prefect_test_harness",
        "batch_size": args.batch_size,
        "repeat": args.repeat,
        "facts": facts,
        "seconds_runs": {k: [round(t, 4) for t in v] for k, v in times.items()},
        "seconds_median": median,
        "overhead": overhead,
        "overhead_with_heartbeats": overhead_heartbeats,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "overhead.json").write_text(json.dumps(result, indent=2))
    print("| run | median s | facts |\n|---|---:|---:|")
    for name in RUNS:
        print(f"| {name} | {median[name]:.3f} | {facts[name]:,} |")
    print(f"\norchestration overhead: {overhead:+.1%} (flow / direct - 1)")
    print(f"with Prefect's flow-run heartbeats (deployment runs): {overhead_heartbeats:+.1%}")


if __name__ == "__main__":
    main()
