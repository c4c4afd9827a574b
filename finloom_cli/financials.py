"""``finloom financials``: standardized financials of one company, or the coverage report."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from finloom_cli.common import (
    guarded,
    out,
    resolve_company,
    split_values,
)
from finloom_core.cik import cik10, parse_cik
from finloom_core.errors import InputError, StorageError
from finloom_core.settings import FinloomSettings, load_settings

_YEARS = re.compile(r"(\d{4})(?:-(\d{4}))?")
FORMATS = ("table", "wide", "csv", "json")
MILLION = 1_000_000


def financials(
    company: Annotated[
        str | None, typer.Argument(help="Ticker (e.g. AAPL) or CIK.", show_default=False)
    ] = None,
    period: Annotated[str, typer.Option(help="FY (fiscal years) or Q (quarters).")] = "FY",
    metrics: Annotated[
        str | None,
        typer.Option(
            help="Metrics, comma-separated (see the metric catalogue), or 'all'. Default:"
            " revenue,net_income; with --coverage the 7 core metrics.",
            show_default=False,
        ),
    ] = None,
    years: Annotated[str | None, typer.Option(help="Fiscal years, e.g. 2019-2024 or 2023.")] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="table (values in millions, fits 80 columns), wide (exact values, unit, "
            "accession), csv or json.",
        ),
    ] = "table",
    as_first_reported: Annotated[
        bool, typer.Option(help="Values as first filed instead of the latest (restated) ones.")
    ] = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Point in time (YYYY-MM-DD): each value as known at the end of that date,"
            " from the latest filing filed on or before it; metrics not yet reported then"
            " are absent.",
            show_default=False,
        ),
    ] = None,
    coverage: Annotated[
        bool,
        typer.Option(
            help="Print, instead, which metrics every 10-K/20-F's own fiscal year has"
            " (--metrics chooses them; --format json for the figures)."
        ),
    ] = False,
    db: Annotated[Path | None, typer.Option(help="DuckDB file (default FINLOOM_DB_PATH).")] = None,
) -> None:
    """Standardized financials of one company, or (--coverage) the coverage report."""
    if coverage:
        guarded(lambda: _print_coverage(db, load_settings(), metrics, fmt))
        return

    def query() -> Any:
        if company is None:
            raise InputError("give a ticker or CIK (or --coverage)")
        wanted = _metric_list(metrics or "revenue,net_income")
        span = _year_range(years)
        when = _as_of_date(as_of)
        if period.upper() not in ("FY", "Q"):
            raise InputError(f"--period must be FY or Q, not {period!r}")
        if fmt not in FORMATS:
            raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        from finloom_core.normalize.coverage import financials_query
        from finloom_core.storage.published import open_published

        settings = load_settings()
        started = time.perf_counter()
        with open_published(
            db or settings.db_path, memory_limit=settings.duckdb_memory_limit
        ) as con:
            text = company.strip()
            if text.isdigit() or text.upper().startswith("CIK"):
                _require_current(con, parse_cik(text), db or settings.db_path)
            cik, name = resolve_company(con, company)
            _require_current(con, cik, db or settings.db_path)
            rows = financials_query(
                con, cik, wanted, period.upper(), span,
                as_first_reported=as_first_reported, as_of=when,
            )  # fmt: skip
        record_read(settings, db, "financials", time.perf_counter() - started)
        return cik, name, rows

    cik, name, rows = guarded(query)
    known = f", as known at the end of {as_of.strip()}" if as_of else ""
    _print_financials(rows, fmt, f"{name or 'CIK ' + cik10(cik)} ({period.upper()}){known}")


def record_read(settings: FinloomSettings, db: Path | None, query: str, seconds: float) -> None:
    """``finloom_query_duration_seconds{query}``, into the warehouse's metrics folder when
    it exists (the metrics module is not even imported otherwise: the command stays fast)."""
    if db is not None:
        settings = settings.model_copy(update={"db_path": db})
    if settings.resolved_metrics_dir().is_dir():
        from finloom_ops.metrics import record_query

        record_query(settings, query, seconds)


def _require_current(con: Any, cik: int, db_path: Path) -> None:
    """Refuse, in one line, a company whose financials are missing or older than its facts
    (a run was cut off between load and normalize) rather than print an empty or stale
    table."""
    from finloom_core.normalize.freshness import stale_companies

    for row in stale_companies(con, [cik]):
        if row["financials"] == 0:
            problem = f"no financials for CIK {cik10(cik)} yet (its facts are loaded)"
        else:
            problem = f"the financials of CIK {cik10(cik)} are older than its facts"
        raise StorageError(f"{problem}: run finloom backfill to rebuild them", path=str(db_path))


def _as_of_date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"--as-of must be a date like 2019-03-01, not {text!r}") from None


def _metric_list(text: str) -> list[str]:
    from finloom_core.normalize import load_catalogue

    known = load_catalogue().metrics
    if text.strip().lower() == "all":
        return list(known)
    wanted = split_values([text])
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
    elif fmt == "wide":
        table = Table(title=title)
        columns = ("fiscal_year", "fiscal_period", "metric", "value", "unit", "period_end",
                   "method", "filed", "accession")  # fmt: skip
        for column in columns:  # a value is never cut short: the other columns give way
            table.add_column(column, justify="right" if column == "value" else "left",
                             no_wrap=column == "value")  # fmt: skip
        for record in records:
            table.add_row(*(_cell(column, record[column]) for column in columns))
        out.print(table)
    else:
        out.print(compact_table(records, title, out.width))


def compact_table(records: list[dict[str, Any]], title: str, width: int = 80) -> Table:
    """The default table: amounts and share counts in millions, per-share values as
    reported, the unit said once (in the value header when every row shares it), no
    accession. The method and filed columns are added only while the table still fits
    ``width`` (the console's: 80 when piped); a long metric name wraps last."""
    units = [_display_unit(r["unit"]) for r in records]
    one_unit = len(set(units)) == 1
    decimals = {
        unit: 0 if all(r["value"] is None or float(r["value"] / MILLION).is_integer()
                       for r, u in zip(records, units, strict=True) if u == unit) else 1
        for unit in set(units)
    }  # fmt: skip
    rows = [
        {
            "fiscal": f"{r['fiscal_year']} {r['fiscal_period']}",
            "metric": str(r["metric"]),
            "value": _compact_value(r["value"], r["unit"], decimals[unit]),
            "unit": unit,
            **{c: _cell(c, r[c]) for c in ("period_end", "method", "filed")},
        }
        for r, unit in zip(records, units, strict=True)
    ]
    value_header = f"value ({units[0]})" if one_unit and units else "value"
    columns = [("fiscal", "fiscal"), ("metric", "metric"), ("value", value_header)]
    columns += [] if one_unit else [("unit", "unit")]
    columns += [("period_end", "period end")]
    for optional in (("method", "method"), ("filed", "filed")):
        if _width([*columns, optional], rows) <= width:
            columns.append(optional)
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for key, header in columns:
        table.add_column(header, justify="right" if key == "value" else "left",
                         no_wrap=key != "metric", overflow="fold")  # fmt: skip
    for row in rows:
        table.add_row(*(row[key] for key, _ in columns))
    return table


def _width(columns: list[tuple[str, str]], rows: list[dict[str, str]]) -> int:
    """Characters a compact table of these columns needs (3 between columns)."""
    widest = [max([len(header), *(len(row[key]) for row in rows)]) for key, header in columns]
    return sum(widest) + 3 * (len(columns) - 1)


def _in_millions(unit: str | None) -> bool:
    """Amounts (a currency code such as USD) and share counts are shown in millions."""
    return bool(unit) and "/" not in str(unit)


def _display_unit(unit: str | None) -> str:
    text = str(unit or "")
    if "/" in text:  # USD/shares: as reported, per share
        currency = text.split("/")[0]
        return ("$" if currency == "USD" else currency) + "/share"
    if text == "shares":
        return "M shares"
    return "$M" if text == "USD" else f"{text} M" if text else ""


def _compact_value(value: Any, unit: str | None, decimals: int) -> str:
    if value is None:
        return ""
    if _in_millions(unit):
        return f"{value / MILLION:,.{decimals}f}"
    return f"{value:,.2f}" if round(value, 2) == value else f"{value:,.4f}".rstrip("0")


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column == "value":
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4f}".rstrip("0")
    return str(value)


def _print_coverage(
    db: Path | None, settings: FinloomSettings, metrics: str | None, fmt: str
) -> None:
    from finloom_core.normalize.coverage import CORE_METRICS
    from finloom_core.normalize.coverage import coverage as coverage_report
    from finloom_core.storage.published import open_published

    wanted = _metric_list(metrics) if metrics else list(CORE_METRICS)
    if fmt not in ("table", "json"):
        raise InputError(f"--coverage prints --format table or json, not {fmt!r}")
    db_path = db or settings.db_path
    with open_published(db_path, memory_limit=settings.duckdb_memory_limit) as con:
        report = coverage_report(con, metrics=wanted)
    summary = report.summary
    if fmt == "json":
        document = {
            "metrics": wanted,
            "filings": summary.filings,
            "assessable": summary.assessable,
            "complete": summary.complete,
            "per_metric": summary.per_metric,
            "companies": report.companies.to_pylist(),
        }
        sys.stdout.write(json.dumps(document, default=str, indent=2) + "\n")
        return
    every = f"all {len(wanted)}"
    table = Table(title=f"metric coverage of 10-K/20-F filings ({db_path})")
    for column in ("CIK", "company", "ticker", "filings", "assessable", every, "missing"):
        table.add_column(column, justify="right" if column in ("filings", "assessable",
                         every) else "left")  # fmt: skip
    for row in report.companies.to_pylist():
        table.add_row(
            cik10(row["cik"]), row["name"] or "", row["ticker"] or "", str(row["filings"]),
            str(row["assessable"]), str(row["complete"]), row["missing_metrics"] or "",
        )  # fmt: skip
    out.print(table)
    per_metric = Table(title="per metric: assessable filings with it")
    per_metric.add_column("metric")
    per_metric.add_column("filings", justify="right")
    per_metric.add_column("share", justify="right")
    for metric, share in sorted(summary.per_metric.items(), key=lambda item: item[1]):
        count = round(share * summary.assessable)
        per_metric.add_row(metric, f"{count} of {summary.assessable}", f"{share:.1%}")
    out.print(per_metric)
    out.print(
        f"filings with all {len(wanted)} {'' if metrics else 'core '}metrics: "
        f"{summary.complete} of "
        f"{summary.assessable} assessable ({summary.share_complete:.1%}); "
        f"{summary.filings - summary.assessable} of {summary.filings} filings not assessable "
        "(no annual period among their facts)",
        highlight=False,
        soft_wrap=True,
    )
