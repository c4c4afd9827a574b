"""How long a full quality run takes over every company of an EDGAR folder.

The folder's companies (default ``<repo>/../shared/edgar``: 17 with companyfacts) are
loaded once, untimed, with ``run_pipeline``. Then, ``--repeat`` times (default 3):
``core`` runs reconcile + score + the Great Expectations suites + store with no Prefect
(the GX import, ~4 s, is paid once, before timing), and ``flow`` runs the ``quality`` flow
(Prefect API already up through the test harness; artifacts and Data Docs included).
Target: < 30 s on the 2-core machine. Writes ``benchmarks/out/quality.json``.

With ``--archive ZIP`` (a synthetic companyfacts.zip from make_synthetic_archive.py) its
companies are loaded as well, and ``--changed N`` compares, each in a fresh subprocess
(peak RSS from ``os.wait4``, GX imported before timing), the core quality run (reconcile,
score, GX, store, the warehouse-wide grades from storage) over N companies (the first N of
the EDGAR folder, as a backfill that changed them would ask) with the same run over the
whole warehouse. Writes ``benchmarks/out/quality_scope.json``.

    uv run python benchmarks/bench_quality.py [EDGAR_DIR] [--repeat 3]
    uv run python benchmarks/bench_quality.py --archive ZIP --changed 4 [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from provenance import DEFAULT_EDGAR, REPO, code_version, write_result

from finloom_core.edgar.sources import FolderSource
from finloom_core.pipeline import run_pipeline
from finloom_core.settings import load_settings
from finloom_core.storage.database import open_warehouse


def scoped_child(db: str, ciks: list[int] | None, docs: str) -> None:
    """Runs in the subprocess: one core quality run over ``ciks`` (None: whole warehouse)."""
    import great_expectations  # noqa: F401  (import cost paid before timing)

    from finloom_core.quality.expectations import validate_tables
    from finloom_core.quality.reconcile import run_checks
    from finloom_core.quality.scoring import score_companies, score_filings
    from finloom_core.quality.store import latest_grades, store_results

    start = time.perf_counter()
    with open_warehouse(db, memory_limit=load_settings().duckdb_memory_limit) as con:
        checks = run_checks(con, ciks)
        scores = score_filings(con, ciks=ciks)
        score_companies(con, scores)
        validate_tables(con, REPO / "expectations", docs, ciks=ciks)
        store_results(con, f"bench-{time.time_ns()}", checks, scores)
        latest_grades(con)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "filings_scored": len(scores)}))


def scope_runs(db: Path, work: Path, changed: list[int], repeat: int) -> dict[str, object]:
    """Whole-warehouse and changed-companies runs, alternately, each in a fresh process."""
    import subprocess
    import sys

    runs: dict[str, list[dict[str, float]]] = {"whole": [], "changed": []}
    for _ in range(repeat):
        for mode, ciks in (("whole", None), ("changed", changed)):
            cmd = [sys.executable, __file__, "--child-db", str(db), "--docs", str(work / mode)]
            cmd += ["--child-ciks", ",".join(map(str, ciks))] if ciks else []
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
            out = proc.stdout.read() if proc.stdout else ""
            _, status, usage = os.wait4(proc.pid, 0)
            if status != 0:
                raise SystemExit(f"{mode} run failed ({status})")
            run = json.loads(out.strip().splitlines()[-1])
            runs[mode].append(run | {"peak_rss_mb": usage.ru_maxrss / 1024})
    return {
        mode: {
            "filings_scored": r[0]["filings_scored"],
            "seconds": [x["seconds"] for x in r],
            "seconds_median": statistics.median(x["seconds"] for x in r),
            "peak_rss_mb": max(x["peak_rss_mb"] for x in r),
        }
        for mode, r in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("edgar", nargs="?", type=Path, default=DEFAULT_EDGAR)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--archive", type=Path, help="a synthetic companyfacts.zip to add")
    parser.add_argument("--changed", type=int, default=0, help="compare a run over N companies")
    parser.add_argument("--child-db", help=argparse.SUPPRESS)
    parser.add_argument("--child-ciks", help=argparse.SUPPRESS)
    parser.add_argument("--docs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_db:
        ciks = [int(c) for c in args.child_ciks.split(",")] if args.child_ciks else None
        scoped_child(args.child_db, ciks, args.docs)
        return
    work = Path(tempfile.mkdtemp(prefix="finloom-bench-quality-"))
    os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    db = work / "w.duckdb"
    source = FolderSource(args.edgar)
    memory_limit = load_settings().duckdb_memory_limit
    run_pipeline(source, source.available_ciks(), db, memory_limit=memory_limit)
    if args.archive is not None:
        from finloom_core.edgar.sources import SourceSpec, open_source

        archive = open_source(SourceSpec(str(args.archive)))
        try:
            added = archive.available_ciks()
            run_pipeline(archive, added, db, memory_limit=memory_limit)
        finally:
            archive.close()
    if args.changed:
        changed = sorted(source.available_ciks())[: args.changed]
        with open_warehouse(db) as con:
            row = con.execute("SELECT count(*), count(DISTINCT cik) FROM facts").fetchone()
        scoped = {"facts": row[0] if row else 0, "companies": row[1] if row else 0}
        scoped |= {"changed_ciks": changed, **scope_runs(db, work, changed, args.repeat)}
        scoped |= {"load_average": os.getloadavg(), "code": code_version()}
        write_result("quality_scope", scoped)
        print(json.dumps({k: v for k, v in scoped.items() if k != "code"}, indent=2))
        return

    import great_expectations  # noqa: F401  (import cost paid before timing)
    from prefect.testing.utilities import prefect_test_harness

    from finloom_core.quality.expectations import validate_tables
    from finloom_core.quality.reconcile import run_checks
    from finloom_core.quality.scoring import score_companies, score_filings
    from finloom_core.quality.store import store_results
    from flows.quality import quality

    expectations = REPO / "expectations"
    core: list[float] = []
    flow: list[float] = []
    filings = 0
    with prefect_test_harness(server_startup_timeout=90):
        for i in range(args.repeat):
            start = time.perf_counter()
            with open_warehouse(db, memory_limit=memory_limit) as con:
                checks = run_checks(con)
                scores = score_filings(con)
                score_companies(con, scores)
                validate_tables(con, expectations, work / "docs")
                store_results(con, f"bench-{i}", checks, scores)
            core.append(time.perf_counter() - start)
            filings = len(scores)
            start = time.perf_counter()
            quality(db_path=str(db), docs_dir=str(work / "docs"))
            flow.append(time.perf_counter() - start)
    result = {
        "companies": len(source.available_ciks()),
        "filings_scored": filings,
        "core_seconds": core,
        "flow_seconds": flow,
        "core_median": statistics.median(core),
        "flow_median": statistics.median(flow),
        "load_average": os.getloadavg(),
        "code": code_version(),
    }
    write_result("quality", result)
    print(json.dumps({k: v for k, v in result.items() if k != "code"}, indent=2))


if __name__ == "__main__":
    main()
