"""A sliding-window rate limiter shared by every EDGAR request of the process.

SEC allows 10 requests per second per user "regardless of the number of machines", so the
limit is about request *starts*: no more than ``rate`` may start in any one-second window.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from finloom_core.errors import ConfigurationError

_WINDOW_SECONDS = 1.0


class RateLimiter:
    """Thread-safe sliding-window limiter: at most ``capacity`` starts per window.

    ``capacity`` is ``floor(rate)`` (at least 1). For a rate below 1/s the window is
    stretched to ``1 / rate`` seconds so one request starts per window.
    ``acquire()`` blocks (sleeping outside the lock) until a slot is free.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ConfigurationError(f"rate limit must be positive, got {rate!r}")
        self.rate = float(rate)
        self.capacity = max(1, math.floor(rate))
        self.window = _WINDOW_SECONDS if rate >= 1 else _WINDOW_SECONDS / rate
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


_shared: dict[float, RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(rate: float) -> RateLimiter:
    """The process-wide limiter for ``rate``: every thread and client shares its window."""
    with _shared_lock:
        limiter = _shared.get(rate)
        if limiter is None:
            limiter = _shared[rate] = RateLimiter(rate)
        return limiter


def _reset_shared_state() -> None:
    """Forget every shared limiter (tests only: a fresh window per test)."""
    with _shared_lock:
        _shared.clear()
