"""How long a full quality run takes over every company of an EDGAR folder.

The folder's companies (default ``<repo>/../shared/edgar``: 17 with companyfacts) are
loaded once, untimed, with ``run_pipeline``. Then, ``--repeat`` times (default 3):
``core`` runs reconcile + score + the Great Expectations suites + store with no Prefect
(the GX import, ~4 s, is paid once, before timing), and ``flow`` runs the ``quality`` flow
(Prefect API already up through the test harness; artifacts and Data Docs included).
Target: < 30 s on the 2-core machine. Writes ``benchmarks/out/quality.json``.

    uv run python benchmarks/bench_quality.py [EDGAR_DIR] [--repeat 3]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("edgar", nargs="?", type=Path, default=DEFAULT_EDGAR)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="finloom-bench-quality-"))
    os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    db = work / "w.duckdb"
    source = FolderSource(args.edgar)
    memory_limit = load_settings().duckdb_memory_limit
    run_pipeline(source, source.available_ciks(), db, memory_limit=memory_limit)

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
