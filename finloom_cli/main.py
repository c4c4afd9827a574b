"""The ``finloom`` command line.

Exit codes: 0 success; 1 the run finished but some companies failed or were deferred, or
an unexpected error; 2 bad input or configuration (unknown ticker, malformed CIK, missing
User-Agent, unusable source or database). Errors are one line on stderr; set
FINLOOM_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from finloom_core.cik import cik10, parse_cik
from finloom_core.errors import (
    ConfigurationError,
    FinloomError,
    InputError,
    SourceError,
    StorageError,
)
from finloom_core.settings import load_settings

app = typer.Typer(
    name="finloom",
    help="FinLoom: SEC EDGAR XBRL financial data into a trustworthy DuckDB warehouse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Inspect the DuckDB warehouse.", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)
T = TypeVar("T")

EXIT_INCOMPLETE = 1
EXIT_USAGE = 2


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def guarded(action: Callable[[], T]) -> T:
    """Run ``action``; turn any error into one line on stderr and an exit code."""
    try:
        return action()
    except typer.Exit:
        raise
    except (InputError, ConfigurationError, SourceError, StorageError) as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    except FinloomError as exc:
        raise _fail(str(exc), EXIT_INCOMPLETE) from None
    except KeyboardInterrupt:
        raise _fail("interrupted", 130) from None
    except Exception as exc:
        if os.environ.get("FINLOOM_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise _fail(f"{type(exc).__name__}: {first}", EXIT_INCOMPLETE) from None


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


@app.command()
def backfill(
    tickers: Annotated[
        list[str] | None, typer.Option("--tickers", "-t", help="Tickers, comma-separated.")
    ] = None,
    ciks: Annotated[
        list[str] | None, typer.Option("--ciks", "-c", help="CIKs, comma-separated.")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help="Local EDGAR folder or companyfacts.zip (default: the live SEC API)."),
    ] = None,
    db: Annotated[Path | None, typer.Option(help="DuckDB file (default FINLOOM_DB_PATH).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Companies per task run.")] = None,
) -> None:
    """Load companies' XBRL facts, filings and company records (runs the Prefect flow)."""
    ticker_list, cik_list = _split(tickers), _split(ciks)

    def run() -> dict[str, Any]:
        # Everything that can be checked locally fails here, in one line, before Prefect
        # starts (a temporary Prefect server takes ~10-15 s) and before the database exists.
        settings = load_settings()
        for cik in cik_list:
            parse_cik(cik)  # malformed CIKs fail before anything starts
        if source is None:
            settings.require_user_agent()
        if source is None and not ticker_list and not cik_list:
            raise InputError("give --tickers and/or --ciks (or --source to load a whole folder)")
        if source is not None:
            _check_source(source, ticker_list)
        db_path = db or settings.db_path
        _check_database(db_path)
        return _run_backfill(ticker_list, cik_list, source, str(db_path), batch_size)

    summary = guarded(run)
    _print_summary(summary)
    if summary.get("failed") or summary.get("deferred"):
        raise typer.Exit(EXIT_INCOMPLETE)


def _check_source(source: str, tickers: list[str]) -> None:
    """Open a local source and resolve tickers against its ticker map (the flow resolves
    them again; for the live API only the flow does, as that needs a request)."""
    from finloom_core.edgar.sources import SourceSpec, open_source

    opened = open_source(SourceSpec(source))
    try:
        if tickers:
            opened.ticker_map().resolve(tickers)
    finally:
        opened.close()


def _check_database(db_path: Path) -> None:
    """Fail in one line, before Prefect starts, if the database is locked or corrupt."""
    from finloom_core.storage.database import open_warehouse

    with open_warehouse(db_path):
        pass


def _run_backfill(
    tickers: list[str], ciks: list[str], source: str | None, db_path: str, batch_size: int | None
) -> dict[str, Any]:
    from finloom_core.report import IncompleteRunError
    from flows.backfill import backfill as backfill_flow

    _quiet_console_tracebacks()
    err.print("[dim]starting the backfill flow (Prefect)...[/]")
    try:
        with _run_settings():
            return backfill_flow(
                tickers=tickers, ciks=ciks, source=source, db_path=db_path, batch_size=batch_size
            )
    except IncompleteRunError as exc:
        err.print(f"[bold yellow]{exc}[/]", highlight=False, soft_wrap=True)
        return exc.summary


def _run_settings() -> AbstractContextManager[Any]:
    """Prefect settings for a flow run started from the command line.

    With no PREFECT_API_URL the run reports to a temporary server that lives as long as this
    process, so crash-detection heartbeats have no one to tell; they also cost a fixed ~1 s
    at the end of every run (Prefect's heartbeat thread sleeps in 1 s steps), so they are
    off. Runs reported to a real server keep Prefect's defaults.
    """
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    if PREFECT_API_URL.value():
        return nullcontext()
    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


class _NoTraceback(logging.Filter):
    """Keeps Prefect's console lines but drops their tracebacks (the API copy keeps them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def _quiet_console_tracebacks() -> None:
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


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"backfill from {summary.get('source')}", show_lines=False)
    for column in ("status", "companies"):
        table.add_column(column, justify="right" if column == "companies" else "left")
    for status, count in summary.get("by_status", {}).items():
        if count:
            table.add_row(status, f"{count:,}")
    out.print(table)
    out.print(f"facts stored: {summary.get('facts', 0):,}   filings stored: "
              f"{summary.get('filings', 0):,}")  # fmt: skip
    for kind in ("failed", "deferred"):
        for row in summary.get(kind, []):
            out.print(
                f"[red]{kind}[/] CIK {cik10(int(row['cik']))} {row.get('name') or ''}: "
                f"{row.get('stage')}: {row.get('reason')}",
                highlight=False,
                soft_wrap=True,
            )


@db_app.command("info")
def db_info(
    db: Annotated[Path | None, typer.Option(help="DuckDB file (default FINLOOM_DB_PATH).")] = None,
) -> None:
    """List tables, row counts, schema version and file size."""
    from finloom_core.storage.info import warehouse_info

    info = guarded(lambda: warehouse_info(db or load_settings().db_path))
    table = Table(title=f"{info.path} (schema v{info.schema_version})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in info.tables.items():
        table.add_row(name, f"{count:,}")
    out.print(table)
    out.print(f"file size: {info.size_bytes:,} bytes ({info.size_bytes / 2**20:.1f} MiB)")


def main() -> None:  # pragma: no cover - console entry point
    app()
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    app()
