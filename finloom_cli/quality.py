"""``finloom quality``: run the quality flow and print its checks and scores."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from finloom_cli.common import (
    EXIT_INCOMPLETE,
    DbOption,
    check_database,
    err,
    guarded,
    note,
    out,
    resolve_company,
)
from finloom_cli.runs import configure_cli_logging, quiet_console_tracebacks, run_settings
from finloom_core.cik import cik10
from finloom_core.errors import InputError
from finloom_core.settings import load_settings

quality_app = typer.Typer(
    help="Data quality: reconciliation, filing scores, Great Expectations (runs the quality "
    "flow, which publishes Prefect artifacts).",
    no_args_is_help=True,
)


def _run_quality(db_path: Path, ciks: list[int] | None, validate: bool) -> dict[str, Any]:
    """Run the quality flow; a critical finding still hands back the published report."""
    from finloom_core.errors import QualityCriticalError
    from flows.quality import quality as quality_flow

    check_database(db_path)
    quiet_console_tracebacks()
    configure_cli_logging(load_settings(), one_run=True)
    note("starting the quality flow (Prefect)...")
    try:
        with run_settings():
            return quality_flow(db_path=str(db_path), ciks=ciks, run_expectations=validate)
    except QualityCriticalError as exc:
        note(str(exc), logging.ERROR, "bold red")
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
                ciks = [resolve_company(con, ticker)[0]]
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
