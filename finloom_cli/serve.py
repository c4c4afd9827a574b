"""``finloom serve``: health probes and Prometheus metrics over HTTP (FastAPI + uvicorn).

Endpoints (handlers are sync: they do blocking I/O and run in the threadpool)::

    GET /health/live     200 {"status": "alive"}                       no dependency checked
    GET /health/startup  200 {"status": "started"} once the first SEC probe has a result,
                         503 {"status": "starting"} before
    GET /health/ready    200 {"status": "ready" | "busy", ...}          busy: a load holds the
                         503 {"status": "unavailable", "reasons": [...]} warehouse's lock
    GET /health          200 every check (dashboards), whatever their state
    GET /metrics         Prometheus text of every run recorded in the metrics folder

Access (one ASGI middleware, :class:`Guard`, in front of every route):

* With ``FINLOOM_SERVE_TOKEN`` set, ``/metrics`` and ``/health`` answer only a caller
  sending ``Authorization: Bearer <token>`` (compared in constant time); anyone else gets
  401 with ``WWW-Authenticate: Bearer``. The probes stay open: a kubelet sends no token.
  Without a token, ``/metrics`` and ``/health`` are open (as for a Prometheus on localhost).
* The probes show anyone the status, the reasons and notes (generic words) and each
  check's status; the details (paths, PIDs, sizes, memory and disk totals, the SEC URL) only
  to a caller with the token (without a configured token, to nobody), as does ``/health``
  when no token is configured, and the 503 of ``/metrics`` (the error's type only).
* ``FINLOOM_SERVE_RATE_LIMIT`` (default ``600/minute``, ``off``: none) limits each client
  address in a moving window (``limits``, in memory: per server process); past it, 429 with
  ``Retry-After`` (seconds until the oldest request of the window expires). The rate limit
  is checked before the token, so guessing tokens is limited too. The three probes are
  never limited (a kubelet probing every few seconds must never be turned away, and they are
  cheap: nothing is opened, the SEC probe is reused).
* Every answer carries ``X-Request-ID``: the caller's, when it is 1-128 characters of
  ``[A-Za-z0-9._:-]`` (anything else could forge log lines), else a new one; lines logged
  while serving it carry it as ``request_id`` (``finloom_ops.logs.request_scope``).

The database check looks at what readers read, the published warehouse (ready while a
load writes), else the warehouse file; nothing is ever opened (``health.check_database``).

The SEC probe's request goes through the server's own ``SecGate`` (built once per server):
its rate limit, and its circuit, which a block seen by the probe opens for the cool-off.
A check that raises is reported as that check failing, never as a 500. This module does
not import Prefect (importing it costs FastAPI, ~0.7 s), so ``finloom serve`` starts quickly.
"""

from __future__ import annotations

import errno
import hmac
import logging
import math
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from finloom_core.edgar import SecGate
from finloom_core.errors import ConfigurationError, first_line
from finloom_core.health import (
    Check,
    breaker_check,
    check_database,
    check_disk,
    check_memory,
    failed_check,
    public_view,
    readiness,
)
from finloom_core.redact import redact
from finloom_core.sec_probe import SecProbe
from finloom_core.settings import FinloomSettings
from finloom_core.storage.published import current_path
from finloom_ops import metrics
from finloom_ops.logs import request_scope

log = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}
PROBES = frozenset({"/health/live", "/health/ready", "/health/startup"})  # open, unlimited
GUARDED = frozenset({"/health", "/metrics"})  # the token's, when one is configured
REQUEST_ID_HEADER = "X-Request-ID"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def bearer_matches(header: str | None, settings: FinloomSettings) -> bool:
    """Whether an ``Authorization`` header value is ``Bearer <FINLOOM_SERVE_TOKEN>``
    (never true without a configured token)."""
    if settings.serve_token is None or not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    expected = settings.serve_token.get_secret_value().encode()
    return hmac.compare_digest(given.strip().encode(), expected)


def authorized(request: Request, settings: FinloomSettings) -> bool:
    """Whether the caller sent ``Authorization: Bearer <FINLOOM_SERVE_TOKEN>`` (never true
    without a configured token)."""
    return bearer_matches(request.headers.get("authorization"), settings)


def request_id(given: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is sane, else a new one (32 hex digits)."""
    if given is not None and SANE_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


class RateLimit:
    """``FINLOOM_SERVE_RATE_LIMIT`` per client address: a moving window kept in memory."""

    def __init__(self, rate: str) -> None:
        self.item = parse(rate)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, client: str) -> int | None:
        """None when ``client`` may go on (the request is counted), else the whole seconds
        until the oldest request of its window expires (at least 1)."""
        if self._limiter.hit(self.item, client):
            return None
        reset_at, _ = self._limiter.get_window_stats(self.item, client)
        return max(1, math.ceil(reset_at - time.time()))


class Guard:
    """ASGI middleware: the request id, then the rate limit, then the token (see the module
    docstring). Probes pass unlimited; ``/metrics`` and ``/health`` need the token when one
    is configured."""

    def __init__(self, app: ASGIApp, settings: FinloomSettings) -> None:
        self.app = app
        self.settings = settings
        self.limit = RateLimit(settings.serve_rate_limit) if settings.serve_rate_limit else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        rid = request_id(headers.get("x-request-id"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", rid.encode("ascii")),
                ]
            await send(message)

        with request_scope(rid):
            refusal = self._refusal(scope, headers)
            if refusal is not None:
                await refusal(scope, receive, send_with_id)
                return
            await self.app(scope, receive, send_with_id)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> Response | None:
        path = scope.get("path", "")
        if self.limit is not None and path not in PROBES:
            client = scope.get("client")
            wait = self.limit.retry_after(client[0] if client else "unknown")
            if wait is not None:
                return JSONResponse(
                    {"detail": f"rate limit exceeded ({self.limit.item}); retry later"},
                    429,
                    headers={**NO_STORE, "Retry-After": str(wait)},
                )
        if (
            path in GUARDED
            and self.settings.serve_token is not None
            and not bearer_matches(headers.get("authorization"), self.settings)
        ):
            return JSONResponse(
                {"detail": "send Authorization: Bearer <FINLOOM_SERVE_TOKEN>"},
                401,
                headers={**NO_STORE, "WWW-Authenticate": 'Bearer realm="finloom"'},
            )
        return None


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers, lower-case names (a repeated header: its last value)."""
    raw: list[tuple[bytes, bytes]] = scope.get("headers", [])
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw}


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    try:
        return check()
    except Exception as exc:
        log.exception("health check %s raised", name)
        return failed_check(name, exc)


def create_app(
    settings: FinloomSettings, *, gate: SecGate | None = None, sec_probe: SecProbe | None = None
) -> FastAPI:
    """The ``finloom serve`` application for ``settings``: its SEC probe goes through
    ``gate`` (built from ``settings`` when not given); ``sec_probe`` is injectable."""
    gate = gate if gate is not None else SecGate.from_settings(settings)
    probe = sec_probe if sec_probe is not None else SecProbe.from_settings(settings, gate)
    started_at = time.time()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        probe.start()  # the first SEC probe runs in the background; /health/startup waits
        yield

    app = FastAPI(
        title="FinLoom",
        description="Health probes and Prometheus metrics of a FinLoom warehouse.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.sec_probe = probe
    app.state.sec_gate = probe.gate
    app.add_middleware(Guard, settings=settings)

    def dependency_checks() -> list[Check]:
        return [
            _guarded("database", lambda: check_database(settings.db_path)),
            _guarded(
                "disk", lambda: check_disk(settings.db_path, settings.health_min_free_disk_mb)
            ),
            _guarded("memory", lambda: check_memory(settings.health_max_memory_percent)),
            _guarded("sec", lambda: probe.check(wait=True)),
        ]

    @app.get("/health/live")
    def live() -> JSONResponse:
        return JSONResponse({"status": "alive"}, headers=NO_STORE)

    @app.get("/health/startup")
    def startup() -> JSONResponse:
        try:
            probe.start()  # in case the lifespan did not run; a no-op otherwise
            done = probe.completed
        except Exception as exc:
            log.exception("startup check raised")
            return JSONResponse(
                {"status": "starting", "reason": f"check failed: {type(exc).__name__}"},
                503,
                headers=NO_STORE,
            )
        if not done:
            return JSONResponse(
                {"status": "starting", "reason": "first SEC probe running"}, 503, headers=NO_STORE
            )
        return JSONResponse({"status": "started"}, headers=NO_STORE)

    @app.get("/health/ready")
    def ready(request: Request) -> JSONResponse:
        ok, body = readiness(dependency_checks())
        if not authorized(request, settings):
            body = public_view(body)
        return JSONResponse(body, status_code=200 if ok else 503, headers=NO_STORE)

    @app.get("/health")
    def health(request: Request) -> JSONResponse:
        checks = dependency_checks()
        ok, body = readiness(checks)
        body["ready"] = ok
        breaker = _guarded(
            "breaker",
            lambda: breaker_check(
                metrics.gauge_value(settings, "finloom_circuit_breaker_state", name="sec")
            ),
        )
        body["checks"]["breaker"] = breaker.as_dict()
        body["sec_probes_sent"] = probe.probes
        body["uptime_seconds"] = round(time.time() - started_at, 1)
        body["db_path"] = str(settings.db_path)
        body["published"] = str(current_path(settings.db_path))
        if not authorized(request, settings):
            body = public_view(body)
        return JSONResponse(body, headers=NO_STORE)

    @app.get("/metrics")
    def prometheus_metrics(request: Request) -> Response:
        try:
            text = metrics.exposition(settings)
        except Exception as exc:
            log.exception("metrics exposition failed")
            said = type(exc).__name__  # the message may hold a path: token holders only
            if authorized(request, settings):
                said = f"{said}: {redact(first_line(exc))}"
            return Response(
                f"# metrics unavailable: {said}\n", status_code=503, media_type="text/plain"
            )
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    return app


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port), or a one-line ConfigurationError."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"cannot listen on {host}:{port}: the port is already in use "
                "(choose another with --port)"
            ) from None
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {exc.strerror or first_line(exc)}"
        ) from None
    sock.set_inheritable(True)
    return sock


def run_server(
    settings: FinloomSettings,
    host: str = "127.0.0.1",
    port: int = 9108,
    *,
    access_log: bool = False,
    log_level: str = "warning",
    gate: SecGate | None = None,
) -> None:
    """Serve :func:`create_app` with uvicorn until interrupted (its SEC probe through
    ``gate``, built from ``settings`` when not given).

    The port is bound here first, so a port in use fails with a one-line
    ConfigurationError instead of uvicorn's log line and ``sys.exit``.
    """
    import uvicorn

    sock = bind_socket(host, port)
    config = uvicorn.Config(
        create_app(settings, gate=gate),
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        server_header=False,
    )  # applies uvicorn's logging config: FinLoom's format goes on top of it
    if access_log:  # uvicorn sets its access logger to log_level, which would hide every line
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    from finloom_ops.logs import configure_logging

    configure_logging(settings)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


__all__ = ["Guard", "RateLimit", "bind_socket", "create_app", "request_id", "run_server"]
