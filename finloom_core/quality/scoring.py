"""Filing quality scores: 0-100 per 10-K/10-Q/20-F (and amendment) with facts, and a grade.

A filing's score is the weighted mean of its components' scores (each 0-100); every
component keeps its score, weight and a reason, so a user sees why a filing got a D.

==============  ======  ================================================================
component       weight  score
==============  ======  ================================================================
coverage        15      share of the required metrics (REQUIRED_METRICS; any concept of
                        the metric's catalogue chain counts) the filing reports
balance_sheet   20      at every balance date of the filing, within 0.5 % of assets:
                        assets = liabilities_and_equity where both are reported, and
                        assets = liabilities + equity (+ noncontrolling interest,
                        + temporary equity) where those are: 100 if every date holds,
                        0 if any date is broken, 50 if no date has the inputs
identities      25      the IDENTITIES below, for every period of the filing, in its
                        reporting currency: gross profit and operating income, EPS x
                        weighted shares = net income (5 %), diluted <= basic EPS,
                        diluted >= basic shares, and parts <= totals; any failing
                        identity costs 100 (100 when none can be checked: missing inputs
                        already cost coverage). The reason names the failing identities.
duplicates      15      conflicting duplicate facts (one key, two values) in the filing:
                        100 with none, each conflicting key costs 25
consistency     10      values contradicted by the rest of the record: a fact whose period
                        at least two other filings report with one agreeing value that
                        differs from it (a later-corrected value or a typo); each costs 10
missing_values  5       share of the filing's facts that carry a value
depth           10      stands in for dimensional complexity, which companyfacts
                        cannot show (it carries no dimensions and no company extension
                        concepts): the filing's count of distinct concepts against the
                        median of the company's filings of the same kind (annual or
                        quarterly); 100 at or above 80 % of that median, falling linearly
                        to 0, so a truncated or cover-page-only filing scores low
==============  ======  ================================================================

An amendment that carries no financial statements (no required metric at all: a Part III
or cover-page 10-K/A) is scored on the other components only; coverage, balance_sheet and
depth keep their score and reason with weight 0, marked not applicable.

A filing's own figures contradicting each other is the strongest sign of a bad value
(cross-filing differences are common in real data: reclassifications and restatements),
so identities weigh most: one broken identity takes an otherwise clean filing to about 75.

Grades: A >= 90, B >= 80, C >= 70, D >= 60, else F. A company's score is the mean of its
filings' scores, graded the same way, with the distribution of its filings' grades.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

import duckdb
import pyarrow as pa

from finloom_core.quality.scope import (
    ANNUAL_FORMS,
    CONCEPTS_VIEW,
    PERIODIC_FORMS,
    company_scope,
    register_concepts,
    used_params,
)

log = logging.getLogger(__name__)

BALANCE_TOLERANCE = 0.005  # relative to total assets
BALANCE_PARTS_TOLERANCE = 0.05  # liabilities + equity, when liabilities_and_equity holds
IDENTITY_TOLERANCE = 0.005  # relative to revenue (or to the larger side of an inequality)
EPS_TOLERANCE = 0.05  # EPS x weighted shares vs net income, plus half a cent a share
DUPLICATE_PENALTY = 25.0
INCONSISTENT_PENALTY = 10.0
IDENTITY_PENALTY = 100.0
DEPTH_NORM = 0.8  # share of the company's median concept count that scores 100

# component -> (weight, what it measures); weights sum to 100
COMPONENTS: dict[str, tuple[float, str]] = {
    "coverage": (15.0, "required metrics reported"),
    "balance_sheet": (20.0, "assets = liabilities + equity within 0.5%"),
    "identities": (25.0, "income statement, EPS and part <= total identities"),
    "duplicates": (15.0, "no conflicting duplicate facts"),
    "consistency": (10.0, "values not contradicted by other filings"),
    "missing_values": (5.0, "facts carry values"),
    "depth": (10.0, "concept count vs the company's usual filing"),
}
GRADES = ((90.0, "A"), (80.0, "B"), (70.0, "C"), (60.0, "D"), (0.0, "F"))
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

# Accounting identities: (name, SQL that is NULL when the inputs are missing, else true when
# the identity FAILS). Every one held in the real sample's filings but for a handful of
# reporting errors, except eps (about 9 % of filings, mostly share counts tagged in thousands
# and EPS of continuing operations; both are worth a look).
IDENTITIES: tuple[tuple[str, str], ...] = (
    ("gross_profit", "abs(gross_profit - (revenue - cost_of_revenue)) > $it * abs(revenue)"),
    (
        "operating_income",
        "abs(operating_income - (gross_profit - operating_expenses)) > $it * abs(revenue)"
        " AND abs(operating_income - (revenue - operating_expenses)) > $it * abs(revenue)",
    ),
    (
        "eps",
        "abs(eps_basic * weighted_shares_basic - net_income)"
        " > $et * abs(net_income) + 0.006 * weighted_shares_basic",
    ),
    ("gross_profit_le_revenue", "gross_profit > revenue * (1 + $it)"),
    (
        "opex_parts_le_opex",
        "research_and_development + selling_general_administrative"
        " > operating_expenses * (1 + $it)",
    ),
    ("diluted_eps_le_basic", "net_income > 0 AND eps_diluted > eps_basic + 0.005"),
    ("diluted_shares_ge_basic", "weighted_shares_diluted < weighted_shares_basic * 0.999"),
    ("current_assets_le_total", "current_assets > total_assets * (1 + $it)"),
    ("current_liabilities_le_total", "current_liabilities > total_liabilities * (1 + $it)"),
    ("cash_le_current_assets", "cash_and_equivalents > current_assets * (1 + $it)"),
    ("receivables_le_current_assets", "accounts_receivable > current_assets * (1 + $it)"),
    ("inventory_le_current_assets", "inventory > current_assets * (1 + $it)"),
    ("ppe_le_total_assets", "property_plant_equipment_net > total_assets * (1 + $it)"),
    ("payables_le_current_liabilities", "accounts_payable > current_liabilities * (1 + $it)"),
    ("long_term_debt_le_liabilities", "long_term_debt > total_liabilities * (1 + $it)"),
)

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


def grade(score: float) -> str:
    return next(letter for floor, letter in GRADES if score >= floor)


Component = tuple[float, str]


def _coverage(s: dict[str, Any]) -> Component:
    present = set(s["present"])
    missing = [m for m in REQUIRED_METRICS if m not in present]
    score = 100.0 * (len(REQUIRED_METRICS) - len(missing)) / len(REQUIRED_METRICS)
    return score, f"missing {', '.join(missing)}" if missing else "all required metrics"


def _balance_sheet(s: dict[str, Any]) -> Component:
    if s["balance_dates"] == 0:
        return 50.0, "no balance date with assets and liabilities + equity"
    if s["balance_broken"]:
        return 0.0, (
            f"assets != liabilities + equity at {s['balance_broken']} of "
            f"{s['balance_dates']} dates (first {s['broken_date']})"
        )
    return 100.0, f"holds at {s['balance_dates']} dates"


def _identities(s: dict[str, Any]) -> Component:
    checks, failed = s["identity_checks"], list(s["failed_identities"])
    if checks == 0:
        return 100.0, "no identity checkable"
    score = max(0.0, 100.0 - IDENTITY_PENALTY * len(failed))
    if not failed:
        return score, f"all {checks} identity checks hold"
    return score, f"fails: {', '.join(failed)} ({len(failed)} of {checks} checks)"


def _duplicates(s: dict[str, Any]) -> Component:
    n = s["conflicts"]
    return max(0.0, 100.0 - DUPLICATE_PENALTY * n), f"{n} conflicting duplicate keys"


def _consistency(s: dict[str, Any]) -> Component:
    n = s["inconsistent"]
    score = max(0.0, 100.0 - INCONSISTENT_PENALTY * n)
    return score, f"{n} values contradicted by two or more agreeing filings"


def _missing_values(s: dict[str, Any]) -> Component:
    share = s["null_values"] / s["facts"] if s["facts"] else 1.0
    return 100.0 * (1.0 - share), f"{s['null_values']} of {s['facts']} facts without value"


def _depth(s: dict[str, Any]) -> Component:
    usual = float(s["usual_concepts"] or 0)
    ratio = s["concepts"] / (DEPTH_NORM * usual) if usual else 1.0
    return min(100.0, 100.0 * ratio), f"{s['concepts']} concepts, company median {usual:g}"


SCORERS: dict[str, Callable[[dict[str, Any]], Component]] = {
    "coverage": _coverage,
    "balance_sheet": _balance_sheet,
    "identities": _identities,
    "duplicates": _duplicates,
    "consistency": _consistency,
    "missing_values": _missing_values,
    "depth": _depth,
}


# Components that say nothing about an amendment carrying no financial statements (a
# Part III or cover-page 10-K/A): they are reported with weight 0 and the reason.
STATEMENT_COMPONENTS = ("coverage", "balance_sheet", "depth")


def _statementless_amendment(stats: dict[str, Any]) -> bool:
    return str(stats.get("form") or "").endswith("/A") and not stats["present"]


def score_filing(stats: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """The weighted score of one filing's statistics and its components."""
    components: dict[str, Any] = {}
    total = weights = 0.0
    skip = STATEMENT_COMPONENTS if _statementless_amendment(stats) else ()
    for name, (weight, _) in COMPONENTS.items():
        value, reason = SCORERS[name](stats)
        if name in skip:
            weight, reason = (
                0.0,
                f"not applicable: amendment without financial statements ({reason})",
            )
        components[name] = {"score": round(value, 2), "weight": weight, "reason": reason}
        total += weight * value
        weights += weight
    return round(total / weights, 2), components


SCORE_SCHEMA = pa.schema(
    [
        ("cik", pa.int64()),
        ("accession", pa.string()),
        ("form", pa.string()),
        ("fiscal_year", pa.int32()),
        ("fiscal_period", pa.string()),
        ("score", pa.float64()),
        ("grade", pa.string()),
        ("components", pa.string()),
    ]
)


def _filing_stats(
    con: duckdb.DuckDBPyConnection, ciks: list[int], *, cross_filing: bool = True
) -> list[dict[str, Any]]:
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
    cursor = con.execute(sql, used_params(sql, values))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def collect_filing_stats(
    con: duckdb.DuckDBPyConnection, ciks: Sequence[int], *, cross_filing: bool = True
) -> list[dict[str, Any]]:
    """:func:`filing_stats` for a caller that has registered the catalogue view itself
    (the reconciliation engine)."""
    try:
        return _filing_stats(con, list(ciks), cross_filing=cross_filing)
    finally:
        for table in ("_qs_filings", "_qs_values", "_qs_currency"):
            con.execute(f"DROP TABLE IF EXISTS {table}")


def filing_stats(
    con: duckdb.DuckDBPyConnection,
    ciks: Sequence[int] | None = None,
    *,
    cross_filing: bool = True,
) -> list[dict[str, Any]]:
    """The statistics every component scores, one dict per periodic filing with facts
    (``cross_filing=False``: without the conflicts and contradicted-value counts, which
    read every fact; enough for the identities)."""
    register_concepts(con)
    try:
        return collect_filing_stats(con, company_scope(con, ciks), cross_filing=cross_filing)
    finally:
        with suppress(duckdb.Error):
            con.unregister(CONCEPTS_VIEW)


def identity_failures(stats: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The filings whose balance sheet or other accounting identities fail."""
    return [
        {
            "cik": s["cik"],
            "accession": s["accession"],
            "form": s["form"],
            "fiscal_year": s["fiscal_year"],
            "fiscal_period": s["fiscal_period"],
            "balance_sheet_broken_dates": s["balance_broken"],
            "failed_identities": list(s["failed_identities"]),
        }
        for s in stats
        if s["balance_broken"] or s["failed_identities"]
    ]


def score_filings(con: duckdb.DuckDBPyConnection, ciks: Sequence[int] | None = None) -> pa.Table:
    """One row per periodic filing with facts (see SCORE_SCHEMA)."""
    stats = filing_stats(con, ciks)
    columns: dict[str, list[Any]] = {name: [] for name in SCORE_SCHEMA.names}
    for s in stats:
        score, components = score_filing(s)
        for key in ("cik", "accession", "form", "fiscal_year", "fiscal_period"):
            columns[key].append(s[key])
        columns["score"].append(score)
        columns["grade"].append(grade(score))
        columns["components"].append(json.dumps(components, sort_keys=True))
    log.info("scored %d filings", len(stats))
    return pa.table(columns, schema=SCORE_SCHEMA)


def score_companies(con: duckdb.DuckDBPyConnection, scores: pa.Table | None = None) -> pa.Table:
    """(cik, name, filings, score, grade, grades JSON) per company with scored filings;
    ``scores`` defaults to scoring every filing now."""
    table = score_filings(con) if scores is None else scores
    con.register("_qs_scores", table)
    try:
        rows = con.execute(
            """
            SELECT s.cik, any_value(c.name) AS name, count(*) AS filings,
                   round(avg(s.score), 2) AS score, list(s.grade) AS grades
            FROM _qs_scores s LEFT JOIN companies c ON c.cik = s.cik
            GROUP BY s.cik ORDER BY s.cik
            """
        ).fetchall()
    finally:
        con.unregister("_qs_scores")
    columns: dict[str, list[Any]] = {k: [] for k in ("cik", "name", "filings", "score")}
    columns |= {"grade": [], "grade_distribution": []}
    for cik, name, filings, score, grades in rows:
        distribution = {letter: grades.count(letter) for _, letter in GRADES}
        for key, value in zip(columns, (cik, name, filings, score), strict=False):
            columns[key].append(value)
        columns["grade"].append(grade(score))
        columns["grade_distribution"].append(json.dumps(distribution))
    return pa.table(columns)
