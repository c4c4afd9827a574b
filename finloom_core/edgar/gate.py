"""The SEC gate: the one rate limit and the one circuit every EDGAR request of a run obeys.

SEC's fair-access limit is per user, so a run must not exceed it however many threads or
clients it has, and a block seen by one request must stop all of them. A
:class:`SecGate` is built once at the edge of a run (a flow run, ``finloom serve``) and
handed to every :class:`~finloom_core.edgar.client.EdgarClient` and to the health probe:

* ``limiter``: every request start is acquired from it (a :class:`Limiter`; the in-process
  implementation is the sliding-window :class:`RateLimiter`).
* ``breaker``: the pybreaker circuit named ``"sec"``, over a state storage the gate keeps
  (``storage``), so how long the circuit stays open is read from that storage. A gate built
  from settings keeps it in a :class:`~finloom_core.edgar.circuitfile.CircuitFileStorage`:
  its open-until is recorded in ``FINLOOM_STATE_DIR`` when the circuit opens and honoured
  by every FinLoom process of the machine (SEC blocks the IP, not the process).
* ``cache``: the HTTP cache its clients revalidate EDGAR's JSON documents against (a
  :class:`~finloom_core.edgar.cache.ResponseCache`; None: no cache).
* hooks: request observers, called with a :class:`RequestEvent` after every HTTP attempt,
  and pybreaker listeners on the breaker. finloom_core stays free of any metrics library;
  FinLoom's flows hook Prometheus metrics onto their gate (``finloom_ops/metrics.py``).

With ``FINLOOM_REDIS_URL`` (:mod:`finloom_core.edgar.redis_shared`), the limiter's window,
the circuit's open-until and the cache live in that Redis instead, shared by every FinLoom
process using it, on any machine: one SEC budget for a pool of workers.

Nothing here is module state: two gates share nothing but that state file (or that Redis).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pybreaker

from finloom_core.edgar.cache import RedisResponseCache, ResponseCache
from finloom_core.edgar.circuitfile import CIRCUIT_FILE, CircuitFileStorage
from finloom_core.edgar.ratelimit import Limiter, RateLimiter
from finloom_core.edgar.redis_shared import RedisCircuitStorage, RedisLink, RedisRateLimiter
from finloom_core.settings import FinloomSettings

log = logging.getLogger(__name__)

BREAKER_NAME = "sec"


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """One HTTP attempt: its status (None: no response, e.g. a timeout) and duration."""

    url: str
    status: int | None
    seconds: float
    rate_limited: bool = False


RequestObserver = Callable[[RequestEvent], None]


class SecGate:
    """The limiter, the circuit breaker and the event hooks of one run's SEC requests.

    ``limiter`` and ``storage`` are the seams for sharing the gate beyond one process.
    Built directly, the storage defaults to a ``pybreaker.CircuitMemoryStorage`` of this
    gate: one window and one circuit per gate, shared by all its threads.
    :meth:`from_settings` (every gate FinLoom builds) shares the circuit's open-until with
    every FinLoom process of the machine through a state file, or, with
    ``FINLOOM_REDIS_URL``, the window, the circuit and an HTTP cache with every process
    using that Redis.
    """

    def __init__(
        self,
        limiter: Limiter,
        *,
        cooloff_seconds: float,
        fail_max: int,
        storage: pybreaker.CircuitBreakerStorage | None = None,
        name: str = BREAKER_NAME,
        throw_new_error_on_trip: bool = False,
        cache: ResponseCache | None = None,
    ) -> None:
        self.limiter = limiter
        self.cache = cache
        if storage is None:
            storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        self.storage = storage
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=cooloff_seconds,
            state_storage=self.storage,
            name=name,
            throw_new_error_on_trip=throw_new_error_on_trip,
        )
        self._lock = threading.Lock()
        self._observers: tuple[RequestObserver, ...] = ()

    @classmethod
    def from_settings(
        cls, settings: FinloomSettings, *, storage: pybreaker.CircuitBreakerStorage | None = None
    ) -> SecGate:
        """The gate of one run: ``FINLOOM_MAX_REQUESTS_PER_SECOND``, the breaker's cool-off
        and failure count from ``settings``; the circuit's open-until in
        ``FINLOOM_STATE_DIR`` (read now and before each request, written when it opens).

        With ``FINLOOM_REDIS_URL``: the window and the open-until in that Redis, and the HTTP
        cache there unless ``FINLOOM_CACHE_TTL_SECONDS`` is 0. A Redis that cannot be
        reached now, or a malformed URL, is a one-line ``ConfigurationError``.
        """
        cooloff = settings.breaker_cooloff_seconds
        limiter: Limiter
        cache: ResponseCache | None = None
        if settings.redis_url:
            link = RedisLink.connect(
                settings.redis_url, fallback_rate=settings.redis_fallback_requests_per_second
            )
            limiter = RedisRateLimiter(link, settings.max_requests_per_second)
            if storage is None:
                storage = RedisCircuitStorage(link, cooloff)
            if settings.cache_ttl_seconds > 0:
                cache = RedisResponseCache(
                    link,
                    ttl_seconds=settings.cache_ttl_seconds,
                    max_entry_bytes=int(settings.cache_max_entry_mb * (1 << 20)),
                )
        else:
            limiter = RateLimiter(settings.max_requests_per_second)
        if storage is None:
            storage = CircuitFileStorage(settings.resolved_state_dir() / CIRCUIT_FILE, cooloff)
        return cls(
            limiter,
            cooloff_seconds=cooloff,
            fail_max=settings.breaker_fail_max,
            storage=storage,
            cache=cache,
        )

    # -- hooks

    def add_request_observer(self, observer: RequestObserver) -> None:
        """Call ``observer`` after every HTTP attempt through this gate (idempotent)."""
        with self._lock:
            if observer not in self._observers:
                self._observers = (*self._observers, observer)

    def report(self, event: RequestEvent) -> None:
        """Hand ``event`` to every observer; an observer's error is logged, never raised."""
        for observer in self._observers:
            try:
                observer(event)
            except Exception:  # an observer must never break a download
                log.exception("request observer %r failed", observer)

    def add_breaker_listener(self, listener: pybreaker.CircuitBreakerListener) -> None:
        """Attach a pybreaker listener to this gate's breaker (idempotent)."""
        with self._lock:
            if listener not in self.breaker.listeners:
                self.breaker.add_listener(listener)

    # -- the circuit

    def trip(self) -> None:
        """SEC signalled a block: open the circuit for the full cool-off."""
        self.breaker.open()

    def cooloff_remaining(self) -> float:
        """Seconds until an open circuit lets a trial request through (0.0 if not open).

        Read through the breaker's ``state``, so a circuit opened elsewhere (another process,
        through the storage) reaches this gate's listeners as a state change.
        """
        if self.breaker.state.name != pybreaker.STATE_OPEN:
            return 0.0
        opened_at = self.storage.opened_at
        timeout = float(self.breaker.reset_timeout)
        if opened_at is None:
            return timeout
        elapsed = (datetime.now(UTC) - opened_at).total_seconds()
        return max(0.0, timeout - elapsed)

    def is_open(self) -> bool:
        """True while the circuit refuses requests (open, cool-off not yet over)."""
        return self.cooloff_remaining() > 0

    def breaker_state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"``.

        pybreaker moves open -> half-open lazily, on the next call; an open breaker whose
        cool-off has elapsed is reported as ``"half-open"`` (the next request is the trial).
        """
        state = self.breaker.current_state
        if state == pybreaker.STATE_OPEN and self.cooloff_remaining() <= 0:
            return pybreaker.STATE_HALF_OPEN
        return str(state)

    def __repr__(self) -> str:
        return (
            f"SecGate(limiter={self.limiter!r}, breaker={self.breaker.name!r}, "
            f"state={self.breaker_state()!r})"
        )
