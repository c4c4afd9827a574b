"""Derived rows of ``_nl_values`` (the latest value per cik, metric, fiscal year and period):
quarters from year-to-date spans, and the catalogue's formulas.

Quarters are derived only for duration metrics in currency (flows): never for instants
(a balance is not a difference), per-share values or share counts. No company files a
Q4 10-Q, so Q4 = FY - 9M YTD, or FY - Q1 - Q2 - Q3 when there is no nine-month figure;
Q2 = 6M - Q1 and Q3 = 9M - 6M when a 10-Q gave only year-to-date figures (cash flows).

Which subtrahend: a restated full year minus an unrestated nine months would put the whole
restatement into Q4. So the subtrahend is the one reported in the same filing as the
minuend's latest value where that filing carries it (the rule applies to every difference;
a 10-K rarely carries a 9M figure, a 10-Q carries its own 6M/9M and 3M); otherwise the
latest-filed value of that period, i.e. the latest 10-Q whose year-to-date span ends within
the fiscal year (the comparative in the next year's 10-Q when there is one, since it carries
any recast). The first-reported difference always uses both first-reported values.

A derived row is computed from the latest values of its inputs; its first-reported value
from their first-reported values, so a restated input marks the derived row restated too.
Every derived row has ``method = 'derived'`` and names its formula.
"""

from __future__ import annotations

from graphlib import TopologicalSorter

import duckdb

from finloom_core.normalize.catalogue import Catalogue, MetricSpec

# (target, minuend, subtrahend): all three share the fiscal year's start date
YTD_DIFFERENCES = (
    ("Q2", "6M", "Q1", "6M YTD - Q1"),
    ("Q3", "9M", "6M", "9M YTD - 6M YTD"),
    ("Q4", "FY", "9M", "FY - 9M YTD"),
)

_MISSING = """
NOT EXISTS (SELECT 1 FROM _nl_values t
            WHERE t.cik = a.cik AND t.metric = a.metric
              AND t.fiscal_year = a.fiscal_year AND t.fiscal_period = $target)
"""

_DIFFERENCE = f"""
INSERT INTO _nl_values BY NAME
SELECT a.cik, a.metric, a.fiscal_year, $target AS fiscal_period,
       b.period_end + 1 AS period_start, a.period_end,
       a.value - coalesce(same.value, b.value) AS value, a.unit,
       'derived' AS method, a.source_taxonomy,
       CASE WHEN a.source_concept = b.source_concept THEN a.source_concept END
           AS source_concept,
       CASE WHEN a.filed >= b.filed THEN a.accession ELSE b.accession END AS accession,
       greatest(a.filed, b.filed) AS filed, $formula AS formula,
       a.first_reported_value - b.first_reported_value AS first_reported_value,
       greatest(a.first_reported_filed, b.first_reported_filed) AS first_reported_filed,
       CASE WHEN a.first_reported_filed >= b.first_reported_filed
            THEN a.first_reported_accession ELSE b.first_reported_accession END
           AS first_reported_accession
FROM _nl_values a
JOIN _nl_values b
  ON a.cik = b.cik AND a.metric = b.metric AND a.fiscal_year = b.fiscal_year
 AND a.unit = b.unit AND a.period_start = b.period_start AND b.period_end < a.period_end
LEFT JOIN (  -- the subtrahend as reported in the minuend's own filing
    SELECT c.cik, c.metric, c.accession, c.unit, c.period_start, c.period_end,
           any_value(c.value) AS value
    FROM _nl_chosen c JOIN _nl_periods p
      ON c.cik = p.cik AND c.period_start = p.period_start AND c.period_end = p.period_end
    WHERE p.fiscal_period = $subtrahend
    GROUP BY ALL
) same
  ON same.cik = a.cik AND same.metric = a.metric AND same.accession = a.accession
 AND same.unit = a.unit AND same.period_start = b.period_start
 AND same.period_end = b.period_end
WHERE a.fiscal_period = $minuend AND b.fiscal_period = $subtrahend
  AND list_contains($metrics, a.metric) AND {_MISSING}
"""

_FY_LESS_QUARTERS = f"""
INSERT INTO _nl_values BY NAME
SELECT a.cik, a.metric, a.fiscal_year, $target AS fiscal_period,
       q3.period_end + 1 AS period_start, a.period_end,
       a.value - q1.value - q2.value - q3.value AS value, a.unit, 'derived' AS method,
       a.source_taxonomy, NULL AS source_concept,
       a.accession, greatest(a.filed, q1.filed, q2.filed, q3.filed) AS filed,
       $formula AS formula,
       a.first_reported_value - q1.first_reported_value - q2.first_reported_value
           - q3.first_reported_value AS first_reported_value,
       greatest(a.first_reported_filed, q1.first_reported_filed, q2.first_reported_filed,
                q3.first_reported_filed) AS first_reported_filed,
       a.first_reported_accession
FROM _nl_values a
JOIN _nl_values q1 ON q1.cik = a.cik AND q1.metric = a.metric
 AND q1.fiscal_year = a.fiscal_year AND q1.fiscal_period = 'Q1' AND q1.unit = a.unit
JOIN _nl_values q2 ON q2.cik = a.cik AND q2.metric = a.metric
 AND q2.fiscal_year = a.fiscal_year AND q2.fiscal_period = 'Q2' AND q2.unit = a.unit
JOIN _nl_values q3 ON q3.cik = a.cik AND q3.metric = a.metric
 AND q3.fiscal_year = a.fiscal_year AND q3.fiscal_period = 'Q3' AND q3.unit = a.unit
WHERE a.fiscal_period = 'FY' AND list_contains($metrics, a.metric)
  AND q3.period_end < a.period_end AND {_MISSING}
"""

_FORMULA = """
INSERT INTO _nl_values BY NAME
WITH terms AS (
    SELECT unnest($terms) AS metric, unnest($signs) AS sign, unnest($optional) AS optional
),
derived AS (
    SELECT v.cik, v.fiscal_year, v.fiscal_period, v.unit,
           min(v.period_start) AS period_start, max(v.period_end) AS period_end,
           sum(t.sign * v.value) AS value,
           last(v.accession ORDER BY v.filed, v.accession) AS accession,
           max(v.filed) AS filed,
           sum(t.sign * v.first_reported_value) AS first_reported_value,
           max(v.first_reported_filed) AS first_reported_filed,
           last(v.first_reported_accession ORDER BY v.first_reported_filed)
               AS first_reported_accession
    FROM _nl_values v JOIN terms t ON v.metric = t.metric
    GROUP BY v.cik, v.fiscal_year, v.fiscal_period, v.unit
    HAVING count(*) FILTER (WHERE NOT t.optional) = $required
       AND count(DISTINCT v.period_end) = 1
)
SELECT d.*, $target AS metric, 'derived' AS method, NULL AS source_taxonomy,
       NULL AS source_concept, $formula AS formula
FROM derived d
WHERE NOT EXISTS (SELECT 1 FROM _nl_values t
                  WHERE t.cik = d.cik AND t.metric = $target
                    AND t.fiscal_year = d.fiscal_year AND t.fiscal_period = d.fiscal_period)
"""


def flow_metrics(catalogue: Catalogue) -> list[str]:
    """Metrics whose quarters may be derived by subtraction: currency durations."""
    return [
        s.name
        for s in catalogue.metrics.values()
        if s.period == "duration" and s.unit == "currency"
    ]


def derive_quarters(con: duckdb.DuckDBPyConnection, catalogue: Catalogue) -> None:
    metrics = flow_metrics(catalogue)
    for target, minuend, subtrahend, formula in YTD_DIFFERENCES:
        params: dict[str, object] = {"target": target, "minuend": minuend}
        params |= {"subtrahend": subtrahend, "formula": formula, "metrics": metrics}
        con.execute(_DIFFERENCE, params)
    params = {"target": "Q4", "formula": "FY - Q1 - Q2 - Q3", "metrics": metrics}
    con.execute(_FY_LESS_QUARTERS, params)


def derive_formulas(con: duckdb.DuckDBPyConnection, catalogue: Catalogue) -> None:
    """Each catalogue formula, where its metric is not reported for a period; a metric
    is derived after the derived metrics it uses."""
    for spec in _in_dependency_order(catalogue):
        terms = spec.formula
        con.execute(
            _FORMULA,
            {
                "target": spec.name,
                "formula": spec.formula_text,
                "terms": [t.metric for t in terms],
                "signs": [t.sign for t in terms],
                "optional": [t.optional for t in terms],
                "required": sum(not t.optional for t in terms),
            },
        )


def _in_dependency_order(catalogue: Catalogue) -> list[MetricSpec]:
    derived = {s.name: s for s in catalogue.metrics.values() if s.formula}
    graph = {
        name: {t.metric for t in spec.formula if t.metric in derived}
        for name, spec in derived.items()
    }
    return [derived[name] for name in TopologicalSorter(graph).static_order()]
