"""Log lines: Prefect's console format (``FINLOOM_LOG_FORMAT=text``) or one JSON object each.

``configure_logging(settings)`` with ``log_format == "json"`` gives every console handler (the
root logger's and those of loggers configured with their own handlers, e.g. Prefect's
``prefect._internal``, ``uvicorn``, ``fastapi``) a ``JsonFormatter``; a line carries::

    {"timestamp": "2025-01-31T12:00:00.123Z", "level": "INFO", "logger": "prefect.task_runs",
     "message": "...", "correlation_id": "<flow-run id>", "flow": "backfill",
     "task": "load-3f2", "cik": 320193, "accession": "0000320193-24-000123",
     "exc": "Traceback (most recent call last):\\n..."}

``correlation_id`` is the flow-run id inside a Prefect flow run (a task run's parent flow
run; for a subflow, the outermost run, see :func:`root_run`; ``flow_run_id`` is the run's
own id); outside any run, one id per process (``process_correlation_id()``), and a command
that holds its first lines (:func:`hold_until_run`) gives them its run's id. ``cik`` and
``accession`` appear when the record carries them (``extra={"cik": ...}``); a traceback is
folded into the one string field ``exc``. Inside an OpenTelemetry span (``finloom_ops.tracing``)
a line also carries that span's ``trace_id`` and ``span_id`` (hex, as trace back ends show
them), so a line leads to its trace; inside a request served by ``finloom serve``, the
request's ``request_id`` (:func:`request_scope`, a contextvar read by ``CorrelationFilter``).
In either format, every line goes through
``finloom_core.redact.redact``: URL credentials (``http://***@host``) and the values of
secret environment variables and settings (names containing TOKEN, SECRET, PASSWORD or
API_KEY, the alert webhook, the serve token, URL passwords) become ``***``.

Prefect subtleties handled here:

* Prefect's ``PrefectConsoleHandler`` prints through a ``rich`` console (highlighting,
  optional markup), which is no place for JSON; it is replaced by a plain
  ``JsonStreamHandler`` on the same stream, keeping its level and filters. Handlers shared
  between loggers (root, ``uvicorn``, ``fastapi`` share Prefect's one ``console``) stay shared.
* ``APILogHandler`` (run logs sent to the Prefect API) keeps its formatter: it is not a
  console line. It only gets the redaction filter.
* ``import prefect`` is lazy: Prefect sets its logging up (``setup_logging``) when
  ``prefect.main`` is first imported (``from prefect import flow``). When Prefect is already
  imported, ``configure_logging`` runs that set-up first, so a later ``from prefect import
  flow`` only re-applies levels. Call it after ``import prefect`` (or after importing the
  flows); called before, the root logger still gets JSON (Prefect leaves a root logger that
  has a non-Prefect handler alone), but Prefect's ``uvicorn``/``fastapi``/``prefect._internal``
  loggers get Prefect's own console handlers: call it again after the import.

Import-light: never imports Prefect; run context is read only when ``prefect.context`` is
already loaded, so ``finloom serve`` can use this module without Prefect.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from finloom_core import redact as _redact
from finloom_core.redact import REDACTED as REDACTED  # re-exported
from finloom_core.redact import collect_secrets as collect_secrets  # re-exported
from finloom_core.redact import redact

if TYPE_CHECKING:
    from finloom_core.settings import FinloomSettings

# Record attributes copied into the JSON line when present.
RECORD_FIELDS = ("cik", "accession", "trace_id", "span_id", "request_id")

_UNKNOWN = (None, "", "<unknown>")

_process_id = uuid.uuid4().hex


def _new_process_id() -> None:
    global _process_id
    _process_id = uuid.uuid4().hex


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_process_id)


def process_correlation_id() -> str:
    """The correlation id of log lines emitted outside any flow run (one per process)."""
    return _process_id


# -- secrets (finloom_core.redact: one redaction for everything FinLoom writes)


def refresh_secrets(settings: FinloomSettings | None = None) -> None:
    """Re-read the secret values (the environment, and the settings' secrets)."""
    _redact.refresh_secrets(settings)


class RedactFilter(logging.Filter):
    """Rewrites a record whose message or traceback holds a secret (text format, API logs).

    The record is changed in place, so handlers that see it after this one see it redacted.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and (redacted := redact(record.exc_text)) != record.exc_text:
            record.exc_text = redacted
            # formatters use exc_text only when it is set; keep the exception type/value out
            # of JSON formatters that re-format exc_info
            record.exc_info = None
        return True


# -- correlation


def _run_context(record: logging.LogRecord) -> tuple[str | None, str | None, str | None]:
    """(flow-run id, flow name, task-run name) of the record, from Prefect's run-logger
    extras, else from the current Prefect run context (only if Prefect is loaded)."""
    flow_run_id = getattr(record, "flow_run_id", None)
    flow = getattr(record, "flow_name", None)
    task = getattr(record, "task_run_name", None)
    flow_run_id = None if flow_run_id in _UNKNOWN else str(flow_run_id)
    flow = None if flow in _UNKNOWN else str(flow)
    task = None if task in _UNKNOWN else str(task)
    if flow_run_id is not None and flow is not None:
        return flow_run_id, flow, task

    context = sys.modules.get("prefect.context")
    if context is None:
        return flow_run_id, flow, task
    try:
        task_ctx = context.TaskRunContext.get()
        if task_ctx is not None:
            task_run = task_ctx.task_run
            task = task or task_run.name
            if flow_run_id is None and task_run.flow_run_id is not None:
                flow_run_id = str(task_run.flow_run_id)
        flow_ctx = context.FlowRunContext.get()
        if flow_ctx is not None:
            if flow_run_id is None and flow_ctx.flow_run is not None:
                flow_run_id = str(flow_ctx.flow_run.id)
            if flow is None and flow_ctx.flow is not None:
                flow = flow_ctx.flow.name
    except Exception:  # never let logging fail on a half-torn-down context
        pass
    return flow_run_id, flow, task


_root_run: ContextVar[str | None] = ContextVar("finloom_root_flow_run", default=None)


@contextmanager
def root_run(flow_run_id: str | None) -> Iterator[None]:
    """Lines logged inside carry ``flow_run_id`` as their correlation id, subflows included
    (the outermost flow run wins, so a backfill and its quality subflow share one id)."""
    if flow_run_id is None or _root_run.get() is not None:
        yield
        return
    token = _root_run.set(flow_run_id)
    try:
        yield
    finally:
        _root_run.reset(token)


_request_id: ContextVar[str | None] = ContextVar("finloom_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the HTTP request being served (``finloom serve``), else None."""
    return _request_id.get()


@contextmanager
def request_scope(request_id: str) -> Iterator[None]:
    """Lines logged inside (same task or thread, and threads it hands work to with a copy
    of its context) carry ``request_id``."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def _span_ids() -> tuple[str | None, str | None]:
    """(trace_id, span_id) of the current OpenTelemetry span, as hex; (None, None) outside
    a valid span (or when OpenTelemetry was never imported: then there is no span)."""
    api = sys.modules.get("opentelemetry.trace")
    if api is None:
        return None, None
    try:
        context = api.get_current_span().get_span_context()
    except Exception:  # never let logging fail on tracing
        return None, None
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def annotate(record: logging.LogRecord) -> logging.LogRecord:
    """Set ``record.correlation_id``, ``record.flow``, ``record.task``, and ``trace_id``,
    ``span_id`` (inside a span) and ``request_id`` (inside a served request), once per
    record, in the thread that logs it."""
    if getattr(record, "correlation_id", None) is None:
        flow_run_id, flow, task = _run_context(record)
        root = _root_run.get() if flow_run_id is not None else None
        record.correlation_id = root or flow_run_id or _process_id
        record.flow_run = flow_run_id
        record.flow = flow
        record.task = task
        if getattr(record, "trace_id", None) is None:
            record.trace_id, record.span_id = _span_ids()
        if getattr(record, "request_id", None) is None:
            record.request_id = _request_id.get()
    return record


# -- lines before the first flow run of a command


_held: list[tuple[logging.Handler, logging.LogRecord]] | None = None
_held_lock = threading.Lock()


def hold_until_run() -> None:
    """Hold JSON lines until the first line of a flow run, then give them its correlation id.

    A command that starts one flow run (``finloom backfill``) logs a few lines before the
    run exists (Prefect's temporary server starting, say); held and released this way, every
    line of the command carries the run's id. :func:`release_held` (also run at exit)
    releases them with the process id when no run came.
    """
    global _held
    with _held_lock:
        if _held is None:
            _held = []
    atexit.register(release_held)


def release_held(correlation_id: str | None = None) -> None:
    """Emit the held lines; with ``correlation_id``, it becomes the process's id too."""
    global _held, _process_id
    with _held_lock:
        held, _held = _held, None
        previous = _process_id
        if correlation_id is not None:
            _process_id = correlation_id
    for handler, record in held or []:
        if getattr(record, "correlation_id", None) == previous:
            record.correlation_id = _process_id
        handler.emit(record)


def _hold(handler: logging.Handler, record: logging.LogRecord) -> bool:
    """True when ``record`` was held (no run yet); a run's first line releases the rest."""
    if _held is None:
        return False
    annotate(record)
    if getattr(record, "flow_run", None) is None:
        with _held_lock:
            if _held is not None:
                _held.append((handler, record))
                return True
        return False
    release_held(str(getattr(record, "correlation_id", "")))
    return False


class CorrelationFilter(logging.Filter):
    """Adds ``correlation_id``, ``flow``, ``task``, ``trace_id``/``span_id`` and
    ``request_id`` to every record a handler emits (see :func:`annotate`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        annotate(record)
        return True


# -- JSON lines


class FinloomJsonFormatter(JsonFormatter):
    """One JSON object per record: timestamp (ISO 8601, UTC), level, logger, message,
    correlation_id, flow, task; cik, accession, trace_id, span_id, request_id when present;
    exc (one string)."""

    def __init__(self) -> None:
        super().__init__(json_ensure_ascii=True)  # escapes U+2028 & co: one line, always

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        annotate(record)
        created = datetime.fromtimestamp(record.created, tz=UTC)
        log_data["timestamp"] = created.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        log_data["correlation_id"] = getattr(record, "correlation_id", None)
        log_data["flow_run_id"] = getattr(record, "flow_run", None)
        log_data["flow"] = getattr(record, "flow", None)
        log_data["task"] = getattr(record, "task", None)
        for field in RECORD_FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                log_data[field] = value
        extra = dict(message_dict)  # a dict logged as the message
        exc = extra.pop("exc_info", None)
        stack = extra.pop("stack_info", None)
        for key, value in extra.items():
            log_data.setdefault(key, value)
        if exc:
            log_data["exc"] = exc if isinstance(exc, str) else "\n".join(exc)
        if stack:
            log_data["stack"] = stack if isinstance(stack, str) else "\n".join(stack)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for key, value in log_data.items():
            if isinstance(value, str):
                log_data[key] = redact(value)
        return log_data


class JsonStreamHandler(logging.StreamHandler[TextIO]):
    """A plain stream handler (no rich console) for JSON lines; quiet on a closed stream."""

    def emit(self, record: logging.LogRecord) -> None:
        if not _hold(self, record):
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ValueError) and "closed file" in str(exc):
            return
        super().handleError(record)


# -- wiring


def _class_names(handler: logging.Handler) -> set[str]:
    return {cls.__name__ for cls in type(handler).__mro__}


def _is_api_handler(handler: logging.Handler) -> bool:
    return "APILogHandler" in _class_names(handler)


def _is_rich_handler(handler: logging.Handler) -> bool:
    return bool({"PrefectConsoleHandler", "RichHandler"} & _class_names(handler))


def _is_foreign(handler: logging.Handler) -> bool:
    # pytest's capture handlers belong to pytest
    return type(handler).__module__.startswith("_pytest")


def _loggers_with_handlers() -> list[logging.Logger]:
    loggers = [logging.getLogger()]
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and logger.handlers:
            loggers.append(logger)
    return loggers


def _add_filter(handler: logging.Handler, kind: type[logging.Filter]) -> None:
    if not any(isinstance(f, kind) for f in handler.filters):
        handler.addFilter(kind())


def _to_json(handler: logging.Handler, formatter: logging.Formatter) -> logging.Handler:
    """The handler to use in JSON mode: itself re-formatted, or a plain replacement."""
    if _is_rich_handler(handler):
        stream = getattr(handler, "stream", None) or sys.stderr
        replacement = JsonStreamHandler(stream)
        replacement.setLevel(handler.level)
        # Take over the dictConfig name ("console"): Prefect's incremental re-configuration
        # looks handlers up by name and, not finding one, configures everything afresh.
        replacement.set_name(handler.get_name())
        for existing in handler.filters:
            replacement.addFilter(existing)
        handler.flush()
        handler = replacement
    handler.setFormatter(formatter)
    _add_filter(handler, CorrelationFilter)
    return handler


def configure_logging(settings: FinloomSettings) -> None:
    """Apply ``settings.log_format`` to the handlers configured so far; idempotent.

    Call it after ``import prefect`` (Prefect's logging set-up is run first, see the module
    docstring) and after anything else that adds handlers (e.g. uvicorn's own config).
    ``text`` keeps Prefect's formatting; ``json`` makes every console line one JSON object
    and routes ``warnings`` through logging. Both redact secrets.
    """
    refresh_secrets(settings)
    if "prefect" in sys.modules:
        # `import prefect` is lazy: its logging is set up by the first `from prefect import
        # flow` (prefect.main). Set it up now, so that later import only adjusts levels
        # (an incremental dictConfig) instead of installing its console handlers after ours.
        from prefect.logging.configuration import ensure_logging_setup

        ensure_logging_setup()
    json_lines = settings.log_format == "json"
    formatter = FinloomJsonFormatter() if json_lines else None
    replaced: dict[int, logging.Handler] = {}

    for logger in _loggers_with_handlers():
        handlers = list(logger.handlers)
        changed = False
        for index, handler in enumerate(handlers):
            if _is_foreign(handler):
                continue
            _add_filter(handler, RedactFilter)
            if _is_api_handler(handler) or formatter is None:
                if formatter is None and isinstance(handler, logging.StreamHandler):
                    _add_filter(handler, CorrelationFilter)
                continue
            if not isinstance(handler, logging.StreamHandler) and not _is_rich_handler(handler):
                continue
            if id(handler) not in replaced:
                replaced[id(handler)] = _to_json(handler, formatter)
            new = replaced[id(handler)]
            if new is not handler:
                handlers[index] = new
                changed = True
        if changed:
            logger.handlers = handlers

    if formatter is not None:
        root = logging.getLogger()
        if not any(not _is_foreign(h) for h in root.handlers):
            handler = JsonStreamHandler(sys.stderr)
            handler.setFormatter(formatter)
            handler.addFilter(CorrelationFilter())
            handler.addFilter(RedactFilter())
            root.addHandler(handler)
        logging.captureWarnings(True)


def emit_line(level: int, message: str, logger_name: str = "finloom.cli") -> None:
    """One JSON line from a command (status, error): through the JSON handlers when
    :func:`configure_logging` installed them (held lines keep their order), else straight
    to stderr."""
    logger = logging.getLogger(logger_name)
    if any(isinstance(h, JsonStreamHandler) for h in logging.getLogger().handlers):
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
        logger.log(level, message)
        return
    release_held()
    record = logging.LogRecord(logger_name, level, __file__, 0, message, None, None)
    sys.stderr.write(FinloomJsonFormatter().format(record) + "\n")
    sys.stderr.flush()
