"""One SEC budget for every FinLoom process using one Redis (``FINLOOM_REDIS_URL``).

SEC's fair-access limit is per IP address, not per process: workers started together must
share one rate-limit window and one circuit, or they add up past the limit and draw 429s.
With ``FINLOOM_REDIS_URL`` set, :meth:`SecGate.from_settings
<finloom_core.edgar.gate.SecGate.from_settings>` builds its gate over this module:

* :class:`RedisRateLimiter`: the sliding window of :class:`~finloom_core.edgar.ratelimit.
  RateLimiter` (at most ``floor(rate)`` starts in any window of one second plus
  ``WINDOW_MARGIN_SECONDS``), kept in one Redis sorted set for every process. One Lua
  script trims the set, counts it and adds this start, atomically, with Redis' own clock
  (``TIME``), so the processes' clocks never matter; a full window answers how long until
  its oldest start leaves it, and ``acquire()`` sleeps that long and asks again.
* :class:`RedisCircuitStorage`: the circuit's open-until, kept as a Redis key that expires
  when the cool-off ends (its remaining time read with ``PTTL``, again clock-free). A 429
  seen by one worker opens the circuit of all of them for the whole cool-off.
* the HTTP cache (:mod:`finloom_core.edgar.cache`) uses the same connection.

Fail-safe (:class:`RedisLink`): when Redis becomes unreachable mid-run, each process goes
on through an in-process limiter at ``FINLOOM_REDIS_FALLBACK_REQUESTS_PER_SECOND``, never
unlimited; its circuit and cache stay local. That is logged once (one warning line), and
Redis is tried again every :data:`RETRY_SECONDS` (one line when it is back). Unreachable
when the gate is built, or a malformed URL, is a ``ConfigurationError`` instead. A URL's
password is never logged: :func:`redis_label` is how a URL is shown.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import orjson
import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from finloom_core.edgar.circuitfile import SharedCircuitStorage
from finloom_core.edgar.ratelimit import (
    WINDOW_MARGIN_SECONDS,
    RateLimiter,
    window_capacity,
    window_seconds,
)
from finloom_core.errors import ConfigurationError

log = logging.getLogger(__name__)

KEY_PREFIX = "finloom:"  # every key FinLoom writes in Redis starts so
WINDOW_KEY = KEY_PREFIX + "sec:window"
CIRCUIT_KEY = KEY_PREFIX + "sec:circuit"
SOCKET_TIMEOUT_SECONDS = 2.0  # a Redis that stops answering is given up this fast
RETRY_SECONDS = 30.0  # how often Redis is tried again while it is unreachable

# KEYS[1] the window; ARGV: capacity, window (microseconds), this start's member.
# -> {1, 0} the start is taken; {0, microseconds until the oldest start leaves the window}
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now}
"""

# KEYS[1] the circuit; ARGV: cool-off left (milliseconds), a description of who opened it.
# The key is (re)written only when it would expire sooner: the later open-until wins.
_OPEN = """
local left = redis.call('PTTL', KEYS[1])
if left < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
  return 1
end
return 0
"""


def redis_label(url: str) -> str:
    """``url`` as it may be shown: scheme, host, port and database, never the userinfo."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "Redis (unparsable URL)"
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisLink:
    """A gate's Redis connection, and whether Redis is reachable (the fail-safe's state).

    Its users call :meth:`usable` before each use (False while Redis is down and not yet
    due for another try), :meth:`failed` when a command raised and :meth:`succeeded` after
    one worked: the outage and the recovery are each logged once.
    """

    def __init__(
        self,
        client: redis.Redis,
        label: str,
        *,
        fallback_rate: float,
        retry_seconds: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.label = label
        self.fallback_rate = float(fallback_rate)
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._down_since: float | None = None
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, url: str, *, fallback_rate: float) -> RedisLink:
        """Connect to ``url`` and check Redis answers; else a one-line ConfigurationError."""
        label = redis_label(url)
        try:
            client = redis.Redis.from_url(
                url,
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 1),
                health_check_interval=30,
            )
        except ValueError as exc:
            raise ConfigurationError(f"FINLOOM_REDIS_URL {label} is unusable: {exc}") from None
        try:
            client.ping()
        except RedisError as exc:
            client.close()
            raise ConfigurationError(
                f"FINLOOM_REDIS_URL: cannot reach Redis at {label} ({type(exc).__name__}: {exc})"
            ) from None
        return cls(client, label, fallback_rate=fallback_rate)

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def usable(self) -> bool:
        """True unless Redis failed less than ``retry_seconds`` ago."""
        since = self._down_since
        return since is None or self._clock() - since >= self.retry_seconds

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            first = self._down_since is None
            self._down_since = self._clock()
        if first:
            log.warning(
                "Redis at %s is unreachable (%s: %s): SEC requests go on through this "
                "process's own limiter at %g requests/s, with a local circuit and no cache, "
                "until it answers again (tried every %g s)",
                self.label,
                type(exc).__name__,
                exc,
                self.fallback_rate,
                self.retry_seconds,
            )

    def succeeded(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            was_down, self._down_since = self._down_since is not None, None
        if was_down:
            log.info("Redis at %s answers again: the shared SEC limit is back", self.label)

    def __repr__(self) -> str:
        return f"RedisLink({self.label!r}, down={self.down})"


def check_redis(url: str) -> None:
    """Fail now, in one line (``ConfigurationError``), if ``url`` is malformed or its Redis
    does not answer: for a command to check before it starts a run."""
    RedisLink.connect(url, fallback_rate=1.0).client.close()


class RedisRateLimiter:
    """The sliding-window limiter shared by every process using ``link``'s Redis.

    Same semantics as :class:`RateLimiter`: ``capacity = floor(rate)`` starts in any window
    of one second plus ``margin`` (``1 / rate`` when longer), counted over all processes.
    ``acquire()`` blocks until a slot is free. While Redis is unreachable it acquires from
    an in-process :class:`RateLimiter` at the link's fallback rate instead.
    """

    def __init__(
        self,
        link: RedisLink,
        rate: float,
        *,
        margin: float = WINDOW_MARGIN_SECONDS,
        key: str = WINDOW_KEY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ConfigurationError(f"rate limit must be positive, got {rate!r}")
        self.link = link
        self.rate = float(rate)
        self.capacity = window_capacity(rate)
        self.window = window_seconds(rate, margin)
        self.key = key
        self.fallback = RateLimiter(link.fallback_rate, margin=margin)
        self._window_us = math.ceil(self.window * 1_000_000)
        self._script = link.client.register_script(_ACQUIRE)
        self._sleep = sleep
        self._member = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}:"
        self._ids = itertools.count()
        self._fallback_until = 0.0  # monotonic time the fallback's last start leaves

    def acquire(self) -> float:
        """Wait for a free slot of the shared window and take it; return the local
        (``time.monotonic``) time it was taken.

        Every start taken through Redis is counted by the fallback limiter too, so that when
        Redis goes away it waits for this process's recent starts to leave its window; and
        when Redis is back, its window is asked only once the fallback's last start left."""
        while True:
            if not self.link.usable():
                start = self.fallback.acquire()
                self._fallback_until = max(self._fallback_until, start + self.fallback.window)
                return start
            pause = self._fallback_until - time.monotonic()
            if pause > 0:  # just back from the fallback: its starts are not in Redis
                self._sleep(pause)
                continue
            member = f"{self._member}{next(self._ids)}"
            try:
                taken, wait_us = self._script(
                    keys=[self.key], args=[self.capacity, self._window_us, member]
                )
            except RedisError as exc:
                self.link.failed(exc)
                continue
            self.link.succeeded()
            if int(taken):
                start = time.monotonic()
                self.fallback.record(start)
                return start
            self._sleep(max(int(wait_us) / 1_000_000, 0.001))

    def __repr__(self) -> str:
        return (
            f"RedisRateLimiter({self.link.label!r}, rate={self.rate}, "
            f"capacity={self.capacity}, window={self.window})"
        )


class RedisCircuitStorage(SharedCircuitStorage):
    """pybreaker storage whose open-until is the Redis key ``key``, expiring with it.

    Opening the circuit sets the key to expire when this circuit's cool-off ends (unless it
    already outlasts that); every state read opens this circuit while the key lives. While
    Redis is unreachable the circuit is this process's only (nothing raises).
    """

    def __init__(self, link: RedisLink, cooloff_seconds: float, *, key: str = CIRCUIT_KEY):
        self.link = link
        self.key = key
        self._script = link.client.register_script(_OPEN)
        super().__init__(cooloff_seconds)
        self._name = "redis"
        self._sync()

    def _read(self) -> datetime | None:
        if not self.link.usable():
            return None
        try:
            left = self.link.client.pttl(self.key)
        except RedisError as exc:
            self.link.failed(exc)
            return None
        self.link.succeeded()
        if not isinstance(left, int) or left < 0:  # -2: no key (closed); -1: not ours
            return None
        return datetime.now(UTC) + timedelta(milliseconds=left)

    def _publish(self) -> None:
        now = datetime.now(UTC)
        opened = self._opened_at or now
        left_ms = math.ceil((opened + self._cooloff - now).total_seconds() * 1000)
        if left_ms <= 0 or not self.link.usable():
            return
        who = orjson.dumps(
            {"opened_at": opened.isoformat(), "pid": os.getpid(), "host": socket.gethostname()}
        )
        try:
            self._script(keys=[self.key], args=[left_ms, who])
        except RedisError as exc:
            self.link.failed(exc)
            return
        self.link.succeeded()
