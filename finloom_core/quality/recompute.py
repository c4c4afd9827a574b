"""The ``normalized_to_raw`` check: every ``financials`` row traced back to the facts.

A reported row must equal its source fact. A derived row must recompute from its inputs:
the catalogue formulas (over other ``financials`` rows), a quarter from year-to-date facts
(Q2 = 6M YTD - Q1, Q3 = 9M YTD - 6M YTD, Q4 = FY - 9M YTD) and Q4 = FY - Q1 - Q2 - Q3.
Values agree within the shared tolerance (scope.TOLERANCE).
"""

from __future__ import annotations

import duckdb

from finloom_core.normalize.catalogue import load_catalogue
from finloom_core.quality.results import CheckResult
from finloom_core.quality.scope import CONCEPTS_VIEW, Params, close, rows

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
HAVING NOT coalesce(bool_or({close("x.value", "n.value")}), false)
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
WHERE absent = 0 AND NOT {close("value", "expected")}
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
           bool_or({close("a.value - b.value", "d.value")}) AS recomputes,
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
HAVING count(*) = 3 AND NOT {close("d.value", "fy.value - sum(q.value)")}
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
    reported = rows(con, _REPORTED_MISMATCH, ciks)
    formulas = rows(con, _FORMULA_MISMATCH, ciks | _formula_params())
    ytd = rows(con, _YTD_MISMATCH, ciks)
    quarters = rows(con, _QUARTER_SUM_MISMATCH, ciks)
    derived = formulas + ytd + quarters
    detail = {"reported_mismatches": len(reported), "derived_mismatches": len(derived)}
    mismatches = reported + derived
    return CheckResult.of("normalized_to_raw", "error", len(mismatches), detail, mismatches)
