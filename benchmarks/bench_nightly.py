"""The ``nightly`` flow: requests and seconds of a night with nothing new and of a night
with a handful of filers, against the EDGAR stand-in (``tests/edgar_standin.py``).

The warehouse is first loaded from an EDGAR folder, ``<repo>/../shared/edgar`` (34
companies, 17 with companyfacts), plus ``--synthetic`` small synthetic companies
(``tests/factories``, written to a temporary folder) when asked. Then:

* ``handful``: one day's master index (built here) in which ``--filers`` held companies
  filed a 10-Q (each serves companyfacts with one fact fewer than the warehouse holds, so
  it really loads) and ~300 others filed only Form 4 / 8-K / S-8; quality runs at the end;
* ``noop``: the same night again: nothing new (the watermark is already at ``--to``);
* ``quiet``: the next day, on which only Form 4 / 8-K / S-8 were filed;
* ``weekend``: the four days after it (Thanksgiving and a weekend: no index, 403).

A first, unmeasured round pays the first-use costs (imports, flow registration).

The Prefect API is up before timing starts (Prefect's test harness, or the server
``PREFECT_API_URL`` names), as for a deployment run; ``finloom nightly`` without a server
adds the start of a temporary one (~10 s).

    uv run python benchmarks/bench_nightly.py [--synthetic 200] [--filers 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
from provenance import DEFAULT_EDGAR, REPO, code_version, quiet_prefect, write_result

sys.path.insert(0, str(REPO))

DAY = date(2026, 11, 24)
FIRST_SYNTHETIC = 7_100_001


def synthetic_folder(root: Path, synthetic: int) -> None:
    """An EDGAR folder of ``synthetic`` small companies."""
    from tests.factories import companyfacts_doc, submissions_doc, to_bytes

    for kind in ("companyfacts", "submissions"):
        (root / kind).mkdir(parents=True)
    for cik in range(FIRST_SYNTHETIC, FIRST_SYNTHETIC + synthetic):
        name = f"CIK{cik:010d}.json"
        (root / "companyfacts" / name).write_bytes(to_bytes(companyfacts_doc(cik)))
        (root / "submissions" / name).write_bytes(to_bytes(submissions_doc(cik)))


def one_fact_fewer(file: Path) -> bytes:
    doc = orjson.loads(file.read_bytes())
    units = next(iter(doc["facts"]["us-gaap"].values()))["units"]
    next(iter(units.values())).pop()
    return orjson.dumps(doc)


def night(standin: Any, db: Path, **params: Any) -> dict[str, Any]:
    from flows.nightly import nightly

    before = len(standin.hits)
    started = time.perf_counter()
    summary = nightly(db_path=str(db), **params)
    seconds = time.perf_counter() - started
    hits = standin.hits[before:]
    return {
        "seconds": round(seconds, 2),
        "requests": len(hits),
        "429s": sum(h.status == 429 for h in hits),
        "companies": len(summary["companies"]),
        "statuses": sorted({c["status"] for c in summary["companies"]}),
        "quality_ran": summary.get("quality") is not None,
    }


def measure(shared: Path, synthetic: int, filers: int, tmp: Path) -> dict[str, Any]:
    from flows.backfill import backfill
    from tests.edgar_standin import EdgarStandIn
    from tests.nightly_helpers import index_path, master_idx

    held = sorted(int(f.stem[3:]) for f in (shared / "companyfacts").glob("CIK*.json"))
    db = tmp / "warehouse.duckdb"
    started = time.perf_counter()
    backfill(source=str(shared), db_path=str(db), quality=False)
    if synthetic:
        synthetic_folder(tmp / "synthetic", synthetic)
        backfill(source=str(tmp / "synthetic"), db_path=str(db), quality=False)
    build = time.perf_counter() - started
    with duckdb.connect(str(db), read_only=True) as con:
        companies = int(con.execute("SELECT count(*) FROM companies").fetchall()[0][0])
    chosen = [c for c in held if c != 1997711][:filers]  # companies with a us-gaap tree
    rows = [(cik, f"HELD {cik}", "10-Q") for cik in chosen]
    rows += [(9_000_000 + n, f"OTHER {n}", ("4", "8-K", "S-8")[n % 3]) for n in range(300)]
    with EdgarStandIn(shared, limit=10) as standin:
        os.environ.update(
            FINLOOM_EDGAR_DATA_URL=standin.data_url,
            FINLOOM_EDGAR_WWW_URL=standin.www_url,
            FINLOOM_SEC_USER_AGENT="FinLoom benchmark bench@example.com",
        )
        standin.serve_document(index_path(DAY), master_idx(DAY, rows))
        for cik in chosen:
            file = shared / "companyfacts" / f"CIK{cik:010d}.json"
            standin.serve_document(f"/api/xbrl/companyfacts/{file.name}", one_fact_fewer(file))
        handful = night(standin, db, from_date=DAY, to_date=DAY)
        noop = night(standin, db, to_date=DAY)
        quiet_day = DAY + timedelta(1)  # only Form 4s filed
        standin.serve_document(index_path(quiet_day), master_idx(quiet_day, rows[filers:]))
        quiet = night(standin, db, to_date=quiet_day)
        # Thanksgiving Thursday through Sunday: no index
        weekend = night(standin, db, to_date=DAY + timedelta(5))
    return {
        "companies_in_warehouse": companies,
        "companies_with_facts": len(held) + synthetic,
        "synthetic": synthetic,
        "build_seconds": round(build, 1),
        "handful": {"filers": len(chosen), "index_rows": len(rows), **handful},
        "noop": noop,
        "quiet": quiet,
        "weekend": weekend,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("edgar", nargs="?", type=Path, default=DEFAULT_EDGAR)
    parser.add_argument("--synthetic", type=int, nargs="+", default=[0])
    parser.add_argument("--filers", type=int, default=5)
    args = parser.parse_args()
    quiet_prefect()
    os.environ["FINLOOM_STATE_DIR"] = tempfile.mkdtemp(prefix="finloom-bench-state-")
    from prefect.testing.utilities import prefect_test_harness

    logging.getLogger("prefect").setLevel(logging.WARNING)
    api = nullcontext() if os.environ.get("PREFECT_API_URL") else prefect_test_harness(90)
    runs = []
    with api:
        with tempfile.TemporaryDirectory(prefix="finloom-bench-warmup-") as tmp:
            measure(args.edgar, 0, args.filers, Path(tmp))  # first-use costs, not measured
        for synthetic in args.synthetic:
            with tempfile.TemporaryDirectory(prefix="finloom-bench-nightly-") as tmp:
                runs.append(measure(args.edgar, synthetic, args.filers, Path(tmp)))
    result = {"code_version": code_version(), "load_average": os.getloadavg(), "runs": runs}
    path = write_result("nightly", result)
    print("| warehouse companies | night | requests | seconds | 429s |")
    print("|---:|---|---:|---:|---:|")
    for run in runs:
        for name in ("handful", "quiet", "weekend", "noop"):
            r = run[name]
            print(f"| {run['companies_in_warehouse']} | {name} ({r['companies']} companies) "
                  f"| {r['requests']} | {r['seconds']} | {r['429s']} |")  # fmt: skip
    print(f"written to {path}")


if __name__ == "__main__":
    main()
