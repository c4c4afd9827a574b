"""FinLoom's access to SEC EDGAR: the public face of the ``finloom_core.edgar`` modules.

A run builds one :class:`SecGate` (rate limiter, circuit breaker, request hooks) at its
edge and hands it to every :class:`EdgarClient` it creates::

    gate = SecGate.from_settings(settings)
    with EdgarClient(settings, gate) as client:
        facts = client.companyfacts(320193)
"""

from finloom_core.edgar.client import EdgarClient
from finloom_core.edgar.gate import RequestEvent, RequestObserver, SecGate
from finloom_core.edgar.ratelimit import Limiter, RateLimiter
from finloom_core.edgar.retry import RetryPolicy
from finloom_core.edgar.urls import EdgarUrls

__all__ = (
    "EdgarClient",
    "EdgarUrls",
    "Limiter",
    "RateLimiter",
    "RequestEvent",
    "RequestObserver",
    "RetryPolicy",
    "SecGate",
)
