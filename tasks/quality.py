"""Prefect tasks of the ``quality`` flow: reconcile -> score -> validate -> publish.

Thin adapters around ``finloom_core.quality``. Every task opens (and closes) its own DuckDB
connection with the ``memory_limit`` the flow passes down (FINLOOM_DUCKDB_MEMORY_LIMIT, as
the load and normalize tasks get it), at most QUALITY_MEMORY_LIMIT (VALIDATE_MEMORY_LIMIT for
the GX step, whose chunk reads would fill DuckDB's buffer pool up to the limit on top of
GX's own heap): the limit the loads need would let a whole archive's quality run pass 2 GB
of RSS. Every task hands back the typed results
(``finloom_core.quality.results``) or GX's result dicts, so nothing holding a database lock
crosses a task boundary. The artifacts are rendered by ``finloom_core.quality.render``, as
the ``finloom quality`` tables are; the scores table holds the worst
:data:`SCORES_ARTIFACT_ROWS` filings (every score is stored in ``quality_scores``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from finloom_core.quality.render import report_markdown, score_rows
from finloom_core.quality.results import (
    CheckResult,
    CompanyScore,
    FilingScore,
    QualityReport,
    Scope,
)
from finloom_core.settings import DEFAULT_MEMORY_LIMIT
from finloom_core.storage.database import open_warehouse
from finloom_ops import metrics
from finloom_ops.observe import stage
from tasks import RETRY_ON_LOCKED_DATABASE

REPORT_ARTIFACT_KEY = "finloom-quality-report"
SCORES_ARTIFACT_KEY = "finloom-quality-scores"
# rows of the scores table artifact: the worst filings (every score is in quality_scores);
# a whole archive's 200k rows would be a ~60 MB artifact, of no use in the UI
SCORES_ARTIFACT_ROWS = 1_000
# DuckDB memory of the quality tasks, when FINLOOM_DUCKDB_MEMORY_LIMIT is higher: their
# queries spill (or run in chunks of companies) and the process also holds their results,
# so at the 2GB the loads need, a whole archive's reconciliation passes 2.4 GB of RSS
QUALITY_MEMORY_LIMIT = "1GB"
# ... and of the validate task: its chunk reads never read a block twice, and every block
# DuckDB keeps cached (up to its limit) adds to the Python heap GX needs
# (finloom_core.quality.expectations)
VALIDATE_MEMORY_LIMIT = "256MB"
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}  # fmt: skip


def limit_bytes(limit: str) -> float:
    """A DuckDB memory limit (``2GB``, ``1.5 GiB``, as FINLOOM_DUCKDB_MEMORY_LIMIT) in bytes."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*", limit)
    if found is None or found[2] not in _UNITS:
        raise ValueError(f"not a memory limit: {limit!r}")
    return float(found[1]) * _UNITS[found[2]]


def capped(memory_limit: str, cap: str = QUALITY_MEMORY_LIMIT) -> str:
    """A quality task's DuckDB limit: the setting, at most ``cap``."""
    return min(memory_limit, cap, key=limit_bytes)


@task(name="quality-scope", cache_policy=NO_CACHE,
      **RETRY_ON_LOCKED_DATABASE)  # fmt: skip
def scope_task(
    db_path: str,
    ciks: Sequence[int] | None,
    reason: str = "selected",
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> Scope:
    """The run's scope: ``ciks``, or every company of the warehouse when None."""
    from finloom_core.quality.scope import company_scope

    companies = 0
    if ciks is None:
        with open_warehouse(db_path, memory_limit=capped(memory_limit)) as con:
            companies = len(company_scope(con, None))
    scope = Scope.of(ciks, companies, reason)
    get_run_logger().info("quality scope: %s", scope.label)
    return scope


@task(name="quality-reconcile", cache_policy=NO_CACHE,
      **RETRY_ON_LOCKED_DATABASE)  # fmt: skip
def reconcile_task(
    db_path: str, ciks: Sequence[int] | None = None, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> list[CheckResult]:
    """The reconciliation checks."""
    from finloom_core.quality.reconcile import run_checks

    with (
        stage("quality", step="reconcile"),
        open_warehouse(db_path, memory_limit=capped(memory_limit)) as con,
    ):
        checks = run_checks(con, ciks=list(ciks) if ciks else None)
    failed = [c.check for c in checks if not c.passed]
    get_run_logger().info("reconciliation: %d checks, failed: %s", len(checks), failed or "none")
    return checks


@task(name="quality-score", cache_policy=NO_CACHE,
      **RETRY_ON_LOCKED_DATABASE)  # fmt: skip
def score_task(
    db_path: str, ciks: Sequence[int] | None = None, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> tuple[list[FilingScore], list[CompanyScore]]:
    """The filing scores and the company scores."""
    from finloom_core.quality.scoring import score_companies, score_filings

    wanted = list(ciks) if ciks else None
    with (
        stage("quality", step="score"),
        open_warehouse(db_path, memory_limit=capped(memory_limit)) as con,
    ):
        filings = score_filings(con, ciks=wanted)
        companies = score_companies(con, filings)
    get_run_logger().info("scored %d filings of %d companies", len(filings), len(companies))
    return filings, companies


@task(name="quality-validate", cache_policy=NO_CACHE)
def validate_task(
    db_path: str,
    expectations_dir: str,
    docs_dir: str | None = None,
    scope: Scope | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> dict[str, Any]:
    """Great Expectations suites against the warehouse (the scope's companies only, when it
    names some); {table: GX result dict}."""
    from finloom_core.quality.expectations import summarize, validate_tables

    ciks = None if scope is None else scope.ciks
    label = None if scope is None else scope.label
    with (
        stage("quality", step="validate"),
        open_warehouse(db_path, memory_limit=capped(memory_limit, VALIDATE_MEMORY_LIMIT)) as con,
    ):
        results = validate_tables(con, expectations_dir, docs_dir, ciks=ciks, scope=label)
    for table, suite in summarize(results).items():
        get_run_logger().info(
            "expectations %s: %s (%d failed)", table, "passed" if suite.success else "FAILED",
            len(suite.failed),
        )  # fmt: skip
    return results


@task(name="quality-publish", cache_policy=NO_CACHE,
      **RETRY_ON_LOCKED_DATABASE)  # fmt: skip
def publish_task(
    db_path: str,
    run_id: str,
    checks: Sequence[CheckResult],
    scores: tuple[Sequence[FilingScore], Sequence[CompanyScore]],
    expectations: dict[str, Any] | None,
    scope: Scope | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> QualityReport:
    """Store the run in DuckDB and publish the two artifacts; returns the report, with the
    warehouse-wide grades read back from the stored latest score of every filing."""
    from finloom_core.quality.expectations import summarize
    from finloom_core.quality.store import latest_grades, store_results

    filings, companies = scores
    with (
        stage("publish", filings=len(filings)),
        open_warehouse(db_path, memory_limit=capped(memory_limit)) as con,
    ):
        store_results(con, run_id, checks, filings)
        warehouse = latest_grades(con)
    grades = metrics.current().quality_grades
    for grade, count in Counter(f.grade for f in filings).items():
        grades.labels(grade).inc(count)
    summary = summarize(expectations) if expectations else {}
    report = QualityReport.of(
        run_id, checks, filings, companies, expectations, summary,
        scope=scope, warehouse_grades=warehouse,
    )  # fmt: skip
    covers = f"; scope: {scope.label}" if scope is not None else ""
    create_markdown_artifact(
        markdown=report_markdown(report),
        key=REPORT_ARTIFACT_KEY,
        description=f"FinLoom data quality: {len(filings)} filings, {len(checks)} checks{covers}",
    )
    shown = (
        "every filing"
        if len(filings) <= SCORES_ARTIFACT_ROWS
        else f"the {SCORES_ARTIFACT_ROWS:,} worst of {len(filings):,} filings"
    )
    create_table_artifact(
        table=score_rows(filings, SCORES_ARTIFACT_ROWS) or [{"note": "no filings scored"}],
        key=SCORES_ARTIFACT_KEY,
        description=f"FinLoom quality score of {shown} in scope, worst first (0-100, grade"
        f" A-F; every score is stored in quality_scores){covers}",
    )
    return report


def default_expectations_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "expectations"
