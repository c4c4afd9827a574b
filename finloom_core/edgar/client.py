"""The EDGAR HTTP client: httpx behind a :class:`SecGate` (rate limit + circuit breaker),
with one retry layer driven by a :class:`RetryPolicy`.

Every client of a run is built from that run's gate (``EdgarClient(settings, gate)``), so
all its threads and clients share one rate-limit window and one circuit. One logical
request (``get_bytes``) runs its whole retry loop inside the gate's circuit breaker:

* The policy's retried statuses (5xx) and exceptions (timeouts, connection and protocol
  errors) are retried here (and only here) with exponential backoff and full jitter;
  ``Retry-After`` is honoured. Exhausted -> ``TransientHttpError``.
* 429, or SEC's "Request Rate Threshold Exceeded" page (as a 403, or even as a 200), opens
  the gate's circuit at once for the full cool-off: every request through the gate stops,
  and this one fails with ``RateLimitedError``. It is never retried within the cool-off.
* While the circuit is open a request fails with ``CircuitOpenError`` before any HTTP.
* A conditional request (``get_conditional``, with the validators of the stored copy)
  answered 304 Not Modified returns no body: neither an error nor a breaker failure.
* 404 -> ``NotFoundError``; a 403 with SEC's ``AccessDenied`` XML (how its Archives answer
  a missing file, e.g. the daily index of a weekend) -> ``AccessDeniedError``; other 4xx ->
  ``HttpStatusError``; none is retried and none counts as a breaker failure (SEC answered;
  the problem is the request).
* An HTML page or an unparsable body where JSON was expected -> ``ResponseParseError``.
  Not retried, but it counts as a breaker failure: a run of error pages means SEC is unwell.
* The body is streamed, never read whole before it is checked: over the document cap
  (``MAX_DOCUMENT_BYTES``, by ``Content-Length`` first, then counted as it arrives, after
  decompression) or still arriving at the request's overall deadline
  (``DEADLINE_FACTOR`` x ``FINLOOM_HTTP_TIMEOUT_SECONDS``, which bounds each read only)
  -> ``DocumentLimitError`` naming the URL, not retried. An answer other than 2xx is read
  only as far as its first ``ERROR_BODY_BYTES`` (enough to tell SEC's rate-limit page).

Each HTTP attempt is reported to the gate's request observers as a ``RequestEvent``.

With an HTTP cache (the gate's ``cache``, shared in Redis: :mod:`finloom_core.edgar.cache`),
a JSON document (ticker map, submissions, companyfacts) requested without the validators of
a stored copy is asked conditionally with those of the cached one: a 304 serves the cached
body; a body answered with validators is cached. The request is always sent: the cache
never serves a document without SEC confirming it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import date
from types import TracebackType

import httpx
import orjson
import pybreaker

from finloom_core.cik import parse_cik
from finloom_core.edgar.cache import ResponseCache
from finloom_core.edgar.gate import RequestEvent, SecGate
from finloom_core.edgar.retry import RetryPolicy, parse_retry_after
from finloom_core.edgar.urls import EdgarUrls
from finloom_core.errors import (
    AccessDeniedError,
    CircuitOpenError,
    DocumentLimitError,
    EdgarError,
    HttpStatusError,
    NotFoundError,
    RateLimitedError,
    ResponseParseError,
    TransientHttpError,
)
from finloom_core.settings import FinloomSettings
from finloom_core.staging import MAX_DOCUMENT_BYTES
from finloom_core.validators import Validators

logger = logging.getLogger(__name__)

ACCEPT_ENCODING = "gzip, deflate"
DEADLINE_FACTOR = 4.0  # a request's overall deadline, in per-read timeouts
ERROR_BODY_BYTES = 64 << 10  # what is read of an answer other than 2xx
_BODY_HEADERS = ("content-encoding", "content-length", "transfer-encoding")


def _reason(exc: TransientHttpError) -> str:
    """A short why for the retry log: ``HTTP 503`` or ``ReadTimeout: ...``."""
    if exc.status is not None:
        return f"HTTP {exc.status}"
    return str(exc)


def _is_html(response: httpx.Response) -> bool:
    return "html" in response.headers.get("content-type", "").lower()


def is_access_denied(response: httpx.Response) -> bool:
    """SEC's S3-style ``AccessDenied`` XML (a missing Archives file), not a block page."""
    return not _is_html(response) and b"<Code>AccessDenied</Code>" in response.content[:4096]


def _updated(known: Validators, answered: Validators) -> Validators:
    """The validators of a copy confirmed by a 304: those it answered, else ``known``."""
    return Validators(answered.etag or known.etag, answered.last_modified or known.last_modified)


# ---------------------------------------------------------------------------- client


class EdgarClient:
    """Fetches EDGAR documents politely: declared User-Agent, through the run's gate."""

    def __init__(
        self,
        settings: FinloomSettings,
        gate: SecGate,
        *,
        http: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        max_body_bytes: int = MAX_DOCUMENT_BYTES,
        cache: ResponseCache | None = None,
    ) -> None:
        user_agent = settings.require_user_agent()
        self.max_body_bytes = max_body_bytes
        self.deadline_seconds = DEADLINE_FACTOR * settings.http_timeout_seconds
        self.settings = settings
        self.gate = gate
        self.policy = policy if policy is not None else RetryPolicy.from_settings(settings)
        self.urls = EdgarUrls(settings.edgar_data_url, settings.edgar_www_url)
        self._headers = {"User-Agent": user_agent, "Accept-Encoding": ACCEPT_ENCODING}
        self._owns_http = http is None
        self._http = http if http is not None else self._new_http(settings)
        self._sleep = sleep
        self._rng = rng
        self.cache = cache if cache is not None else gate.cache
        # the validators (ETag, Last-Modified) of each URL answered with a body, for the
        # source to store with the document (it pops them)
        self.answered: dict[str, Validators] = {}

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

    def daily_index(self, day: date) -> bytes | None:
        """SEC's daily master index of ``day``, or None when there is none (a weekend or a
        holiday: SEC answers 403 with an ``AccessDenied`` XML, or 404): no filings that day."""
        try:
            return self.get_bytes(self.urls.daily_index(day), expect_json=False)
        except (NotFoundError, AccessDeniedError):
            return None

    # -- the request

    def get_bytes(self, url: str, *, expect_json: bool = True) -> bytes:
        """GET ``url`` with retries inside the gate's breaker; return the (decompressed) body.

        A JSON document in the cache is revalidated: a 304 serves the cached body."""
        cached = self.cache.get(url) if self.cache is not None and expect_json else None
        headers = cached.validators.request_headers() if cached is not None else {}
        body, answered = self._get(url, expect_json, headers)
        if body is None:  # 304: the cached copy is current
            assert cached is not None  # only a conditional request is answered 304
            self.answered[url] = _updated(cached.validators, answered)
            return cached.body
        self._remember(url, body, answered, expect_json)
        return body

    def get_conditional(
        self, url: str, validators: Validators | None, *, expect_json: bool = True
    ) -> tuple[bytes | None, Validators]:
        """GET ``url`` unless it is unchanged since ``validators`` (those of the stored copy):
        ``(None, validators)`` on 304 Not Modified, else the body and its new validators.
        Without validators this is :meth:`get_bytes` (the cache may spare the download)."""
        if not validators:
            fetched = self.get_bytes(url, expect_json=expect_json)
            return fetched, self.answered.get(url, Validators())
        body, answered = self._get(url, expect_json, validators.request_headers())
        if body is None:
            return None, _updated(validators, answered)
        self._remember(url, body, answered, expect_json)
        return body, answered

    def _remember(self, url: str, body: bytes, validators: Validators, expect_json: bool) -> None:
        """Cache a JSON body answered with validators (a cache failure is never raised)."""
        if self.cache is not None and expect_json and validators:
            self.cache.put(url, body, validators)

    def _get(
        self, url: str, expect_json: bool, headers: dict[str, str]
    ) -> tuple[bytes | None, Validators]:
        self._ensure_closed(url)
        answered: EdgarError | None = None
        breaker = self.gate.breaker
        try:
            with breaker.calling():
                try:
                    fetched = self._with_retries(url, expect_json, headers)
                    if fetched[0] is not None and fetched[1]:
                        self.answered[url] = fetched[1]
                    return fetched
                except (NotFoundError, HttpStatusError) as exc:
                    answered = exc  # SEC answered: a success for the breaker
        except pybreaker.CircuitBreakerError as exc:
            raise self._from_breaker_error(exc, url) from None
        except (TransientHttpError, ResponseParseError) as exc:
            if breaker.current_state == pybreaker.STATE_OPEN:
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

    def _with_retries(
        self, url: str, expect_json: bool, headers: dict[str, str]
    ) -> tuple[bytes | None, Validators]:
        retries = self.policy.max_retries
        for attempt in range(retries + 1):
            self._ensure_closed(url)
            self.gate.limiter.acquire()
            self._ensure_closed(url)
            try:
                return self._attempt(url, expect_json, headers)
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

    def _attempt(
        self, url: str, expect_json: bool, headers: dict[str, str]
    ) -> tuple[bytes | None, Validators]:
        started = time.perf_counter()
        try:
            with self._http.stream(
                "GET", url, headers={**self._headers, **headers}, follow_redirects=True
            ) as streamed:
                response = self._read(streamed, url, started)
        except httpx.HTTPError as exc:
            self.gate.report(RequestEvent(url, None, time.perf_counter() - started))
            raise self._no_answer(exc, url) from exc
        except DocumentLimitError as exc:
            self.gate.report(RequestEvent(url, exc.status, time.perf_counter() - started))
            raise
        status = response.status_code
        blocked = self.policy.is_block(response)
        self.gate.report(
            RequestEvent(url, status, time.perf_counter() - started, rate_limited=blocked)
        )
        if blocked:
            self._trip(url, status, parse_retry_after(response.headers.get("retry-after")))
        validators = Validators.from_headers(response.headers)
        if status == 304 and headers:  # not modified since the validators sent
            return None, validators
        return self._check(response, url, expect_json), validators

    def _read(self, response: httpx.Response, url: str, started: float) -> httpx.Response:
        """A streamed response with its body read: at most ``max_body_bytes`` of a 2xx one
        (ERROR_BODY_BYTES of another), arrived before the request's deadline."""
        status = response.status_code
        ok = 200 <= status < 300
        limit = self.max_body_bytes if ok else ERROR_BODY_BYTES
        declared = response.headers.get("content-length", "")
        if ok and declared.isdigit() and int(declared) > limit:
            raise DocumentLimitError(
                f"body of {url} declares {int(declared):,} bytes, over the {limit:,}-byte"
                " document cap: not read",
                url=url,
                status=status,
            )
        deadline = started + self.deadline_seconds
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                if not ok:
                    break  # the start is all an error answer is read for
                raise DocumentLimitError(
                    f"body of {url} passed the {limit:,}-byte document cap: not read",
                    url=url,
                    status=status,
                )
            if time.perf_counter() > deadline:
                raise DocumentLimitError(
                    f"body of {url} not received within the {self.deadline_seconds:g} s"
                    f" request deadline ({size:,} bytes so far)",
                    url=url,
                    status=status,
                )
        headers = [(k, v) for k, v in response.headers.items() if k.lower() not in _BODY_HEADERS]
        body = b"".join(chunks)[: limit if not ok else None]
        return httpx.Response(status, headers=headers, content=body, request=response.request)

    def _no_answer(self, exc: httpx.HTTPError, url: str) -> EdgarError:
        """The error for a request that got no usable answer from httpx."""
        if self.policy.retries_exception(exc):  # timeouts, connect and protocol errors
            return TransientHttpError(f"{type(exc).__name__}: {exc}", url=url)
        if isinstance(exc, httpx.DecodingError):
            return ResponseParseError(f"undecodable body from {url}: {exc}", url=url)
        # too many redirects, unsupported protocol
        return HttpStatusError(f"{type(exc).__name__} for {url}: {exc}", url=url)

    def _check(self, response: httpx.Response, url: str, expect_json: bool) -> bytes:
        """An answer that is not a rate-limit block (see ``_attempt``) -> body or error."""
        status = response.status_code
        if 200 <= status < 300:
            return self._check_body(response, url, expect_json)
        if status == 404:
            raise NotFoundError(f"404 Not Found: {url}", url=url, status=status)
        if status == 403 and is_access_denied(response):
            # SEC's Archives answer a file that does not exist with 403 AccessDenied XML
            raise AccessDeniedError(
                f"403 AccessDenied (no such file): {url}", url=url, status=status
            )
        if self.policy.retries_status(status):
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
        """SEC signalled a block: open the gate's circuit for the full cool-off and stop."""
        self.gate.trip()
        cooloff = float(self.gate.breaker.reset_timeout)
        logger.error(
            "SEC rate limit (HTTP %s) at %s: circuit %s open, no request for %.0f s",
            status,
            url,
            self.gate.breaker.name,
            cooloff,
        )
        raise RateLimitedError(
            f"SEC rate limit (HTTP {status}) at {url}; pausing all requests for {cooloff:g} s",
            url=url,
            status=status,
            retry_after=retry_after,
        )

    def _ensure_closed(self, url: str) -> None:
        if self.gate.is_open():
            raise self._open_error(url)

    def _open_error(self, url: str) -> CircuitOpenError:
        remaining = self.gate.cooloff_remaining()
        return CircuitOpenError(
            f"circuit open after SEC errors: no request to {url} for {remaining:.1f} s",
            url=url,
            remaining=remaining,
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """The policy's delay before retry ``attempt + 1``, with this client's jitter."""
        return self.policy.delay(attempt, retry_after, self._rng())

    def _log_tripped(self, url: str, exc: EdgarError) -> None:
        breaker = self.gate.breaker
        logger.error(
            "circuit %s opened after %d consecutive failures (last: %s at %s); cool-off %.0f s",
            breaker.name,
            breaker.fail_max,
            exc,
            url,
            breaker.reset_timeout,
        )
