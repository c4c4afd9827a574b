"""The rate limiter of EDGAR requests: a :class:`Limiter` protocol and its in-process
sliding window, :class:`RateLimiter`.

SEC allows 10 requests per second per user "regardless of the number of machines", so the
limit is about request *starts*: no more than ``rate`` may start in any one-second window.
One limiter serves every request of a run: the run's ``SecGate`` holds it.
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


class Limiter(Protocol):
    """What the gate needs of a limiter: ``acquire()`` blocks until a request may start.

    :class:`RateLimiter` is the in-process implementation; a limiter shared between
    processes or machines (e.g. a Redis window) would implement the same method.
    """

    def acquire(self) -> object: ...


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
