"""The reconciliation engine: set-wise checks of the warehouse, each one SQL pass.

========================  ========  ====================================================
check                     severity  what fails it
========================  ========  ====================================================
filing_count              warning   an XBRL 10-K/10-Q/20-F (or amendment) listed in the
                                    submissions of a company with facts has none loaded
                                    (companies with no companyfacts at all are listed
                                    apart, not counted)
facts_to_filings          error     a fact's accession has no ``filings`` row
normalized_to_raw         error     a reported ``financials`` row differs from its source
                                    fact, or a derived row does not recompute from its
                                    inputs (catalogue formulas; Q2/Q3/Q4 from year-to-date
                                    facts; Q4 = FY - Q1 - Q2 - Q3)
duplicates                error     one fact key (accession, taxonomy, concept, unit,
                                    period) carries two different values
restatements              info      the same period re-reported with another value by
                                    another filing: listed, never failed (part of the
                                    duplicates check, reported on its own line); the
                                    sample lists first the "contradicted" values (one
                                    filing against two or more agreeing ones: a typo or
                                    a later-corrected value), largest change first
completeness              warning   an original (not amended: amendments are often cover
                                    pages) annual or quarterly filing lacks a core metric
referential_integrity     critical  a fact, filing or financials row names a company that
                                    does not exist (error when only filings are missing)
accounting_identities     warning   a filing's own figures contradict each other: the
                                    balance sheet equation or another identity of the
                                    filing quality score fails (finloom_core.quality.
                                    scoring.IDENTITIES); the sample names the identities
========================  ========  ====================================================

Every ``detail`` holds counts and a ``sample`` of at most 20 affected keys. Values are
compared with a relative tolerance of 1e-6 (plus half a unit) so float rounding never fails
a check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import duckdb

from finloom_core.normalize.catalogue import load_catalogue
from finloom_core.quality.scope import (
    ANNUAL_FORMS,
    CONCEPTS_VIEW,
    PERIODIC_FORMS,
    SAMPLE_SIZE,
    company_scope,
    register_concepts,
    used_params,
)

log = logging.getLogger(__name__)

SEVERITIES = ("info", "warning", "error", "critical")
CORE_METRICS = ("revenue", "net_income", "total_assets", "stockholders_equity")
TOLERANCE = "(1e-6 * greatest(abs({a}), abs({b})) + 0.5)"


@dataclass(frozen=True)
class CheckResult:
    check: str
    severity: str
    passed: bool
    affected_records: int
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")


def _close(a: str, b: str) -> str:
    return f"abs({a} - {b}) <= {TOLERANCE.format(a=a, b=b)}"


Params = dict[str, Any]


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Params) -> list[dict[str, Any]]:
    cursor = con.execute(sql, used_params(sql, params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _sample(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: _jsonable(v) for k, v in r.items()} for r in rows[:SAMPLE_SIZE]]


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def check_filing_count(con: duckdb.DuckDBPyConnection, params: Params) -> CheckResult:
    per_company = _rows(
        con,
        """
        SELECT f.cik, count(*) AS listed,
               count(*) FILTER (WHERE l.accession IS NOT NULL) AS loaded
        FROM filings f
        LEFT JOIN (SELECT DISTINCT accession FROM facts WHERE list_contains($ciks, cik)) l
          ON l.accession = f.accession
        WHERE list_contains($ciks, f.cik) AND f.is_xbrl AND list_contains($forms, f.form)
        GROUP BY f.cik ORDER BY f.cik
        """,
        params,
    )
    missing = _rows(
        con,
        """
        SELECT f.cik, f.accession, f.form, f.filed FROM filings f
        WHERE list_contains($ciks, f.cik) AND f.is_xbrl AND list_contains($forms, f.form)
          AND f.cik IN (SELECT cik FROM facts)
          AND NOT EXISTS (SELECT 1 FROM facts x WHERE x.accession = f.accession)
        ORDER BY f.filed DESC, f.accession
        """,
        params,
    )
    short = [r for r in per_company if r["listed"] != r["loaded"] and r["loaded"] > 0]
    detail = {
        "companies_without_facts": [r["cik"] for r in per_company if r["loaded"] == 0][:20],
        "listed": sum(r["listed"] for r in per_company),
        "loaded": sum(r["loaded"] for r in per_company),
        "companies_short": {str(r["cik"]): [r["listed"], r["loaded"]] for r in short[:20]},
        "sample": _sample(missing),
    }
    return CheckResult("filing_count", "warning", not missing, len(missing), detail)


def check_facts_to_filings(con: duckdb.DuckDBPyConnection, params: Params) -> CheckResult:
    orphans = _rows(
        con,
        """
        SELECT x.cik, x.accession, any_value(x.form) AS form, count(*) AS facts
        FROM facts x LEFT JOIN filings f ON f.accession = x.accession
        WHERE list_contains($ciks, x.cik) AND f.accession IS NULL
        GROUP BY x.cik, x.accession ORDER BY facts DESC, x.accession
        """,
        params,
    )
    sql = """
        SELECT count(*) FROM filings f
        WHERE list_contains($ciks, f.cik) AND f.is_xbrl AND list_contains($forms, f.form)
          AND NOT EXISTS (SELECT 1 FROM facts x WHERE x.accession = f.accession)
        """
    without = con.execute(sql, used_params(sql, params)).fetchall()[0][0]
    affected = sum(r["facts"] for r in orphans)
    detail = {
        "orphan_accessions": len(orphans),
        "orphan_facts": affected,
        "xbrl_filings_without_facts": int(without),
        "sample": _sample(orphans),
    }
    return CheckResult("facts_to_filings", "error", not orphans, affected, detail)


_REPORTED_MISMATCH = f"""
SELECT n.cik, n.metric, n.fiscal_year, n.fiscal_period, n.accession, n.source_concept,
       n.value, min(x.value) AS fact_value
FROM financials n
LEFT JOIN facts x
  ON x.cik = n.cik AND x.accession = n.accession AND x.taxonomy = n.source_taxonomy
 AND x.concept = n.source_concept AND x.unit = n.unit AND x.period_end = n.period_end
 AND x.period_start IS NOT DISTINCT FROM n.period_start
WHERE list_contains($ciks, n.cik) AND n.method = 'reported'
GROUP BY ALL
HAVING NOT coalesce(bool_or({_close("x.value", "n.value")}), false)
ORDER BY n.cik, n.metric, n.fiscal_year, n.fiscal_period
"""

_FORMULA_MISMATCH = f"""
WITH terms AS (
    SELECT unnest($targets) AS target, unnest($formulas) AS formula, unnest($terms) AS metric,
           unnest($signs) AS sign, unnest($optional) AS optional
),
recomputed AS (
    SELECT d.cik, d.metric, d.fiscal_year, d.fiscal_period, d.formula, d.value,
           sum(t.sign * coalesce(i.value, 0)) AS expected,
           count(*) FILTER (WHERE NOT t.optional AND i.value IS NULL) AS absent
    FROM financials d
    JOIN terms t ON t.target = d.metric AND t.formula = d.formula
    LEFT JOIN financials i
      ON i.cik = d.cik AND i.metric = t.metric AND i.fiscal_year = d.fiscal_year
     AND i.fiscal_period = d.fiscal_period AND i.unit = d.unit
    WHERE list_contains($ciks, d.cik) AND d.method = 'derived'
    GROUP BY ALL
)
SELECT cik, metric, fiscal_year, fiscal_period, formula, value, expected FROM recomputed
WHERE absent = 0 AND NOT {_close("value", "expected")}
ORDER BY cik, metric, fiscal_year, fiscal_period
"""

_YTD_MISMATCH = f"""
WITH derived AS (
    SELECT * FROM financials
    WHERE list_contains($ciks, cik) AND method = 'derived'
      AND formula IN ('6M YTD - Q1', '9M YTD - 6M YTD', 'FY - 9M YTD')
),
spans AS (
    SELECT x.cik, c.metric, x.period_start, x.period_end, x.value, x.unit
    FROM facts x JOIN {CONCEPTS_VIEW} c ON c.taxonomy = x.taxonomy AND c.concept = x.concept
    WHERE list_contains($ciks, x.cik) AND x.period_start IS NOT NULL AND x.value IS NOT NULL
),
checked AS (
    SELECT d.cik, d.metric, d.fiscal_year, d.fiscal_period, d.formula, d.value,
           count(a.value) AS pairs,
           bool_or({_close("a.value - b.value", "d.value")}) AS recomputes,
           min(a.value - b.value) AS expected
    FROM derived d
    LEFT JOIN spans a ON a.cik = d.cik AND a.metric = d.metric AND a.unit = d.unit
     AND a.period_end = d.period_end
    LEFT JOIN spans b ON b.cik = d.cik AND b.metric = d.metric AND b.unit = d.unit
     AND b.period_start = a.period_start AND b.period_end = d.period_start - 1
    GROUP BY ALL
)
SELECT cik, metric, fiscal_year, fiscal_period, formula, value, expected FROM checked
WHERE pairs > 0 AND NOT recomputes
ORDER BY cik, metric, fiscal_year, fiscal_period
"""

_QUARTER_SUM_MISMATCH = f"""
SELECT d.cik, d.metric, d.fiscal_year, d.fiscal_period, d.formula, d.value,
       fy.value - sum(q.value) AS expected
FROM financials d
JOIN financials fy ON fy.cik = d.cik AND fy.metric = d.metric
 AND fy.fiscal_year = d.fiscal_year AND fy.fiscal_period = 'FY'
JOIN financials q ON q.cik = d.cik AND q.metric = d.metric
 AND q.fiscal_year = d.fiscal_year AND q.fiscal_period IN ('Q1', 'Q2', 'Q3')
WHERE list_contains($ciks, d.cik) AND d.method = 'derived' AND d.formula = 'FY - Q1 - Q2 - Q3'
GROUP BY d.cik, d.metric, d.fiscal_year, d.fiscal_period, d.formula, d.value, fy.value
HAVING count(*) = 3 AND NOT {_close("d.value", "fy.value - sum(q.value)")}
"""


def _formula_params() -> Params:
    specs = [s for s in load_catalogue().metrics.values() if s.formula]
    terms = [(s, t) for s in specs for t in s.formula]
    return {
        "targets": [s.name for s, _ in terms],
        "terms": [t.metric for _, t in terms],
        "signs": [t.sign for _, t in terms],
        "optional": [t.optional for _, t in terms],
        "formulas": [s.formula_text for s, _ in terms],
    }


def check_normalized_to_raw(con: duckdb.DuckDBPyConnection, params: Params) -> CheckResult:
    ciks = {"ciks": params["ciks"]}
    reported = _rows(con, _REPORTED_MISMATCH, ciks)
    formulas = _rows(con, _FORMULA_MISMATCH, ciks | _formula_params())
    ytd = _rows(con, _YTD_MISMATCH, ciks)
    quarters = _rows(con, _QUARTER_SUM_MISMATCH, ciks)
    derived = formulas + ytd + quarters
    detail = {
        "reported_mismatches": len(reported),
        "derived_mismatches": len(derived),
        "sample": _sample(reported + derived),
    }
    affected = len(reported) + len(derived)
    return CheckResult("normalized_to_raw", "error", affected == 0, affected, detail)


_KEY = "x.cik, x.taxonomy, x.concept, x.unit, x.period_start, x.period_end"


_RESTATED = f"""
WITH per_value AS (
    SELECT {_KEY}, x.value, count(DISTINCT x.accession) AS filings,
           min(x.accession) AS accession
    FROM facts x WHERE list_contains($ciks, x.cik) AND x.value IS NOT NULL
    GROUP BY ALL
)
SELECT {_KEY.replace("x.", "")}, count(*) AS values,
       min(value) AS low, max(value) AS high,
       arg_min(accession, value) AS low_accession, arg_max(accession, value) AS high_accession,
       count(*) = 2 AND min(filings) = 1 AND max(filings) >= 2 AS contradicted,
       (max(value) - min(value)) / nullif(greatest(abs(min(value)), abs(max(value))), 0)
           AS relative_change
FROM per_value x
GROUP BY {_KEY}
HAVING count(*) > 1 AND NOT {_close("min(value)", "max(value)")}
ORDER BY contradicted DESC, relative_change DESC NULLS LAST, cik, concept
"""


def check_duplicates(con: duckdb.DuckDBPyConnection, params: Params) -> list[CheckResult]:
    conflicts = _rows(
        con,
        f"""
        SELECT x.accession, {_KEY}, count(*) AS rows, list(DISTINCT x.value) AS values
        FROM facts x WHERE list_contains($ciks, x.cik)
        GROUP BY x.accession, {_KEY} HAVING count(DISTINCT x.value) > 1
        ORDER BY x.cik, x.accession, x.concept
        """,
        params,
    )
    restated = _rows(con, _RESTATED, params)
    affected = sum(r["rows"] for r in conflicts)
    dup = CheckResult(
        "duplicates",
        "error",
        not conflicts,
        affected,
        {"conflicting_keys": len(conflicts), "sample": _sample(conflicts)},
    )
    info = CheckResult(
        "restatements",
        "info",
        True,
        len(restated),
        {
            "restated_periods": len(restated),
            "contradicted": sum(bool(r["contradicted"]) for r in restated),
            "sample": _sample(restated),
        },
    )
    return [dup, info]


def check_completeness(con: duckdb.DuckDBPyConnection, params: Params) -> CheckResult:
    missing = _rows(
        con,
        f"""
        WITH filings_in AS (
            SELECT DISTINCT cik, accession, form FROM facts
            WHERE list_contains($ciks, cik) AND list_contains($forms, form)
              AND NOT suffix(form, '/A')
        ),
        present AS (
            SELECT DISTINCT x.accession, c.metric
            FROM facts x JOIN {CONCEPTS_VIEW} c
              ON c.taxonomy = x.taxonomy AND c.concept = x.concept
            WHERE list_contains($ciks, x.cik) AND list_contains($core, c.metric)
              AND x.value IS NOT NULL
        )
        SELECT f.cik, f.accession, f.form,
               list_sort(list_filter($core, lambda m: NOT list_contains(
                   coalesce(list(p.metric) FILTER (WHERE p.metric IS NOT NULL), []), m)))
                   AS missing
        FROM filings_in f LEFT JOIN present p ON p.accession = f.accession
        GROUP BY ALL HAVING len(missing) > 0
        ORDER BY f.cik, f.accession
        """,
        params | {"core": list(CORE_METRICS)},
    )
    annual = sum(r["form"] in ANNUAL_FORMS for r in missing)
    detail = {
        "core_metrics": list(CORE_METRICS),
        "annual_incomplete": annual,
        "quarterly_incomplete": len(missing) - annual,
        "sample": _sample(missing),
    }
    return CheckResult("completeness", "warning", not missing, len(missing), detail)


_DANGLING = """
SELECT 'facts' AS source, 'companies' AS target, cik, NULL AS accession, count(*) AS n
FROM facts WHERE list_contains($ciks, cik)
  AND cik NOT IN (SELECT cik FROM companies) GROUP BY cik
UNION ALL
SELECT 'filings', 'companies', cik, NULL, count(*) FROM filings
WHERE list_contains($ciks, cik) AND cik NOT IN (SELECT cik FROM companies) GROUP BY cik
UNION ALL
SELECT 'financials', 'companies', cik, NULL, count(*) FROM financials
WHERE list_contains($ciks, cik) AND cik NOT IN (SELECT cik FROM companies) GROUP BY cik
UNION ALL
SELECT 'financials', 'filings', cik, accession, count(*) FROM financials
WHERE list_contains($ciks, cik) AND accession IS NOT NULL
  AND accession NOT IN (SELECT accession FROM filings) GROUP BY cik, accession
UNION ALL
SELECT 'filing_companies', 'filings', cik, accession, count(*) FROM filing_companies
WHERE list_contains($ciks, cik) AND accession NOT IN (SELECT accession FROM filings)
GROUP BY cik, accession
ORDER BY target, source, cik, accession
"""


def check_referential_integrity(con: duckdb.DuckDBPyConnection, params: Params) -> CheckResult:
    dangling = _rows(con, _DANGLING, {"ciks": params["ciks"]})
    no_company = [r for r in dangling if r["target"] == "companies"]
    severity = "critical" if no_company else "error"
    detail = {
        "rows_without_company": sum(r["n"] for r in no_company),
        "rows_without_filing": sum(r["n"] for r in dangling if r["target"] == "filings"),
        "sample": _sample(dangling),
    }
    affected = sum(r["n"] for r in dangling)
    return CheckResult("referential_integrity", severity, not dangling, affected, detail)


def check_accounting_identities(con: duckdb.DuckDBPyConnection, params: Params) -> CheckResult:
    from finloom_core.quality.scoring import collect_filing_stats, identity_failures

    # the catalogue view is registered by run_checks
    failing = identity_failures(collect_filing_stats(con, params["ciks"], cross_filing=False))
    detail = {
        "filings": len(failing),
        "balance_sheet_broken": sum(1 for f in failing if f["balance_sheet_broken_dates"]),
        "sample": _sample(failing),
    }
    return CheckResult("accounting_identities", "warning", not failing, len(failing), detail)


Check = Callable[[duckdb.DuckDBPyConnection, Params], CheckResult | list[CheckResult]]
CHECKS: tuple[Check, ...] = (
    check_filing_count,
    check_facts_to_filings,
    check_normalized_to_raw,
    check_duplicates,
    check_completeness,
    check_referential_integrity,
    check_accounting_identities,
)


def run_checks(
    con: duckdb.DuckDBPyConnection, ciks: Sequence[int] | None = None
) -> list[CheckResult]:
    """Run the checks over ``ciks`` (every company when None); the duplicates check yields
    two results (``duplicates`` and the info-level ``restatements``)."""
    params: Params = {"ciks": company_scope(con, ciks), "forms": list(PERIODIC_FORMS)}
    register_concepts(con)
    results: list[CheckResult] = []
    try:
        for check in CHECKS:
            outcome = check(con, params)
            results += outcome if isinstance(outcome, list) else [outcome]
    finally:
        with suppress(duckdb.Error):
            con.unregister(CONCEPTS_VIEW)
    for r in results:
        level = logging.INFO if r.passed else logging.WARNING
        log.log(level, "check %s: passed=%s affected=%d", r.check, r.passed, r.affected_records)
    return results
