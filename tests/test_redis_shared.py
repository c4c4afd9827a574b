"""Many workers, one SEC budget: with FINLOOM_REDIS_URL every FinLoom process using that
Redis shares one rate-limit window, one circuit and an HTTP cache.

Workers are real processes (``worker_main`` below, run with ``python -c``), each with its
own SecGate built from its settings and its own FINLOOM_STATE_DIR (as on two machines: the
circuit file is not what they share). Rates are counted as the EDGAR stand-in counts
arrivals. Each test starts its own redis-server (tests/redis_server.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pybreaker
import pytest
import redis

from finloom_core.edgar import EdgarClient, SecGate
from finloom_core.edgar.cache import CACHE_PREFIX, RedisResponseCache, cache_key, flush
from finloom_core.edgar.redis_shared import (
    CIRCUIT_KEY,
    RedisCircuitStorage,
    RedisLink,
    RedisRateLimiter,
    check_redis,
    redis_label,
)
from finloom_core.edgar.sources import ApiSource
from finloom_core.errors import CircuitOpenError, ConfigurationError
from finloom_core.pipeline import download_batch
from finloom_core.records import CompanyDocuments, CompanyOutcome, Status
from finloom_core.settings import FinloomSettings, load_settings
from finloom_core.validators import Validators
from tests.edgar_standin import EdgarStandIn, Hit
from tests.redis_server import RedisServer, free_port, redis_server
from tests.test_download_concurrency import synthetic_edgar
from tests.test_ratelimit import max_in_window

__all__ = ("redis_server",)  # the fixture, imported for this module's tests

REPO = Path(__file__).resolve().parents[1]
WORKER = "from tests.test_redis_shared import worker_main; worker_main()"
LATENCY = 0.25  # seconds before the stand-in answers, as from SEC far away


# ---------------------------------------------------------------------- the worker process


def worker_main() -> None:
    """A FinLoom worker: ``python -c WORKER <ciks> <staging> [<barrier file>]``.

    Builds its gate from the environment's settings, says ``ready``, waits for the barrier
    file (so that workers start together), downloads the companies as a backfill does and
    prints a JSON summary: companies fetched, deferred, failed, and each companyfacts
    document's SHA-256."""
    ciks = [int(c) for c in sys.argv[1].split(",")]
    staging = Path(sys.argv[2])
    barrier = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    settings = load_settings()
    gate = SecGate.from_settings(settings)
    source = ApiSource(EdgarClient(settings, gate), staging)
    print("ready", flush=True)
    while barrier is not None and not barrier.exists():
        time.sleep(0.002)
    try:
        results = download_batch(source, ciks, concurrency=8)
    finally:
        source.close()
    fetched = [r for r in results if isinstance(r, CompanyDocuments)]
    outcomes = [r for r in results if isinstance(r, CompanyOutcome)]
    print(
        json.dumps(
            {
                "fetched": [r.cik for r in fetched],
                "deferred": [r.cik for r in outcomes if r.status is Status.DEFERRED],
                "failed": [r.cik for r in outcomes if r.status is Status.FAILED],
                "sha256": {
                    str(r.cik): hashlib.sha256(r.companyfacts.path.read_bytes()).hexdigest()
                    for r in fetched
                    if r.companyfacts is not None
                },
            }
        ),
        flush=True,
    )


def worker_env(
    server: EdgarStandIn, redis_url: str, state_dir: Path, name: str, **settings: object
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINLOOM_")}
    env.update(
        FINLOOM_EDGAR_DATA_URL=server.data_url,
        FINLOOM_EDGAR_WWW_URL=server.www_url,
        FINLOOM_SEC_USER_AGENT=f"FinLoom {name} {name}@example.com",
        FINLOOM_REDIS_URL=redis_url,
        FINLOOM_STATE_DIR=str(state_dir / name),  # as on another machine
        PYTHONPATH=str(REPO),
    )
    env.update({f"FINLOOM_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def run_workers(
    tmp_path: Path, ciks: list[int], envs: Mapping[str, dict[str, str]]
) -> dict[str, dict[str, Any]]:
    """Start one worker per env, release them together, return each one's summary."""
    barrier = tmp_path / f"go-{time.monotonic_ns()}"
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                ",".join(map(str, ciks)),
                str(tmp_path / f"staging-{name}"),
                str(barrier),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, env in envs.items()
    }
    try:
        for name, proc in procs.items():
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line == "ready", f"{name}: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        barrier.touch()
        summaries = {}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"{name} exited {proc.returncode}: {err}"
            assert "Traceback" not in err, err
            summaries[name] = json.loads(out.strip().splitlines()[-1])
        return summaries
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def by_worker(hits: list[Hit], name: str) -> list[Hit]:
    return [hit for hit in hits if hit.user_agent and f" {name} " in hit.user_agent]


def api_settings(server: EdgarStandIn, redis_url: str | None, **values: Any) -> FinloomSettings:
    return FinloomSettings(  # type: ignore[call-arg]
        _env_file=None,
        sec_user_agent="FinLoom tests tests@example.com",
        edgar_data_url=server.data_url,
        edgar_www_url=server.www_url,
        redis_url=redis_url,
        **values,
    )


# ---------------------------------------------------------------------- one budget


@pytest.mark.integration
def test_two_workers_together_stay_within_one_budget(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Two workers of 24 companies each, started together at FINLOOM_MAX_REQUESTS_PER_SECOND
    8 against a stand-in that answers 429 above 10/s: never more than 8 arrivals in any
    second between them, no 429, both complete. (Each alone would send 8/s: 16/s.)"""
    ciks = synthetic_edgar(tmp_path / "edgar", 24)
    with EdgarStandIn(tmp_path / "edgar", latency=LATENCY) as server:
        envs = {
            name: worker_env(server, redis_server.url, tmp_path, name, max_requests_per_second=8)
            for name in ("alpha", "beta")
        }
        summaries = run_workers(tmp_path, ciks, envs)
        hits = server.hits
    for summary in summaries.values():
        assert summary["deferred"] == [] and summary["failed"] == [], summary
        assert summary["fetched"] == ciks, summary
    assert len(hits) == 2 * 2 * len(ciks)
    assert server.count(429) == 0
    assert {hit.status for hit in hits} <= {200, 304}  # 304: the other worker's cache
    arrivals = sorted(hit.at for hit in hits)
    busiest = max_in_window(arrivals, 1.0)
    assert busiest <= 8, f"{busiest} requests arrived within one second"
    alpha, beta = (sorted(h.at for h in by_worker(hits, n)) for n in ("alpha", "beta"))
    assert alpha[0] < beta[-1] and beta[0] < alpha[-1], "the workers ran at the same time"


@pytest.mark.integration
def test_a_429_seen_by_one_worker_stops_every_worker_for_the_whole_cooloff(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """SEC allows 3 requests/s: the first 429 opens the circuit in Redis. No request from
    either worker arrives once it is answered; a worker of another machine (another state
    folder) refuses to send during the cool-off; the next request arrives after it."""
    cooloff = 8.0
    latency = 0.1
    ciks = synthetic_edgar(tmp_path / "edgar", 24)
    with EdgarStandIn(tmp_path / "edgar", limit=3, latency=latency) as server:
        envs = {
            name: worker_env(
                server,
                redis_server.url,
                tmp_path,
                name,
                max_requests_per_second=8,
                breaker_cooloff_seconds=cooloff,
                http_max_retries=0,
            )
            for name in ("alpha", "beta")
        }
        summaries = run_workers(tmp_path, ciks, envs)
        hits = server.hits
        blocked = [hit for hit in hits if hit.status == 429]
        assert blocked, "the stand-in never answered 429"
        first = min(hit.at for hit in blocked)
        answered = first + latency
        late = [hit for hit in hits if hit.at > answered + 0.1]
        assert late == [], f"{len(late)} requests arrived after the first 429 was answered"
        for summary in summaries.values():
            assert summary["deferred"], "every worker stopped"
            assert summary["failed"] == []

        # a third worker, elsewhere, during the cool-off: nothing leaves it
        settings = api_settings(
            server, redis_server.url, breaker_cooloff_seconds=cooloff, http_max_retries=0,
            state_dir=tmp_path / "gamma",
        )  # fmt: skip
        gate = SecGate.from_settings(settings)
        assert isinstance(gate.storage, RedisCircuitStorage)
        assert gate.is_open() and 0 < gate.cooloff_remaining() <= cooloff
        with EdgarClient(settings, gate) as client, pytest.raises(CircuitOpenError):
            client.companyfacts(ciks[0])
        assert len(server.hits) == len(hits)

        while gate.is_open():  # the cool-off passes (the Redis key expires)
            time.sleep(0.05)
        with EdgarClient(settings, gate) as client:
            assert client.companyfacts(ciks[0])
        after = server.hits[len(hits) :]
    assert len(after) == 1 and after[0].status in (200, 304)  # 304: cached by a worker
    assert after[0].at >= first + cooloff - 0.05, "a request reached SEC within the cool-off"
    assert gate.breaker_state() == "closed"


@pytest.mark.integration
def test_redis_lost_mid_run_goes_on_at_the_fallback_rate(
    tmp_path: Path, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis killed during a run: the run completes through the in-process limiter at
    FINLOOM_REDIS_FALLBACK_REQUESTS_PER_SECOND (never unlimited), says so in one log line,
    and no exception escapes."""
    ciks = synthetic_edgar(tmp_path / "edgar", 12)
    with EdgarStandIn(tmp_path / "edgar", latency=0.05) as server:
        settings = api_settings(
            server, redis_server.url, max_requests_per_second=8,
            redis_fallback_requests_per_second=3,
        )  # fmt: skip
        gate = SecGate.from_settings(settings)
        assert isinstance(gate.limiter, RedisRateLimiter)
        killed: list[float] = []

        def kill_after_eight() -> None:
            while len(server.hits) < 8:
                time.sleep(0.005)
            redis_server.kill()
            killed.append(time.monotonic())

        killer = threading.Thread(target=kill_after_eight, daemon=True)
        killer.start()
        source = ApiSource(EdgarClient(settings, gate), tmp_path / "staging")
        with caplog.at_level(logging.WARNING, logger="finloom_core"):
            try:
                results = download_batch(source, ciks, concurrency=8)
            finally:
                source.close()
        killer.join(timeout=30)
        hits = server.hits
    assert killed, "Redis was never killed"
    assert all(isinstance(r, CompanyDocuments) for r in results), results
    assert len(hits) == 2 * len(ciks) and server.count(429) == 0
    down = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(down) == 1, [r.getMessage() for r in caplog.records]
    assert redis_label(redis_server.url) in down[0].getMessage()
    # requests started after the kill (in flight ones excluded) keep the fallback's rate
    after = sorted(hit.at for hit in hits if hit.at > killed[0] + 0.25)
    assert len(after) >= 8, "the run went on after Redis was lost"
    assert max_in_window(after, 1.0) <= 3


# ---------------------------------------------------------------------- the HTTP cache


def cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finloom_cli.main", *args],
        cwd=REPO, env={**env, "COLUMNS": "200", "NO_COLOR": "1"}, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.integration
def test_a_second_worker_revalidates_and_is_served_the_cached_body(
    tmp_path: Path, shared_edgar: Path, redis_server: RedisServer
) -> None:
    """Worker one downloads Apple's companyfacts and submissions; worker two (another
    process, no warehouse) asks conditionally with the cached validators, gets 304s and the
    very same bytes; `finloom cache flush` empties the cache, and the next worker downloads."""
    apple = 320193
    facts_path = f"/api/xbrl/companyfacts/CIK{apple:010d}.json"
    paths = {facts_path, f"/submissions/CIK{apple:010d}.json"}
    document = shared_edgar / "companyfacts" / f"CIK{apple:010d}.json"
    original = hashlib.sha256(document.read_bytes()).hexdigest()
    with EdgarStandIn(shared_edgar) as server:
        env = worker_env(server, redis_server.url, tmp_path, "alpha")
        [first] = run_workers(tmp_path, [apple], {"alpha": env}).values()
        one = server.hits
        [second] = run_workers(tmp_path, [apple], {"beta": env}).values()
        two = server.hits[len(one) :]
        flushed = cli(env, "cache", "flush")
        keys = redis_server.client().keys(CACHE_PREFIX + "*")
        [third] = run_workers(tmp_path, [apple], {"gamma": env}).values()
        three = server.hits[len(one) + len(two) :]
    # (Apple's older-filings pages: one is missing from the sample, a 404, never cached)
    one, two, three = ([h for h in hits if h.path in paths] for hits in (one, two, three))
    assert [(h.status, h.conditional) for h in one] == [(200, False), (200, False)]
    assert [(h.status, h.conditional) for h in two] == [(304, True), (304, True)]
    assert [h for h in two if h.path == facts_path and h.status == 200] == []
    assert first["sha256"] == second["sha256"] == third["sha256"] == {str(apple): original}
    assert flushed.returncode == 0, flushed.stderr
    lines = [line for line in flushed.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and "cached responses" in lines[0], flushed.stdout
    assert int(lines[0].split()[1]) >= 2  # Apple's two documents (and its pages)
    assert keys == []
    assert [(h.status, h.conditional) for h in three] == [(200, False), (200, False)]


def test_a_changed_document_replaces_the_cached_one(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """The cache never serves a document past its validators: a changed one is downloaded
    (200 to the conditional request) and replaces the entry."""
    ciks = synthetic_edgar(tmp_path / "edgar", 1)
    path = f"/submissions/CIK{ciks[0]:010d}.json"
    with EdgarStandIn(tmp_path / "edgar") as server:
        settings = api_settings(server, redis_server.url)
        with EdgarClient(settings, SecGate.from_settings(settings)) as client:
            old = client.submissions(ciks[0])
            server.change_document(path, b'{"cik": "%d", "changed": true}' % ciks[0])
            new = client.submissions(ciks[0])
            again = client.submissions(ciks[0])
        statuses = [(h.status, h.conditional) for h in server.hits]
    assert b"changed" not in old and b"changed" in new and again == new
    assert statuses == [(200, False), (200, True), (304, True)]


def test_the_cache_keeps_only_revalidatable_bodies_under_the_cap(
    redis_server: RedisServer,
) -> None:
    link = RedisLink.connect(redis_server.url, fallback_rate=1)
    cache = RedisResponseCache(link, ttl_seconds=60, max_entry_bytes=1000)
    etag = Validators('"v1"', None)
    cache.put("https://x/a.json", b'{"a": 1}' * 50, etag)
    cache.put("https://x/none.json", b'{"a": 1}', Validators())  # no validators
    cache.put("https://x/big.json", os.urandom(5000), etag)  # over the cap compressed
    hit = cache.get("https://x/a.json")
    assert hit is not None and hit.body == b'{"a": 1}' * 50 and hit.validators == etag
    assert cache.get("https://x/none.json") is None
    assert cache.get("https://x/big.json") is None
    client = redis_server.client()
    assert 0 < client.ttl(cache_key("https://x/a.json")) <= 60
    client.hset(cache_key("https://x/a.json"), "body", b"not zlib")
    assert cache.get("https://x/a.json") is None  # damaged: a miss, not an error
    assert flush(client) == 1 and client.keys("*") == []


# ---------------------------------------------------------------------- the circuit store


def test_the_later_open_until_wins_and_the_key_expires_with_the_cooloff(
    redis_server: RedisServer,
) -> None:
    link = RedisLink.connect(redis_server.url, fallback_rate=1)
    short, long = RedisCircuitStorage(link, 2.0), RedisCircuitStorage(link, 30.0)
    long.state = pybreaker.STATE_OPEN
    short.state = pybreaker.STATE_OPEN  # ends sooner: does not shorten the other's
    client = redis_server.client()
    assert 25_000 < client.pttl(CIRCUIT_KEY) <= 30_000
    other = RedisCircuitStorage(link, 30.0)
    assert other.state == pybreaker.STATE_OPEN
    client.delete(CIRCUIT_KEY)  # expired: closed again for a new gate
    assert RedisCircuitStorage(link, 30.0).state == pybreaker.STATE_CLOSED


def test_a_gate_built_without_redis_keeps_its_own_window_and_the_state_file(
    tmp_path: Path,
) -> None:
    settings = FinloomSettings(_env_file=None, state_dir=tmp_path)  # type: ignore[call-arg]
    gate = SecGate.from_settings(settings)
    assert type(gate.limiter).__name__ == "RateLimiter"
    assert type(gate.storage).__name__ == "CircuitFileStorage"
    assert gate.cache is None


# ---------------------------------------------------------------------- bad settings


def test_an_unreachable_redis_is_a_configuration_error_naming_no_password() -> None:
    url = f"redis://:s3cr3t-pass@127.0.0.1:{free_port()}/0"
    settings = FinloomSettings(_env_file=None, redis_url=url)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError) as info:
        SecGate.from_settings(settings)
    assert "FINLOOM_REDIS_URL" in str(info.value) and "s3cr3t" not in str(info.value)
    with pytest.raises(ConfigurationError, match="cannot reach Redis"):
        check_redis(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:6379", "FINLOOM_REDIS_URL"),  # not a Redis URL
        ("redis://:s3cr3t-pass@127.0.0.1:{port}/0", "cannot reach Redis"),
    ],
)
def test_cache_flush_fails_in_one_line_on_bad_settings(
    tmp_path: Path, url: str, message: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINLOOM_")}
    env.update(FINLOOM_REDIS_URL=url.format(port=free_port()), PYTHONPATH=str(REPO))
    result = cli(env, "cache", "flush")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "s3cr3t" not in result.stderr + result.stdout


def test_cache_flush_needs_a_redis_url() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINLOOM_")}
    env["PYTHONPATH"] = str(REPO)
    result = cli(env, "cache", "flush")
    assert result.returncode == 2 and "FINLOOM_REDIS_URL" in result.stderr


def test_a_redis_failure_is_logged_once_until_redis_answers_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    link = RedisLink(
        redis.Redis(), "redis://x", fallback_rate=2, retry_seconds=10, clock=lambda: now[0]
    )
    with caplog.at_level(logging.INFO, logger="finloom_core"):
        link.failed(redis.ConnectionError("refused"))
        now[0] = 5.0
        assert not link.usable()
        link.failed(redis.ConnectionError("refused"))
        now[0] = 16.0
        assert link.usable()  # due for another try
        link.succeeded()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "unreachable" in messages[0] and "2 requests/s" in messages[0]
    assert "answers again" in messages[1]
