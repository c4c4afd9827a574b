"""The ``quality`` flow: reconcile -> score -> validate -> publish.

Runs on its own (deployment ``quality``, ``finloom quality ...``: the whole warehouse, or
the companies given) and as a subflow at the end of every ``backfill`` that loaded
something, over the companies that run changed. Every report names its scope and carries
the warehouse-wide grade distribution read from the stored latest score of every filing.
The artifacts ``finloom-quality-report`` (markdown) and ``finloom-quality-scores`` (table,
one row per filing in scope) are always published first; a failed check of severity
``critical`` then ends the run Failed, so alerting can fire on the flow-run state.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prefect import flow
from prefect.logging import get_run_logger
from prefect.runtime import flow_run

from finloom_core.errors import QualityCriticalError
from finloom_core.quality.results import QualityReport
from finloom_core.settings import DEFAULT_MEMORY_LIMIT, load_settings
from finloom_ops.alerting import FAILURE_HOOKS
from finloom_ops.observe import observed_flow
from tasks.quality import (
    default_expectations_dir,
    publish_task,
    reconcile_task,
    scope_task,
    score_task,
    validate_task,
)

DEFAULT_DOCS_DIR = Path("quality") / "data_docs"


@flow(name="quality", log_prints=False, validate_parameters=True, **FAILURE_HOOKS)
def quality(
    db_path: str | None = None,
    ciks: list[int] | None = None,
    run_expectations: bool = True,
    expectations_dir: str | None = None,
    docs_dir: str | None = None,
    scope_reason: str = "selected",
) -> QualityReport:
    """Reconcile, score and validate the warehouse; publish the quality artifacts.

    Args:
        db_path: DuckDB file; defaults to FINLOOM_DB_PATH.
        ciks: only these companies (reconciliation, scores and the Great Expectations
            suites, which validate only their rows); the whole warehouse when empty.
        run_expectations: run the Great Expectations suites (``expectations/``).
        expectations_dir: folder of the suites; defaults to the repository's ``expectations/``.
        docs_dir: where GX Data Docs HTML goes; defaults to ``quality/data_docs`` under the
            working directory.
        scope_reason: why these ``ciks``, for the report's scope line (e.g. "changed by
            this run": "scope: 4 companies changed by this run").
    """
    settings = load_settings()
    db = db_path or str(settings.db_path)
    with observed_flow("quality", settings, db):
        return _quality(
            db, ciks, run_expectations, expectations_dir, docs_dir, scope_reason,
            settings.duckdb_memory_limit,
        )  # fmt: skip


def _quality(
    db: str,
    ciks: list[int] | None,
    run_expectations: bool,
    expectations_dir: str | None,
    docs_dir: str | None,
    scope_reason: str = "selected",
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> QualityReport:
    """The flow's body; every task's DuckDB connection gets ``memory_limit``
    (FINLOOM_DUCKDB_MEMORY_LIMIT, read once by the flow)."""
    logger = get_run_logger()
    wanted = sorted({int(c) for c in ciks}) if ciks else None
    scope = scope_task(db, wanted, scope_reason, memory_limit)
    checks = reconcile_task(db, wanted, memory_limit)
    scores = score_task(db, wanted, memory_limit)
    expectations = None
    if run_expectations:
        expectations = validate_task(
            db,
            expectations_dir or str(default_expectations_dir()),
            docs_dir or str(DEFAULT_DOCS_DIR),
            scope,
            memory_limit,
        )
    run_id = str(flow_run.id or "local")
    report = publish_task(db, run_id, checks, scores, expectations, scope, memory_limit)
    index = Path(docs_dir or DEFAULT_DOCS_DIR).resolve() / "index.html"
    docs = str(index) if run_expectations and index.is_file() else None
    report = dataclasses.replace(report, data_docs=docs)
    if report.critical:
        raise QualityCriticalError(
            f"critical data-quality finding(s): {', '.join(report.critical)}", report
        )
    logger.info(
        "quality run published: %d filings scored; scope: %s", len(report.filings), scope.label
    )
    return report
