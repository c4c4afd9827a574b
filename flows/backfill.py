"""The ``backfill`` flow: resolve -> (download -> parse -> load -> normalize) per batch -> publish.

Companies are processed in batches (``FINLOOM_BATCH_SIZE``), so thousands of companies
mean a few task runs per hundred companies, not thousands. One company's failure never
stops the others; the run ends Failed, naming them, after the summary is published.
Before the first batch, the companies an interrupted run left with facts newer than their
financials (marked in ``company_loads``) are normalized, also when every company of this
run turns out unchanged. Then only the companies whose facts a batch changed (LOADED) are
normalized; with none, the batch's normalize task does not run. With ``quality=True`` and
anything loaded or rebuilt, the ``quality`` flow runs last, as a subflow over the companies
loaded or rebuilt (its cost follows the run's changes; the standalone ``quality`` flow
checks the whole warehouse); its critical findings fail the backfill after both runs'
artifacts are published. The returned summary counts each filing once (distinct
accessions) and carries the quality subflow's grades, scope and Data Docs; progress goes to
``finloom_ops.progress`` as each batch loads (``finloom backfill`` draws it).

A run that got through every batch (and its quality subflow) then publishes the warehouse
for readers (``finloom_core.storage.published``), also when some companies failed (each
company is loaded wholly or not at all) or quality found a critical issue, before the run
ends Failed; not when the warehouse was not written since the last publish. A run that
stops midway (an error escaping a task) publishes nothing: readers keep the last snapshot.

Each run builds one ``SecGate`` (rate limiter, circuit breaker, request hooks): every SEC
request of the run, from any task or thread, goes through it, and the run's metrics are
hooked on it.

Every run records metrics, trace spans and logs (``finloom_ops/observe.py``), pushes its metrics
to the Pushgateway at its end when one is configured, and reports a failure to the alert
webhook or notification block (``finloom_ops/alerting.py``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.logging import get_run_logger
from prefect.utilities.annotations import quote

from finloom_core.edgar import SecGate
from finloom_core.edgar.sources import SourceSpec
from finloom_core.pipeline import batched, changed_ciks, with_financials
from finloom_core.quality.results import QualityReport
from finloom_core.records import CompanyOutcome
from finloom_core.report import quality_digest, stored_filings, summarize, verdict
from finloom_core.settings import FinloomSettings, load_settings
from finloom_core.staging import new_staging, remove_staging
from finloom_core.storage.validators import known_validators
from finloom_core.validators import Validators
from finloom_ops import progress
from finloom_ops.alerting import FAILURE_HOOKS
from finloom_ops.observe import ObservedRun, observed_flow, stored_fact_counts
from flows.parse import Pending, open_parse
from flows.quality import quality as quality_flow
from tasks.bulk import bulk_download_task, bulk_watermark_task
from tasks.ingest import download_task, load_task, resolve_task
from tasks.normalize import normalize_pending_task, normalize_task
from tasks.publish import publish_backfill_summary, publish_warehouse_task


@flow(name="backfill", log_prints=False, validate_parameters=True, **FAILURE_HOOKS)
def backfill(
    tickers: list[str] | None = None,
    ciks: list[str | int] | None = None,
    source: str | None = None,
    db_path: str | None = None,
    batch_size: int | None = None,
    quality: bool = True,
    bulk: bool = False,
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
        bulk: first fetch SEC's companyfacts.zip and submissions.zip (FINLOOM_BULK_DIR;
            resumed, or kept when not modified) and load the companies of the archive;
            then the nightly watermark starts at the archive's date.
    """
    settings = load_settings()
    db = db_path or str(settings.db_path)
    gate = SecGate.from_settings(settings)  # one rate limit and one circuit for the run
    with observed_flow("backfill", settings, db, gate) as run:
        archive = None
        if bulk:  # SEC's archives first, then loaded as a local source
            folder = settings.resolved_bulk_dir(Path(db))
            archive = bulk_download_task(settings, gate, str(folder))
            source = str(archive.path)
        summary = _backfill(settings, gate, db, tickers, ciks, source, batch_size, quality, run)
        if archive is not None and archive.day is not None:  # a complete run only
            bulk_watermark_task(db, archive.day, settings.duckdb_memory_limit)
        return summary


def _backfill(
    settings: FinloomSettings,
    gate: SecGate,
    db: str,
    tickers: list[str] | None,
    ciks: list[str | int] | None,
    source: str | None,
    batch_size: int | None,
    quality: bool,
    run: ObservedRun,
) -> dict[str, Any]:
    logger = get_run_logger()
    spec = SourceSpec(source or None)
    if spec.path is None:
        settings.require_user_agent()
    size = batch_size or settings.batch_size

    resolved = resolve_task(spec, settings, gate, tickers or [], [str(c) for c in ciks or []])
    batches = batched(resolved, size)
    progress.started(len(resolved), len(batches))
    # financials an interrupted run left behind their facts, rebuilt before anything loads
    healed = normalize_pending_task(db, size, settings.duckdb_memory_limit)
    # the facts each company holds before its load replaces them (the audit log's count)
    previous = stored_fact_counts(db, resolved, settings.duckdb_memory_limit)
    parse = open_parse(settings)  # in the task runner, or on FINLOOM_DASK_ADDRESS's cluster
    staging = new_staging(parse.shared_root)  # downloaded and archived documents, until loaded

    def known(batch: list[int]) -> dict[str, Validators]:
        """The validators of the batch's stored API documents (conditional requests), read
        here, between loads, before its download."""
        if spec.path is not None:
            return {}
        return known_validators(db, batch, memory_limit=settings.duckdb_memory_limit)

    outcomes: list[CompanyOutcome] = []
    try:
        # each next batch downloads and parses in the task runner while this one loads
        upcoming: list[Pending] = []
        for number, batch in enumerate(batches, start=1):
            # quote(): batches are handed over whole, so Prefect need not walk them looking
            # for futures (that walk costs ~70 ms a run on 34 companies)
            if upcoming:
                parsed = upcoming.pop().result()
            else:
                docs = download_task(spec, settings, gate, str(staging), batch, known(batch))
                parsed = parse.now(docs, str(staging))
            if number < len(batches):
                nxt = download_task.submit(
                    spec, settings, gate, str(staging), batches[number], known(batches[number])
                )
                upcoming.append(parse.ahead(nxt, str(staging)))
            loaded = load_task(db, quote(parsed), spec.label, settings.duckdb_memory_limit)
            changed = changed_ciks(loaded)
            counts = normalize_task(db, changed, settings.duckdb_memory_limit) if changed else {}
            loaded = with_financials(loaded, {**healed, **counts})
            outcomes += loaded
            run.add_loads(loaded, previous)  # counted as each batch loads: for the audit log
            progress.batch_done(number, len(batches), loaded)
            logger.info(
                "batch %d/%d: %d companies, %d facts written, %d not loaded",
                number, len(batches), len(batch), sum(o.facts for o in loaded if o.cik in changed),
                sum(not o.ok for o in loaded),
            )  # fmt: skip
    finally:
        parse.close()
        remove_staging(staging)

    # filings: distinct accessions (a Form 4 listed by issuer and owner counts once)
    summary = summarize(outcomes, source=spec.label, filings=stored_filings(db, outcomes))
    publish_backfill_summary(summary, outcomes)
    checked = None
    touched = sorted({*changed_ciks(outcomes), *healed})  # loaded, or financials rebuilt
    if quality and touched:
        progress.phase("quality")
        checked = quality_flow(
            db_path=db, ciks=touched, scope_reason="changed by this run", return_state=True
        )
        summary = dataclasses.replace(summary, quality=_quality_digest(checked))
    # every batch loaded and normalized: readers get this state (unless nothing was written)
    publish_warehouse_task(db, settings.published_keep, settings.duckdb_memory_limit)
    failure = verdict(summary)
    if failure is not None:
        raise failure
    if checked is not None and not checked.is_completed():
        checked.result()  # re-raises the quality run's error (e.g. a critical finding)
    return summary.as_dict()


def _quality_digest(state: Any) -> dict[str, Any]:
    """Grades, critical findings and Data Docs of the quality subflow for the summary, also
    when a critical finding failed it (the error carries the published report)."""
    result = state.result(raise_on_failure=False)
    report = result if isinstance(result, QualityReport) else getattr(result, "report", None)
    if isinstance(report, QualityReport):
        return quality_digest(report)
    return {"error": str(result)}
