"""Health checks for ``finloom serve``: the warehouse, disk, memory and SEC reachability.

Pure library code (no web framework, no metrics library): each check returns a
:class:`Check`, and :func:`readiness` folds a list of them into the answer of a readiness
probe. ``finloom_cli/serve.py`` puts them behind HTTP.

* :func:`check_database` never opens the database: DuckDB allows one writing process, and
  then no other process may open the file at all, so a probe that opened it (even
  read-only) would make loads fail. It tests the file's lock without taking it and reads
  the status the writers publish beside it. A file held by a running load is ``busy``,
  which is healthy: the service is working, just not queryable right now.
* Reasons are generic words (no path, PID, URL or size); numbers and paths are details,
  which :func:`public_view` leaves out for callers without the serve token. Every detail
  goes through ``finloom_core.redact`` (URL credentials, secret values).
* :class:`SecProbe` is a cached reachability probe of SEC: at most one request per
  ``health_sec_probe_seconds``, however often it is asked (see its docstring), through a
  ``SecGate`` (rate limit, circuit, request observers) like every other SEC request.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import psutil

from finloom_core.edgar import EdgarUrls, RequestEvent, SecGate
from finloom_core.edgar.retry import BLOCK_STATUSES, is_rate_limit_page
from finloom_core.errors import first_line
from finloom_core.redact import redact, redact_value
from finloom_core.settings import FinloomSettings
from finloom_core.storage.status import FileLock, pid_alive, probe_file, read_status

log = logging.getLogger(__name__)

MB = 1024 * 1024
# Reasons are generic words: no path, PID, URL or size (those are details, see public_view).
BUSY_REASON = "another process holds the write lock (a load is running)"
ABSENT_REASON = "no warehouse yet (it is created by the first load)"
CORRUPT_REASON = "the warehouse file is not a DuckDB database"
UNREADABLE_REASON = "the warehouse file cannot be read"

# The probe asks for EdgarUrls.probe(), one light, stable document. Only its status line and
# headers are read (the body only for an error page), and the connection is then dropped.
SEC_PROBE_TIMEOUT_SECONDS = 5.0
_ERROR_PAGE_SCAN_BYTES = 20_000
_UNDECLARED_MARKER = b"undeclared automated tool"


@dataclass(frozen=True)
class Check:
    """The outcome of one health check.

    ``status`` is a short word (``ok``, ``absent``, ``busy``, ``error``, ``low``, ``high``,
    ``reachable``, ``blocked``, ``rejected``, ``unreachable``, ``unconfigured``, ``pending``);
    ``detail`` holds numbers and, when there is something to say, a one-line ``reason``.
    """

    name: str
    healthy: bool
    status: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str | None:
        reason = self.detail.get("reason")
        return None if reason is None else str(reason)

    def as_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "status": self.status, "detail": dict(self.detail)}


def failed_check(name: str, exc: BaseException) -> Check:
    """A check that raised unexpectedly, reported as that check failing: the exception's
    type as the reason, its (redacted) first line as a detail."""
    detail = {"reason": f"check failed: {type(exc).__name__}", "error": redact(first_line(exc))}
    return Check(name, False, "error", detail)


def readiness(checks: Iterable[Check]) -> tuple[bool, dict[str, Any]]:
    """Fold checks into ``(ready, body)``.

    ``body["status"]`` is ``"unavailable"`` when any check is unhealthy (``reasons`` names
    each), else ``"busy"`` when a healthy check reports ``busy`` (``reasons`` says why), else
    ``"ready"``. Healthy checks with something worth knowing (no warehouse yet, no
    User-Agent configured, a stale SEC probe) are listed under ``notes``.
    """
    checks = list(checks)
    failing = [c for c in checks if not c.healthy]
    busy = [c for c in checks if c.healthy and c.status == "busy"]
    if failing:
        status, reasons = "unavailable", [_line(c) for c in failing]
    elif busy:
        status, reasons = "busy", [_line(c) for c in busy]
    else:
        status, reasons = "ready", []
    notes = [_line(c) for c in checks if c.healthy and c.status != "busy" and c.reason]
    body: dict[str, Any] = {
        "status": status,
        "reasons": reasons,
        "notes": notes,
        "checks": {c.name: c.as_dict() for c in checks},
    }
    return not failing, redact_value(body)


PUBLIC_KEYS = ("status", "ready", "reasons", "notes")


def public_view(body: dict[str, Any]) -> dict[str, Any]:
    """What anyone may see of a health body: the status, reasons and notes (generic
    words), and each check's ``healthy``/``status``; no detail (paths, PIDs, sizes, URLs)."""
    shown = {key: body[key] for key in PUBLIC_KEYS if key in body}
    checks = body.get("checks") or {}
    shown["checks"] = {
        name: {"healthy": check.get("healthy"), "status": check.get("status")}
        for name, check in checks.items()
    }
    return shown


def _line(check: Check) -> str:
    return f"{check.name}: {check.reason or check.status}"


# ---------------------------------------------------------------------------- database


def check_database(path: Path | str) -> Check:
    """The warehouse as its writers left it, never opening it (see ``storage.status``).

    The file's lock is tested without being taken (``fcntl`` ``F_GETLK``), its first bytes
    are read for DuckDB's header, and the status the writers publish beside it gives the
    schema version, row counts and last write. So a probe, however frequent, never holds
    a lock a load needs.

    absent (healthy: a fresh install has no warehouse yet), ok, busy (healthy: another
    process holds the write lock, a load is running), error (the file is not a DuckDB
    database, or cannot be read).
    """
    path = Path(path)
    detail: dict[str, Any] = {"path": str(path)}
    if not path.exists():
        detail["reason"] = ABSENT_REASON
        return Check("database", True, "absent", detail)
    try:
        probe = probe_file(path)
    except OSError as exc:
        detail.update(reason=UNREADABLE_REASON, error=f"{type(exc).__name__}: {first_line(exc)}")
        return Check("database", False, "error", detail)
    detail["size_bytes"] = probe.size
    published = read_status(path) or {}
    detail.update(_published(published))
    writer = probe.lock if probe.lock is not None and probe.lock.kind == "write" else None
    if writer is None and not probe.locks_known and published.get("state") == "writing":
        pid = published.get("pid")  # no lock to read here: trust a live writer's status
        if isinstance(pid, int) and pid_alive(pid):
            writer = FileLock("write", pid)
    if writer is not None:
        detail.update(reason=BUSY_REASON, writer_pid=writer.pid)
        if published.get("state") == "writing":
            detail["writing_since"] = published.get("since")
        return Check("database", True, "busy", detail)
    if probe.size == 0:  # created, not yet written: DuckDB starts an empty file afresh
        detail["reason"] = ABSENT_REASON
        return Check("database", True, "absent", detail)
    if not probe.duckdb_header:
        detail["reason"] = CORRUPT_REASON
        return Check("database", False, "error", detail)
    if probe.lock is not None:  # a read-only connection (a query) is open: still ready
        detail["reader_pid"] = probe.lock.pid
    return Check("database", True, "ok", detail)


def _published(status: dict[str, Any]) -> dict[str, Any]:
    """The figures of a published status worth showing."""
    shown: dict[str, Any] = {}
    tables = status.get("tables")
    if isinstance(tables, dict):
        shown["tables"] = len(tables)
        shown["rows"] = tables
    for key in ("schema_version", "last_write"):
        if status.get(key) is not None:
            shown[key] = status[key]
    return shown


# ---------------------------------------------------------------------------- host


def check_disk(path: Path | str, min_free_mb: int) -> Check:
    """Free space on the file system that holds ``path`` (or its nearest existing parent)."""
    target = Path(path).absolute()
    while not target.exists() and target != target.parent:
        target = target.parent
    usage = shutil.disk_usage(target)
    free_mb = usage.free / MB
    detail: dict[str, Any] = {
        "path": str(target),
        "free_mb": round(free_mb, 1),
        "total_mb": round(usage.total / MB, 1),
        "min_free_mb": min_free_mb,
    }
    if free_mb < min_free_mb:
        detail["reason"] = f"free disk space below the {min_free_mb} MB minimum"
        return Check("disk", False, "low", detail)
    return Check("disk", True, "ok", detail)


def check_memory(max_percent: float) -> Check:
    """System memory in use (psutil), against ``max_percent``."""
    memory = psutil.virtual_memory()
    detail: dict[str, Any] = {
        "percent": memory.percent,
        "max_percent": max_percent,
        "available_mb": round(memory.available / MB, 1),
        "total_mb": round(memory.total / MB, 1),
    }
    if memory.percent > max_percent:
        detail["reason"] = f"memory in use above {max_percent:g}%"
        return Check("memory", False, "high", detail)
    return Check("memory", True, "ok", detail)


# ---------------------------------------------------------------------------- breaker

_BREAKER_NAMES = {0: "closed", 1: "open", 2: "half-open"}


def breaker_check(value: float | None) -> Check:
    """The SEC circuit breaker state the loads recorded (``None``: none recorded yet).

    Informational (``/health`` shows it; readiness does not use it): ``open`` means a load
    was told by SEC to back off within the cool-off.
    """
    if value is None:
        return Check("breaker", True, "unknown", {})
    state = _BREAKER_NAMES.get(int(value), "unknown")
    detail: dict[str, Any] = {"value": int(value)}
    if state == "open":
        detail["reason"] = "a load's SEC circuit breaker is open (SEC signalled a block)"
    return Check("breaker", state != "open", state, detail)


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
