"""``finloom quality``: run the quality flow and print its checks and scores.

Every subcommand runs the quality flow, which stores its scores in the warehouse: a
writer, it opens the warehouse file itself (while a load holds it: a one-line "locked"
error). Only the ticker lookup of ``score --ticker`` just reads, from the published copy
(``finloom_core.storage.published``).

The tables fit an 80-column terminal (and a pipe, which rich renders 80 wide): short column
names, scores with one decimal, and the reason of a filing's score cut to the room left
(its costliest component and why, from ``finloom_core.quality.render``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated

import typer
from rich import box
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
from finloom_core.quality.render import company_grade_counts, scope_label, worst_reason
from finloom_core.quality.results import QualityReport
from finloom_core.settings import load_settings

quality_app = typer.Typer(
    help="Data quality: reconciliation, filing scores, Great Expectations (runs the quality "
    "flow, which publishes Prefect artifacts).",
    no_args_is_help=True,
)
JSON_KEYS = ("scope", "reconciliation", "scores", "companies", "warehouse_grades", "expectations")


def _run_quality(db_path: Path, ciks: list[int] | None, validate: bool) -> QualityReport:
    """Run the quality flow; a critical finding still hands back the published report."""
    from finloom_core.errors import QualityCriticalError
    from flows.quality import quality as quality_flow

    settings = load_settings()
    check_database(db_path, settings.duckdb_memory_limit)
    quiet_console_tracebacks()
    configure_cli_logging(settings, one_run=True)
    note("starting the quality flow (Prefect)...")
    try:
        with run_settings():
            return quality_flow(db_path=str(db_path), ciks=ciks, run_expectations=validate)
    except QualityCriticalError as exc:
        if exc.report is None:
            raise
        note(str(exc), logging.ERROR, "bold red")
        return exc.report


def _print_scope(report: QualityReport) -> None:
    """The run's scope and the warehouse-wide grades (latest stored score per filing)."""
    out.print(f"scope: {scope_label(report)}", highlight=False)
    if report.warehouse_grades:
        grades = ", ".join(f"{n:,} {g}" for g, n in report.warehouse_grades.items())
        out.print(f"warehouse grades (latest stored scores): {grades}", highlight=False)


def _exit_for(report: QualityReport) -> None:
    if report.critical:
        raise typer.Exit(EXIT_INCOMPLETE)


def _table(title: str, *, expand: bool = False) -> Table:
    """A table without vertical rules: the most room for the cells."""
    return Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        expand=expand,
    )


def _print_checks(report: QualityReport) -> None:
    table = _table("reconciliation")
    for column in ("check", "severity", "passed", "affected"):
        table.add_column(column, justify="right" if column == "affected" else "left")
    for check in report.checks:
        passed = "yes" if check.passed else "[red]NO[/]"
        table.add_row(check.check, check.severity, passed, f"{check.affected_records:,}")
    out.print(table)


def _print_companies(report: QualityReport) -> None:
    if not report.companies:
        out.print("no companies scored")
        return
    table = _table("company quality scores", expand=True)
    table.add_column("cik", no_wrap=True)
    table.add_column("company", ratio=1, no_wrap=True, overflow="ellipsis")
    for column in ("filings", "score", "grade"):
        table.add_column(column, justify="left" if column == "grade" else "right", no_wrap=True)
    for c in report.companies:
        table.add_row(cik10(c.cik), c.name or "", str(c.filings), f"{c.score:.1f}", c.grade)
    out.print(table)
    grades = _table("grades")
    grades.add_column("grade")
    grades.add_column("filings", justify="right")
    for letter, count in company_grade_counts(report.companies):
        grades.add_row(letter, f"{count:,}")
    out.print(grades)


def _print_filings(report: QualityReport) -> None:
    table = _table("filing quality scores", expand=True)
    for column in ("period", "form", "accession", "score", "grade"):
        table.add_column(column, justify="right" if column == "score" else "left", no_wrap=True)
    table.add_column("costliest component", ratio=1, no_wrap=True, overflow="ellipsis")
    filings = sorted(report.filings, key=lambda f: (f.fiscal_year or 0, f.fiscal_period or ""))
    for f in filings:
        period = f"{f.fiscal_year or ''} {f.fiscal_period or ''}".strip()
        table.add_row(
            period, f.form or "", f.accession, f"{f.score:.1f}", f.grade, worst_reason(f, 120)
        )
    out.print(table)


@quality_app.command("reconcile")
def quality_reconcile(db: DbOption = None) -> None:
    """Run the reconciliation checks (and scores) and print the checks."""
    report = guarded(lambda: _run_quality(db or load_settings().db_path, None, validate=False))
    _print_checks(report)
    _print_scope(report)
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

    def run() -> QualityReport:
        if (ticker is None) == (not all_companies):
            raise InputError("give --ticker TICKER or --all")
        db_path = db or load_settings().db_path
        ciks = None
        if ticker is not None:  # looked up in the published copy: never waits for a load
            from finloom_cli.financials import record_read
            from finloom_core.storage.published import open_published

            started = time.perf_counter()
            with open_published(db_path) as con:
                ciks = [resolve_company(con, ticker)[0]]
            record_read(load_settings(), db_path, "quality_score", time.perf_counter() - started)
        return _run_quality(db_path, ciks, validate=False)

    report = guarded(run)
    if ticker is not None:
        _print_filings(report)
    _print_companies(report)
    _print_scope(report)
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
        data = report.to_dict()
        payload = {key: data[key] for key in JSON_KEYS}
        json_path.write_text(json.dumps(payload, default=str, indent=1) + "\n")
        err.print(f"[dim]report written to {json_path}[/]", highlight=False)
    _print_checks(report)
    _print_companies(report)
    for table, suite in report.expectations_summary.items():
        out.print(f"expectations {table}: {'passed' if suite.success else 'FAILED'} "
                  f"({suite.evaluated} evaluated, {len(suite.failed)} failed)")  # fmt: skip
    _print_scope(report)
    _exit_for(report)
