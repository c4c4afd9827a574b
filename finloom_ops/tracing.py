"""OpenTelemetry tracing of the pipeline stages (off unless ``FINLOOM_OTLP_ENDPOINT`` is set).

One span per stage run, named ``finloom.<stage>`` (resolve, download, parse, load, normalize,
quality, publish), with ``finloom.*`` attributes; one child span per company, named
``finloom.<stage>.company``, carries ``finloom.cik`` and ``finloom.status``::

    with stage_span("load", companies=len(staged)) as span:
        outcomes = load_batch(...)
        record_outcomes("load", outcomes)           # one child span per company
        span.set_attribute("finloom.status", "ok")  # optional

    shutdown_tracing()  # at the end of a flow run: flush what the batch processor holds

Tracing off (no endpoint): ``tracer()`` is the OpenTelemetry API's global tracer, a no-op
unless something else installed a provider; ``stage_span`` then costs one non-recording span
and sets no attributes.

Tracing on: an SDK ``TracerProvider`` (resource ``service.name=finloom``) with a
``BatchSpanProcessor`` and an OTLP/HTTP exporter posting to ``<endpoint>/v1/traces``. The
module keeps its own reference, used by ``tracer()``; it is also installed as OpenTelemetry's
global provider when no other was (OpenTelemetry allows that once per process), so Prefect's
own flow-run and task-run spans are exported too and the stage spans nest under them.

Tests inject a provider (e.g. with an ``InMemorySpanExporter``) with ``use_provider``, which
never touches the global provider; ``use_provider(None)`` resets the module.

Imports only OpenTelemetry (never Prefect); the SDK and exporter are imported only when
tracing is configured.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from finloom_core.redact import redact

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from finloom_core.settings import FinloomSettings

TRACER_NAME = "finloom"
SERVICE_NAME = "finloom"
STAGES = ("resolve", "download", "parse", "load", "normalize", "quality", "publish")
# OTLP/HTTP: seconds per export request, so a dead collector never holds a run for long.
EXPORT_TIMEOUT_SECONDS = 5.0
_REASON_MAX_CHARS = 300

_lock = threading.Lock()
_provider: TracerProvider | None = None
_tracer: Tracer | None = None
_configured = False


class _Outcome(Protocol):
    @property
    def cik(self) -> int: ...

    @property
    def status(self) -> Any: ...


def configure_tracing(settings: FinloomSettings) -> None:
    """Turn tracing on when ``settings.otlp_endpoint`` is set; idempotent per process.

    Without an endpoint nothing is installed: spans go to the API's no-op tracer.
    """
    global _provider, _tracer, _configured
    with _lock:
        if _configured:
            return
        _configured = True
        endpoint = settings.otlp_endpoint
        if not endpoint:
            return

        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
        exporter = OTLPSpanExporter(
            endpoint=f"{endpoint.rstrip('/')}/v1/traces", timeout=EXPORT_TIMEOUT_SECONDS
        )
        provider.add_span_processor(BatchSpanProcessor(exporter))
        _provider, _tracer = provider, provider.get_tracer(TRACER_NAME)
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            # Nobody installed a global provider yet: make ours global, so Prefect's run spans
            # (parents of the stage spans) are exported too.
            trace.set_tracer_provider(provider)


def use_provider(provider: TracerProvider | None) -> None:
    """Use ``provider`` for FinLoom's spans (tests); ``None`` resets to unconfigured.

    Never sets OpenTelemetry's global provider and never shuts the previous one down.
    """
    global _provider, _tracer, _configured
    with _lock:
        _provider = provider
        _tracer = provider.get_tracer(TRACER_NAME) if provider is not None else None
        _configured = provider is not None


def tracing_enabled() -> bool:
    """True once ``configure_tracing`` (or ``use_provider``) installed a provider."""
    return _provider is not None


def tracer() -> Tracer:
    """FinLoom's tracer: from the configured provider, else the API's global tracer."""
    configured = _tracer
    if configured is not None:
        return configured
    return trace.get_tracer(TRACER_NAME)


def shutdown_tracing(timeout_millis: int = 5000) -> bool:
    """Flush the spans the batch processor still holds; call at the end of a flow run.

    The provider stays usable (a process may run several flows); it is shut down at exit by
    the SDK. Returns False when the flush timed out; True when done or tracing is off.
    """
    provider = _provider
    if provider is None:
        return True
    return bool(provider.force_flush(timeout_millis))


def _attribute_value(value: Any) -> str | bool | int | float:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, str | bool | int | float):
        return value
    return str(value)


def _set_attributes(span: Span, attributes: Mapping[str, Any]) -> None:
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            # never a list of CIKs on a span: its size only
            span.set_attribute(f"finloom.{key}.count", len(value))
        else:
            span.set_attribute(f"finloom.{key}", _attribute_value(value))


def _short(text: str) -> str:
    text = redact(text)  # URL credentials and secret values never leave in a span
    return text if len(text) <= _REASON_MAX_CHARS else text[: _REASON_MAX_CHARS - 1] + "…"


def mark_error(span: Span, exc: BaseException) -> None:
    """Record ``exc`` on ``span``: exception event, status ERROR, ``finloom.status=error``."""
    if not span.is_recording():
        return
    span.record_exception(
        exc,
        attributes={
            "exception.message": redact(str(exc)),
            "exception.stacktrace": redact("".join(traceback.format_exception(exc))),
        },
    )
    span.set_status(Status(StatusCode.ERROR, _short(f"{type(exc).__name__}: {exc}")))
    span.set_attribute("finloom.status", "error")


@contextmanager
def stage_span(stage: str, **attributes: Any) -> Iterator[Span]:
    """A span ``finloom.<stage>`` around one stage run, made the current span.

    Each keyword becomes ``finloom.<key>`` (None skipped; a list, tuple or set becomes
    ``finloom.<key>.count``, its length). An exception escaping the block is recorded, the
    span gets status ERROR and ``finloom.status=error``, and the exception is re-raised.
    Yields the span: ``span.set_attribute("finloom.status", "loaded")``.
    """
    with tracer().start_as_current_span(
        f"finloom.{stage}", record_exception=False, set_status_on_exception=False
    ) as span:
        if attributes and span.is_recording():
            _set_attributes(span, attributes)
        try:
            yield span
        except BaseException as exc:
            mark_error(span, exc)
            raise


def company_span(
    stage: str,
    cik: int,
    status: Any,
    *,
    reason: str | None = None,
    start_time_ns: int | None = None,
    end_time_ns: int | None = None,
    **attributes: Any,
) -> None:
    """Record one company's outcome as a finished child of the current span.

    Span ``finloom.<stage>.company`` with ``finloom.cik``, ``finloom.status`` (an enum's
    value) and, when given, ``finloom.reason`` and ``finloom.<key>`` for other keywords. It
    is created after the fact: start and end default to now (zero length), or pass the
    company's own ``time.time_ns()`` bounds. A failed or deferred company gets status ERROR.
    """
    t = tracer()
    span = t.start_span(f"finloom.{stage}.company", start_time=start_time_ns)
    try:
        if span.is_recording():
            status_value = _attribute_value(status)
            span.set_attribute("finloom.cik", int(cik))
            span.set_attribute("finloom.status", status_value)
            if reason:
                span.set_attribute("finloom.reason", _short(reason))
            _set_attributes(span, attributes)
            if status_value in ("failed", "deferred", "error"):
                span.set_status(Status(StatusCode.ERROR, _short(reason or str(status_value))))
    finally:
        span.end(end_time=end_time_ns)


def record_outcomes(stage: str, outcomes: Iterable[_Outcome]) -> None:
    """One ``company_span`` per outcome (anything with ``cik``, ``status``, maybe ``reason``),
    children of the current span (call inside ``stage_span``); no-op when tracing is off."""
    if not trace.get_current_span().is_recording() and _provider is None:
        return
    now = time.time_ns()
    for outcome in outcomes:
        company_span(
            stage,
            outcome.cik,
            outcome.status,
            reason=getattr(outcome, "reason", None),
            start_time_ns=now,
            end_time_ns=now,
        )
