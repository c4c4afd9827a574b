"""Coverage of the core metrics per annual filing, and reading ``financials`` back.

Which filings: every 10-K, 20-F (and amendment) listed in ``filings`` for a company with
facts in the warehouse, plus accessions of those forms that appear only in ``facts``.

Matching rule: a filing's fiscal year is its *own current year*, the latest ~1-year
(350-380 days) duration period among the facts of that accession, the same rule the
normalizer uses to label fiscal years (see periods.py). A metric is present for the filing
when ``financials`` holds an FY row of that company whose ``period_end`` equals that date
(for balance-sheet metrics, the balance at that date). A filing with no such period among
its facts (a pre-XBRL filing, a cover-page-only 10-K/A, or a filing newer than the
company's companyfacts document) cannot be assessed: it is listed with ``assessable``
false and left out of the shares, never counted as covered.

Every query binds its values as parameters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from finloom_core.errors import InputError, StorageError
from finloom_core.normalize.periods import YEAR_DAYS

CORE_METRICS = (
    "revenue",
    "net_income",
    "total_assets",
    "total_liabilities",
    "stockholders_equity",
    "operating_cash_flow",
    "eps_diluted",
)
COVERAGE_FORMS = ("10-K", "10-K/A", "20-F", "20-F/A")
QUARTERS = ("Q1", "Q2", "Q3", "Q4")

_COVERAGE = f"""
WITH own AS (  -- each accession's own fiscal year: its latest ~1-year period
    SELECT cik, accession, any_value(form) AS form, min(filed) AS filed,
           max(period_end) FILTER (
               WHERE period_start IS NOT NULL
                 AND datediff('day', period_start, period_end)
                     BETWEEN {YEAR_DAYS[0]} AND {YEAR_DAYS[1]}
           ) AS period_end
    FROM facts
    WHERE list_contains($forms, form) AND ($ciks IS NULL OR list_contains($ciks, cik))
    GROUP BY cik, accession
),
listed AS (
    SELECT g.cik, g.accession, g.form, g.filed, g.report_date FROM filings g
    WHERE list_contains($forms, g.form) AND ($ciks IS NULL OR list_contains($ciks, g.cik))
      AND g.cik IN (SELECT DISTINCT cik FROM own)
    UNION ALL
    SELECT o.cik, o.accession, o.form, o.filed, NULL FROM own o
    WHERE o.accession NOT IN (SELECT accession FROM filings)
),
present AS (
    SELECT l.accession, any_value(f.fiscal_year) AS fiscal_year,
           list(DISTINCT f.metric ORDER BY f.metric) AS present
    FROM listed l
    JOIN own o ON o.cik = l.cik AND o.accession = l.accession
    JOIN financials f
      ON f.cik = l.cik AND f.fiscal_period = 'FY' AND f.period_end = o.period_end
     AND list_contains($metrics, f.metric)
    GROUP BY l.accession
)
SELECT l.cik, c.name, c.tickers[1] AS ticker, l.accession, l.form, l.filed,
       l.report_date, o.period_end, p.fiscal_year,
       o.period_end IS NOT NULL AS assessable,
       coalesce(p.present, []) AS present,
       list_filter($metrics, lambda m: NOT list_contains(coalesce(p.present, []), m)) AS missing
FROM listed l
LEFT JOIN own o ON o.cik = l.cik AND o.accession = l.accession
LEFT JOIN present p ON p.accession = l.accession
LEFT JOIN companies c ON c.cik = l.cik
ORDER BY l.cik, l.filed, l.accession
"""


@dataclass(frozen=True, slots=True)
class CoverageSummary:
    filings: int  # every annual filing listed
    assessable: int  # filings whose own fiscal year is among their facts
    complete: int  # assessable filings with every core metric
    per_metric: dict[str, float]  # share of assessable filings with the metric

    @property
    def share_complete(self) -> float:
        return self.complete / self.assessable if self.assessable else 0.0


@dataclass(frozen=True, slots=True)
class CoverageReport:
    rows: pa.Table  # one row per filing (see _COVERAGE's columns)
    summary: CoverageSummary
    companies: pa.Table  # per company: filings, assessable, complete, share_complete


def coverage(
    con: duckdb.DuckDBPyConnection,
    ciks: Sequence[int] | None = None,
    *,
    forms: Sequence[str] = COVERAGE_FORMS,
    metrics: Sequence[str] = CORE_METRICS,
) -> CoverageReport:
    """Which core metrics ``financials`` holds for each annual filing's own fiscal year."""
    params = {
        "forms": list(forms),
        "ciks": None if ciks is None else [int(c) for c in ciks],
        "metrics": list(metrics),
    }
    rows = con.sql(_COVERAGE, params=params).to_arrow_table()
    return CoverageReport(rows, summarize_coverage(rows, metrics), _by_company(con, rows))


def summarize_coverage(rows: pa.Table, metrics: Sequence[str] = CORE_METRICS) -> CoverageSummary:
    assessable = rows.filter(rows["assessable"])
    present = assessable["present"].to_pylist()
    missing = assessable["missing"].to_pylist()
    n = assessable.num_rows
    return CoverageSummary(
        filings=rows.num_rows,
        assessable=n,
        complete=sum(not m for m in missing),
        per_metric={m: (sum(m in p for p in present) / n if n else 0.0) for m in metrics},
    )


def _by_company(con: duckdb.DuckDBPyConnection, rows: pa.Table) -> pa.Table:
    cursor = con.cursor()  # a cursor of its own: registering views never touches ``con``
    try:
        cursor.register("_coverage_rows", rows)
        return cursor.sql(
            """
            SELECT cik, any_value(name) AS name, any_value(ticker) AS ticker,
                   count(*) AS filings, count(*) FILTER (WHERE assessable) AS assessable,
                   count(*) FILTER (WHERE assessable AND len(missing) = 0) AS complete,
                   string_agg(DISTINCT m, ',' ORDER BY m) AS missing_metrics
            FROM (SELECT *, unnest(CASE WHEN assessable AND len(missing) > 0
                                        THEN missing ELSE [NULL] END) AS m
                  FROM _coverage_rows)
            GROUP BY cik ORDER BY cik
            """
        ).to_arrow_table()
    finally:
        cursor.close()


def financials_query(
    con: duckdb.DuckDBPyConnection,
    cik: int,
    metrics: Sequence[str],
    period: str = "FY",
    years: tuple[int, int] | None = None,
    *,
    as_first_reported: bool = False,
    as_of: dt.date | None = None,
) -> pa.Table:
    """Rows of ``financials`` for one company, oldest period first.

    ``period`` is ``FY`` (fiscal years) or ``Q`` (Q1-Q4); ``years`` an inclusive range of
    fiscal years. With ``as_first_reported`` each value is the one first filed for its
    period (with that filing's accession and date) instead of the latest. With ``as_of``,
    the financials as known at the end of that date (the warehouse's ``financials_as_of``
    macro): each value from the latest filing filed on or before it; periods nothing had
    reported by then are absent.
    """
    if period not in ("FY", "Q"):
        raise InputError(f"period must be FY or Q, not {period!r}")
    start, end = years if years is not None else (None, None)
    params = {
        "cik": int(cik),
        "metrics": list(metrics),
        "periods": ["FY"] if period == "FY" else list(QUARTERS),
        "start": start,
        "end": end,
        "first": as_first_reported,
    }
    source = "financials"
    if as_of is not None:
        source = "financials_as_of($as_of)"
        params["as_of"] = as_of
    sql = f"""
        SELECT fiscal_year, fiscal_period, metric,
               CASE WHEN $first THEN coalesce(first_reported_value, value) ELSE value END
                   AS value,
               unit, period_start, period_end, method,
               CASE WHEN $first THEN coalesce(first_reported_filed, filed) ELSE filed END
                   AS filed,
               CASE WHEN $first THEN coalesce(first_reported_accession, accession)
                    ELSE accession END AS accession,
               is_restated, source_concept, formula
        FROM {source}
        WHERE cik = $cik AND list_contains($metrics, metric)
          AND list_contains($periods, fiscal_period)
          AND ($start IS NULL OR fiscal_year >= $start) AND ($end IS NULL OR fiscal_year <= $end)
        ORDER BY fiscal_year, fiscal_period, list_position($metrics, metric)
        """
    try:
        return con.sql(sql, params=params).to_arrow_table()
    except duckdb.CatalogException as exc:
        if as_of is None or "financials_as_of" not in str(exc):
            raise
        raise StorageError(
            "this warehouse predates point-in-time financials (financials_as_of): run any"
            " finloom backfill to upgrade and rebuild it"
        ) from None
