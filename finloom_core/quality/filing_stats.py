"""The statistics a filing's quality score is computed from, read set-wise in SQL.

One :class:`FilingStats` per periodic filing (10-K/10-Q/20-F and amendments) with facts:
its fact, null-value and distinct-concept counts (and the company's median concept count
for filings of the same kind), the required metrics it reports, its balance dates and how
many break the balance sheet equation, the accounting identities (identities.py) it can
check and those that fail, its conflicting duplicate keys and the values other filings
contradict. Three temporary tables (``_qs_*``) hold the filings, their metric values and
their reporting currency while one query pivots the values per period.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import duckdb

from finloom_core.quality.identities import (
    BALANCE_PARTS_TOLERANCE,
    BALANCE_TOLERANCE,
    EPS_TOLERANCE,
    IDENTITIES,
    IDENTITY_TOLERANCE,
)
from finloom_core.quality.scope import (
    ANNUAL_FORMS,
    CONCEPTS_VIEW,
    PERIODIC_FORMS,
    company_scope,
    register_concepts,
    rows,
)

CHUNK_COMPANIES = 250  # companies whose statistics are read in one pass (collect_filing_stats)

REQUIRED_METRICS = (
    "revenue",
    "net_income",
    "eps_basic",
    "total_assets",
    "stockholders_equity",
    "liabilities_and_equity",
    "cash_and_equivalents",
    "operating_cash_flow",
)
_VALUE_METRICS = (
    "total_assets",
    "total_liabilities",
    "stockholders_equity",
    "noncontrolling_interest",
    "temporary_equity",
    "liabilities_and_equity",
    "current_assets",
    "current_liabilities",
    "revenue",
    "cost_of_revenue",
    "gross_profit",
    "operating_expenses",
    "operating_income",
    "research_and_development",
    "selling_general_administrative",
    "net_income",
    "eps_basic",
    "eps_diluted",
    "weighted_shares_basic",
    "weighted_shares_diluted",
    "cash_and_equivalents",
    "accounts_receivable",
    "inventory",
    "property_plant_equipment_net",
    "accounts_payable",
    "long_term_debt",
)

_FILINGS = """
CREATE OR REPLACE TEMP TABLE _qs_filings AS
SELECT cik, accession, any_value(form) AS form, mode(fiscal_year) AS fiscal_year,
       mode(fiscal_period) AS fiscal_period, count(*) AS facts,
       count(*) FILTER (WHERE value IS NULL) AS null_values,
       count(DISTINCT taxonomy || ':' || concept) AS concepts,
       list_contains($annual, any_value(form)) AS annual
FROM facts WHERE list_contains($ciks, cik) AND list_contains($forms, form)
GROUP BY cik, accession
"""

_VALUES = f"""
CREATE OR REPLACE TEMP TABLE _qs_values AS
SELECT x.accession, c.metric, x.unit, x.period_start, x.period_end,
       arg_min(x.value, c.rank) AS value
FROM facts x
JOIN {CONCEPTS_VIEW} c ON c.taxonomy = x.taxonomy AND c.concept = x.concept
WHERE x.accession IN (SELECT accession FROM _qs_filings) AND x.value IS NOT NULL
GROUP BY ALL
"""

# The currency most of a filing's monetary values are in: identities compare amounts in it,
# with share counts and per-share amounts in that currency.
_CURRENCY = """
CREATE OR REPLACE TEMP TABLE _qs_currency AS
SELECT accession, mode(unit) AS currency FROM _qs_values
WHERE regexp_full_match(unit, '[A-Z]{3}') GROUP BY accession
"""

_STATS = """
WITH v AS (
    PIVOT (
        SELECT x.accession, x.metric, x.period_start, x.period_end, x.value
        FROM _qs_values x JOIN _qs_currency c USING (accession)
        WHERE list_contains($value_metrics, x.metric)
          AND x.unit IN (c.currency, c.currency || '/shares', 'shares')
    )
    ON metric IN ({metrics}) USING any_value(value)
    GROUP BY accession, period_start, period_end
),
balance AS (
    SELECT accession, count(*) AS dates,
           count(*) FILTER (WHERE NOT ok) AS broken,
           min(period_end) FILTER (WHERE NOT ok) AS broken_date
    FROM (
        -- assets = liabilities_and_equity when both are reported, and assets = liabilities
        -- + equity (with noncontrolling interest and/or temporary equity) when those are
        -- reported: a date is broken when either available form fails. With the total
        -- reported and holding, the sum may miss a mezzanine line the catalogue does not
        -- name (convertible notes, redeemable interests): it then only has to come within
        -- $bt_parts of assets, which a wrong liabilities or equity figure does not.
        SELECT accession, period_end,
               coalesce(bool_or(abs(total_assets - liabilities_and_equity)
                                <= $bt * abs(total_assets)), true)
               AND coalesce(bool_or(abs(total_assets - e) <= CASE
                                WHEN liabilities_and_equity IS NULL THEN $bt ELSE $bt_parts
                            END * abs(total_assets)), true) AS ok
        FROM v, LATERAL (SELECT unnest([
            total_liabilities + stockholders_equity,
            total_liabilities + stockholders_equity + coalesce(noncontrolling_interest, 0),
            total_liabilities + stockholders_equity + coalesce(temporary_equity, 0),
            total_liabilities + stockholders_equity + coalesce(noncontrolling_interest, 0)
                + coalesce(temporary_equity, 0)]) AS e)
        WHERE period_start IS NULL AND total_assets IS NOT NULL
          AND (e IS NOT NULL OR liabilities_and_equity IS NOT NULL)
        GROUP BY accession, period_end
    ) GROUP BY accession
),
identities AS (
    SELECT accession, {identity_checks} AS checks,
           list_filter([{identity_failures}], lambda n: n IS NOT NULL) AS failed_identities
    FROM v GROUP BY accession
),
present AS (
    SELECT accession, list(DISTINCT metric) AS metrics FROM _qs_values
    WHERE list_contains($required, metric) GROUP BY accession
),
{cross_filing}
SELECT f.cik, f.accession, f.form, f.fiscal_year, f.fiscal_period, f.facts, f.null_values,
       f.concepts,
       median(f.concepts) OVER (PARTITION BY f.cik, f.annual) AS usual_concepts,
       coalesce(p.metrics, []) AS present, coalesce(b.dates, 0) AS balance_dates,
       coalesce(b.broken, 0) AS balance_broken, b.broken_date,
       coalesce(i.checks, 0) AS identity_checks,
       coalesce(i.failed_identities, []) AS failed_identities,
       coalesce(c.keys, 0) AS conflicts, coalesce(n.facts, 0) AS inconsistent
FROM _qs_filings f
LEFT JOIN present p USING (accession)
LEFT JOIN balance b USING (accession)
LEFT JOIN identities i USING (accession)
LEFT JOIN conflicts c USING (accession)
LEFT JOIN inconsistent n USING (accession)
ORDER BY f.cik, f.accession
"""


# The two cross-filing statistics (conflicting duplicates, contradicted values) read every
# fact of the companies; the identities check of the reconciliation skips them.
_CROSS_FILING = """conflicts AS (
    SELECT accession, count(*) AS keys FROM (
        SELECT accession FROM facts WHERE accession IN (SELECT accession FROM _qs_filings)
        GROUP BY accession, taxonomy, concept, unit, period_start, period_end
        HAVING count(DISTINCT value) > 1)
    GROUP BY accession
),
keyed AS (
    SELECT accession, value,
           count(DISTINCT accession) OVER k AS filings,
           count(DISTINCT value) OVER k AS distinct_values,
           count(DISTINCT accession) OVER (PARTITION BY cik, taxonomy, concept, unit,
               period_start, period_end, value) AS agreeing
    FROM facts WHERE list_contains($ciks, cik) AND value IS NOT NULL
    WINDOW k AS (PARTITION BY cik, taxonomy, concept, unit, period_start, period_end)
),
inconsistent AS (
    SELECT accession, count(*) AS facts FROM keyed
    WHERE filings >= 3 AND distinct_values = 2 AND agreeing = 1
      AND accession IN (SELECT accession FROM _qs_filings)
    GROUP BY accession
)
"""
_NO_CROSS_FILING = """conflicts AS (SELECT NULL::VARCHAR AS accession, 0 AS keys WHERE false),
inconsistent AS (SELECT NULL::VARCHAR AS accession, 0 AS facts WHERE false)"""


@dataclass(frozen=True, slots=True)
class FilingStats:
    """One filing's statistics (the columns of the query below, by name)."""

    cik: int
    accession: str
    form: str | None
    fiscal_year: int | None
    fiscal_period: str | None
    facts: int
    null_values: int
    concepts: int
    usual_concepts: float | None  # median concepts of the company's filings of this kind
    present: tuple[str, ...]  # the REQUIRED_METRICS it reports
    balance_dates: int
    balance_broken: int
    broken_date: dt.date | None  # the first broken balance date
    identity_checks: int
    failed_identities: tuple[str, ...]
    conflicts: int  # conflicting duplicate keys
    inconsistent: int  # values contradicted by two or more agreeing filings

    @classmethod
    def of(cls, row: dict[str, Any]) -> FilingStats:
        lists = {k: tuple(row[k]) for k in ("present", "failed_identities")}
        return cls(**(row | lists))


def _filing_stats(
    con: duckdb.DuckDBPyConnection, ciks: list[int], *, cross_filing: bool = True
) -> list[FilingStats]:
    params = {"ciks": ciks, "forms": list(PERIODIC_FORMS), "annual": list(ANNUAL_FORMS)}
    con.execute(_FILINGS, params)
    con.execute(_VALUES)
    con.execute(_CURRENCY)
    # the SQL below is assembled from this module's fixed tuples, never from data
    metrics = ", ".join(f"'{m}'" for m in _VALUE_METRICS)
    checks = " + ".join(f"count(({sql}))" for _, sql in IDENTITIES)
    failures = ", ".join(
        f"CASE WHEN bool_or(({sql})) THEN '{name}' END" for name, sql in IDENTITIES
    )
    sql = _STATS.format(
        metrics=metrics,
        identity_checks=checks,
        identity_failures=failures,
        cross_filing=_CROSS_FILING if cross_filing else _NO_CROSS_FILING,
    )
    values = {
        "ciks": ciks,
        "value_metrics": list(_VALUE_METRICS),
        "required": list(REQUIRED_METRICS),
        "bt": BALANCE_TOLERANCE,
        "bt_parts": BALANCE_PARTS_TOLERANCE,
        "it": IDENTITY_TOLERANCE,
        "et": EPS_TOLERANCE,
    }
    return [FilingStats.of(row) for row in rows(con, sql, values)]


def collect_filing_stats(
    con: duckdb.DuckDBPyConnection, ciks: Sequence[int], *, cross_filing: bool = True
) -> list[FilingStats]:
    """:func:`filing_stats` for a caller that has registered the catalogue view itself
    (the reconciliation engine).

    Every statistic is a company's own (by filing, or over the company's facts), so the
    companies are read in chunks of :data:`CHUNK_COMPANIES`, in CIK order: the window
    functions and DISTINCT aggregates, which DuckDB cannot spill, then hold one chunk's
    facts, never the warehouse's, and the rows come out in the same order."""
    wanted = sorted({int(c) for c in ciks})
    stats: list[FilingStats] = []
    try:
        for start in range(0, len(wanted), CHUNK_COMPANIES):
            chunk = wanted[start : start + CHUNK_COMPANIES]
            stats += _filing_stats(con, chunk, cross_filing=cross_filing)
        return stats
    finally:
        for table in ("_qs_filings", "_qs_values", "_qs_currency"):
            con.execute(f"DROP TABLE IF EXISTS {table}")


def filing_stats(
    con: duckdb.DuckDBPyConnection,
    ciks: Sequence[int] | None = None,
    *,
    cross_filing: bool = True,
) -> list[FilingStats]:
    """The statistics every component scores, one per periodic filing with facts
    (``cross_filing=False``: without the conflicts and contradicted-value counts, which
    read every fact; enough for the identities)."""
    register_concepts(con)
    try:
        return collect_filing_stats(con, company_scope(con, ciks), cross_filing=cross_filing)
    finally:
        with suppress(duckdb.Error):
            con.unregister(CONCEPTS_VIEW)
