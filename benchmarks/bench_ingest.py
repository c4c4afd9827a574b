"""FinLoom's file -> ``facts`` path against DuckDB's own JSON reader (the floor).

Over the companyfacts files of an EDGAR folder (default ``<repo>/../shared/edgar``, 17
files, 258,602 facts), each into a fresh DuckDB file, median of ``--repeat`` runs:

- finloom: ``run_pipeline`` over a FolderSource that holds only symlinks to the companyfacts
  files (no submissions), i.e. hash + sniff each file, then one transaction in which DuckDB's
  JSON reader parses the batch's files into ``facts`` (with the duplicate-key check, the
  facts-derived filings and the company rows); the same again split into its download /
  parse / load stages; and, for
  reference, ``run_pipeline`` over the whole folder so the companies' submissions load too.
- floor: one ``read_json`` with a typed MAP schema and UNNEST(map_entries(...)) of the same
  files into a ``facts`` table of the same columns.

Both timings include opening the fresh database and closing it (the checkpoint). The row
counts must match, and the two tables are compared row for row (EXCEPT ALL) once.

    uv run python benchmarks/bench_ingest.py [EDGAR_DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
from provenance import DEFAULT_EDGAR, OUT, code_version

from finloom_core.edgar.sources import FolderSource
from finloom_core.pipeline import download_batch, load_batch, parse_batch, run_pipeline
from finloom_core.records import CompanyOutcome
from finloom_core.settings import load_settings

EXPECTED_FACTS = 258_602  # the 17 companyfacts files of shared/edgar


_UNITS = (
    'STRUCT("start" VARCHAR, "end" VARCHAR, val DOUBLE, accn VARCHAR, fy INTEGER,'
    " fp VARCHAR, form VARCHAR, filed VARCHAR, frame VARCHAR)[]"
)
_COLUMNS = (
    "{cik: 'VARCHAR', entityName: 'VARCHAR', facts: 'MAP(VARCHAR, MAP(VARCHAR,"
    f" STRUCT(label VARCHAR, description VARCHAR, units MAP(VARCHAR, {_UNITS}))))'}}"
)
FLOOR_DDL = """
CREATE TABLE facts (
    cik BIGINT NOT NULL, taxonomy VARCHAR NOT NULL, concept VARCHAR NOT NULL,
    unit VARCHAR NOT NULL, period_start DATE, period_end DATE NOT NULL, value DOUBLE,
    accession VARCHAR NOT NULL, fiscal_year INTEGER, fiscal_period VARCHAR, form VARCHAR,
    filed DATE, frame VARCHAR
)
"""
FLOOR_INSERT = f"""
INSERT INTO facts
WITH docs AS (
    SELECT CAST(cik AS BIGINT) AS cik, unnest(map_entries(facts)) AS tx
    FROM read_json(?, columns={_COLUMNS}, maximum_object_size=200000000,
                   format='unstructured')
), concepts AS (
    SELECT cik, tx.key AS taxonomy, unnest(map_entries(tx.value)) AS cx FROM docs
), units AS (
    SELECT cik, taxonomy, cx.key AS concept, unnest(map_entries(cx.value.units)) AS ux
    FROM concepts
), rows AS (
    SELECT cik, taxonomy, concept, ux.key AS unit, unnest(ux.value) AS f FROM units
)
SELECT cik, taxonomy, concept, unit, CAST(f."start" AS DATE), CAST(f."end" AS DATE), f.val,
       f.accn, f.fy, f.fp, f.form, CAST(f.filed AS DATE), f.frame
FROM rows
"""


def facts_only_folder(edgar: Path, tmp: Path) -> Path:
    """A folder view holding only symlinks to the companyfacts files."""
    view = tmp / "edgar-facts-only"
    (view / "companyfacts").mkdir(parents=True)
    for path in sorted((edgar / "companyfacts").glob("CIK*.json")):
        (view / "companyfacts" / path.name).symlink_to(path.resolve())
    return view


def count_facts(db: Path) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        return int(con.execute("SELECT count(*) FROM facts").fetchall()[0][0])


def run_finloom(view: Path, db: Path, ciks: list[int], memory_limit: str) -> dict:
    source = FolderSource(view)
    started = time.perf_counter()
    outcomes = run_pipeline(source, ciks, db, normalize=False, memory_limit=memory_limit)
    seconds = time.perf_counter() - started
    _check(outcomes)
    return {"seconds": seconds, "facts": sum(o.facts for o in outcomes)}


def run_finloom_staged(view: Path, db: Path, ciks: list[int], memory_limit: str) -> dict:
    """The same path with each stage timed (one batch of all companies)."""
    source = FolderSource(view)
    t0 = time.perf_counter()
    downloaded = download_batch(source, ciks)
    t1 = time.perf_counter()
    parsed = parse_batch(downloaded)
    t2 = time.perf_counter()
    outcomes = load_batch(db, parsed, source=source.name, memory_limit=memory_limit)
    t3 = time.perf_counter()
    _check(outcomes)
    return {
        "seconds": t3 - t0,
        "read_s": t1 - t0,
        "parse_s": t2 - t1,
        "load_s": t3 - t2,
        "facts": sum(o.facts for o in outcomes),
    }


def _check(outcomes: list[CompanyOutcome]) -> None:
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise SystemExit(f"FinLoom failed on {len(failed)} companies: {failed[0]}")


def run_floor(files: list[str], db: Path) -> dict:
    started = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute(FLOOR_DDL)
    con.execute(FLOOR_INSERT, [files])
    con.close()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "facts": count_facts(db)}


def measure(variants: dict[str, Callable[[Path], dict]], repeat: int, tmp: Path) -> dict:
    """Run the variants round-robin (so each sees the same machine load); medians per variant."""
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for i in range(repeat):
        for name, fn in variants.items():
            gc.collect()
            cpu = time.process_time()
            run = fn(tmp / f"{name}-{i}.duckdb")
            run["cpu_seconds"] = time.process_time() - cpu
            runs[name].append(run)
    return {name: _summary(name, rs) for name, rs in runs.items()}


def _summary(name: str, runs: list[dict]) -> dict:
    median = statistics.median(r["seconds"] for r in runs)
    facts = {r["facts"] for r in runs}
    if len(facts) != 1:
        raise SystemExit(f"{name}: fact counts differ between runs: {facts}")
    result = {
        "facts": facts.pop(),
        "seconds_median": median,
        "seconds_runs": [round(r["seconds"], 4) for r in runs],
        "cpu_seconds_median": statistics.median(r["cpu_seconds"] for r in runs),
    }
    result["facts_per_s"] = result["facts"] / median
    for key in ("read_s", "parse_s", "load_s"):
        if key in runs[0]:
            result[f"{key}_median"] = statistics.median(r[key] for r in runs)
    print(
        f"  {name}: median {median:.3f} s over {result['seconds_runs']},"
        f" CPU {result['cpu_seconds_median']:.3f} s",
        file=sys.stderr,
    )
    return result


def rows_differing(finloom_db: Path, floor_db: Path) -> int:
    """Rows in one table but not the other, both ways (EXCEPT ALL)."""
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{finloom_db}' AS f (READ_ONLY)")
        con.execute(f"ATTACH '{floor_db}' AS d (READ_ONLY)")
        cols = (
            "cik, taxonomy, concept, unit, period_start, period_end, value, accession,"
            " fiscal_year, fiscal_period, form, filed, frame"
        )
        q = (
            f"SELECT (SELECT count(*) FROM (SELECT {cols} FROM f.facts"
            f" EXCEPT ALL SELECT {cols} FROM d.facts)) + (SELECT count(*) FROM"
            f" (SELECT {cols} FROM d.facts EXCEPT ALL SELECT {cols} FROM f.facts))"
        )
        return int(con.execute(q).fetchall()[0][0])


def warm_up(view: Path, files: list[str], tmp: Path, memory_limit: str) -> None:
    """Untimed: pyarrow's first-use cost, imports, the page cache, DuckDB's JSON reader."""
    pa.array(["x"])
    source = FolderSource(view)
    smallest = min(files, key=os.path.getsize)
    cik = int(Path(smallest).stem[3:])
    run_pipeline(source, [cik], tmp / "warm-finloom.duckdb", normalize=False,
                 memory_limit=memory_limit)  # fmt: skip
    run_floor([smallest], tmp / "warm-floor.duckdb")
    for f in files:
        Path(f).read_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("edgar", nargs="?", type=Path, default=DEFAULT_EDGAR)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-submissions", action="store_true", help="skip that variant")
    parser.add_argument("--out", type=Path, default=OUT / "ingest.json")
    args = parser.parse_args(argv)
    edgar: Path = args.edgar.resolve()
    files = sorted(str(p.resolve()) for p in (edgar / "companyfacts").glob("CIK*.json"))
    if not files:
        raise SystemExit(f"no companyfacts/CIK*.json under {edgar}")
    json_bytes = sum(os.path.getsize(f) for f in files)
    memory_limit = load_settings().duckdb_memory_limit  # FINLOOM_DUCKDB_MEMORY_LIMIT

    with tempfile.TemporaryDirectory(prefix="finloom-bench-") as tmpname:
        tmp = Path(tmpname)
        view = facts_only_folder(edgar, tmp)
        ciks = FolderSource(view).available_ciks()
        warm_up(view, files, tmp, memory_limit)
        print(f"{len(files)} companyfacts files, {json_bytes / 1e6:.1f} MB", file=sys.stderr)

        variants: dict[str, Callable[[Path], dict]] = {
            "finloom": lambda db: run_finloom(view, db, ciks, memory_limit),
            "finloom_staged": lambda db: run_finloom_staged(view, db, ciks, memory_limit),
            "floor": lambda db: run_floor(files, db),
        }
        if not args.no_submissions:
            variants["finloom_with_submissions"] = lambda db: run_finloom(
                edgar, db, ciks, memory_limit
            )
        measured = measure(variants, args.repeat, tmp)
        finloom, staged, floor = (measured[k] for k in ("finloom", "finloom_staged", "floor"))
        with_subs = measured.get("finloom_with_submissions")

        if finloom["facts"] != floor["facts"]:
            raise SystemExit(
                f"fact counts differ: finloom {finloom['facts']}, floor {floor['facts']}"
            )
        stored = count_facts(tmp / "finloom-0.duckdb")
        assert stored == finloom["facts"] == staged["facts"], (stored, finloom, staged)
        differing = rows_differing(tmp / "finloom-0.duckdb", tmp / "floor-0.duckdb")

    ratio = finloom["seconds_median"] / floor["seconds_median"]
    report = {
        "edgar": str(edgar),
        "files": len(files),
        "json_bytes": json_bytes,
        "repeat": args.repeat,
        "facts": floor["facts"],
        "expected_facts": EXPECTED_FACTS,
        "rows_differing": differing,
        "finloom": finloom,
        "finloom_staged": staged,
        "floor": floor,
        "finloom_with_submissions": with_subs,
        "ratio_finloom_to_floor": ratio,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pyarrow": pa.__version__,
        "code": code_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    def row(label: str, r: dict, note: str = "") -> str:
        rel = r["seconds_median"] / floor["seconds_median"]
        return (
            f"| {label} | {r['facts']:,} | {r['seconds_median']:.3f} | {r['facts_per_s']:,.0f}"
            f" | {rel:.2f}x | {r['cpu_seconds_median']:.3f} | {note} |"
        )

    stages = (
        f"read {staged['read_s_median']:.3f} s, parse {staged['parse_s_median']:.3f} s,"
        f" load {staged['load_s_median']:.3f} s"
    )
    lines = [
        f"{len(files)} companyfacts files ({json_bytes / 1e6:.1f} MB of JSON) from {edgar},"
        f" median of {args.repeat} runs (variants interleaved), each into a fresh DuckDB file;"
        " load average at the end"
        f" {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs;"
        f" code {report['code']}",
        "",
        "| path | facts | seconds | facts/s | time vs floor | CPU s | notes |",
        "|---|---:|---:|---:|---:|---:|---|",
        row("FinLoom run_pipeline (companyfacts only)", finloom),
        row("FinLoom stages (companyfacts only)", staged, stages),
        row("floor: DuckDB read_json + UNNEST", floor),
    ]
    if with_subs is not None:
        lines.append(row("FinLoom run_pipeline (+ submissions)", with_subs, "facts/s of facts"))
    lines += [
        "",
        f"FinLoom / floor time ratio: **{ratio:.2f}x**; rows differing between the two"
        f" tables: {differing}"
        + ("" if floor["facts"] == EXPECTED_FACTS else f" (expected {EXPECTED_FACTS:,} facts)"),
        f"-> {args.out}",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
