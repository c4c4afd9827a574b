"""EdgarClient: retries, rate-limit blocks, the circuit breaker, body checks, the User-Agent.

Unit tests use ``httpx.MockTransport`` with sleeps recorded instead of slept; the
integration tests at the end talk real HTTP to the EDGAR stand-in on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pybreaker
import pytest

from finloom_core.edgar import EdgarClient, RateLimiter, RequestEvent, RetryPolicy, SecGate
from finloom_core.edgar.retry import parse_retry_after
from finloom_core.errors import (
    CircuitOpenError,
    ConfigurationError,
    DocumentLimitError,
    HttpStatusError,
    NotFoundError,
    RateLimitedError,
    ResponseParseError,
    TransientHttpError,
)
from finloom_core.settings import FinloomSettings
from tests.edgar_standin import EdgarStandIn
from tests.factories import StepClock

EDGAR = Path(__file__).resolve().parents[1].parent / "shared" / "edgar"
UA = "FinLoom tests tests@example.com"
APPLE = 320193
FACTS_URL = "https://data.sec.gov/api/xbrl/companyfacts/CIK0000320193.json"
OK_BODY = b'{"cik": 320193, "entityName": "Apple Inc."}'
JSON_CT = {"Content-Type": "application/json"}
HTML_CT = {"Content-Type": "text/html; charset=UTF-8"}

Reply = tuple[int, bytes, dict[str, str]] | type[httpx.TransportError]


def make_settings(**overrides: Any) -> FinloomSettings:
    values: dict[str, Any] = {
        "sec_user_agent": UA,
        "edgar_data_url": "https://data.sec.gov",
        "edgar_www_url": "https://www.sec.gov",
        "max_requests_per_second": 8.0,
        "http_timeout_seconds": 5.0,
        "http_max_retries": 3,
        "http_backoff_seconds": 0.5,
        "http_backoff_max_seconds": 8.0,
        "breaker_cooloff_seconds": 0.2,
        "breaker_fail_max": 5,
    }
    values.update(overrides)
    return FinloomSettings(_env_file=None, **values)  # type: ignore[call-arg]


def fresh_gate(
    settings: FinloomSettings, limiter: RateLimiter | None = None, **kwargs: Any
) -> SecGate:
    """A gate of its own for one test: a fresh breaker, a non-blocking limiter by default."""
    return SecGate(
        limiter or RateLimiter(1000),
        cooloff_seconds=settings.breaker_cooloff_seconds,
        fail_max=settings.breaker_fail_max,
        name="sec-test",
        **kwargs,
    )


class FakeSec:
    """MockTransport handler: replays replies in order (the last one repeats), records requests."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, type):
            raise reply("simulated", request=request)
        status, body, headers = reply
        return httpx.Response(status, content=body, headers=headers)

    @property
    def calls(self) -> int:
        return len(self.requests)


class Harness:
    """A client wired to a FakeSec, a fresh gate (non-blocking limiter) and fake sleep."""

    def __init__(
        self,
        sec: FakeSec,
        settings: FinloomSettings | None = None,
        *,
        rng: Callable[[], float] = lambda: 1.0,
        gate: SecGate | None = None,
        sleep: Callable[[float], None] | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.sec = sec
        self.settings = settings or make_settings()
        self.delays: list[float] = []
        self.gate = gate or fresh_gate(self.settings)
        self.breaker = self.gate.breaker
        self.client = EdgarClient(
            self.settings,
            self.gate,
            http=httpx.Client(transport=httpx.MockTransport(sec)),
            policy=policy,
            sleep=sleep or self.delays.append,
            rng=rng,
        )


def ok() -> Reply:
    return (200, OK_BODY, JSON_CT)


def rate_page() -> bytes:
    return (EDGAR / "errors" / "rate-exceeded_429.html").read_bytes()


# ---------------------------------------------------------------- retries


def test_503_503_200_is_three_calls_and_returns_the_body() -> None:
    h = Harness(FakeSec((503, b"", {}), (503, b"", {}), ok()))
    assert h.client.get_bytes(FACTS_URL) == OK_BODY
    assert h.sec.calls == 3
    assert len(h.delays) == 2
    assert h.gate.breaker_state() == "closed"


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    settings = make_settings(http_max_retries=5, http_backoff_seconds=1.0)
    h = Harness(FakeSec((500, b"", {})), settings, rng=lambda: 0.5)
    with pytest.raises(TransientHttpError):
        h.client.get_bytes(FACTS_URL)
    # min(8, 1 * 2**n) * 0.5 for n = 0..4
    assert h.delays == pytest.approx([0.5, 1.0, 2.0, 4.0, 4.0])


@pytest.mark.parametrize("header", ["3", "Wed, 21 Oct 2099 07:28:00 GMT"])
def test_retry_after_is_a_floor_for_the_delay_capped_by_backoff_max(header: str) -> None:
    h = Harness(FakeSec((503, b"", {"Retry-After": header}), ok()), rng=lambda: 0.01)
    assert h.client.get_bytes(FACTS_URL) == OK_BODY
    expected = 3.0 if header == "3" else 8.0  # a far-future date is capped at 8 s
    assert h.delays == pytest.approx([expected])


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_5xx_forever_gives_max_retries_plus_one_calls_then_transient_error() -> None:
    h = Harness(FakeSec((502, b"bad gateway", {})))
    with pytest.raises(TransientHttpError) as info:
        h.client.get_bytes(FACTS_URL)
    assert h.sec.calls == h.settings.http_max_retries + 1
    assert len(h.delays) == h.settings.http_max_retries
    assert (info.value.status, info.value.url) == (502, FACTS_URL)


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.ConnectError])
def test_timeouts_and_connect_errors_are_retried(error: type[httpx.TransportError]) -> None:
    h = Harness(FakeSec(error))
    with pytest.raises(TransientHttpError) as info:
        h.client.get_bytes(FACTS_URL)
    assert h.sec.calls == h.settings.http_max_retries + 1
    assert info.value.url == FACTS_URL
    assert isinstance(info.value.__cause__, error)


def test_timeout_then_success() -> None:
    h = Harness(FakeSec(httpx.ReadTimeout, ok()))
    assert h.client.get_bytes(FACTS_URL) == OK_BODY
    assert h.sec.calls == 2


def test_retries_are_logged_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(FakeSec((503, b"", {}), ok()))
    with caplog.at_level(logging.WARNING, logger="finloom_core.edgar.client"):
        h.client.get_bytes(FACTS_URL)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert FACTS_URL in record.getMessage()
    assert "503" in record.getMessage()


# ---------------------------------------------------------------- rate limiting and the breaker


def test_429_opens_the_circuit_and_stops_requests_for_the_cooloff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(FakeSec((429, rate_page(), {**HTML_CT, "Retry-After": "600"}), ok()))
    log_errors = caplog.at_level(logging.ERROR, logger="finloom_core.edgar.client")
    with log_errors, pytest.raises(RateLimitedError) as info:
        h.client.get_bytes(FACTS_URL)
    assert (info.value.status, info.value.retry_after) == (429, 600.0)
    assert h.sec.calls == 1, "a rate-limit answer is never retried"
    assert h.delays == []
    assert h.gate.breaker_state() == "open"
    assert any(r.levelno == logging.ERROR for r in caplog.records)

    with pytest.raises(CircuitOpenError) as blocked:
        h.client.get_bytes(FACTS_URL)
    assert h.sec.calls == 1, "no HTTP request while the circuit is open"
    assert 0 < blocked.value.remaining <= 0.2

    time.sleep(0.25)  # the 0.2 s cool-off passes
    assert h.gate.breaker_state() == "half-open"
    assert h.client.get_bytes(FACTS_URL) == OK_BODY
    assert h.sec.calls == 2
    assert h.gate.breaker_state() == "closed"


@pytest.mark.parametrize("status", [403, 200])
def test_sec_threshold_page_opens_the_circuit(status: int) -> None:
    h = Harness(FakeSec((status, rate_page(), HTML_CT)))
    with pytest.raises(RateLimitedError):
        h.client.get_bytes(FACTS_URL)
    assert h.sec.calls == 1
    assert h.gate.breaker_state() == "open"
    with pytest.raises(CircuitOpenError):
        h.client.companyfacts(APPLE)
    assert h.sec.calls == 1


def test_plain_403_access_denied_is_not_retried_and_leaves_the_circuit_closed() -> None:
    body = (EDGAR / "errors" / "full-index_2099_QTR1_form.gz_403_AccessDenied.xml").read_bytes()
    h = Harness(FakeSec((403, body, {"Content-Type": "application/xml"})))
    with pytest.raises(HttpStatusError) as info:
        h.client.get_bytes(FACTS_URL)
    assert info.value.status == 403
    assert not isinstance(info.value, RateLimitedError)
    assert h.sec.calls == 1
    assert h.gate.breaker_state() == "closed"
    assert h.breaker.fail_counter == 0


def test_a_request_blocked_mid_retry_stops_without_another_call() -> None:
    settings = make_settings()
    gate = fresh_gate(settings)
    # Another thread opens the circuit while this request sleeps before its retry.
    h = Harness(FakeSec((503, b"", {})), settings, gate=gate, sleep=lambda s: gate.breaker.open())
    with pytest.raises(CircuitOpenError):
        h.client.get_bytes(FACTS_URL)
    assert h.sec.calls == 1


@pytest.mark.parametrize("throw_new_error_on_trip", [True, False])
def test_consecutive_failures_trip_the_breaker_with_the_real_error_raised(
    throw_new_error_on_trip: bool,
) -> None:
    settings = make_settings(http_max_retries=0, breaker_fail_max=2)
    gate = fresh_gate(settings, throw_new_error_on_trip=throw_new_error_on_trip)
    h = Harness(FakeSec((503, b"", {})), settings, gate=gate)
    for _ in range(2):
        with pytest.raises(TransientHttpError):
            h.client.get_bytes(FACTS_URL)
    assert h.gate.breaker_state() == "open"
    with pytest.raises(CircuitOpenError):
        h.client.get_bytes(FACTS_URL)
    assert h.sec.calls == 2
    assert h.gate.cooloff_remaining() > 0


def test_the_breaker_does_not_serialise_concurrent_requests() -> None:
    # pybreaker's call() holds its lock while the guarded function runs; calling() must not.
    barrier = threading.Barrier(2, timeout=2)

    def both_at_once(request: httpx.Request) -> httpx.Response:
        barrier.wait()  # BrokenBarrierError if the two requests cannot be in flight together
        return httpx.Response(200, content=OK_BODY, headers=JSON_CT)

    settings = make_settings()
    http = httpx.Client(transport=httpx.MockTransport(both_at_once))
    client = EdgarClient(settings, fresh_gate(settings), http=http)
    results: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: results.append(client.get_bytes(FACTS_URL)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert results == [OK_BODY, OK_BODY]


def test_404_is_not_found_not_retried_not_a_breaker_failure() -> None:
    body = (EDGAR / "errors" / "submissions_CIK-000000001.json_404_NoSuchKey.xml").read_bytes()
    settings = make_settings(breaker_fail_max=1)
    h = Harness(FakeSec((404, body, {"Content-Type": "application/xml"})), settings)
    with pytest.raises(NotFoundError) as info:
        h.client.get_bytes(FACTS_URL)
    assert (info.value.status, info.value.url, h.sec.calls) == (404, FACTS_URL, 1)
    assert h.client.companyfacts(APPLE) is None
    assert h.sec.calls == 2
    assert h.gate.breaker_state() == "closed"


def test_a_gates_clients_share_one_limiter_and_one_sec_breaker() -> None:
    settings = make_settings(breaker_cooloff_seconds=123.0, breaker_fail_max=3)
    gate = SecGate.from_settings(settings)
    with EdgarClient(settings, gate) as first, EdgarClient(settings, gate) as second:
        assert first.gate.breaker is second.gate.breaker is gate.breaker
        assert first.gate.limiter is second.gate.limiter is gate.limiter
    other = SecGate.from_settings(settings)  # another run: nothing shared
    assert other.breaker is not gate.breaker
    assert other.limiter is not gate.limiter
    breaker = gate.breaker
    assert (breaker.name, breaker.reset_timeout, breaker.fail_max) == ("sec", 123.0, 3)
    assert isinstance(gate.limiter, RateLimiter) and gate.limiter.rate == 8.0


def test_two_clients_of_one_gate_share_the_circuit() -> None:
    settings = make_settings(breaker_cooloff_seconds=600.0)
    gate = fresh_gate(settings)
    blocked = Harness(FakeSec((429, rate_page(), HTML_CT)), settings, gate=gate)
    other = Harness(FakeSec(ok()), settings, gate=gate)
    with pytest.raises(RateLimitedError):
        blocked.client.get_bytes(FACTS_URL)
    with pytest.raises(CircuitOpenError) as refused:
        other.client.companyfacts(APPLE)
    assert other.sec.calls == 0, "the other client sends nothing while the gate is open"
    assert 590 < refused.value.remaining <= 600
    assert 590 < gate.cooloff_remaining() <= 600
    # a client of another gate (another run) is not stopped
    assert Harness(FakeSec(ok()), settings).client.get_bytes(FACTS_URL) == OK_BODY


def test_two_clients_of_one_gate_share_the_rate_limit_window() -> None:
    settings = make_settings()
    clock = StepClock()
    gate = fresh_gate(settings, RateLimiter(2, margin=0.0, clock=clock, sleep=clock.sleep))
    first = Harness(FakeSec(ok()), settings, gate=gate)
    second = Harness(FakeSec(ok()), settings, gate=gate)
    first.client.get_bytes(FACTS_URL)
    first.client.get_bytes(FACTS_URL)
    assert clock.sleeps == []
    second.client.get_bytes(FACTS_URL)  # the window is full of the first client's starts
    assert clock.sleeps == [pytest.approx(1.0)]
    # the same clock, another gate: its own window, no wait
    alone = fresh_gate(settings, RateLimiter(2, margin=0.0, clock=clock, sleep=clock.sleep))
    Harness(FakeSec(ok()), settings, gate=alone).client.get_bytes(FACTS_URL)
    assert clock.sleeps == [pytest.approx(1.0)]


def test_the_gate_reports_attempts_to_its_observers_and_changes_to_its_listeners(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = fresh_gate(make_settings())
    seen: list[RequestEvent] = []
    changes: list[str] = []

    def broken(event: RequestEvent) -> None:
        raise RuntimeError("observer bug")

    class Listener(pybreaker.CircuitBreakerListener):  # type: ignore[misc]
        def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
            changes.append(new_state.name)

    listener = Listener()
    for _ in range(2):  # registering twice is registering once
        gate.add_request_observer(seen.append)
        gate.add_breaker_listener(listener)
    gate.add_request_observer(broken)
    h = Harness(FakeSec((503, b"", {}), ok(), (429, rate_page(), HTML_CT)), gate=gate)
    with caplog.at_level(logging.ERROR, logger="finloom_core.edgar.gate"):
        assert h.client.get_bytes(FACTS_URL) == OK_BODY
        with pytest.raises(RateLimitedError):
            h.client.get_bytes(FACTS_URL)
    assert [(e.url, e.status, e.rate_limited) for e in seen] == [
        (FACTS_URL, 503, False),
        (FACTS_URL, 200, False),
        (FACTS_URL, 429, True),
    ]
    assert all(e.seconds >= 0 for e in seen)
    assert changes == ["open"]
    assert sum("request observer" in r.getMessage() for r in caplog.records) == 3


# ---------------------------------------------------------------- the retry policy


def test_retry_policy_from_settings_is_readable_data() -> None:
    settings = make_settings(
        http_max_retries=4, http_backoff_seconds=0.25, http_backoff_max_seconds=2.0
    )
    policy = RetryPolicy.from_settings(settings)
    assert (policy.max_retries, policy.backoff_seconds, policy.backoff_max_seconds) == (
        4,
        0.25,
        2.0,
    )
    assert policy.respect_retry_after
    assert all(policy.retries_status(s) for s in (500, 502, 503, 504, 599))
    assert not any(policy.retries_status(s) for s in (200, 403, 404, 429))
    request = httpx.Request("GET", FACTS_URL)
    for error in (httpx.ReadTimeout, httpx.ConnectError, httpx.RemoteProtocolError):
        assert policy.retries_exception(error("x", request=request))
    assert not policy.retries_exception(httpx.TooManyRedirects("x", request=request))
    assert 429 in policy.block_statuses
    with EdgarClient(settings, fresh_gate(settings)) as client:
        assert client.policy == policy


def test_the_policy_decides_what_is_retried_and_how_long_to_wait() -> None:
    only_503 = RetryPolicy(max_retries=1, retry_statuses=frozenset({503}))
    h = Harness(FakeSec((503, b"", {})), policy=only_503)
    with pytest.raises(TransientHttpError):
        h.client.get_bytes(FACTS_URL)
    assert (h.sec.calls, len(h.delays)) == (2, 1)

    h = Harness(FakeSec((502, b"", {})), policy=only_503)
    with pytest.raises(HttpStatusError) as info:
        h.client.get_bytes(FACTS_URL)
    assert (h.sec.calls, info.value.status) == (1, 502)

    h = Harness(FakeSec(httpx.ReadTimeout, ok()), policy=RetryPolicy(retry_exceptions=()))
    with pytest.raises(HttpStatusError):
        h.client.get_bytes(FACTS_URL)
    assert h.sec.calls == 1

    ignore_header = RetryPolicy(respect_retry_after=False)
    h = Harness(
        FakeSec((503, b"", {"Retry-After": "3"}), ok()), rng=lambda: 0.5, policy=ignore_header
    )
    assert h.client.get_bytes(FACTS_URL) == OK_BODY
    assert h.delays == pytest.approx([0.25])  # 0.5 s * 2**0 * jitter 0.5, the header ignored


def test_a_block_is_never_retried_whatever_the_policy() -> None:
    policy = RetryPolicy(retry_statuses=frozenset({429, 503}))
    h = Harness(FakeSec((429, rate_page(), HTML_CT), ok()), policy=policy)
    with pytest.raises(RateLimitedError):
        h.client.get_bytes(FACTS_URL)
    assert (h.sec.calls, h.delays) == (1, [])
    assert h.gate.breaker_state() == "open"


# ---------------------------------------------------------------- bodies


def test_html_page_with_status_200_is_a_parse_error_with_the_url() -> None:
    page = b"<html><body>EDGAR maintenance</body></html>"
    h = Harness(FakeSec((200, page, HTML_CT)))
    with pytest.raises(ResponseParseError) as info:
        h.client.get_bytes(FACTS_URL)
    assert (info.value.url, info.value.status, h.sec.calls) == (FACTS_URL, 200, 1)


def test_truncated_json_is_a_parse_error() -> None:
    body = (EDGAR / "submissions" / "CIK0000320193.json").read_bytes()[:500]
    h = Harness(FakeSec((200, body, JSON_CT)))
    with pytest.raises(ResponseParseError) as info:
        h.client.submissions(APPLE)
    assert info.value.url == "https://data.sec.gov/submissions/CIK0000320193.json"
    assert h.sec.calls == 1


def test_non_json_download_returns_raw_bytes() -> None:
    h = Harness(FakeSec((200, b"PK\x03\x04zip", {"Content-Type": "application/zip"})))
    assert h.client.get_bytes("https://www.sec.gov/x.zip", expect_json=False) == b"PK\x03\x04zip"


class Drip(httpx.SyncByteStream):
    """A body served chunk by chunk (``pause`` seconds before each), counting what was
    pulled from it."""

    def __init__(self, chunks: int, size: int = 1024, pause: float = 0.0) -> None:
        self.chunks, self.size, self.pause = chunks, size, pause
        self.served = 0

    def __iter__(self) -> Any:
        for _ in range(self.chunks):
            time.sleep(self.pause)
            self.served += self.size
            yield b" " * self.size


def capped_client(
    *replies: httpx.Response, max_body_bytes: int = 10_000, **overrides: Any
) -> tuple[EdgarClient, list[httpx.Request]]:
    """A client capped at ``max_body_bytes`` whose transport answers ``replies`` in turn."""
    requests: list[httpx.Request] = []
    answers = list(replies)

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return answers.pop(0)

    settings = make_settings(**overrides)
    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = EdgarClient(
        settings, fresh_gate(settings), http=http, sleep=lambda s: None,
        max_body_bytes=max_body_bytes,
    )  # fmt: skip
    return client, requests


def assert_refused_body(error: DocumentLimitError, *words: str) -> None:
    assert isinstance(error, ResponseParseError)  # not retried; counts for the breaker
    assert error.url == FACTS_URL and FACTS_URL in str(error)
    assert "\n" not in str(error)
    for word in words:
        assert word in str(error)


def test_a_body_declaring_more_than_the_cap_is_refused_unread() -> None:
    body = Drip(1000)
    declared = {"Content-Length": str(10**9), **JSON_CT}
    client, requests = capped_client(httpx.Response(200, headers=declared, stream=body))
    with pytest.raises(DocumentLimitError) as info:
        client.get_bytes(FACTS_URL)
    assert_refused_body(info.value, "1,000,000,000 bytes", "10,000-byte document cap")
    assert body.served == 0 and len(requests) == 1


def test_a_body_of_unknown_length_stops_at_the_cap() -> None:
    body = Drip(1000)  # 1 MB, no Content-Length
    client, requests = capped_client(httpx.Response(200, headers=JSON_CT, stream=body))
    with pytest.raises(DocumentLimitError) as info:
        client.get_bytes(FACTS_URL)
    assert_refused_body(info.value, "10,000-byte document cap")
    assert body.served <= 11 * 1024 and len(requests) == 1


def test_a_compressed_body_is_capped_by_its_decompressed_size() -> None:
    bomb = gzip.compress(b" " * (8 << 20))  # 8 MiB of spaces in ~8 KB
    headers = {"Content-Encoding": "gzip", "Content-Length": str(len(bomb)), **JSON_CT}
    client, _ = capped_client(
        httpx.Response(200, headers=headers, content=bomb), max_body_bytes=1 << 20
    )
    with pytest.raises(DocumentLimitError) as info:
        client.get_bytes(FACTS_URL)
    assert_refused_body(info.value, "1,048,576-byte document cap")


def test_a_body_still_arriving_at_the_deadline_is_refused() -> None:
    body = Drip(100, pause=0.02)  # 2 s to serve it, every read well within the timeout
    client, requests = capped_client(
        httpx.Response(200, headers=JSON_CT, stream=body),
        max_body_bytes=1 << 20,
        http_timeout_seconds=0.05,  # deadline: 4 x 0.05 s
    )
    began = time.monotonic()
    with pytest.raises(DocumentLimitError) as info:
        client.get_bytes(FACTS_URL)
    assert time.monotonic() - began < 1.0
    assert_refused_body(info.value, "deadline")
    assert body.served < 100 * 1024 and len(requests) == 1


def test_an_error_answer_is_read_only_as_far_as_its_start() -> None:
    body = Drip(10_000)  # 10 MB behind a 404
    client, _ = capped_client(httpx.Response(404, stream=body), max_body_bytes=1 << 30)
    with pytest.raises(NotFoundError):
        client.get_bytes(FACTS_URL)
    assert body.served <= 65 * 1024


def test_a_body_within_the_cap_is_returned_whole_even_compressed() -> None:
    document = orjson.dumps({"cik": APPLE, "pad": " " * 9000})
    packed = gzip.compress(document)
    headers = {"Content-Encoding": "gzip", "Content-Length": str(len(packed)), **JSON_CT}
    client, _ = capped_client(httpx.Response(200, headers=headers, content=packed))
    assert client.get_bytes(FACTS_URL) == document


# ---------------------------------------------------------------- user agent and wiring


def test_missing_user_agent_fails_before_any_request() -> None:
    sec = FakeSec(ok())
    with pytest.raises(ConfigurationError, match="FINLOOM_SEC_USER_AGENT"):
        Harness(sec, make_settings(sec_user_agent=None))
    assert sec.calls == 0


def test_user_agent_and_gzip_are_sent_on_every_request() -> None:
    h = Harness(FakeSec((503, b"", {}), ok()))
    h.client.get_bytes(FACTS_URL)
    h.client.company_tickers()
    h.client.submissions_page("CIK0001318605-submissions-001.json")
    assert h.sec.calls == 4
    for request in h.sec.requests:
        assert request.headers["User-Agent"] == UA
        assert "gzip" in request.headers["Accept-Encoding"]
    assert [str(r.url) for r in h.sec.requests[2:]] == [
        "https://www.sec.gov/files/company_tickers.json",
        "https://data.sec.gov/submissions/CIK0001318605-submissions-001.json",
    ]


def test_owned_http_client_has_timeout_headers_and_is_closed() -> None:
    settings = make_settings(http_timeout_seconds=7.0)
    client = EdgarClient(settings, fresh_gate(settings))
    with client:
        http = client._http
        assert http.timeout == httpx.Timeout(7.0)
        assert http.headers["User-Agent"] == UA
        assert http.follow_redirects
    assert http.is_closed


def test_injected_http_client_is_left_open() -> None:
    http = httpx.Client(transport=httpx.MockTransport(FakeSec(ok())))
    settings = make_settings()
    with EdgarClient(settings, fresh_gate(settings), http=http):
        pass
    assert not http.is_closed


# ---------------------------------------------------------------- against the stand-in


@pytest.fixture
def standin() -> Any:
    with EdgarStandIn(EDGAR) as server:
        yield server


def standin_settings(server: EdgarStandIn, **overrides: Any) -> FinloomSettings:
    return make_settings(edgar_data_url=server.data_url, edgar_www_url=server.www_url, **overrides)


def standin_client(
    server: EdgarStandIn,
    limiter: RateLimiter | None = None,
    *,
    gate: SecGate | None = None,
    **overrides: Any,
) -> EdgarClient:
    settings = standin_settings(server, **overrides)
    gate = gate or fresh_gate(settings, limiter or RateLimiter(8))
    return EdgarClient(settings, gate, sleep=lambda seconds: None)


@pytest.mark.integration
def test_fetch_apple_over_real_http(standin: EdgarStandIn) -> None:
    with standin_client(standin) as client:
        facts = client.companyfacts(APPLE)
        submissions = client.submissions("0000320193")
        tickers = client.company_tickers()
    assert facts == (EDGAR / "companyfacts" / "CIK0000320193.json").read_bytes()
    assert orjson.loads(submissions)["name"] == "Apple Inc."
    assert {"cik_str": APPLE, "ticker": "AAPL", "title": "Apple Inc."} in orjson.loads(
        tickers
    ).values()
    assert standin.statuses() == [200, 200, 200]
    assert all(h.user_agent == UA and "gzip" in (h.accept_encoding or "") for h in standin.hits)


@pytest.mark.integration
def test_missing_company_is_none_over_real_http(standin: EdgarStandIn) -> None:
    with standin_client(standin) as client:
        assert client.companyfacts(1) is None
    assert standin.statuses() == [404]


@pytest.mark.integration
def test_burst_from_threads_through_one_limiter_gets_no_429(standin: EdgarStandIn) -> None:
    gate = fresh_gate(standin_settings(standin), RateLimiter(8))  # one window for every thread
    errors: list[BaseException] = []

    def worker() -> None:
        with standin_client(standin, gate=gate) as client:  # a client per thread, one gate
            for _ in range(3):
                try:
                    client.submissions(350001)
                except BaseException as exc:  # collected for the assertion below
                    errors.append(exc)

    began = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert standin.statuses() == [200] * 12
    assert standin.count(429) == 0
    assert time.monotonic() - began >= 0.9, "12 requests at 8/s take at least one second"


@pytest.mark.integration
def test_standin_answers_429_when_hammered(standin: EdgarStandIn) -> None:
    url = f"{standin.data_url}/submissions/CIK0000350001.json"
    with httpx.Client(headers={"User-Agent": UA}) as http:
        responses = [http.get(url) for _ in range(25)]
    assert standin.count(429) >= 1
    blocked = next(r for r in responses if r.status_code == 429)
    assert b"Request Rate Threshold Exceeded" in blocked.content


@pytest.mark.integration
def test_client_without_limit_is_blocked_once_then_stops(standin: EdgarStandIn) -> None:
    with standin_client(standin, RateLimiter(1000)) as client:
        with pytest.raises(RateLimitedError):
            for _ in range(30):
                client.submissions(350001)
        sent = standin.count()
        for _ in range(5):
            with pytest.raises(CircuitOpenError):
                client.submissions(350001)
    assert standin.count(429) == 1
    assert standin.count() == sent == standin.limit + 1


@pytest.mark.integration
def test_undeclared_user_agent_gets_403_from_standin(standin: EdgarStandIn) -> None:
    url = f"{standin.data_url}/submissions/CIK0000320193.json"
    response = httpx.get(url)  # httpx's default User-Agent declares no contact
    assert response.status_code == 403
    assert "html" in response.headers["content-type"]
    with standin_client(standin, sec_user_agent="FinLoom") as client:
        with pytest.raises(HttpStatusError) as info:
            client.submissions(APPLE)
        assert info.value.status == 403
        assert client.gate.breaker_state() == "closed"
    assert standin.statuses() == [403, 403]


@pytest.mark.integration
def test_standin_faults_are_retried_by_the_client(standin: EdgarStandIn) -> None:
    path = "/submissions/CIK0000320193.json"
    standin.add_fault(path, 503)
    standin.add_fault(path, 503, headers={"Retry-After": "0"})
    with standin_client(standin) as client:
        assert orjson.loads(client.submissions(APPLE))["cik"] == "0000320193"
    assert standin.statuses() == [503, 503, 200]


@pytest.mark.integration
@pytest.mark.parametrize("fault", ["serve_truncated", "serve_html_200"])
def test_standin_bad_bodies_are_parse_errors(standin: EdgarStandIn, fault: str) -> None:
    path = "/api/xbrl/companyfacts/CIK0000320193.json"
    getattr(standin, fault)(path)
    with standin_client(standin) as client, pytest.raises(ResponseParseError) as info:
        client.companyfacts(APPLE)
    assert info.value.url == f"{standin.data_url}{path}"
    assert standin.statuses() == [200]
