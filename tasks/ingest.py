"""Prefect tasks of the ingest flow: thin wrappers, one finloom_core call each.

Retries: HTTP retries live in the EDGAR client (the one retry layer for requests), so the
download task has none; only the load task retries, and only when another process holds
the DuckDB write lock (a whole-task, transient failure).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from finloom_core.edgar.client import EdgarClient
from finloom_core.edgar.sources import Source, SourceSpec, open_source
from finloom_core.edgar.tickers import resolve_companies
from finloom_core.pipeline import Staged, download_batch, load_batch, parse_batch
from finloom_core.records import CompanyDocuments, CompanyOutcome
from finloom_core.settings import FinloomSettings
from tasks.retries import RETRY_ON_LOCKED_DATABASE


def _open(spec: SourceSpec, settings: FinloomSettings, staging: str | None = None) -> Source:
    return open_source(
        spec,
        client_factory=lambda: EdgarClient(settings),
        staging=Path(staging) if staging else None,
    )


@task(name="resolve", cache_policy=NO_CACHE, retries=0)
def resolve_task(
    spec: SourceSpec, settings: FinloomSettings, tickers: Sequence[str], ciks: Sequence[str]
) -> list[int]:
    """Tickers and CIKs -> unique CIKs; with neither, every company the source holds."""
    logger = get_run_logger()
    source = _open(spec, settings)
    try:
        if not tickers and not ciks:
            resolved = source.available_ciks()
        else:
            ticker_map = source.ticker_map() if tickers else None
            resolved = resolve_companies(ticker_map, list(tickers), list(ciks))
    finally:
        source.close()
    logger.info("resolved %d companies from %s", len(resolved), spec.label)
    return resolved


@task(name="download", cache_policy=NO_CACHE, retries=0)
def download_task(
    spec: SourceSpec, settings: FinloomSettings, staging: str, ciks: Sequence[int]
) -> list[CompanyDocuments | CompanyOutcome]:
    """Fetch a batch; companyfacts from the API or an archive are written under ``staging``."""
    source = _open(spec, settings, staging)
    try:
        return download_batch(source, ciks)
    finally:
        source.close()


@task(name="parse", cache_policy=NO_CACHE, retries=0)
def parse_task(staged: Sequence[CompanyDocuments | CompanyOutcome]) -> list[Staged]:
    return parse_batch(staged)


@task(name="load", cache_policy=NO_CACHE, **RETRY_ON_LOCKED_DATABASE)
def load_task(db_path: str, staged: Sequence[Staged], source_label: str) -> list[CompanyOutcome]:
    outcomes = load_batch(db_path, staged, source=source_label)
    logger = get_run_logger()
    for outcome in outcomes:
        if not outcome.ok:
            logger.warning(
                "cik %s %s at %s: %s", outcome.cik, outcome.status, outcome.stage, outcome.reason
            )
    return outcomes
