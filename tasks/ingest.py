"""Prefect tasks of the ingest flow: thin wrappers, one finloom_core call each.

SEC requests go through the flow run's ``SecGate`` (one rate-limit window and one circuit
for every task run and thread of the run), passed to the tasks that may reach SEC.

Retries: HTTP retries live in the EDGAR client (the one retry layer for requests), so the
download task has none; only the load task retries, and only when another process holds
the DuckDB write lock (a whole-task, transient failure).

Each task runs inside ``observe.stage`` (a trace span; a raised error counts in
``finloom_pipeline_errors_total``), with a child span per company (``finloom.cik``,
``finloom.status``) in the download and load stages. Each records its own metrics from
the outcomes: companies downloaded by status, per-company download and parse durations,
facts loaded, and each company that failed, under the stage where it failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from finloom_core.edgar import EdgarClient, SecGate
from finloom_core.edgar.sources import Source, SourceSpec, open_source
from finloom_core.edgar.tickers import resolve_companies
from finloom_core.parquet_stage import ParquetCompany
from finloom_core.pipeline import (
    Staged,
    download_batch,
    load_batch,
    parse_batch,
    parse_batch_to_parquet,
)
from finloom_core.records import CompanyDocuments, CompanyOutcome, Status
from finloom_core.settings import DEFAULT_MEMORY_LIMIT, FinloomSettings
from finloom_core.validators import Validators
from finloom_ops import metrics
from finloom_ops.observe import stage
from finloom_ops.tracing import company_span, record_outcomes
from tasks import RETRY_ON_LOCKED_DATABASE


def _open(
    spec: SourceSpec,
    settings: FinloomSettings,
    gate: SecGate,
    staging: str | None = None,
    known: Mapping[str, Validators] | None = None,
) -> Source:
    return open_source(
        spec,
        client_factory=lambda: EdgarClient(settings, gate),
        staging=Path(staging) if staging else None,
        known=known,
    )


@task(name="resolve", cache_policy=NO_CACHE, retries=0)
def resolve_task(
    spec: SourceSpec,
    settings: FinloomSettings,
    gate: SecGate,
    tickers: Sequence[str],
    ciks: Sequence[str],
) -> list[int]:
    """Tickers and CIKs -> unique CIKs; with neither, every company the source holds."""
    logger = get_run_logger()
    with stage("resolve", source=spec.label) as span:
        source = _open(spec, settings, gate)
        try:
            if not tickers and not ciks:
                resolved = source.available_ciks()
            else:
                ticker_map = source.ticker_map() if tickers else None
                resolved = resolve_companies(ticker_map, list(tickers), list(ciks))
        finally:
            source.close()
        span.set_attribute("finloom.companies", len(resolved))
    logger.info("resolved %d companies from %s", len(resolved), spec.label)
    return resolved


@task(name="download", cache_policy=NO_CACHE, retries=0)
def download_task(
    spec: SourceSpec,
    settings: FinloomSettings,
    gate: SecGate,
    staging: str,
    ciks: Sequence[int],
    known: Mapping[str, Validators] | None = None,
) -> list[CompanyDocuments | CompanyOutcome]:
    """Fetch a batch; companyfacts from the API or an archive are written under ``staging``.

    ``known``: the validators of the documents the warehouse stores (conditional requests).
    """
    m = metrics.current()
    with stage("download", companies=len(ciks), source=spec.label):
        source = _open(spec, settings, gate, staging, known)
        try:
            results = download_batch(
                source,
                ciks,
                on_timing=lambda _cik, seconds: m.download_duration.observe(seconds),
                concurrency=settings.download_concurrency,
            )
        finally:
            source.close()
        for item in results:
            if isinstance(item, CompanyDocuments):
                status = "downloaded" if item.companyfacts else "no_facts"
                company_span("download", item.cik, status)
            else:
                status = str(item.status)
                company_span("download", item.cik, status, reason=item.reason)
            m.filings_downloaded.labels(status).inc()
    _count_failures(results, "download")
    return results


@task(name="parse", cache_policy=NO_CACHE, retries=0)
def parse_task(staged: Sequence[CompanyDocuments | CompanyOutcome]) -> list[Staged]:
    m = metrics.current()
    with stage("parse", companies=len(staged)):
        results = parse_batch(
            staged, on_timing=lambda _cik, seconds: m.parse_duration.observe(seconds)
        )
    _count_failures(results, "parse")
    return results


@task(name="parse-parquet", cache_policy=NO_CACHE, retries=0)
def parse_parquet_task(
    staged: Sequence[CompanyDocuments | CompanyOutcome],
    out_dir: str,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> list[ParquetCompany | CompanyOutcome]:
    """The parse on a Dask worker: the companies' documents (read from a folder the worker
    shares with the flow) parsed, their facts and filings written to Parquet under
    ``out_dir``; returns small descriptors. Its metrics are recorded by the flow, from the
    descriptors (the worker's process keeps none)."""
    return parse_batch_to_parquet(staged, out_dir, memory_limit=memory_limit)


@task(name="load", cache_policy=NO_CACHE, **RETRY_ON_LOCKED_DATABASE)
def load_task(
    db_path: str,
    staged: Sequence[Staged],
    source_label: str,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> list[CompanyOutcome]:
    with stage("load", companies=len(staged)) as span:
        outcomes = load_batch(db_path, staged, source=source_label, memory_limit=memory_limit)
        loaded = sum(o.facts for o in outcomes if o.status == Status.LOADED)
        span.set_attribute("finloom.facts", loaded)
        record_outcomes("load", outcomes)  # one child span per company: cik and status
    metrics.current().facts_loaded.inc(loaded)
    metrics.record_database_size(db_path)
    _count_failures(outcomes, "load")
    logger = get_run_logger()
    for outcome in outcomes:
        if not outcome.ok:
            logger.warning(
                "cik %s %s at %s: %s",
                outcome.cik, outcome.status, outcome.stage, outcome.reason,
                extra={"cik": outcome.cik},
            )  # fmt: skip
    return outcomes


def _count_failures(results: Sequence[object], at_stage: str) -> None:
    """Companies that failed at ``at_stage`` (earlier stages' failures pass through)."""
    failed = sum(
        1
        for r in results
        if isinstance(r, CompanyOutcome) and r.status == Status.FAILED and r.stage == at_stage
    )
    if failed:
        metrics.current().pipeline_errors.labels(at_stage).inc(failed)
