"""The EDGAR client's retry policy, as data: what is retried, how often, how long it waits.

The client (``finloom_core/edgar/client.py``) is FinLoom's one retry layer for HTTP; it reads
a :class:`RetryPolicy`:

* statuses in ``retry_statuses`` (5xx) and exceptions in ``retry_exceptions`` (httpx
  transport errors: timeouts, connection and protocol errors) are retried, at most
  ``max_retries`` times, after an exponential backoff with full jitter
  (``backoff_seconds * 2**attempt``, capped at ``backoff_max_seconds``);
* ``Retry-After`` is a floor for that delay (still capped) when ``respect_retry_after``;
* a block, a status in ``block_statuses`` (429) or SEC's "Request Rate Threshold
  Exceeded" page (as a 403 or an HTML answer), is never retried: it opens the circuit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from finloom_core.settings import FinloomSettings

RETRY_STATUSES = frozenset(range(500, 600))
RETRY_EXCEPTIONS: tuple[type[httpx.HTTPError], ...] = (httpx.TransportError,)
BLOCK_STATUSES = frozenset({429})
RATE_PAGE_STATUSES = frozenset({403})  # besides any HTML answer
_RATE_PAGE_MARKERS = (b"request rate threshold exceeded", b"exceeded the sec")
_RATE_PAGE_SCAN_BYTES = 20_000


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """What the EDGAR client retries and how long it waits (see the module docstring)."""

    max_retries: int = 3
    backoff_seconds: float = 0.5
    backoff_max_seconds: float = 8.0
    retry_statuses: frozenset[int] = RETRY_STATUSES
    retry_exceptions: tuple[type[httpx.HTTPError], ...] = RETRY_EXCEPTIONS
    respect_retry_after: bool = True
    block_statuses: frozenset[int] = BLOCK_STATUSES

    @classmethod
    def from_settings(cls, settings: FinloomSettings) -> RetryPolicy:
        return cls(
            max_retries=settings.http_max_retries,
            backoff_seconds=settings.http_backoff_seconds,
            backoff_max_seconds=settings.http_backoff_max_seconds,
        )

    def retries_status(self, status: int) -> bool:
        return status in self.retry_statuses

    def retries_exception(self, exc: BaseException) -> bool:
        return isinstance(exc, self.retry_exceptions)

    def is_block(self, response: httpx.Response) -> bool:
        """SEC signalled a rate-limit block: a block status, or its threshold page (as a 403
        or an HTML answer). Never retried: the caller opens the circuit."""
        status = response.status_code
        if status in self.block_statuses:
            return True
        html = "html" in response.headers.get("content-type", "").lower()
        return (status in RATE_PAGE_STATUSES or html) and is_rate_limit_page(response.content)

    def delay(self, attempt: int, retry_after: float | None, jitter: float) -> float:
        """Seconds before retry ``attempt + 1``: exponential backoff times ``jitter``
        (uniform in [0, 1)); ``Retry-After`` as a floor when respected; both capped."""
        cap = self.backoff_max_seconds
        delay = min(cap, self.backoff_seconds * 2**attempt) * jitter
        if self.respect_retry_after and retry_after is not None:
            delay = min(cap, max(retry_after, delay))
        return delay


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), else None."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def is_rate_limit_page(body: bytes) -> bool:
    """True for SEC's "Request Rate Threshold Exceeded" / "exceeded the SEC's traffic" page."""
    head = body[:_RATE_PAGE_SCAN_BYTES].lower()
    return any(marker in head for marker in _RATE_PAGE_MARKERS)
