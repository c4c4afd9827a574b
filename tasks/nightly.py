"""Prefect tasks of the ``nightly`` flow: thin wrappers, one finloom_core call each."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from finloom_core.edgar import EdgarClient, SecGate
from finloom_core.edgar.daily_index import IndexScan, scan_days
from finloom_core.edgar.tickers import normalize_ticker, parse_company_tickers
from finloom_core.settings import DEFAULT_MEMORY_LIMIT, FinloomSettings
from finloom_core.storage.database import open_warehouse
from finloom_core.storage.nightly import (
    PendingCompany,
    ciks_of_tickers,
    get_watermark,
    pending_companies,
    record_night,
)
from finloom_ops.observe import stage
from tasks import RETRY_ON_LOCKED_DATABASE

NIGHTLY_ARTIFACT_KEY = "finloom-nightly-summary"


@task(name="read-night-state", cache_policy=NO_CACHE, **RETRY_ON_LOCKED_DATABASE)
def read_state_task(
    db: str, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> tuple[date | None, list[PendingCompany]]:
    """The watermark and the pending companies."""
    with stage("nightly-state"), open_warehouse(db, memory_limit=memory_limit) as con:
        return get_watermark(con), pending_companies(con)


@task(name="fetch-daily-indexes", cache_policy=NO_CACHE, retries=0)
def fetch_indexes_task(settings: FinloomSettings, gate: SecGate, days: list[date]) -> IndexScan:
    """SEC's daily master index of each day, in order: who filed an XBRL form."""
    with stage("daily-indexes", days=len(days)), EdgarClient(settings, gate) as client:
        return scan_days(client.daily_index, days)


@task(name="resolve-watch-list", cache_policy=NO_CACHE, **RETRY_ON_LOCKED_DATABASE)
def resolve_watch_task(
    db: str,
    settings: FinloomSettings,
    gate: SecGate,
    tickers: Sequence[str],
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> dict[str, int]:
    """Ticker -> CIK: from the warehouse's companies, then SEC's ticker map for the rest."""
    with stage("resolve", source="warehouse"), open_warehouse(db, memory_limit=memory_limit) as con:
        known = ciks_of_tickers(con, [normalize_ticker(t) for t in tickers])
    unknown = [t for t in (normalize_ticker(t) for t in tickers) if t not in known]
    if unknown:
        with EdgarClient(settings, gate) as client:
            body = client.company_tickers()
        ticker_map = parse_company_tickers(body, origin="SEC's ticker map")
        known.update(zip(unknown, ticker_map.resolve(unknown), strict=True))
    return known


@task(name="record-night", cache_policy=NO_CACHE, **RETRY_ON_LOCKED_DATABASE)
def record_night_task(
    db: str,
    pending: list[PendingCompany],
    settled: list[int],
    watermark: date | None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> None:
    """Store the pending list and move the watermark, in one transaction."""
    with stage("nightly-record"), open_warehouse(db, memory_limit=memory_limit) as con:
        record_night(con, pending=pending, settled=settled, watermark=watermark)


@task(name="publish-nightly-summary", cache_policy=NO_CACHE)
def publish_nightly_summary(markdown: str, description: str) -> str:
    create_markdown_artifact(markdown=markdown, key=NIGHTLY_ARTIFACT_KEY, description=description)
    return NIGHTLY_ARTIFACT_KEY
