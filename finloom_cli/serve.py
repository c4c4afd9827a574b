"""``finloom serve``: health probes and Prometheus metrics over HTTP (FastAPI + uvicorn).

Endpoints (handlers are sync: they do blocking I/O and run in the threadpool)::

    GET /health/live     200 {"status": "alive"}                       no dependency checked
    GET /health/startup  200 {"status": "started"} once the first SEC probe has a result,
                         503 {"status": "starting"} before
    GET /health/ready    200 {"status": "ready" | "busy", ...}          busy: a load holds the
                         503 {"status": "unavailable", "reasons": [...]} warehouse's lock
    GET /health          200 every check (dashboards), whatever their state
    GET /metrics         Prometheus text of every run recorded in the metrics folder

The health endpoints show anyone the status, the reasons and notes (generic words) and
each check's status; the details (paths, PIDs, sizes, memory and disk totals, the SEC URL)
only to a caller sending ``Authorization: Bearer <FINLOOM_SERVE_TOKEN>`` (without a
configured token, to nobody). The database check looks at what readers read, the
published warehouse (ready while a load writes), else the warehouse file; nothing is ever
opened (``health.check_database``).

The SEC probe's request goes through the server's own ``SecGate`` (built once per server):
its rate limit, and its circuit, which a block seen by the probe opens for the cool-off.
A check that raises is reported as that check failing, never as a 500. This module does
not import Prefect (importing it costs FastAPI, ~0.7 s), so ``finloom serve`` starts quickly.
"""

from __future__ import annotations

import errno
import hmac
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

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

log = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}


def authorized(request: Request, settings: FinloomSettings) -> bool:
    """Whether the caller sent ``Authorization: Bearer <FINLOOM_SERVE_TOKEN>`` (never true
    without a configured token)."""
    if settings.serve_token is None:
        return False
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    expected = settings.serve_token.get_secret_value().encode()
    return hmac.compare_digest(given.strip().encode(), expected)


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
    def prometheus_metrics() -> Response:
        try:
            text = metrics.exposition(settings)
        except Exception as exc:
            log.exception("metrics exposition failed")
            return Response(
                f"# metrics unavailable: {type(exc).__name__}: {redact(first_line(exc))}\n",
                status_code=503,
                media_type="text/plain",
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
    from finloom_ops.logs import configure_logging

    configure_logging(settings)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


__all__ = ["bind_socket", "create_app", "run_server"]
