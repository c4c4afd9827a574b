"""``finloom backfill``: load companies through the ``backfill`` flow."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from finloom_cli.common import (
    EXIT_INCOMPLETE,
    check_database,
    err,
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
    bulk: Annotated[
        bool,
        typer.Option(
            "--bulk",
            help="Download SEC's companyfacts.zip and submissions.zip (FINLOOM_BULK_DIR; "
            "resumed, not downloaded again when unchanged) and load them.",
        ),
    ] = False,
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
            if settings.redis_url:  # the shared SEC budget must answer before a run starts
                from finloom_core.edgar.redis_shared import check_redis

                check_redis(settings.redis_url)
        if bulk and source is not None:
            raise InputError("give either --bulk or --source, not both")
        if source is None and not bulk and not ticker_list and not cik_list:
            raise InputError("give --tickers and/or --ciks (or --source to load a whole folder)")
        if source is not None:
            _check_source(source, ticker_list)
        db_path = db or settings.db_path
        check_database(db_path, settings.duckdb_memory_limit)
        return _run_backfill(
            ticker_list, cik_list, source, str(db_path), batch_size, quality, bulk=bulk
        )

    summary = guarded(run)
    _print_summary(summary, quality)
    critical = (summary.get("quality") or {}).get("critical")
    if summary.get("failed") or summary.get("deferred") or critical:
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
    *,
    bulk: bool = False,
) -> dict[str, Any]:
    from finloom_core.errors import IncompleteRunError, QualityCriticalError
    from finloom_core.report import quality_digest
    from finloom_ops import progress
    from flows.backfill import backfill as backfill_flow

    quiet_console_tracebacks()
    configure_cli_logging(load_settings(), one_run=True)
    note("starting the backfill flow (Prefect)...")
    bar = ProgressBar(err) if sys.stderr.isatty() and not json_logs() else None
    try:
        with run_settings(), progress.listening(bar) if bar else nullcontext():
            return backfill_flow(
                tickers=tickers, ciks=ciks, source=source, db_path=db_path,
                batch_size=batch_size, quality=quality, bulk=bulk,
            )  # fmt: skip
    except IncompleteRunError as exc:
        note(str(exc), logging.WARNING, "bold yellow")
        return exc.summary
    except QualityCriticalError as exc:  # every company loaded; the quality flow objected
        note(str(exc), logging.ERROR, "bold red")
        return {"quality": quality_digest(exc.report) if exc.report else {"error": str(exc)}}
    finally:
        if bar is not None:
            bar.stop()


class ProgressBar:
    """A progress bar over the run's companies on stderr, advanced batch by batch (a
    ``finloom_ops.progress`` listener). While it shows, Prefect's console log lines are
    printed above it instead of through it."""

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
            console=console, transient=False,
        )  # fmt: skip
        self.task: Any = None
        self.counts: Counter[str] = Counter()
        self._consoles: list[tuple[Any, Any]] = []

    def started(self, companies: int, batches: int) -> None:
        self.task = self.progress.add_task(
            "companies", total=companies, status=f"batch 0/{batches}"
        )
        self.progress.start()
        self._consoles = _route_console_logs(_AboveTheBar(self.progress.console))

    def batch_done(self, number: int, batches: int, outcomes: Sequence[Any]) -> None:
        self.counts.update(str(o.status) for o in outcomes)
        counts = ", ".join(f"{n:,} {status}" for status, n in sorted(self.counts.items()))
        self.progress.update(
            self.task, advance=len(outcomes), status=f"batch {number}/{batches}: {counts}"
        )

    def phase(self, name: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, status=f"{name} flow running...")

    def stop(self) -> None:
        if self.task is not None:
            self.progress.stop()
        for console, file in self._consoles:
            console.file = file
        self._consoles = []


class _AboveTheBar(io.TextIOBase):
    """A text stream whose complete lines are printed through the console that draws the
    progress bar, so they appear above it (rich's own stderr proxy is bypassed by other
    rich consoles, such as Prefect's log handler)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.pending = ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        if lines:
            self.console.print(Text("\n").join(Text.from_ansi(line) for line in lines))
        return len(text)

    def isatty(self) -> bool:
        return True


def _route_console_logs(stream: Any) -> list[tuple[Any, Any]]:
    """Point every Prefect console handler at ``stream``; returns (console, previous file)
    pairs to restore."""
    routed = []
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            console = getattr(handler, "console", None)
            if type(handler).__name__ == "PrefectConsoleHandler" and console is not None:
                routed.append((console, console.file))
                console.file = stream
    return routed


def _print_summary(summary: dict[str, Any], quality: bool = True) -> None:
    if json_logs():  # machine-readable runs get the summary as one JSON object on stdout
        sys.stdout.write(json.dumps(summary, default=str) + "\n")
        return
    if "by_status" in summary:
        table = Table(title=f"backfill from {summary.get('source')}", show_lines=False)
        for column in ("status", "companies"):
            table.add_column(column, justify="right" if column == "companies" else "left")
        for status, count in summary["by_status"].items():
            if count:
                table.add_row(status, f"{count:,}")
        out.print(table)
        for line in company_lines(summary):
            out.print(line, highlight=False, soft_wrap=True, markup=False)
        written = summary.get("facts_written", 0)
        unchanged = summary["by_status"].get("unchanged", 0)
        out.print(
            f"facts stored: {summary.get('facts', 0):,} (written by this run: {written:,}"
            + (f"; {unchanged:,} companies unchanged, nothing written for them)" if unchanged
               else ")"),
            highlight=False, soft_wrap=True,
        )  # fmt: skip
        out.print(f"filings stored: {summary.get('filings', 0):,} (distinct filings listed by "
                  "these companies)", highlight=False, soft_wrap=True)  # fmt: skip
        out.print(f"financials rows rebuilt: {summary.get('financials', 0):,}", highlight=False)
    for line in quality_lines(summary.get("quality"), quality):
        out.print(line, highlight=False, soft_wrap=True, markup=False)


MAX_NOTED_LINES = 50


def company_lines(summary: dict[str, Any]) -> list[str]:
    """One line per company when the run listed them all (a few companies), otherwise one
    per failed, deferred and noted company (the last capped at MAX_NOTED_LINES)."""
    listed = summary.get("per_company") or []
    if listed:
        return [_company_line(row, row["status"]) for row in listed]
    lines = [_company_line(row, kind) for kind in ("failed", "deferred")
             for row in summary.get(kind, [])]  # fmt: skip
    noted = summary.get("noted", [])
    lines += [_company_line(row, "noted") for row in noted[:MAX_NOTED_LINES]]
    if len(noted) > MAX_NOTED_LINES:
        lines.append(f"... and {len(noted) - MAX_NOTED_LINES:,} more noted companies "
                     "(every one in the finloom-backfill-summary artifact)")  # fmt: skip
    return lines


def _company_line(row: dict[str, Any], kind: str) -> str:
    name = f" {row['name']}" if row.get("name") else ""
    head = f"{kind} CIK {cik10(int(row['cik']))}{name}"
    if row.get("reason"):
        return f"{head}: {row.get('stage') or 'error'}: {row['reason']}"
    if kind == "noted":
        return f"{head}: {row.get('note')}"
    counts = f"{row.get('facts', 0):,} facts, {row.get('filings', 0):,} filings"
    return f"{head}: {counts}" + (f"; {row['note']}" if row.get("note") else "")


def quality_lines(digest: dict[str, Any] | None, requested: bool) -> list[str]:
    """The last lines: the quality subflow's grades and where its Data Docs are."""
    if digest is None:
        why = "nothing was loaded" if requested else "--no-quality"
        return [f"quality: not run ({why})"]
    if "error" in digest:
        return [f"quality: the quality flow failed: {digest['error']}"]
    grades = ", ".join(f"{n:,} {grade}" for grade, n in digest["grades"].items())
    lines = [f"quality grades: {grades} ({digest['filings_scored']:,} filings scored)"]
    if digest.get("critical"):
        lines.append(f"quality: CRITICAL finding(s): {', '.join(digest['critical'])}")
    if digest.get("expectations_failed"):
        lines.append("Great Expectations failed on: " + ", ".join(digest["expectations_failed"]))
    docs = digest.get("data_docs")
    lines.append(f"Data Docs: {docs}" if docs else "Data Docs: not written")
    return lines
