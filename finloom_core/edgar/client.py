"""The EDGAR HTTP client: httpx + a shared rate limiter + a circuit breaker + one retry layer.

One logical request (``get_bytes``) runs its whole retry loop inside the circuit breaker:

* 5xx, timeouts and connection errors are retried here (and only here) with exponential
  backoff and full jitter; ``Retry-After`` is honoured. Exhausted -> ``TransientHttpError``.
* 429, or SEC's "Request Rate Threshold Exceeded" page (as a 403, or even as a 200), opens
  the breaker at once for the full cool-off: every thread of the process stops, and the
  request fails with ``RateLimitedError``. It is never retried within the cool-off.
* While the breaker is open a request fails with ``CircuitOpenError`` before any HTTP.
* 404 -> ``NotFoundError``; other 4xx -> ``HttpStatusError``; neither is retried and neither
  counts as a breaker failure (SEC answered; the problem is the request).
* An HTML page or an unparsable body where JSON was expected -> ``ResponseParseError``.
  Not retried, but it counts as a breaker failure: a run of error pages means SEC is unwell.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType

import httpx
import orjson
import pybreaker

from finloom_core.cik import parse_cik
from finloom_core.edgar import events
from finloom_core.edgar.ratelimit import RateLimiter, shared_limiter
from finloom_core.edgar.ratelimit import _reset_shared_state as _reset_shared_limiters
from finloom_core.edgar.urls import EdgarUrls
from finloom_core.errors import (
    CircuitOpenError,
    EdgarError,
    HttpStatusError,
    NotFoundError,
    RateLimitedError,
    ResponseParseError,
    TransientHttpError,
)
from finloom_core.settings import FinloomSettings

logger = logging.getLogger(__name__)

ACCEPT_ENCODING = "gzip, deflate"
_RATE_PAGE_MARKERS = (b"request rate threshold exceeded", b"exceeded the sec")
_RATE_PAGE_SCAN_BYTES = 20_000

# ---------------------------------------------------------------------------- breaker


_breakers: dict[tuple[float, int], pybreaker.CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def shared_breaker(settings: FinloomSettings) -> pybreaker.CircuitBreaker:
    """The process-wide "sec" breaker for (cool-off, fail_max): one circuit for all threads."""
    key = (settings.breaker_cooloff_seconds, settings.breaker_fail_max)
    with _breakers_lock:
        breaker = _breakers.get(key)
        if breaker is None:
            breaker = _breakers[key] = pybreaker.CircuitBreaker(
                fail_max=settings.breaker_fail_max,
                reset_timeout=settings.breaker_cooloff_seconds,
                name="sec",
                throw_new_error_on_trip=False,
            )
            events.breaker_created(breaker)
        return breaker


def _reset_shared_state() -> None:
    """Forget every shared breaker (and the shared rate limiters). For tests only: a breaker
    opened by one test would otherwise refuse the next test's requests."""
    with _breakers_lock:
        _breakers.clear()
    events.forget_breakers()
    _reset_shared_limiters()


def cooloff_remaining(breaker: pybreaker.CircuitBreaker) -> float:
    """Seconds until an open breaker lets a trial request through (0.0 if not open)."""
    if breaker.current_state != pybreaker.STATE_OPEN:
        return 0.0
    # pybreaker 1.4 exposes the opening time only on its storage object.
    opened_at = breaker._state_storage.opened_at
    if opened_at is None:
        return float(breaker.reset_timeout)
    elapsed = (datetime.now(UTC) - opened_at).total_seconds()
    return max(0.0, breaker.reset_timeout - elapsed)


def breaker_state(breaker: pybreaker.CircuitBreaker) -> str:
    """``"closed"``, ``"open"`` or ``"half-open"``.

    pybreaker moves open -> half-open lazily, on the next call; an open breaker whose
    cool-off has elapsed is reported as ``"half-open"`` (the next request is the trial).
    """
    state = breaker.current_state
    if state == pybreaker.STATE_OPEN and cooloff_remaining(breaker) <= 0:
        return pybreaker.STATE_HALF_OPEN
    return str(state)


# ---------------------------------------------------------------------------- helpers


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


def _reason(exc: TransientHttpError) -> str:
    """A short why for the retry log: ``HTTP 503`` or ``ReadTimeout: ...``."""
    if exc.status is not None:
        return f"HTTP {exc.status}"
    return str(exc)


def _is_html(response: httpx.Response) -> bool:
    return "html" in response.headers.get("content-type", "").lower()


# ---------------------------------------------------------------------------- client


def _is_block(response: httpx.Response) -> bool:
    """SEC signalled a rate-limit block: 429, or its threshold page (as a 403 or an HTML 200)."""
    status = response.status_code
    if status == 429:
        return True
    return (status == 403 or _is_html(response)) and is_rate_limit_page(response.content)


class EdgarClient:
    """Fetches EDGAR documents politely: declared User-Agent, shared rate limit, breaker."""

    def __init__(
        self,
        settings: FinloomSettings,
        *,
        http: httpx.Client | None = None,
        limiter: RateLimiter | None = None,
        breaker: pybreaker.CircuitBreaker | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        user_agent = settings.require_user_agent()
        self.settings = settings
        self.urls = EdgarUrls(settings.edgar_data_url, settings.edgar_www_url)
        self._headers = {"User-Agent": user_agent, "Accept-Encoding": ACCEPT_ENCODING}
        self._owns_http = http is None
        self._http = http if http is not None else self._new_http(settings)
        self.limiter = (
            limiter if limiter is not None else shared_limiter(settings.max_requests_per_second)
        )
        self.breaker = breaker if breaker is not None else shared_breaker(settings)
        self._sleep = sleep
        self._rng = rng

    def _new_http(self, settings: FinloomSettings) -> httpx.Client:
        return httpx.Client(
            headers=self._headers,
            timeout=httpx.Timeout(settings.http_timeout_seconds),
            follow_redirects=True,
        )

    # -- lifecycle

    def close(self) -> None:
        """Close the httpx client if this object created it (an injected one is left open)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> EdgarClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- convenience

    def companyfacts(self, cik: int | str) -> bytes | None:
        """All XBRL facts of a company, or None when SEC has none (404)."""
        try:
            return self.get_bytes(self.urls.companyfacts(parse_cik(cik)))
        except NotFoundError:
            return None

    def submissions(self, cik: int | str) -> bytes:
        return self.get_bytes(self.urls.submissions(parse_cik(cik)))

    def submissions_page(self, name: str) -> bytes:
        """An older filings page named in ``filings.files`` (``CIK...-submissions-NNN.json``)."""
        return self.get_bytes(self.urls.submissions_page(name))

    def company_tickers(self) -> bytes:
        return self.get_bytes(self.urls.company_tickers())

    # -- the request

    def get_bytes(self, url: str, *, expect_json: bool = True) -> bytes:
        """GET ``url`` with retries inside the breaker; return the (decompressed) body."""
        self._ensure_closed(url)
        answered: EdgarError | None = None
        try:
            with self.breaker.calling():
                try:
                    return self._with_retries(url, expect_json)
                except (NotFoundError, HttpStatusError) as exc:
                    answered = exc  # SEC answered: a success for the breaker
        except pybreaker.CircuitBreakerError as exc:
            raise self._from_breaker_error(exc, url) from None
        except (TransientHttpError, ResponseParseError) as exc:
            if self.breaker.current_state == pybreaker.STATE_OPEN:
                self._log_tripped(url, exc)
            raise
        assert answered is not None
        raise answered

    def _from_breaker_error(self, exc: pybreaker.CircuitBreakerError, url: str) -> EdgarError:
        """pybreaker replaces the failure that trips it; give the caller the real one back."""
        cause = exc.__context__
        if isinstance(cause, EdgarError):
            if isinstance(cause, TransientHttpError | ResponseParseError):
                self._log_tripped(url, cause)
            return cause
        return self._open_error(url)

    def _with_retries(self, url: str, expect_json: bool) -> bytes:
        retries = self.settings.http_max_retries
        for attempt in range(retries + 1):
            self._ensure_closed(url)
            self.limiter.acquire()
            self._ensure_closed(url)
            try:
                return self._attempt(url, expect_json)
            except TransientHttpError as exc:
                if attempt >= retries:
                    raise
                delay = self._backoff(attempt, exc.retry_after)
                logger.warning(
                    "retry %d/%d of %s in %.2f s after %s",
                    attempt + 1,
                    retries,
                    url,
                    delay,
                    _reason(exc),
                )
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, url: str, expect_json: bool) -> bytes:
        started = time.perf_counter()
        try:
            response = self._http.get(url, headers=self._headers, follow_redirects=True)
        except httpx.HTTPError as exc:
            events.notify_request(events.RequestEvent(url, None, time.perf_counter() - started))
            if isinstance(exc, httpx.TransportError):  # timeouts, connect and protocol errors
                raise TransientHttpError(f"{type(exc).__name__}: {exc}", url=url) from exc
            if isinstance(exc, httpx.DecodingError):
                raise ResponseParseError(f"undecodable body from {url}: {exc}", url=url) from exc
            # too many redirects, unsupported protocol
            raise HttpStatusError(f"{type(exc).__name__} for {url}: {exc}", url=url) from exc
        status = response.status_code
        blocked = _is_block(response)
        events.notify_request(
            events.RequestEvent(url, status, time.perf_counter() - started, rate_limited=blocked)
        )
        if blocked:
            self._trip(url, status, parse_retry_after(response.headers.get("retry-after")))
        return self._check(response, url, expect_json)

    def _check(self, response: httpx.Response, url: str, expect_json: bool) -> bytes:
        """An answer that is not a rate-limit block (see ``_attempt``) -> body or error."""
        status = response.status_code
        if 200 <= status < 300:
            return self._check_body(response, url, expect_json)
        if status == 404:
            raise NotFoundError(f"404 Not Found: {url}", url=url, status=status)
        if status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise TransientHttpError(
                f"HTTP {status} from {url}", url=url, status=status, retry_after=retry_after
            )
        raise HttpStatusError(f"HTTP {status} from {url}", url=url, status=status)

    def _check_body(self, response: httpx.Response, url: str, expect_json: bool) -> bytes:
        body = response.content
        status = response.status_code
        html = _is_html(response)
        if not expect_json:
            return body
        if html:
            raise ResponseParseError(
                f"HTML page instead of JSON from {url} (HTTP {status})", url=url, status=status
            )
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ResponseParseError(
                f"invalid JSON from {url} (HTTP {status}, {len(body)} bytes): {exc}",
                url=url,
                status=status,
            ) from None
        return body

    def _trip(self, url: str, status: int, retry_after: float | None) -> None:
        """SEC signalled a block: open the circuit for the full cool-off and stop."""
        self.breaker.open()
        cooloff = self.settings.breaker_cooloff_seconds
        logger.error(
            "SEC rate limit (HTTP %s) at %s: circuit %s open, no request for %.0f s",
            status,
            url,
            self.breaker.name,
            cooloff,
        )
        raise RateLimitedError(
            f"SEC rate limit (HTTP {status}) at {url}; pausing all requests for {cooloff:g} s",
            url=url,
            status=status,
            retry_after=retry_after,
        )

    def _ensure_closed(self, url: str) -> None:
        if cooloff_remaining(self.breaker) > 0:
            raise self._open_error(url)

    def _open_error(self, url: str) -> CircuitOpenError:
        remaining = cooloff_remaining(self.breaker)
        return CircuitOpenError(
            f"circuit open after SEC errors: no request to {url} for {remaining:.1f} s",
            url=url,
            remaining=remaining,
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter; Retry-After as a floor; both capped."""
        cap = self.settings.http_backoff_max_seconds
        delay = min(cap, self.settings.http_backoff_seconds * 2**attempt) * self._rng()
        if retry_after is not None:
            delay = min(cap, max(retry_after, delay))
        return delay

    def _log_tripped(self, url: str, exc: EdgarError) -> None:
        logger.error(
            "circuit %s opened after %d consecutive failures (last: %s at %s); cool-off %.0f s",
            self.breaker.name,
            self.breaker.fail_max,
            exc,
            url,
            self.breaker.reset_timeout,
        )
