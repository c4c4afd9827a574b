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
                                    period) carries two different values; or one
                                    accession carries facts of two companies that
                                    disagree on its form or filed date (a scoped run
                                    looks at the accessions of its companies and the
                                    other companies listing them in filing_companies)
restatements              info      the same period re-reported with another value by
                                    another filing: listed, never failed (part of the
                                    duplicates check, reported on its own line); the
                                    sample lists first the "contradicted" values (one
                                    filing against two or more agreeing ones: a typo or
                                    a later-corrected value), largest change first
completeness              warning   an original (not amended: amendments are often cover
                                    pages) annual or quarterly filing lacks a core metric
referential_integrity     critical  a fact, filing or financials row names a company that
                                    does not exist (error when only filings are missing);
                                    a scoped run looks for unknown companies in every
                                    row (their cik column only), the rest in its own
accounting_identities     warning   a filing's own figures contradict each other: the
                                    balance sheet equation or another identity of the
                                    filing quality score fails (finloom_core.quality.
                                    identities.IDENTITIES); the sample names the identities
stale_financials          error     a company's facts are newer than its financials: a
                                    load replaced them and the normalize that follows
                                    never finished (the needs-normalize mark is still
                                    set), or it has facts and no financials at all
non_finite_values         critical  a value of facts, financials or financials_history
                                    is NaN or infinite (never a number a filing states)
========================  ========  ====================================================

Every result (results.CheckResult) holds counts in ``detail`` and a ``sample`` of at most 20
affected keys. Values are compared with a relative tolerance of 1e-6 (plus half a unit) so
float rounding never fails a check. The normalized_to_raw check lives in recompute.py.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import math
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

import duckdb

from finloom_core.normalize.freshness import stale_companies
from finloom_core.quality.filing_stats import (
    CHUNK_COMPANIES,
    FilingStats,
    collect_filing_stats,
)
from finloom_core.quality.recompute import check_normalized_to_raw
from finloom_core.quality.results import SAMPLE_SIZE, SEVERITIES, CheckResult
from finloom_core.quality.scope import (
    ANNUAL_FORMS,
    CONCEPTS_VIEW,
    PERIODIC_FORMS,
    Params,
    close,
    company_scope,
    register_concepts,
    rows,
)

__all__ = ["CHECKS", "SEVERITIES", "CheckResult", "check_normalized_to_raw", "run_checks"]

log = logging.getLogger(__name__)

CORE_METRICS = ("revenue", "net_income", "total_assets", "stockholders_equity")


def check_filing_count(con: duckdb.DuckDBPyConnection, params: Params) -> CheckResult:
    per_company = rows(
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
    missing = rows(
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
    }
    return CheckResult.of("filing_count", "warning", len(missing), detail, missing)


def check_facts_to_filings(con: duckdb.DuckDBPyConnection, params: Params) -> CheckResult:
    orphans = rows(
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
        SELECT count(*) AS n FROM filings f
        WHERE list_contains($ciks, f.cik) AND f.is_xbrl AND list_contains($forms, f.form)
          AND NOT EXISTS (SELECT 1 FROM facts x WHERE x.accession = f.accession)
        """
    without = rows(con, sql, params)[0]["n"]
    affected = sum(r["facts"] for r in orphans)
    detail = {
        "orphan_accessions": len(orphans),
        "orphan_facts": affected,
        "xbrl_filings_without_facts": int(without),
    }
    return CheckResult.of("facts_to_filings", "error", affected, detail, orphans)


_KEY = "x.cik, x.taxonomy, x.concept, x.unit, x.period_start, x.period_end"


_RESTATED = f"""
WITH per_value AS (
    -- count(*) of the distinct (key, value, accession) rows, not count(DISTINCT
    -- accession): a DISTINCT aggregate over every fact cannot spill to disk
    SELECT {_KEY}, x.value, count(*) AS filings, min(x.accession) AS accession
    FROM (
        SELECT DISTINCT {_KEY}, x.value, x.accession
        FROM facts x WHERE list_contains($ciks, x.cik) AND x.value IS NOT NULL
    ) x
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
HAVING count(*) > 1 AND NOT {close("min(value)", "max(value)")}
ORDER BY contradicted DESC, relative_change DESC NULLS LAST, cik, concept
"""


# Accessions of the companies in scope that facts of another company (one that lists the
# accession in filing_companies) also carry, with another form or filed date: one filing
# has one form and one date, whoever files it. Only the companies sharing these
# accessions are read, so a scoped run costs what its companies touch.
_SHARED = """
WITH mine AS (SELECT DISTINCT accession FROM facts WHERE list_contains($ciks, cik)),
others AS (
    SELECT DISTINCT cik FROM filing_companies
    WHERE accession IN (SELECT accession FROM mine) AND NOT list_contains($ciks, cik)
),
carried AS (
    SELECT DISTINCT x.accession, x.cik, x.form, x.filed FROM facts x
    WHERE (list_contains($ciks, x.cik) OR x.cik IN (SELECT cik FROM others))
      AND x.accession IN (SELECT accession FROM mine)
)
SELECT accession, list(DISTINCT cik ORDER BY cik) AS ciks,
       list(DISTINCT form ORDER BY form) AS forms, list(DISTINCT filed ORDER BY filed) AS filed
FROM carried GROUP BY accession
HAVING count(DISTINCT cik) > 1 AND (count(DISTINCT form) > 1 OR count(DISTINCT filed) > 1)
ORDER BY accession
"""


# Keys (accession + _KEY) that carry two different values. The pass over every fact of the
# scope is a plain aggregate (count, min, max: DuckDB spills it to disk); the DISTINCT list
# of values, an aggregate that cannot spill, is built only for the few conflicting keys.
_CONFLICTS = f"""
WITH conflicting AS (
    SELECT x.accession, {_KEY}, count(*) AS rows
    FROM facts x WHERE list_contains($ciks, x.cik)
    GROUP BY x.accession, {_KEY} HAVING min(x.value) < max(x.value)
)
SELECT k.accession, k.cik, k.taxonomy, k.concept, k.unit, k.period_start, k.period_end,
       k.rows, list(DISTINCT x.value) AS values
FROM conflicting k JOIN facts x
  ON x.accession = k.accession AND x.cik = k.cik
 AND x.taxonomy IS NOT DISTINCT FROM k.taxonomy AND x.concept IS NOT DISTINCT FROM k.concept
 AND x.unit IS NOT DISTINCT FROM k.unit AND x.period_start IS NOT DISTINCT FROM k.period_start
 AND x.period_end IS NOT DISTINCT FROM k.period_end
GROUP BY ALL
ORDER BY k.cik, k.accession, k.concept
"""


def _restated_order(row: Params) -> tuple[bool, float, int, str]:
    """The ORDER BY of _RESTATED: contradicted first, largest change first (NULL last; NaN
    sorts above every number), then cik and concept."""
    change = row["relative_change"]
    rank = -math.inf if change is None else math.inf if math.isnan(change) else change
    return (not row["contradicted"], -rank, row["cik"], row["concept"])


def _restated(con: duckdb.DuckDBPyConnection, params: Params) -> tuple[int, int, list[Params]]:
    """_RESTATED over the scope's companies in chunks of CHUNK_COMPANIES (a key is one
    company's, so no key spans two chunks): its aggregate over every fact of a large scope
    does not fit DuckDB's memory limit in one pass. Returns the number of restated keys,
    how many are contradicted, and the first SAMPLE_SIZE of them in the query's order; only
    those are kept across chunks (an archive has ~270k restated keys, ~0.3 GB as rows)."""
    ciks = sorted(params["ciks"])
    total = contradicted = 0
    first: list[Params] = []
    for start in range(0, len(ciks), CHUNK_COMPANIES):
        found = rows(con, _RESTATED, {"ciks": ciks[start : start + CHUNK_COMPANIES]})
        total += len(found)
        contradicted += sum(bool(r["contradicted"]) for r in found)
        first = heapq.nsmallest(SAMPLE_SIZE, [*first, *found], key=_restated_order)
    return total, contradicted, first


def check_duplicates(con: duckdb.DuckDBPyConnection, params: Params) -> list[CheckResult]:
    conflicts = rows(con, _CONFLICTS, params)
    restated, contradicted, first = _restated(con, params)
    shared = rows(con, _SHARED, params)
    affected = sum(r["rows"] for r in conflicts) + len(shared)
    detail = {"conflicting_keys": len(conflicts), "conflicting_shared_accessions": len(shared)}
    dup = CheckResult.of("duplicates", "error", affected, detail, [*conflicts, *shared])
    detail = {"restated_periods": restated, "contradicted": contradicted}
    info = CheckResult.of("restatements", "info", restated, detail, first, passed=True)
    return [dup, dataclasses.replace(info, sampled_from=restated)]


def check_completeness(con: duckdb.DuckDBPyConnection, params: Params) -> CheckResult:
    missing = rows(
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
    }
    return CheckResult.of("completeness", "warning", len(missing), detail, missing)


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


# Companies that rows name and ``companies`` lacks: no load of a company can be the one
# that "changed" them, so a scoped run looks for them everywhere (the cik column alone).
_UNKNOWN_COMPANIES = """
SELECT DISTINCT cik FROM (
    SELECT DISTINCT cik FROM facts UNION SELECT DISTINCT cik FROM filings
    UNION SELECT DISTINCT cik FROM financials
) WHERE cik NOT IN (SELECT cik FROM companies)
"""


def check_referential_integrity(con: duckdb.DuckDBPyConnection, params: Params) -> CheckResult:
    ciks = params["ciks"]
    if params.get("scoped"):
        unknown = [int(r[0]) for r in con.execute(_UNKNOWN_COMPANIES).fetchall()]
        ciks = sorted({*ciks, *unknown})
    dangling = rows(con, _DANGLING, {"ciks": ciks})
    no_company = [r for r in dangling if r["target"] == "companies"]
    severity = "critical" if no_company else "error"
    detail = {
        "rows_without_company": sum(r["n"] for r in no_company),
        "rows_without_filing": sum(r["n"] for r in dangling if r["target"] == "filings"),
    }
    affected = sum(r["n"] for r in dangling)
    return CheckResult.of("referential_integrity", severity, affected, detail, dangling)


def _identity_failure(s: FilingStats) -> dict[str, Any]:
    return {
        "cik": s.cik,
        "accession": s.accession,
        "form": s.form,
        "fiscal_year": s.fiscal_year,
        "fiscal_period": s.fiscal_period,
        "balance_sheet_broken_dates": s.balance_broken,
        "failed_identities": list(s.failed_identities),
    }


def check_accounting_identities(con: duckdb.DuckDBPyConnection, params: Params) -> CheckResult:
    # the catalogue view is registered by run_checks
    stats = collect_filing_stats(con, params["ciks"], cross_filing=False)
    failing = [_identity_failure(s) for s in stats if s.balance_broken or s.failed_identities]
    broken = sum(1 for f in failing if f["balance_sheet_broken_dates"])
    detail = {"filings": len(failing), "balance_sheet_broken": broken}
    return CheckResult.of("accounting_identities", "warning", len(failing), detail, failing)


def check_stale_financials(con: duckdb.DuckDBPyConnection, params: Params) -> CheckResult:
    stale = stale_companies(con, params["ciks"])
    detail = {
        "marked": sum(r["reason"] != "facts but no financials" for r in stale),
        "without_financials": sum(r["financials"] == 0 for r in stale),
    }
    return CheckResult.of("stale_financials", "error", len(stale), detail, stale)


_NON_FINITE = """
SELECT 'facts' AS "table", cik, accession, taxonomy || ':' || concept AS name,
       CAST(value AS VARCHAR) AS value
FROM facts WHERE list_contains($ciks, cik) AND NOT isfinite(value)
UNION ALL
SELECT 'financials', cik, accession, metric, CAST(value AS VARCHAR) FROM financials
WHERE list_contains($ciks, cik)
  AND (NOT isfinite(value) OR NOT isfinite(first_reported_value))
UNION ALL
SELECT 'financials_history', cik, accession, metric, CAST(value AS VARCHAR)
FROM financials_history WHERE list_contains($ciks, cik) AND NOT isfinite(value)
ORDER BY "table", cik, accession, name
"""


def check_non_finite_values(con: duckdb.DuckDBPyConnection, params: Params) -> CheckResult:
    found = rows(con, _NON_FINITE, params)  # values as text: JSON has no NaN or infinity
    detail = {t: sum(r["table"] == t for r in found)
              for t in ("facts", "financials", "financials_history")}  # fmt: skip
    return CheckResult.of("non_finite_values", "critical", len(found), detail, found)


Check = Callable[[duckdb.DuckDBPyConnection, Params], CheckResult | list[CheckResult]]
CHECKS: tuple[Check, ...] = (
    check_filing_count,
    check_facts_to_filings,
    check_normalized_to_raw,
    check_duplicates,
    check_completeness,
    check_referential_integrity,
    check_accounting_identities,
    check_stale_financials,
    check_non_finite_values,
)


def run_checks(
    con: duckdb.DuckDBPyConnection, ciks: Sequence[int] | None = None
) -> list[CheckResult]:
    """Run the checks over ``ciks`` (every company when None); the duplicates check yields
    two results (``duplicates`` and the info-level ``restatements``)."""
    params: Params = {
        "ciks": company_scope(con, ciks),
        "forms": list(PERIODIC_FORMS),
        "scoped": ciks is not None,
    }
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
