"""Storing a quality run: its check results and filing scores, in one transaction."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence

import duckdb
import pyarrow as pa

from finloom_core.quality.reconcile import CheckResult
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


def checks_table(run_id: str, checks: Sequence[CheckResult], run_at: dt.datetime) -> pa.Table:
    return pa.table(
        {
            "run_id": [run_id] * len(checks),
            "check": [c.check for c in checks],
            "severity": [c.severity for c in checks],
            "passed": [c.passed for c in checks],
            "affected_records": [c.affected_records for c in checks],
            "detail": [json.dumps(c.detail, default=str) for c in checks],
            "run_at": [run_at] * len(checks),
        },
        schema=CHECK_SCHEMA,
    )


def store_results(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    checks: Sequence[CheckResult],
    scores: pa.Table,
    *,
    now: dt.datetime | None = None,
) -> None:
    """Append a run's check results and ``scores`` (scoring.SCORE_SCHEMA) in one transaction."""
    at = (now or dt.datetime.now(dt.UTC)).replace(tzinfo=None)
    stamped = scores.append_column("run_id", pa.array([run_id] * scores.num_rows, pa.string()))
    stamped = stamped.append_column(
        "scored_at", pa.array([at] * scores.num_rows, pa.timestamp("us"))
    )
    with transaction(con):
        with registered(con, "_q_checks", checks_table(run_id, checks, at)):
            con.execute("INSERT INTO reconciliation_results BY NAME SELECT * FROM _q_checks")
        with registered(con, "_q_scores", stamped):
            con.execute("INSERT INTO quality_scores BY NAME SELECT * FROM _q_scores")
    log.info("stored quality run %s: %d checks, %d scores", run_id, len(checks), scores.num_rows)
