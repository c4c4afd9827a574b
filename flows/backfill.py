"""The ``backfill`` flow: resolve -> (download -> parse -> load -> normalize) per batch -> publish.

Companies are processed in batches (``FINLOOM_BATCH_SIZE``), so thousands of companies
mean a few task runs per hundred companies, not thousands. One company's failure never
stops the others; the run ends Failed, naming them, after the summary is published.
Only the companies whose facts a batch changed (LOADED) are normalized; with none, the
normalize task does not run. With ``quality=True`` and anything loaded, the ``quality`` flow
runs last, as a subflow over the whole warehouse; its critical findings fail the backfill
after both runs' artifacts are published.

Every run records metrics, trace spans and logs (``finloom_ops/observe.py``), pushes its metrics
to the Pushgateway at its end when one is configured, and reports a failure to the alert
webhook or notification block (``finloom_ops/alerting.py``).
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.futures import PrefectFuture
from prefect.logging import get_run_logger
from prefect.utilities.annotations import quote

from finloom_core.edgar.sources import SourceSpec
from finloom_core.pipeline import Staged, batched, changed_ciks, with_financials
from finloom_core.records import CompanyOutcome
from finloom_core.report import summarize, verdict
from finloom_core.settings import FinloomSettings, load_settings
from finloom_core.staging import new_staging, remove_staging
from finloom_ops.alerting import FAILURE_HOOKS
from finloom_ops.observe import observed_flow
from flows.quality import quality as quality_flow
from tasks.ingest import download_task, load_task, parse_task, resolve_task
from tasks.normalize import normalize_task
from tasks.publish import publish_backfill_summary


@flow(name="backfill", log_prints=False, validate_parameters=True, **FAILURE_HOOKS)
def backfill(
    tickers: list[str] | None = None,
    ciks: list[str | int] | None = None,
    source: str | None = None,
    db_path: str | None = None,
    batch_size: int | None = None,
    quality: bool = True,
) -> dict[str, Any]:
    """Load every XBRL fact, filing and company record of the given companies into DuckDB.

    Args:
        tickers: e.g. ["AAPL", "MSFT"]; resolved through SEC's ticker map.
        ciks: e.g. [320193, "0000789019"].
        source: a local EDGAR folder or a companyfacts.zip; empty means the live SEC API.
            With no tickers and no CIKs, every company the source holds is loaded.
        db_path: DuckDB file; defaults to FINLOOM_DB_PATH.
        batch_size: companies per task run; defaults to FINLOOM_BATCH_SIZE.
        quality: run the ``quality`` flow at the end when anything was loaded.
    """
    settings = load_settings()
    db = db_path or str(settings.db_path)
    with observed_flow("backfill", settings, db):
        return _backfill(settings, db, tickers, ciks, source, batch_size, quality)


def _backfill(
    settings: FinloomSettings,
    db: str,
    tickers: list[str] | None,
    ciks: list[str | int] | None,
    source: str | None,
    batch_size: int | None,
    quality: bool,
) -> dict[str, Any]:
    logger = get_run_logger()
    spec = SourceSpec(source or None)
    if spec.path is None:
        settings.require_user_agent()
    size = batch_size or settings.batch_size

    resolved = resolve_task(spec, settings, tickers or [], [str(c) for c in ciks or []])
    batches = batched(resolved, size)
    staging = new_staging()  # downloaded and archived documents, until they are loaded
    outcomes: list[CompanyOutcome] = []
    try:
        # each next batch downloads and parses in the task runner while this one loads
        upcoming: list[PrefectFuture[list[Staged]]] = []
        for number, batch in enumerate(batches, start=1):
            # quote(): batches are handed over whole, so Prefect need not walk them looking
            # for futures (that walk costs ~70 ms a run on 34 companies)
            if upcoming:
                parsed = upcoming.pop().result()
            else:
                parsed = parse_task(quote(download_task(spec, settings, str(staging), batch)))
            if number < len(batches):
                nxt = download_task.submit(spec, settings, str(staging), batches[number])
                upcoming.append(parse_task.submit(nxt))
            loaded = load_task(db, quote(parsed), spec.label)
            changed = changed_ciks(loaded)
            if changed:
                loaded = with_financials(loaded, normalize_task(db, changed))
            outcomes += loaded
            logger.info(
                "batch %d/%d: %d companies, %d facts stored, %d not loaded",
                number, len(batches), len(batch), sum(o.facts for o in loaded),
                sum(not o.ok for o in loaded),
            )  # fmt: skip
    finally:
        remove_staging(staging)

    summary = summarize(outcomes, source=spec.label)
    publish_backfill_summary(summary, outcomes)
    checked = None
    if quality and changed_ciks(outcomes):
        checked = quality_flow(db_path=db, return_state=True)
    failure = verdict(summary)
    if failure is not None:
        raise failure
    if checked is not None and not checked.is_completed():
        checked.result()  # re-raises the quality run's error (e.g. a critical finding)
    return summary.as_dict()
