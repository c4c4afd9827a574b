"""The ``finloom`` command line.

Exit codes: 0 success; 1 the run finished but some companies failed or were deferred, or
an unexpected error; 2 bad input or configuration (unknown ticker, malformed CIK, missing
User-Agent, unusable source or database). Errors are one line on stderr; set
FINLOOM_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
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
quality_app = typer.Typer(
    help="Data quality: reconciliation, filing scores, Great Expectations (runs the quality "
    "flow, which publishes Prefect artifacts).",
    no_args_is_help=True,
)
app.add_typer(quality_app, name="quality")

out = Console()
err = Console(stderr=True)
T = TypeVar("T")

EXIT_INCOMPLETE = 1
EXIT_USAGE = 2


def _json_logs() -> bool:
    """FINLOOM_LOG_FORMAT=json (environment or .env): every stderr line is a JSON object."""
    try:
        return load_settings().log_format == "json"
    except FinloomError:
        return os.environ.get("FINLOOM_LOG_FORMAT", "").strip().lower() == "json"


def _note(message: str, level: int = logging.INFO, style: str = "dim") -> None:
    """A status line on stderr: rich text, or a JSON log record with FINLOOM_LOG_FORMAT=json."""
    if not _json_logs():
        err.print(f"[{style}]{message}[/]", highlight=False, soft_wrap=True)
        return
    from tasks.logs import emit_line

    emit_line(level, message)


def _fail(message: str, code: int) -> typer.Exit:
    if _json_logs():
        _note(f"error: {message}", logging.ERROR)
    else:
        err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _configure_cli_logging(settings: Any, *, one_run: bool = False) -> None:
    """Apply FINLOOM_LOG_FORMAT to the handlers set up so far (after Prefect's import).

    ``one_run``: the command starts one flow run; JSON lines logged before it exists are
    held and get its correlation id, so every line of the command carries the run's id.
    """
    from tasks.logs import configure_logging, hold_until_run

    configure_logging(settings)
    if one_run and settings.log_format == "json":
        hold_until_run()


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
    quality: Annotated[
        bool,
        typer.Option(
            help="Run the quality flow (reconcile, score, validate, publish) at the end when "
            "anything was loaded."
        ),
    ] = True,
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


def _check_database(db_path: Path) -> None:
    """Fail in one line, before Prefect starts, if the database is locked or corrupt."""
    from finloom_core.storage.database import open_warehouse

    with open_warehouse(db_path):
        pass


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

    _quiet_console_tracebacks()
    _configure_cli_logging(load_settings(), one_run=True)
    _note("starting the backfill flow (Prefect)...")
    try:
        with _run_settings():
            return backfill_flow(
                tickers=tickers, ciks=ciks, source=source, db_path=db_path,
                batch_size=batch_size, quality=quality,
            )  # fmt: skip
    except IncompleteRunError as exc:
        _note(str(exc), logging.WARNING, "bold yellow")
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
        PREFECT_SERVER_ANALYTICS_ENABLED,
        temporary_settings,
    )

    if PREFECT_API_URL.value():
        return nullcontext()
    # a throw-away server sends no usage telemetry (nor logs its failure offline)
    return temporary_settings(
        updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, PREFECT_SERVER_ANALYTICS_ENABLED: False}
    )


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
    if _json_logs():  # machine-readable runs get the summary as one JSON object on stdout
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


_YEARS = re.compile(r"(\d{4})(?:-(\d{4}))?")
FORMATS = ("table", "csv", "json")


@app.command()
def financials(
    company: Annotated[
        str | None, typer.Argument(help="Ticker (e.g. AAPL) or CIK.", show_default=False)
    ] = None,
    period: Annotated[str, typer.Option(help="FY (fiscal years) or Q (quarters).")] = "FY",
    metrics: Annotated[
        str, typer.Option(help="Metrics, comma-separated (see the metric catalogue).")
    ] = "revenue,net_income",
    years: Annotated[str | None, typer.Option(help="Fiscal years, e.g. 2019-2024 or 2023.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    as_first_reported: Annotated[
        bool, typer.Option(help="Values as first filed instead of the latest (restated) ones.")
    ] = False,
    coverage: Annotated[
        bool, typer.Option(help="Print the core-metric coverage of every 10-K/20-F instead.")
    ] = False,
    db: Annotated[Path | None, typer.Option(help="DuckDB file (default FINLOOM_DB_PATH).")] = None,
) -> None:
    """Standardized financials of one company, or (--coverage) the coverage report."""
    if coverage:
        guarded(lambda: _print_coverage(db or load_settings().db_path))
        return

    def query() -> Any:
        if company is None:
            raise InputError("give a ticker or CIK (or --coverage)")
        wanted = _metric_list(metrics)
        span = _year_range(years)
        if period.upper() not in ("FY", "Q"):
            raise InputError(f"--period must be FY or Q, not {period!r}")
        if fmt not in FORMATS:
            raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        from finloom_core.normalize.coverage import financials_query
        from finloom_core.storage.database import open_warehouse

        with open_warehouse(db or load_settings().db_path, read_only=True) as con:
            cik, name = _resolve_company(con, company)
            rows = financials_query(
                con, cik, wanted, period.upper(), span, as_first_reported=as_first_reported
            )
        return cik, name, rows

    cik, name, rows = guarded(query)
    _print_financials(rows, fmt, f"{name or 'CIK ' + cik10(cik)} ({period.upper()})")


def _metric_list(text: str) -> list[str]:
    from finloom_core.normalize import load_catalogue

    wanted = _split([text])
    known = load_catalogue().metrics
    unknown = [m for m in wanted if m not in known]
    if unknown or not wanted:
        raise InputError(
            f"unknown metric(s): {', '.join(unknown) or '(none given)'}; "
            f"known: {', '.join(sorted(known))}"
        )
    return wanted


def _year_range(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = _YEARS.fullmatch(text.strip())
    if match is None:
        raise InputError(f"--years must look like 2019-2024 or 2023, not {text!r}")
    start = int(match.group(1))
    end = int(match.group(2) or start)
    if end < start:
        raise InputError(f"--years {text!r}: the range ends before it starts")
    return start, end


def _resolve_company(con: Any, company: str) -> tuple[int, str | None]:
    """A ticker (from the companies table) or a CIK -> (cik, name); unknown -> InputError."""
    text = company.strip()
    if text.isdigit() or text.upper().startswith("CIK"):
        cik = parse_cik(text)
        rows = con.execute(
            "SELECT cik, (SELECT name FROM companies WHERE cik = $cik) FROM financials"
            " WHERE cik = $cik LIMIT 1",
            {"cik": cik},
        ).fetchall()
        if not rows:
            raise InputError(f"CIK {cik10(cik)} has no financials in the database")
        return int(rows[0][0]), rows[0][1]
    rows = con.execute(
        "SELECT cik, name FROM companies WHERE list_contains(tickers, $ticker) ORDER BY cik",
        {"ticker": text.upper()},
    ).fetchall()
    if not rows:
        raise InputError(f"unknown ticker {text.upper()!r} (not in the companies table)")
    return int(rows[0][0]), rows[0][1]


def _print_financials(rows: Any, fmt: str, title: str) -> None:
    records = rows.to_pylist()
    if fmt == "json":
        sys.stdout.write(json.dumps(records, default=str, indent=2) + "\n")
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=rows.column_names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        sys.stdout.write(buffer.getvalue())
    else:
        table = Table(title=title)
        columns = ("fiscal_year", "fiscal_period", "metric", "value", "unit", "period_end",
                   "method", "filed", "accession")  # fmt: skip
        for column in columns:
            table.add_column(column, justify="right" if column == "value" else "left")
        for record in records:
            table.add_row(*(_cell(column, record[column]) for column in columns))
        out.print(table)


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column == "value":
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4f}".rstrip("0")
    return str(value)


def _print_coverage(db_path: Path) -> None:
    from finloom_core.normalize.coverage import CORE_METRICS
    from finloom_core.normalize.coverage import coverage as coverage_report
    from finloom_core.storage.database import open_warehouse

    with open_warehouse(db_path, read_only=True) as con:
        report = coverage_report(con)
    table = Table(title=f"core-metric coverage of 10-K/20-F filings ({db_path})")
    for column in ("CIK", "company", "ticker", "filings", "assessable", "all 7", "missing"):
        table.add_column(column, justify="right" if column in ("filings", "assessable",
                         "all 7") else "left")  # fmt: skip
    for row in report.companies.to_pylist():
        table.add_row(
            cik10(row["cik"]), row["name"] or "", row["ticker"] or "", str(row["filings"]),
            str(row["assessable"]), str(row["complete"]), row["missing_metrics"] or "",
        )  # fmt: skip
    out.print(table)
    summary = report.summary
    out.print(
        f"filings with all {len(CORE_METRICS)} core metrics: {summary.complete} of "
        f"{summary.assessable} assessable ({summary.share_complete:.1%}); "
        f"{summary.filings - summary.assessable} of {summary.filings} filings not assessable "
        "(no annual period among their facts)",
        highlight=False,
        soft_wrap=True,
    )
    out.print(
        "per metric: " + ", ".join(f"{m} {s:.1%}" for m, s in summary.per_metric.items()),
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


# ------------------------------------------------------------------ finloom quality

DbOption = Annotated[Path | None, typer.Option(help="DuckDB file (default FINLOOM_DB_PATH).")]


def _run_quality(db_path: Path, ciks: list[int] | None, validate: bool) -> dict[str, Any]:
    """Run the quality flow; a critical finding still hands back the published report."""
    from finloom_core.errors import QualityCriticalError
    from flows.quality import quality as quality_flow

    _check_database(db_path)
    _quiet_console_tracebacks()
    _configure_cli_logging(load_settings(), one_run=True)
    _note("starting the quality flow (Prefect)...")
    try:
        with _run_settings():
            return quality_flow(db_path=str(db_path), ciks=ciks, run_expectations=validate)
    except QualityCriticalError as exc:
        _note(str(exc), logging.ERROR, "bold red")
        return {**exc.report, "failed": str(exc)}


def _exit_for(report: dict[str, Any]) -> None:
    if report.get("critical"):
        raise typer.Exit(EXIT_INCOMPLETE)


def _print_checks(report: dict[str, Any]) -> None:
    table = Table(title="reconciliation")
    for column in ("check", "severity", "passed", "affected"):
        table.add_column(column, justify="right" if column == "affected" else "left")
    for check in report.get("reconciliation", []):
        table.add_row(
            str(check.get("check")), str(check.get("severity")),
            "yes" if check.get("passed") else "[red]NO[/]", f"{check.get('affected_records', 0):,}",
        )  # fmt: skip
    out.print(table)


def _print_companies(report: dict[str, Any]) -> None:
    companies = report.get("companies", [])
    if not companies:
        out.print("no companies scored")
        return
    table = Table(title="company quality scores")
    keys = list(companies[0])
    for key in keys:
        table.add_column(key)
    for company in companies:
        table.add_row(*(_quality_cell(key, company[key]) for key in keys))
    out.print(table)


def _quality_cell(key: str, value: Any) -> str:
    if key == "cik" and value is not None:
        return cik10(int(value))
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


def _print_filings(report: dict[str, Any]) -> None:
    from tasks.quality import score_row

    table = Table(title="filing quality scores")
    columns = ("fiscal_year", "fiscal_period", "form", "accession", "score", "grade", "reasons")
    for column in columns:
        table.add_column(column, justify="right" if column == "score" else "left")
    rows = sorted((score_row(f) for f in report.get("scores", [])),
                  key=lambda r: (r["fiscal_year"] or 0, str(r["fiscal_period"])))  # fmt: skip
    for row in rows:
        table.add_row(*(_quality_cell(c, row[c]) for c in columns))
    out.print(table)


@quality_app.command("reconcile")
def quality_reconcile(db: DbOption = None) -> None:
    """Run the reconciliation checks (and scores) and print the checks."""
    report = guarded(lambda: _run_quality(db or load_settings().db_path, None, validate=False))
    _print_checks(report)
    _exit_for(report)


@quality_app.command("score")
def quality_score(
    ticker: Annotated[
        str | None, typer.Option("--ticker", help="One company: ticker or CIK.")
    ] = None,
    all_companies: Annotated[
        bool, typer.Option("--all", help="Every company, side by side.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Quality scores of one company's filings (--ticker) or of every company (--all)."""

    def run() -> dict[str, Any]:
        if (ticker is None) == (not all_companies):
            raise InputError("give --ticker TICKER or --all")
        db_path = db or load_settings().db_path
        ciks = None
        if ticker is not None:
            from finloom_core.storage.database import open_warehouse

            with open_warehouse(db_path, read_only=True) as con:
                ciks = [_resolve_company(con, ticker)[0]]
        return _run_quality(db_path, ciks, validate=False)

    report = guarded(run)
    if ticker is not None:
        _print_filings(report)
    _print_companies(report)
    _exit_for(report)


@quality_app.command("full")
def quality_full(
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the whole report as JSON here.")
    ] = None,
    db: DbOption = None,
) -> None:
    """Reconcile, score and validate (Great Expectations); publish the artifacts."""
    report = guarded(lambda: _run_quality(db or load_settings().db_path, None, validate=True))
    if json_path is not None:
        keys = ("reconciliation", "scores", "companies", "expectations")
        payload = {key: report.get(key, []) for key in keys}
        payload["expectations"] = report.get("expectations") or {}
        json_path.write_text(json.dumps(payload, default=str, indent=1) + "\n")
        err.print(f"[dim]report written to {json_path}[/]", highlight=False)
    _print_checks(report)
    _print_companies(report)
    for table, row in (report.get("expectations_summary") or {}).items():
        out.print(f"expectations {table}: {'passed' if row['success'] else 'FAILED'} "
                  f"({row['evaluated']} evaluated, {len(row['failed'])} failed)")  # fmt: skip
    _exit_for(report)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 9108,
    db: DbOption = None,
    access_log: Annotated[bool, typer.Option(help="Log every HTTP request.")] = False,
) -> None:
    """Serve health probes (/health/live, /health/startup, /health/ready, /health) and
    /metrics (every run recorded in the metrics folder). Never holds the database open."""

    def run() -> None:
        from finloom_cli.serve import run_server  # FastAPI and uvicorn; no Prefect

        settings = load_settings()
        if db is not None:
            settings = settings.model_copy(update={"db_path": db})
        _note(f"finloom serve on http://{host}:{port} (database {settings.db_path})")
        run_server(settings, host, port, access_log=access_log)

    guarded(run)  # a port in use is a ConfigurationError: one line, exit 2


def main() -> None:  # pragma: no cover - console entry point
    app()
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    app()
