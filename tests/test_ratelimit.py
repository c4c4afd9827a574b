"""The sliding-window limiter: no more than ``rate`` request starts in any window of one
second plus a margin for the jitter between a request's start and its arrival at SEC."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import httpx
import pytest

from finloom_core.edgar import EdgarClient, Limiter, RateLimiter, SecGate
from finloom_core.edgar.ratelimit import WINDOW_MARGIN_SECONDS
from finloom_core.errors import ConfigurationError, NotFoundError
from finloom_core.settings import FinloomSettings
from tests.edgar_standin import EdgarStandIn
from tests.factories import StepClock


def max_in_window(starts: list[float], window: float = 1.0) -> int:
    """Most starts inside any half-open window [t, t + window) beginning at a start."""
    ordered = sorted(starts)
    best = 0
    j = 0
    for i, start in enumerate(ordered):
        while j < len(ordered) and ordered[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best


def test_max_in_window_helper_counts_violations() -> None:
    assert max_in_window([0.0, 0.5, 0.99, 1.0]) == 3
    assert max_in_window([0.0] * 9) == 9


@pytest.mark.parametrize(("rate", "capacity"), [(8.0, 8), (8.9, 8), (10, 10), (1.0, 1)])
def test_fake_clock_never_more_than_rate_per_window(rate: float, capacity: int) -> None:
    clock = StepClock()
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    starts = [limiter.acquire() for _ in range(5 * capacity + 3)]

    assert limiter.capacity == capacity
    assert max_in_window(starts) == capacity
    assert clock.sleeps, "a limiter that never sleeps cannot hold the rate"
    # 5 full windows of waiting: the burst is spread over (at least) five seconds.
    assert starts[-1] - starts[0] >= 5.0
    assert starts == sorted(starts)


def test_first_burst_is_immediate_then_waits_for_the_oldest_start() -> None:
    clock = StepClock()
    limiter = RateLimiter(3, margin=0.0, clock=clock, sleep=clock.sleep)
    assert [limiter.acquire() for _ in range(3)] == [1000.0] * 3
    assert clock.sleeps == []
    clock.now += 0.25
    assert limiter.acquire() == pytest.approx(1001.0)
    assert sum(clock.sleeps) == pytest.approx(0.75)


def test_the_window_leaves_a_margin_for_arrival_jitter() -> None:
    """At 10/s the 11th request starts a second plus the margin after the first, not 1.000 s
    after it (which reached SEC 0.997 s after the first: a 429)."""
    clock = StepClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    starts = [limiter.acquire() for _ in range(41)]
    assert WINDOW_MARGIN_SECONDS >= 0.2
    assert limiter.window == pytest.approx(1.0 + WINDOW_MARGIN_SECONDS)
    assert starts[10] - starts[0] == pytest.approx(1.0 + WINDOW_MARGIN_SECONDS)
    # any two requests ten apart start at least a second and the margin apart
    assert min(b - a for a, b in zip(starts, starts[10:], strict=False)) >= 1.2
    assert max_in_window(starts, window=1.0 + WINDOW_MARGIN_SECONDS) == 10


def test_the_margin_is_not_negative() -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter(8, margin=-0.1)


def test_fractional_rate_below_one_stretches_the_window() -> None:
    clock = StepClock()
    limiter = RateLimiter(0.5, clock=clock, sleep=clock.sleep)
    starts = [limiter.acquire() for _ in range(3)]
    assert (limiter.capacity, limiter.window) == (1, 2.0)
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx([2.0, 2.0])


@pytest.mark.parametrize("rate", [0, -1.0])
def test_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter(rate)


def test_real_threads_share_one_window() -> None:
    rate, threads, per_thread = 20, 8, 4  # 32 requests: 20 now, 12 one second later
    limiter = RateLimiter(rate)
    reserved: list[float] = []
    observed: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(per_thread):
            start = limiter.acquire()
            seen = time.monotonic()
            with lock:
                reserved.append(start)
                observed.append(seen)

    began = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=10)
    elapsed = time.monotonic() - began

    assert len(reserved) == threads * per_thread
    assert max_in_window(reserved) <= rate
    # What the threads saw is a little later than the reservation; allow 0.1 s of scheduling.
    assert max_in_window(observed, window=0.9) <= rate
    assert elapsed >= 0.95, "32 requests at 20/s need at least one second"


def gate_settings(**values: object) -> FinloomSettings:
    return FinloomSettings(  # type: ignore[call-arg]
        _env_file=None, sec_user_agent="FinLoom tests tests@example.com", **values
    )


def test_a_gate_holds_one_limiter_for_every_client_it_serves() -> None:
    settings = gate_settings(max_requests_per_second=7.5)
    gate = SecGate.from_settings(settings)
    with EdgarClient(settings, gate) as first, EdgarClient(settings, gate) as second:
        assert first.gate.limiter is second.gate.limiter is gate.limiter
    assert SecGate.from_settings(settings).limiter is not gate.limiter  # one per gate
    assert isinstance(gate.limiter, RateLimiter)
    assert gate.limiter.capacity == 7


def test_the_client_acquires_the_gates_limiter_before_every_attempt() -> None:
    class Counting:
        """Any object with ``acquire()`` is a Limiter (e.g. one shared between machines)."""

        def __init__(self) -> None:
            self.calls = 0

        def acquire(self) -> None:
            self.calls += 1

    counting = Counting()
    limiter: Limiter = counting
    gate = SecGate(limiter, cooloff_seconds=1.0, fail_max=5)
    replies = iter([httpx.Response(503), httpx.Response(200, json={"ok": 1})])
    http = httpx.Client(transport=httpx.MockTransport(lambda request: next(replies)))
    with EdgarClient(gate_settings(), gate, http=http, sleep=lambda s: None) as client:
        client.get_bytes("https://data.sec.gov/submissions/CIK0000320193.json")
    assert counting.calls == 2


@pytest.mark.integration
def test_ten_per_second_from_threads_draws_no_429_from_a_server_allowing_ten(
    shared_edgar: Path,
) -> None:
    """The highest setting allowed, 10, against a server that answers 429 to the 11th request
    arriving within any one second: a burst of 40 requests from 4 threads draws no 429."""
    with EdgarStandIn(shared_edgar, limit=10) as server:
        settings = gate_settings(
            max_requests_per_second=10,
            edgar_data_url=server.data_url,
            edgar_www_url=server.www_url,
            http_max_retries=0,
        )
        gate = SecGate.from_settings(settings)
        errors: list[BaseException] = []

        def worker(first: int) -> None:
            with EdgarClient(settings, gate) as client:
                for cik in range(first, first + 10):
                    try:
                        client.submissions(cik)  # unknown CIKs: 404s, as cheap as can be
                    except NotFoundError:
                        pass
                    except BaseException as exc:  # collected for the assertion below
                        errors.append(exc)

        pool = [threading.Thread(target=worker, args=(900000 + 100 * n,)) for n in range(4)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(timeout=30)
        assert server.count(429) == 0
        assert errors == []
        assert server.count(404) == 40
