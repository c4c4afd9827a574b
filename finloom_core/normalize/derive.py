"""Derived versions in ``_nl_versions`` (one row per filing that reports a cik, metric,
fiscal year and period): quarters from year-to-date spans, and the catalogue's formulas.

Quarters are derived only for duration metrics in currency (flows): never for instants
(a balance is not a difference), per-share values or share counts. No company files a
Q4 10-Q, so Q4 = FY - 9M YTD, or FY - Q1 - Q2 - Q3 when there is no nine-month figure;
Q2 = 6M - Q1 and Q3 = 9M - 6M when a 10-Q gave only year-to-date figures (cash flows).

Point in time: a derived value is computed as of every filing that changed one of its
inputs (its *points*: the filings of the inputs' versions), from the inputs as known then
(DuckDB ``ASOF JOIN`` on the filing order ``seq``). Each version carries the accession and
date of the input filed last, so ``financials_as_of`` never shows a derived value before
every filing it rests on was public. The first version is the first reported value.

Which subtrahend: a restated full year minus an unrestated nine months would put the whole
restatement into Q4. So the subtrahend is the one reported in the same filing as the
minuend's value where that filing carries it (a 10-K rarely carries a 9M figure, a 10-Q
carries its own 6M/9M and 3M); otherwise the latest-filed value of that period as of the
point, i.e. the latest 10-Q whose year-to-date span ends within the fiscal year (the
comparative in the next year's 10-Q when there is one, since it carries any recast).

A metric is derived for a period only where no filing reports it. Every derived row has
``method = 'derived'`` and names its formula.
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
NOT EXISTS (SELECT 1 FROM _nl_versions t
            WHERE t.cik = d.cik AND t.metric = d.metric
              AND t.fiscal_year = d.fiscal_year AND t.fiscal_period = $target)
"""

_DIFFERENCE = f"""
INSERT INTO _nl_versions BY NAME
WITH a_v AS (
    SELECT * FROM _nl_versions
    WHERE fiscal_period = $minuend AND list_contains($metrics, metric)
),
b_v AS (
    SELECT * FROM _nl_versions
    WHERE fiscal_period = $subtrahend AND list_contains($metrics, metric)
),
points AS (
    SELECT cik, metric, fiscal_year, seq FROM a_v
    UNION SELECT cik, metric, fiscal_year, seq FROM b_v
),
minuends AS (  -- the minuend as known at each point
    SELECT p.seq AS point, a.*
    FROM points p ASOF JOIN a_v a
      ON a.cik = p.cik AND a.metric = p.metric AND a.fiscal_year = p.fiscal_year
     AND p.seq >= a.seq
),
pairs AS (  -- ... and its subtrahend: the same filing's, else the latest as of the point
    SELECT DISTINCT a.* EXCLUDE (point),
           coalesce(same.value, b.value) AS b_value,
           coalesce(same.period_end, b.period_end) AS b_end,
           coalesce(same.seq, b.seq) AS b_seq,
           coalesce(same.accession, b.accession) AS b_accession,
           coalesce(same.form, b.form) AS b_form,
           coalesce(same.filed, b.filed) AS b_filed,
           coalesce(same.source_concept, b.source_concept) AS b_concept
    FROM minuends a
    ASOF JOIN b_v b
      ON b.cik = a.cik AND b.metric = a.metric AND b.fiscal_year = a.fiscal_year
     AND b.unit = a.unit AND b.period_start = a.period_start AND a.point >= b.seq
    LEFT JOIN b_v same
      ON same.cik = a.cik AND same.metric = a.metric AND same.fiscal_year = a.fiscal_year
     AND same.accession = a.accession AND same.unit = a.unit
     AND same.period_start = a.period_start AND same.period_end < a.period_end
    WHERE b.period_end < a.period_end
),
d AS (
    SELECT cik, metric, fiscal_year, $target AS fiscal_period,
           b_end + 1 AS period_start, period_end, value - b_value AS value, unit,
           'derived' AS method, source_taxonomy,
           CASE WHEN source_concept = b_concept THEN source_concept END AS source_concept,
           CASE WHEN seq >= b_seq THEN accession ELSE b_accession END AS accession,
           CASE WHEN seq >= b_seq THEN form ELSE b_form END AS form,
           greatest(filed, b_filed) AS filed, $formula AS formula,
           greatest(seq, b_seq) AS seq
    FROM pairs
)
SELECT * FROM d
WHERE {_MISSING}
QUALIFY row_number() OVER (
    PARTITION BY cik, metric, fiscal_year, seq ORDER BY period_start DESC, value
) = 1
"""

_FY_LESS_QUARTERS = f"""
INSERT INTO _nl_versions BY NAME
WITH v AS (SELECT * FROM _nl_versions WHERE list_contains($metrics, metric)),
points AS (
    SELECT DISTINCT cik, metric, fiscal_year, seq FROM v
    WHERE list_contains(['FY', 'Q1', 'Q2', 'Q3'], fiscal_period)
),
combos AS (  -- FY and the three quarters as known at each point
    SELECT DISTINCT a.cik, a.metric, a.fiscal_year, a.period_end, a.unit, a.source_taxonomy,
           q3.period_end AS q3_end, a.value - q1.value - q2.value - q3.value AS value,
           greatest(a.seq, q1.seq, q2.seq, q3.seq) AS seq,
           a.seq AS s0, q1.seq AS s1, q2.seq AS s2, q3.seq AS s3
    FROM points p
    ASOF JOIN (SELECT * FROM v WHERE fiscal_period = 'FY') a
      ON a.cik = p.cik AND a.metric = p.metric AND a.fiscal_year = p.fiscal_year
     AND p.seq >= a.seq
    ASOF JOIN (SELECT * FROM v WHERE fiscal_period = 'Q1') q1
      ON q1.cik = p.cik AND q1.metric = p.metric AND q1.fiscal_year = p.fiscal_year
     AND q1.unit = a.unit AND p.seq >= q1.seq
    ASOF JOIN (SELECT * FROM v WHERE fiscal_period = 'Q2') q2
      ON q2.cik = p.cik AND q2.metric = p.metric AND q2.fiscal_year = p.fiscal_year
     AND q2.unit = a.unit AND p.seq >= q2.seq
    ASOF JOIN (SELECT * FROM v WHERE fiscal_period = 'Q3') q3
      ON q3.cik = p.cik AND q3.metric = p.metric AND q3.fiscal_year = p.fiscal_year
     AND q3.unit = a.unit AND p.seq >= q3.seq
    WHERE q3.period_end < a.period_end
),
filings AS (SELECT DISTINCT seq, accession, form, filed FROM v),
d AS (  -- each version carries the filing of the input filed last
    SELECT c.cik, c.metric, c.fiscal_year, $target AS fiscal_period,
           c.q3_end + 1 AS period_start, c.period_end, c.value, c.unit, 'derived' AS method,
           c.source_taxonomy, NULL AS source_concept, f.accession, f.form, f.filed,
           $formula AS formula, c.seq
    FROM combos c JOIN filings f ON f.seq = c.seq
)
SELECT * FROM d
WHERE {_MISSING}
QUALIFY row_number() OVER (PARTITION BY cik, metric, fiscal_year, seq ORDER BY value) = 1
"""

_FORMULA = """
INSERT INTO _nl_versions BY NAME
WITH terms AS (
    SELECT unnest($terms) AS metric, unnest($signs) AS sign, unnest($optional) AS optional
),
inputs AS (SELECT v.* FROM _nl_versions v WHERE list_contains($terms, v.metric)),
points AS (SELECT DISTINCT cik, fiscal_year, fiscal_period, seq FROM inputs),
known AS (  -- every term as known at each point
    SELECT g.cik, g.fiscal_year, g.fiscal_period, g.seq AS point, g.sign, g.optional,
           i.metric AS found, i.value, i.unit, i.period_start, i.period_end, i.accession,
           i.form, i.filed, i.seq
    FROM (SELECT p.*, t.metric, t.sign, t.optional FROM points p CROSS JOIN terms t) g
    ASOF LEFT JOIN inputs i
      ON i.cik = g.cik AND i.metric = g.metric AND i.fiscal_year = g.fiscal_year
     AND i.fiscal_period = g.fiscal_period AND g.seq >= i.seq
),
d AS (
    SELECT cik, $target AS metric, fiscal_year, fiscal_period,
           min(period_start) AS period_start, max(period_end) AS period_end,
           sum(sign * value) AS value, any_value(unit) AS unit,
           arg_max(accession, seq) AS accession, arg_max(form, seq) AS form,
           max(filed) AS filed, max(seq) AS seq
    FROM known WHERE found IS NOT NULL
    GROUP BY cik, fiscal_year, fiscal_period, point
    HAVING count(*) FILTER (WHERE NOT optional) = $required
       AND count(DISTINCT unit) = 1 AND count(DISTINCT period_end) = 1
)
SELECT d.*, 'derived' AS method, NULL AS source_taxonomy, NULL AS source_concept,
       $formula AS formula
FROM d
WHERE NOT EXISTS (SELECT 1 FROM _nl_versions t
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
