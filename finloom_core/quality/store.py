"""Storing a quality run: its check results and filing scores, in one transaction.

Both go to DuckDB as Arrow tables. A check's ``detail`` (with its sample) is JSON; a
filing's components are a list of structs, ``STRUCT(name VARCHAR, score DOUBLE, weight
DOUBLE, reason VARCHAR)[]`` in the order of scoring.COMPONENTS (schema migration 4 turned
the JSON objects of earlier runs into that type).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence

import duckdb
import pyarrow as pa

from finloom_core.quality.results import CheckResult, FilingScore
from finloom_core.quality.scoring import GRADES
from finloom_core.sql import registered, transaction

log = logging.getLogger(__name__)

CHECK_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("check", pa.string()),
        ("severity", pa.string()),
        ("passed", pa.bool_()),
        ("affected_records", pa.int64()),
        ("detail", pa.string()),
        ("run_at", pa.timestamp("us")),
    ]
)
COMPONENT_TYPE = pa.struct(
    [
        ("name", pa.string()),
        ("score", pa.float64()),
        ("weight", pa.float64()),
        ("reason", pa.string()),
    ]
)
SCORE_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("cik", pa.int64()),
        ("accession", pa.string()),
        ("form", pa.string()),
        ("fiscal_year", pa.int32()),
        ("fiscal_period", pa.string()),
        ("score", pa.float64()),
        ("grade", pa.string()),
        ("components", pa.list_(COMPONENT_TYPE)),
        ("scored_at", pa.timestamp("us")),
    ]
)


def checks_table(run_id: str, checks: Sequence[CheckResult], run_at: dt.datetime) -> pa.Table:
    return pa.table(
        {
            "run_id": [run_id] * len(checks),
            "check": [c.check for c in checks],
            "severity": [c.severity for c in checks],
            "passed": [c.passed for c in checks],
            "affected_records": [c.affected_records for c in checks],
            "detail": [json.dumps(c.to_dict()["detail"], default=str) for c in checks],
            "run_at": [run_at] * len(checks),
        },
        schema=CHECK_SCHEMA,
    )


def scores_table(run_id: str, filings: Sequence[FilingScore], scored_at: dt.datetime) -> pa.Table:
    """The filing scores as rows of ``quality_scores`` (SCORE_SCHEMA)."""
    return pa.table(
        {
            "run_id": [run_id] * len(filings),
            "cik": [f.cik for f in filings],
            "accession": [f.accession for f in filings],
            "form": [f.form for f in filings],
            "fiscal_year": [f.fiscal_year for f in filings],
            "fiscal_period": [f.fiscal_period for f in filings],
            "score": [f.score for f in filings],
            "grade": [f.grade for f in filings],
            "components": [[{"name": c.name} | c.to_dict() for c in f.components] for f in filings],
            "scored_at": [scored_at] * len(filings),
        },
        schema=SCORE_SCHEMA,
    )


def store_results(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    checks: Sequence[CheckResult],
    filings: Sequence[FilingScore],
    *,
    now: dt.datetime | None = None,
) -> None:
    """Append a run's check results and filing scores in one transaction."""
    at = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    with transaction(con):
        with registered(con, "_q_checks", checks_table(run_id, checks, at)):
            con.execute("INSERT INTO reconciliation_results BY NAME SELECT * FROM _q_checks")
        with registered(con, "_q_scores", scores_table(run_id, filings, at)):
            con.execute("INSERT INTO quality_scores BY NAME SELECT * FROM _q_scores")
    log.info("stored quality run %s: %d checks, %d scores", run_id, len(checks), len(filings))


LATEST_GRADES = """
SELECT grade, count(*) AS filings FROM (
    SELECT grade FROM quality_scores
    QUALIFY row_number() OVER (PARTITION BY accession ORDER BY scored_at DESC, run_id DESC) = 1
) GROUP BY grade
"""


def latest_grades(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """The warehouse-wide grade distribution from storage: the newest ``quality_scores`` row
    of every filing (by scored_at, then run_id), whichever run scored it; grades A-F."""
    counts = {str(grade): int(n) for grade, n in con.execute(LATEST_GRADES).fetchall()}
    return {letter: counts.get(letter, 0) for _, letter in GRADES}
