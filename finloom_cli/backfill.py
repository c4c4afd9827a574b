"""``finloom backfill``: load companies through the ``backfill`` flow."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from finloom_cli.common import (
    EXIT_INCOMPLETE,
    check_database,
    guarded,
    json_logs,
    note,
    out,
    split_values,
)
from finloom_cli.runs import configure_cli_logging, quiet_console_tracebacks, run_settings
from finloom_core.cik import cik10, parse_cik
from finloom_core.errors import InputError
from finloom_core.settings import load_settings


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
    quality: Annotated[
        bool,
        typer.Option(
            help="Run the quality flow (reconcile, score, validate, publish) at the end when "
            "anything was loaded."
        ),
    ] = True,
) -> None:
    """Load companies' XBRL facts, filings and company records (runs the Prefect flow)."""
    ticker_list, cik_list = split_values(tickers), split_values(ciks)

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
        check_database(db_path)
        return _run_backfill(ticker_list, cik_list, source, str(db_path), batch_size, quality)

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


def _run_backfill(
    tickers: list[str],
    ciks: list[str],
    source: str | None,
    db_path: str,
    batch_size: int | None,
    quality: bool = True,
) -> dict[str, Any]:
    from finloom_core.report import IncompleteRunError
    from flows.backfill import backfill as backfill_flow

    quiet_console_tracebacks()
    configure_cli_logging(load_settings(), one_run=True)
    note("starting the backfill flow (Prefect)...")
    try:
        with run_settings():
            return backfill_flow(
                tickers=tickers, ciks=ciks, source=source, db_path=db_path,
                batch_size=batch_size, quality=quality,
            )  # fmt: skip
    except IncompleteRunError as exc:
        note(str(exc), logging.WARNING, "bold yellow")
        return exc.summary


def _print_summary(summary: dict[str, Any]) -> None:
    if json_logs():  # machine-readable runs get the summary as one JSON object on stdout
        sys.stdout.write(json.dumps(summary, default=str) + "\n")
        return
    table = Table(title=f"backfill from {summary.get('source')}", show_lines=False)
    for column in ("status", "companies"):
        table.add_column(column, justify="right" if column == "companies" else "left")
    for status, count in summary.get("by_status", {}).items():
        if count:
            table.add_row(status, f"{count:,}")
    out.print(table)
    out.print(f"facts stored: {summary.get('facts', 0):,}   filings stored: "
              f"{summary.get('filings', 0):,}   financials rows rebuilt: "
              f"{summary.get('financials', 0):,}")  # fmt: skip
    for kind in ("failed", "deferred"):
        for row in summary.get(kind, []):
            out.print(
                f"[red]{kind}[/] CIK {cik10(int(row['cik']))} {row.get('name') or ''}: "
                f"{row.get('stage')}: {row.get('reason')}",
                highlight=False,
                soft_wrap=True,
            )
