"""Observer hooks on the EDGAR client, so callers can measure it without it knowing how.

finloom_core stays free of any metrics library: the client reports each HTTP attempt as a
:class:`RequestEvent` to whatever observers are registered, and every circuit breaker it
creates gets the registered pybreaker listeners. FinLoom's tasks register observers that
record Prometheus metrics (``finloom_ops/metrics.py``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pybreaker

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """One HTTP attempt: its status (None: no response, e.g. a timeout) and duration."""

    url: str
    status: int | None
    seconds: float
    rate_limited: bool = False


RequestObserver = Callable[[RequestEvent], None]

_lock = threading.Lock()
_request_observers: list[RequestObserver] = []
_breaker_listeners: list[pybreaker.CircuitBreakerListener] = []
_breakers: list[pybreaker.CircuitBreaker] = []


def add_request_observer(observer: RequestObserver) -> None:
    """Call ``observer`` after every HTTP attempt of every EDGAR client (idempotent)."""
    with _lock:
        if observer not in _request_observers:
            _request_observers.append(observer)


def notify_request(event: RequestEvent) -> None:
    """Hand ``event`` to every observer; an observer's error is logged, never raised."""
    for observer in list(_request_observers):
        try:
            observer(event)
        except Exception:  # an observer must never break a download
            log.exception("request observer %r failed", observer)


def add_breaker_listener(listener: pybreaker.CircuitBreakerListener) -> None:
    """Attach ``listener`` to every shared breaker, present and future (idempotent)."""
    with _lock:
        if listener in _breaker_listeners:
            return
        _breaker_listeners.append(listener)
        breakers = list(_breakers)
    for breaker in breakers:
        breaker.add_listener(listener)


def breaker_created(breaker: pybreaker.CircuitBreaker) -> None:
    """Called by the client for each new shared breaker: attach the registered listeners."""
    with _lock:
        _breakers.append(breaker)
        listeners = list(_breaker_listeners)
    for listener in listeners:
        breaker.add_listener(listener)


def shared_breakers() -> list[pybreaker.CircuitBreaker]:
    with _lock:
        return list(_breakers)


def forget_breakers() -> None:
    """Drop the breaker list (tests reset the client's shared state with this)."""
    with _lock:
        _breakers.clear()
