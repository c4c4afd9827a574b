"""``finloom nightly``: load what SEC's daily indexes say was filed since the last night."""

from __future__ import annotations

import json
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from finloom_cli.backfill import quality_lines
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


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{option} {text!r}: expected a date as YYYY-MM-DD") from None


def nightly(
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="First day, YYYY-MM-DD (default: the day after the "
            "watermark; without one, the --to day).",
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Last day, YYYY-MM-DD (default: yesterday in New York)."),
    ] = None,
    tickers: Annotated[
        list[str] | None,
        typer.Option("--tickers", "-t", help="Watch-list tickers, comma-separated."),
    ] = None,
    ciks: Annotated[
        list[str] | None, typer.Option("--ciks", "-c", help="Watch-list CIKs, comma-separated.")
    ] = None,
    db: Annotated[Path | None, typer.Option(help="DuckDB file (default FINLOOM_DB_PATH).")] = None,
    quality: Annotated[
        bool, typer.Option(help="Run the quality flow at the end when anything was loaded.")
    ] = True,
) -> None:
    """Load the companies that filed XBRL financial data on the days since the last night
    (SEC's daily master indexes), and retry the pending ones (runs the Prefect flow)."""
    ticker_list, cik_list = split_values(tickers), split_values(ciks)

    def run() -> dict[str, Any]:
        first, last = _day(from_, "--from"), _day(to, "--to")
        if first and last and first > last:
            raise InputError(f"--from {first} is after --to {last}")
        settings = load_settings()
        for cik in cik_list:
            parse_cik(cik)
        settings.require_user_agent()
        if settings.redis_url:  # the shared SEC budget must answer before a run starts
            from finloom_core.edgar.redis_shared import check_redis

            check_redis(settings.redis_url)
        db_path = db or settings.db_path
        check_database(db_path, settings.duckdb_memory_limit)
        return _run_nightly(first, last, ticker_list, cik_list, str(db_path), quality)

    summary = guarded(run)
    _print_summary(summary, quality)
    critical = (summary.get("quality") or {}).get("critical")
    if summary.get("incomplete") or critical:
        raise typer.Exit(EXIT_INCOMPLETE)


def _run_nightly(
    first: date | None,
    last: date | None,
    tickers: list[str],
    ciks: list[str],
    db_path: str,
    quality: bool,
) -> dict[str, Any]:
    from finloom_core.errors import IncompleteRunError
    from flows.nightly import nightly as nightly_flow

    quiet_console_tracebacks()
    configure_cli_logging(load_settings(), one_run=True)
    note("starting the nightly flow (Prefect)...")
    try:
        with run_settings():
            return nightly_flow(
                from_date=first, to_date=last, tickers=tickers or None, ciks=ciks or None,
                db_path=db_path, quality=quality,
            )  # fmt: skip
    except IncompleteRunError as exc:
        note(str(exc), logging.WARNING, "bold yellow")
        return {**exc.summary, "incomplete": True}


def _print_summary(summary: dict[str, Any], quality: bool) -> None:
    if json_logs():
        sys.stdout.write(json.dumps(summary, default=str) + "\n")
        return
    if "first_day" not in summary:
        return
    without = summary["days_without_index"]
    out.print(
        f"days: {summary['first_day']} .. {summary['last_day']}: "
        f"{len(summary['days'])} read ({len(without)} without an index: no filings)"
        if summary["days"] else "days: none to read (the watermark is at --to)",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    if summary.get("index_error"):
        out.print(f"index not read: {summary['index_error']}", highlight=False, soft_wrap=True)
    for row in summary["companies"]:
        reason = f": {row['reason']}" if row.get("reason") else ""
        out.print(
            f"{row['status']} CIK {cik10(int(row['cik']))} {row.get('name') or ''} "
            f"(filed {row['day']}){reason}",
            highlight=False, soft_wrap=True, markup=False,
        )  # fmt: skip
    if not summary["companies"]:
        out.print("companies: nothing new to load", highlight=False)
    for row in summary["pending"]:
        out.print(
            f"pending CIK {cik10(int(row['cik']))} {row.get('name') or ''} since {row['day']}"
            f" ({row['status']}, {row['attempts']} attempt(s)): {row.get('reason') or ''}",
            highlight=False, soft_wrap=True, markup=False,
        )  # fmt: skip
    out.print(f"watermark: {summary.get('watermark') or 'not set'}", highlight=False)
    if summary["companies"]:
        for line in quality_lines(summary.get("quality"), quality):
            out.print(line, highlight=False, soft_wrap=True, markup=False)
