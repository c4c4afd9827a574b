"""Concurrent downloads from the live API: several companies in flight behind the one gate.

Integration tests against the EDGAR stand-in answering after a delay, as SEC does from afar:
the rate achieved, the order of results, the circuit stopping every queued company, and
local sources staying on the calling thread.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest

from finloom_core.edgar import EdgarClient, SecGate
from finloom_core.edgar.ratelimit import RateLimiter
from finloom_core.edgar.sources import ApiSource
from finloom_core.errors import ConfigurationError
from finloom_core.pipeline import download_batch
from finloom_core.records import CompanyDocuments, CompanyOutcome, Status
from finloom_core.settings import FinloomSettings, load_settings
from tests.edgar_standin import EdgarStandIn
from tests.factories import (
    Fact,
    MemorySource,
    accession,
    company_documents,
    companyfacts_doc,
    submissions_doc,
    to_bytes,
)

FIRST_CIK = 7_000_001
LATENCY = 0.25  # seconds before the stand-in answers, as from SEC far away


def synthetic_edgar(root: Path, companies: int) -> list[int]:
    """An EDGAR folder of ``companies`` small companies: a companyfacts and a submissions
    document each (no older-filings pages), so each company costs exactly two requests."""
    (root / "companyfacts").mkdir(parents=True)
    (root / "submissions").mkdir()
    ciks = list(range(FIRST_CIK, FIRST_CIK + companies))
    for cik in ciks:
        name = f"CIK{cik:010d}.json"
        fact = Fact("Revenues", 1000 + cik % 1000, accession(cik, 2023, 1), "2023-09-30")
        (root / "companyfacts" / name).write_bytes(to_bytes(companyfacts_doc(cik, [fact])))
        (root / "submissions" / name).write_bytes(to_bytes(submissions_doc(cik)))
    return ciks


def api_settings(server: EdgarStandIn, **values: object) -> FinloomSettings:
    return FinloomSettings(  # type: ignore[call-arg]
        _env_file=None,
        sec_user_agent="FinLoom tests tests@example.com",
        edgar_data_url=server.data_url,
        edgar_www_url=server.www_url,
        **values,
    )


def limiter_ceiling(starts: int, span: float, limiter: RateLimiter) -> int:
    """The most request starts the limiter admits within ``span`` seconds of the first."""
    return limiter.capacity * (math.floor(span / limiter.window) + 1) if starts else 0


@pytest.mark.integration
def test_concurrent_downloads_sustain_the_allowed_rate_without_a_429(
    tmp_path: Path,
) -> None:
    """24 companies (48 requests) at 8/s from a server answering after 0.25 s: at least 90%
    of the setting over the download window (first to last arrival), every start the limiter
    allowed taken, no 429. One after another the same batch reaches about half of it."""
    ciks = synthetic_edgar(tmp_path / "edgar", 24)
    with EdgarStandIn(tmp_path / "edgar", latency=LATENCY) as server:
        settings = api_settings(server, max_requests_per_second=8)
        gate = SecGate.from_settings(settings)
        source = ApiSource(EdgarClient(settings, gate), tmp_path / "staging")
        try:
            results = download_batch(source, ciks, concurrency=8)
        finally:
            source.close()
        arrivals = sorted(hit.at for hit in server.hits)
    assert [r.cik for r in results] == ciks
    assert all(isinstance(r, CompanyDocuments) and r.companyfacts for r in results)
    assert server.count(429) == 0
    assert len(arrivals) == 48
    span = arrivals[-1] - arrivals[0]
    rate = (len(arrivals) - 1) / span
    assert rate >= 0.9 * 8, f"{rate:.2f} requests/s over {span:.2f} s"
    assert isinstance(gate.limiter, RateLimiter)
    # the pool keeps the limiter saturated: nearly every start it admitted in that span
    assert len(arrivals) >= 0.9 * limiter_ceiling(len(arrivals), span, gate.limiter)


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness", "clean_finloom_env")
def test_a_live_api_backfill_downloads_at_the_allowed_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backfill flow over the live API, 24 companies, the server 0.25 s away: every
    company loaded, no 429, at least 90% of FINLOOM_MAX_REQUESTS_PER_SECOND over the
    download window (one batch: the stand-in sees only the download's requests)."""
    from flows.backfill import backfill

    ciks = synthetic_edgar(tmp_path / "edgar", 24)
    with EdgarStandIn(tmp_path / "edgar", latency=LATENCY) as server:
        monkeypatch.setenv("FINLOOM_EDGAR_DATA_URL", server.data_url)
        monkeypatch.setenv("FINLOOM_EDGAR_WWW_URL", server.www_url)
        monkeypatch.setenv("FINLOOM_SEC_USER_AGENT", "FinLoom flow tests flow-tests@example.com")
        monkeypatch.setenv("FINLOOM_MAX_REQUESTS_PER_SECOND", "8")
        summary = backfill(
            ciks=[str(c) for c in ciks], db_path=str(tmp_path / "w.duckdb"), quality=False
        )
        arrivals = sorted(hit.at for hit in server.hits)
        assert server.count(429) == 0
    assert summary["failed"] == [] and summary["deferred"] == []
    assert len(arrivals) == 48
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert rate >= 0.9 * 8, f"{rate:.2f} requests/s"


@pytest.mark.integration
def test_results_keep_the_input_order_and_timings_come_on_the_calling_thread(
    tmp_path: Path,
) -> None:
    ciks = synthetic_edgar(tmp_path / "edgar", 6)
    unknown = 7_999_999
    order = [ciks[5], ciks[0], unknown, ciks[3], ciks[1], ciks[4], ciks[2]]
    timings: list[tuple[int, str]] = []
    with EdgarStandIn(tmp_path / "edgar", latency=0.05) as server:
        settings = api_settings(server, max_requests_per_second=10)
        source = ApiSource(EdgarClient(settings, SecGate.from_settings(settings)), tmp_path / "s")
        try:
            results = download_batch(
                source,
                order,
                on_timing=lambda cik, _s: timings.append((cik, threading.current_thread().name)),
                concurrency=4,
            )
        finally:
            source.close()
    assert [r.cik for r in results] == order
    missing = results[2]
    assert isinstance(missing, CompanyOutcome) and missing.status is Status.FAILED
    assert all(isinstance(r, CompanyDocuments) for i, r in enumerate(results) if i != 2)
    main = threading.current_thread().name
    assert timings == [(cik, main) for cik in order if cik != unknown]
    staged = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert staged == sorted(f"CIK{cik:010d}.json" for cik in ciks)  # one file per company


@pytest.mark.integration
def test_once_the_circuit_opens_the_queued_companies_are_deferred_not_requested(
    tmp_path: Path,
) -> None:
    """A 429 to the third company: no request reaches the server once that answer is in, and
    every company not fetched by then is deferred (none failed)."""
    ciks = synthetic_edgar(tmp_path / "edgar", 24)
    with EdgarStandIn(tmp_path / "edgar", latency=0.1) as server:
        server.add_fault(f"/api/xbrl/companyfacts/CIK{ciks[2]:010d}.json", 429)
        settings = api_settings(server, max_requests_per_second=8, http_max_retries=0)
        gate = SecGate.from_settings(settings)
        source = ApiSource(EdgarClient(settings, gate), tmp_path / "staging")
        try:
            results = download_batch(source, ciks, concurrency=8)
        finally:
            source.close()
        hits = server.hits
    assert gate.is_open()
    [blocked] = [hit for hit in hits if hit.status == 429]
    answered = blocked.at + 0.1
    late = [hit for hit in hits if hit.at > answered + 0.1]
    assert late == [], f"{len(late)} requests after the 429 was answered"
    assert len(hits) < 2 * len(ciks)
    assert [r.cik for r in results] == ciks
    deferred = [r for r in results if isinstance(r, CompanyOutcome)]
    assert all(r.status is Status.DEFERRED for r in deferred)
    assert ciks[2] in {r.cik for r in deferred}
    assert len(deferred) >= len(ciks) - 8


def test_a_local_source_is_read_on_the_calling_thread(tmp_path: Path) -> None:
    docs = [company_documents(cik, companyfacts_doc(cik), directory=tmp_path) for cik in (1, 2)]
    threads: list[str] = []

    class Recording(MemorySource):
        def fetch(self, cik: int) -> CompanyDocuments:
            threads.append(threading.current_thread().name)
            return super().fetch(cik)

    results = download_batch(Recording(docs), [2, 1], concurrency=8)
    assert [r.cik for r in results] == [2, 1]
    assert threads == [threading.current_thread().name] * 2


def test_download_concurrency_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINLOOM_DOWNLOAD_CONCURRENCY", raising=False)
    assert FinloomSettings(_env_file=None).download_concurrency == 8  # type: ignore[call-arg]
    monkeypatch.setenv("FINLOOM_DOWNLOAD_CONCURRENCY", "1")
    assert FinloomSettings(_env_file=None).download_concurrency == 1  # type: ignore[call-arg]
    monkeypatch.setenv("FINLOOM_DOWNLOAD_CONCURRENCY", "0")
    with pytest.raises(ConfigurationError):
        load_settings(_env_file=None)
