"""Running a Prefect flow from the command line: settings, logging and quiet tracebacks."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def configure_cli_logging(settings: Any, *, one_run: bool = False) -> None:
    """Apply FINLOOM_LOG_FORMAT to the handlers set up so far (after Prefect's import).

    ``one_run``: the command starts one flow run; JSON lines logged before it exists are
    held and get its correlation id, so every line of the command carries the run's id.
    """
    from finloom_ops.logs import configure_logging, hold_until_run

    configure_logging(settings)
    if one_run and settings.log_format == "json":
        hold_until_run()


@contextmanager
def run_settings() -> Iterator[None]:
    """Prefect settings for a flow run started from the command line.

    With no PREFECT_API_URL the run reports to a temporary server that lives as long as this
    process, so crash-detection heartbeats have no one to tell; they also cost a fixed ~1 s
    at the end of every run (Prefect's heartbeat thread sleeps in 1 s steps), so they are
    off. That server is started here, from the main thread, so that it dies with this
    process even when the process is killed (``finloom_cli.tempserver``). Runs reported to a
    real server keep Prefect's defaults.
    """
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_EPHEMERAL_ENABLED,
        temporary_settings,
    )

    if PREFECT_API_URL.value():
        yield
        return
    # a throw-away server sends no usage telemetry (nor logs its failure offline)
    with temporary_settings(
        updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, PREFECT_SERVER_ANALYTICS_ENABLED: False}
    ):
        if PREFECT_SERVER_EPHEMERAL_ENABLED.value():
            from finloom_cli import tempserver

            tempserver.start()
        yield


class _NoTraceback(logging.Filter):
    """Keeps Prefect's console lines but drops their tracebacks (the API copy keeps them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def quiet_console_tracebacks() -> None:
    """A failed company or an incomplete run is reported in one line, not a traceback.

    Prefect logs a flow's exception with its traceback to the console (and to the API, whose
    handler runs first: the UI keeps the traceback). FINLOOM_DEBUG=1 keeps them on screen.
    """
    if os.environ.get("FINLOOM_DEBUG"):
        return
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
            isinstance(f, _NoTraceback) for f in handler.filters
        ):
            handler.addFilter(_NoTraceback())
