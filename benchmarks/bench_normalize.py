"""How long ``normalize(con)`` takes over every company of an EDGAR folder.

The companies of the folder (default ``<repo>/../shared/edgar``: 17 with companyfacts) are
loaded once, untimed, into a temporary DuckDB file with ``run_pipeline`` (facts and, where
the folder has them, submissions, so ``companies.fiscal_year_end`` is there). Then
``normalize(con)`` rebuilds ``financials`` and ``financials_history`` for all of them
``--repeat`` times (default 3) on the same connection; the script prints the rows and the
median wall time and writes ``benchmarks/out/normalize.json``. Target: < 5 s on
the 2-core machine.

    uv run python benchmarks/bench_normalize.py [EDGAR_DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from provenance import DEFAULT_EDGAR, code_version, write_result

from finloom_core.edgar.sources import FolderSource
from finloom_core.normalize.financials import normalize
from finloom_core.pipeline import run_pipeline
from finloom_core.settings import load_settings
from finloom_core.storage.database import open_warehouse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("edgar", nargs="?", type=Path, default=DEFAULT_EDGAR)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    files = sorted((args.edgar / "companyfacts").glob("CIK*.json"))
    ciks = [int(f.stem[3:]) for f in files]
    memory_limit = load_settings().duckdb_memory_limit
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "warehouse.duckdb"
        run_pipeline(FolderSource(args.edgar), ciks, db, memory_limit=memory_limit)  # untimed
        with open_warehouse(db, memory_limit=memory_limit) as con:
            facts = int(con.execute("SELECT count(*) FROM facts").fetchall()[0][0])
            seconds, rows = [], 0
            for _ in range(args.repeat):
                start = time.perf_counter()
                counts = normalize(con)
                seconds.append(time.perf_counter() - start)
                rows = sum(counts.values())
            history = int(con.execute("SELECT count(*) FROM financials_history").fetchall()[0][0])
    median = statistics.median(seconds)
    result = {
        "code": code_version(),
        "companies": len(ciks),
        "facts": facts,
        "financials_rows": rows,
        "history_rows": history,
        "seconds": seconds,
        "median_seconds": median,
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    write_result("normalize", result)
    print(
        f"normalize: {len(ciks)} companies, {facts:,} facts -> {rows:,} financials rows"
        f" ({history:,} history rows); median {median:.2f} s of {args.repeat}"
        f" ({', '.join(f'{s:.2f}' for s in seconds)}); load average"
        f" {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
