"""Prefect tasks of the ``quality`` flow: reconcile -> score -> validate -> publish.

Thin adapters around ``finloom_core.quality``. Every task opens (and closes) its own DuckDB
connection and hands back the typed results (``finloom_core.quality.results``) or GX's
result dicts, so nothing holding a database lock crosses a task boundary. The artifacts are
rendered by ``finloom_core.quality.render``, as the ``finloom quality`` tables are.
"""

from __future__ import annotations

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
from finloom_core.storage.database import open_warehouse
from finloom_ops import metrics
from finloom_ops.observe import stage
from tasks import RETRY_ON_LOCKED_DATABASE

REPORT_ARTIFACT_KEY = "finloom-quality-report"
SCORES_ARTIFACT_KEY = "finloom-quality-scores"


@task(name="quality-scope", cache_policy=NO_CACHE,
      **RETRY_ON_LOCKED_DATABASE)  # fmt: skip
def scope_task(db_path: str, ciks: Sequence[int] | None, reason: str = "selected") -> Scope:
    """The run's scope: ``ciks``, or every company of the warehouse when None."""
    from finloom_core.quality.scope import company_scope

    companies = 0
    if ciks is None:
        with open_warehouse(db_path) as con:
            companies = len(company_scope(con, None))
    scope = Scope.of(ciks, companies, reason)
    get_run_logger().info("quality scope: %s", scope.label)
    return scope


@task(name="quality-reconcile", cache_policy=NO_CACHE,
      **RETRY_ON_LOCKED_DATABASE)  # fmt: skip
def reconcile_task(db_path: str, ciks: Sequence[int] | None = None) -> list[CheckResult]:
    """The reconciliation checks."""
    from finloom_core.quality.reconcile import run_checks

    with stage("quality", step="reconcile"), open_warehouse(db_path) as con:
        checks = run_checks(con, ciks=list(ciks) if ciks else None)
    failed = [c.check for c in checks if not c.passed]
    get_run_logger().info("reconciliation: %d checks, failed: %s", len(checks), failed or "none")
    return checks


@task(name="quality-score", cache_policy=NO_CACHE,
      **RETRY_ON_LOCKED_DATABASE)  # fmt: skip
def score_task(
    db_path: str, ciks: Sequence[int] | None = None
) -> tuple[list[FilingScore], list[CompanyScore]]:
    """The filing scores and the company scores."""
    from finloom_core.quality.scoring import score_companies, score_filings

    wanted = list(ciks) if ciks else None
    with stage("quality", step="score"), open_warehouse(db_path) as con:
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
) -> dict[str, Any]:
    """Great Expectations suites against the warehouse (the scope's companies only, when it
    names some); {table: GX result dict}."""
    from finloom_core.quality.expectations import summarize, validate_tables

    ciks = None if scope is None else scope.ciks
    label = None if scope is None else scope.label
    with stage("quality", step="validate"), open_warehouse(db_path) as con:
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
) -> QualityReport:
    """Store the run in DuckDB and publish the two artifacts; returns the report, with the
    warehouse-wide grades read back from the stored latest score of every filing."""
    from finloom_core.quality.expectations import summarize
    from finloom_core.quality.store import latest_grades, store_results

    filings, companies = scores
    with stage("publish", filings=len(filings)), open_warehouse(db_path) as con:
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
    create_table_artifact(
        table=score_rows(filings) or [{"note": "no filings scored"}],
        key=SCORES_ARTIFACT_KEY,
        description="FinLoom quality score of every filing in scope, worst first (0-100, grade"
        f" A-F){covers}",
    )
    return report


def default_expectations_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "expectations"
