"""The rate limiter of EDGAR requests: a :class:`Limiter` protocol and its in-process
sliding window, :class:`RateLimiter`.

SEC allows 10 requests per second per user "regardless of the number of machines", so the
limit is about request *starts*: no more than ``rate`` may start in any window of one second
plus a margin (:data:`WINDOW_MARGIN_SECONDS`). SEC counts requests when they *arrive*: a
request that started on time can reach SEC a little later than the one that took its slot
a second after it (thread scheduling, the network), and without the margin the eleventh
request of two bursts of ten, started 1.000 s after the first, arrives 0.997 s after it: a
429. One limiter serves every request of a run: the run's ``SecGate`` holds it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from finloom_core.errors import ConfigurationError

_WINDOW_SECONDS = 1.0
# Slack for the difference between when a request starts here and when it reaches SEC. The
# spread measured against the EDGAR stand-in (tests/edgar_standin.py: 10 per sliding second
# on arrival) was up to 0.03 s on an idle machine and 0.11 s with both cores saturated; 0.25 s
# keeps twice that. It costs throughput: at the setting 10, at most 8 requests per second.
WINDOW_MARGIN_SECONDS = 0.25


def window_capacity(rate: float) -> int:
    """Request starts allowed per window at ``rate``: ``floor(rate)``, at least 1."""
    return max(1, math.floor(rate))


def window_seconds(rate: float, margin: float = WINDOW_MARGIN_SECONDS) -> float:
    """The window of ``rate``: one second plus ``margin``, or ``1 / rate`` when longer."""
    return max(_WINDOW_SECONDS + margin, _WINDOW_SECONDS / min(rate, 1.0))


class Limiter(Protocol):
    """What the gate needs of a limiter: ``acquire()`` blocks until a request may start.

    :class:`RateLimiter` is the in-process implementation; the limiter shared by every
    process using one Redis (``FINLOOM_REDIS_URL``) is
    :class:`~finloom_core.edgar.redis_shared.RedisRateLimiter`, the same window kept there.
    """

    def acquire(self) -> object: ...


class RateLimiter:
    """Thread-safe sliding-window limiter: at most ``capacity`` starts per window.

    ``capacity`` is ``floor(rate)`` (at least 1) and the window is one second plus
    ``margin`` (:data:`WINDOW_MARGIN_SECONDS` by default), so however late a request reaches
    SEC, within the margin, no second at SEC sees more than ``capacity`` of them. For a rate
    below 1/s the window is ``1 / rate`` seconds when that is longer, so one request starts
    per window. ``acquire()`` blocks (sleeping outside the lock) until a slot is free.
    """

    def __init__(
        self,
        rate: float,
        *,
        margin: float = WINDOW_MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ConfigurationError(f"rate limit must be positive, got {rate!r}")
        if not margin >= 0:
            raise ConfigurationError(f"rate limit margin must not be negative, got {margin!r}")
        self.rate = float(rate)
        self.capacity = window_capacity(rate)
        self.window = window_seconds(rate, margin)
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for a free slot and take it; return the start time reserved (clock units)."""
        while True:
            start, wait = self._reserve()
            if start is not None:
                return start
            self._sleep(wait)

    def record(self, start: float) -> None:
        """Count a start taken elsewhere (clock units), e.g. through a shared window this
        limiter stands in for: its slot is taken here too until it leaves the window."""
        with self._lock:
            horizon = self._clock() - self.window
            while self._starts and self._starts[0] <= horizon:
                self._starts.popleft()
            self._starts.append(start)

    def _reserve(self) -> tuple[float | None, float]:
        """Take a slot now (``(start, 0)``) or say how long to wait (``(None, seconds)``)."""
        with self._lock:
            now = self._clock()
            horizon = now - self.window
            while self._starts and self._starts[0] <= horizon:
                self._starts.popleft()
            if len(self._starts) < self.capacity:
                self._starts.append(now)
                return now, 0.0
            return None, max(self._starts[0] - horizon, 1e-6)

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate}, capacity={self.capacity}, window={self.window})"
