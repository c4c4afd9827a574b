"""The SEC reachability check of ``finloom serve``: a cached probe through the SEC gate.

:class:`SecProbe` sends at most one request per ``health_sec_probe_seconds``, however often
it is asked (see its docstring), through a ``SecGate`` (rate limit, circuit, request
observers) like every other SEC request, and answers a :class:`~finloom_core.health.Check`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx

from finloom_core.edgar import EdgarUrls, RequestEvent, SecGate
from finloom_core.edgar.retry import BLOCK_STATUSES, is_rate_limit_page
from finloom_core.errors import first_line
from finloom_core.health import Check, failed_check
from finloom_core.redact import redact
from finloom_core.settings import FinloomSettings

log = logging.getLogger(__name__)

# The probe asks for EdgarUrls.probe(), one light, stable document. Only its status line and
# headers are read (the body only for an error page), and the connection is then dropped.
SEC_PROBE_TIMEOUT_SECONDS = 5.0
_ERROR_PAGE_SCAN_BYTES = 20_000
_UNDECLARED_MARKER = b"undeclared automated tool"


# ---------------------------------------------------------------------------- SEC


class SecProbe:
    """A cached reachability probe of SEC: one GET, at most once per ``ttl`` seconds.

    * Any HTTP answer means ``reachable`` (healthy), except 429 or SEC's "Request Rate
      Threshold Exceeded" page (``blocked``) and SEC's "Undeclared Automated Tool" page
      (``rejected``: the User-Agent is not accepted). Connection errors and timeouts are
      ``unreachable``. Without a User-Agent nothing is sent: ``unconfigured`` (healthy,
      noted), because SEC must never get an undeclared request from FinLoom.
    * The request goes through ``gate``: it waits for the gate's rate limiter, is reported
      to the gate's request observers, and a block opens the gate's circuit. While that
      circuit is open nothing is sent and the result is ``blocked`` (circuit open).
    * :meth:`check` serves the cached result while it is younger than ``ttl``. Once it is
      stale, the first caller starts ONE background refresh and everyone keeps getting the
      stale result (marked ``stale``) until the refresh lands. Before the very first result,
      callers wait (bounded) for the one in-flight probe instead of starting their own.
    * ``clock`` (monotonic seconds) and ``transport`` (an httpx transport) are injectable.
    """

    def __init__(
        self,
        urls: EdgarUrls,
        user_agent: str | None,
        ttl: float,
        *,
        gate: SecGate,
        timeout: float = SEC_PROBE_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = urls.probe()
        self.user_agent = user_agent
        self.ttl = ttl
        self.gate = gate
        self.timeout = timeout
        self._transport = transport
        self._clock = clock
        self._cond = threading.Condition()
        self._result: Check | None = None
        self._at = 0.0
        self._thread: threading.Thread | None = None
        self.probes = 0  # requests actually sent (for tests and /health)

    @classmethod
    def from_settings(
        cls,
        settings: FinloomSettings,
        gate: SecGate,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> SecProbe:
        urls = EdgarUrls(settings.edgar_data_url, settings.edgar_www_url)
        ttl = settings.health_sec_probe_seconds
        return cls(urls, settings.sec_user_agent, ttl, gate=gate, transport=transport, clock=clock)

    # -- public

    @property
    def shown_url(self) -> str:
        """The probe's URL as details show it (credentials redacted)."""
        return redact(self.url)

    @property
    def completed(self) -> bool:
        """True once the first probe has a result."""
        with self._cond:
            return self._result is not None

    def start(self) -> None:
        """Start the first probe in the background (no-op if it has run or is running)."""
        with self._cond:
            if self._result is None:
                self._ensure_refresh()

    def check(self, *, wait: bool = True) -> Check:
        """The current result; never more than one probe per ``ttl`` (see the class doc)."""
        with self._cond:
            now = self._clock()
            if self._result is not None and now - self._at < self.ttl:
                return self._present(self._result, now, stale=False)
            self._ensure_refresh()
            if self._result is not None:
                return self._present(self._result, now, stale=True)
            if wait:
                # Bounded: httpx's timeout applies per phase (connect, read, ...).
                self._cond.wait_for(lambda: self._result is not None, self.timeout * 4 + 1)
            if self._result is None:
                detail = {"url": self.shown_url, "reason": "first probe running"}
                return Check("sec", False, "pending", detail)
            return self._present(self._result, self._clock(), stale=False)

    def join(self, timeout: float | None = None) -> None:
        """Wait for an in-flight refresh to land (for tests and shutdown)."""
        with self._cond:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def probe_now(self) -> Check:
        """One probe, uncached (what the background refresh runs)."""
        if not self.user_agent:
            reason = "FINLOOM_SEC_USER_AGENT is not set: SEC is not probed"
            return Check("sec", True, "unconfigured", {"url": self.shown_url, "reason": reason})
        refused = self._circuit_open()
        if refused is None:
            self.gate.limiter.acquire()
            refused = self._circuit_open()  # it may have opened while this one waited
        if refused is not None:
            return refused
        self.probes += 1
        return self._send(self.user_agent)

    def _circuit_open(self) -> Check | None:
        """``blocked`` while the gate's circuit is open (nothing is sent), else None."""
        remaining = self.gate.cooloff_remaining()
        if remaining <= 0:
            return None
        reason = f"SEC circuit open: no request to SEC for {remaining:.0f} s"
        detail: dict[str, Any] = {"url": self.shown_url, "circuit": "open"}
        detail["cooloff_remaining"] = round(remaining, 1)
        return Check("sec", False, "blocked", {**detail, "reason": reason})

    def _send(self, user_agent: str) -> Check:
        """One GET through the gate: reported to its observers; a block opens its circuit."""
        detail: dict[str, Any] = {"url": self.shown_url}
        started = time.perf_counter()
        try:
            status, head, retry_after = self._get_head(user_agent)
        except httpx.HTTPError as exc:
            self.gate.report(RequestEvent(self.url, None, time.perf_counter() - started))
            detail["reason"] = _unreachable_reason(exc, self.timeout)
            detail["error"] = redact(f"{type(exc).__name__}: {first_line(exc)}")
            return Check("sec", False, "unreachable", detail)
        seconds = time.perf_counter() - started
        blocked = status in BLOCK_STATUSES or (status in (200, 403) and is_rate_limit_page(head))
        self.gate.report(RequestEvent(self.url, status, seconds, rate_limited=blocked))
        detail["http_status"] = status
        detail["latency_ms"] = round(seconds * 1000, 1)
        if blocked:
            self.gate.trip()
            if retry_after:
                detail["retry_after"] = retry_after
            detail["reason"] = f"SEC is rate-limiting this host (HTTP {status})"
            return Check("sec", False, "blocked", detail)
        if status == 403 and _UNDECLARED_MARKER in head.lower():
            detail["reason"] = "SEC rejected the declared User-Agent (HTTP 403, undeclared tool)"
            return Check("sec", False, "rejected", detail)
        return Check("sec", True, "reachable", detail)

    def _get_head(self, user_agent: str) -> tuple[int, bytes, str | None]:
        """Status, the start of an error page's body, and ``Retry-After`` of one GET."""
        with (
            httpx.Client(
                transport=self._transport,
                timeout=self.timeout,
                headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
                follow_redirects=False,
            ) as client,
            client.stream("GET", self.url) as response,
        ):
            status = response.status_code
            html = "html" in response.headers.get("content-type", "").lower()
            head = _read_head(response) if status >= 400 or html else b""
            return status, head, response.headers.get("retry-after")

    # -- internals (call with self._cond held)

    def _ensure_refresh(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._refresh, name="sec-probe", daemon=True)
        self._thread.start()

    def _refresh(self) -> None:
        try:
            result = self.probe_now()
        except Exception as exc:  # a bug must not leave waiters hanging
            log.exception("SEC probe failed unexpectedly")
            result = failed_check("sec", exc)
        with self._cond:
            self._result = result
            self._at = self._clock()
            self._thread = None
            self._cond.notify_all()

    def _present(self, result: Check, now: float, *, stale: bool) -> Check:
        detail = {**result.detail, "age_seconds": round(max(0.0, now - self._at), 1)}
        if stale:
            detail["stale"] = True
        return replace(result, detail=detail)


def _unreachable_reason(exc: httpx.HTTPError, timeout: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"SEC did not answer within {timeout:g} s ({type(exc).__name__})"
    return f"cannot reach SEC ({type(exc).__name__})"


def _read_head(response: httpx.Response, limit: int = _ERROR_PAGE_SCAN_BYTES) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]
