"""The normalizer: raw facts -> ``financials`` (latest-filed value per metric and fiscal
period) and ``financials_history`` (every reported value), built set-wise in DuckDB.

Steps, each one SQL statement over all requested companies at once:

1. candidate facts: facts of the catalogue's concepts, of periodic report forms, whose
   period type and unit kind fit the metric;
2. per (cik, metric, period) the first concept of the chain with a value for that period
   wins, the company's reporting currency (the currency most of its monetary facts are in)
   before convenience translations;
3. fiscal year and period from dates (see periods.py): FY, Q1-Q4, or T for a transition
   period between two fiscal-year calendars;
4. latest-filed value per (cik, metric, fiscal year, fiscal period), with the value as
   first reported;
5. quarters derived from year-to-date spans and Q4 = FY - 9M YTD (see derive.py), then the
   catalogue's formulas;
6. the companies' rows replaced, and their needs-normalize marks cleared (see
   freshness.py), in one transaction.

Facts whose value is not a finite number (NaN, infinity: the parser refuses them, but a
warehouse may hold some from before) are never candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import duckdb
import pyarrow as pa

from finloom_core.normalize.catalogue import Catalogue, load_catalogue
from finloom_core.normalize.derive import derive_formulas, derive_quarters
from finloom_core.normalize.freshness import clear_marks, marked_ciks
from finloom_core.normalize.periods import FORMS, build_calendar, build_periods
from finloom_core.sql import registered, transaction

log = logging.getLogger(__name__)

DEI_RANK_OFFSET = 100  # dei chains are the fallback after the company's own taxonomy
OUTPUT_PERIODS = ("FY", "Q1", "Q2", "Q3", "Q4", "T")
_TEMP_TABLES = ("_nl_calendar", "_nl_chosen", "_nl_periods", "_nl_values")

_CHOSEN = """
CREATE OR REPLACE TEMP TABLE _nl_chosen AS
WITH currency AS (
    SELECT cik, first(unit ORDER BY n DESC, unit) AS currency
    FROM (SELECT cik, unit, count(*) AS n FROM facts
          WHERE list_contains($ciks, cik) AND regexp_full_match(unit, '[A-Z]{3}')
          GROUP BY cik, unit)
    GROUP BY cik
),
candidates AS (
    SELECT f.cik, m.metric, m.rank, f.taxonomy, f.concept, f.unit, f.period_start,
           f.period_end, f.value, f.accession, f.form, f.filed,
           m.unit_kind = 'shares' OR f.unit IN (c.currency, c.currency || '/shares')
               AS reporting_unit
    FROM facts f
    JOIN _nl_concepts m ON f.taxonomy = m.taxonomy AND f.concept = m.concept
    LEFT JOIN currency c ON f.cik = c.cik
    WHERE list_contains($ciks, f.cik) AND list_contains($forms, f.form)
      AND f.value IS NOT NULL AND isfinite(f.value)
      AND (m.period = 'instant') = (f.period_start IS NULL)
      AND CASE m.unit_kind
              WHEN 'currency' THEN regexp_full_match(f.unit, '[A-Z]{3}')
              WHEN 'currency_per_share' THEN regexp_full_match(f.unit, '[A-Z]{3}/shares')
              ELSE f.unit = 'shares'
          END
)
SELECT * EXCLUDE (rank, reporting_unit) FROM candidates
QUALIFY dense_rank() OVER (
    PARTITION BY cik, metric, period_start, period_end
    ORDER BY reporting_unit DESC, rank, unit
) = 1
"""

_VALUES = """
CREATE OR REPLACE TEMP TABLE _nl_values AS
WITH keyed AS (
    SELECT c.*, p.fiscal_year, p.fiscal_period,
        row_number() OVER (
            PARTITION BY c.cik, c.metric, p.fiscal_year, p.fiscal_period
            ORDER BY c.filed DESC, c.accession DESC, c.period_end DESC, c.period_start DESC
        ) AS newest,
        row_number() OVER (
            PARTITION BY c.cik, c.metric, p.fiscal_year, p.fiscal_period
            ORDER BY c.filed, c.accession, c.period_end DESC, c.period_start DESC
        ) AS oldest
    FROM _nl_chosen c
    JOIN _nl_periods p
      ON c.cik = p.cik AND c.period_end = p.period_end
     AND c.period_start IS NOT DISTINCT FROM p.period_start
)
SELECT l.cik, l.metric, l.fiscal_year, l.fiscal_period, l.period_start, l.period_end,
       l.value, l.unit, 'reported' AS method, l.taxonomy AS source_taxonomy,
       l.concept AS source_concept, l.accession, l.filed, CAST(NULL AS VARCHAR) AS formula,
       f.value AS first_reported_value, f.filed AS first_reported_filed,
       f.accession AS first_reported_accession
FROM keyed l
JOIN keyed f
  ON l.cik = f.cik AND l.metric = f.metric AND l.fiscal_year = f.fiscal_year
 AND l.fiscal_period = f.fiscal_period AND f.oldest = 1
WHERE l.newest = 1
"""

_INSERT_FINANCIALS = """
INSERT INTO financials BY NAME
SELECT * EXCLUDE (first_reported_value),
       first_reported_value,
       first_reported_value IS DISTINCT FROM value AS is_restated
FROM _nl_values WHERE list_contains($periods, fiscal_period)
"""

_INSERT_HISTORY = """
INSERT INTO financials_history BY NAME
SELECT DISTINCT c.cik, c.metric, p.fiscal_year, p.fiscal_period, c.period_start,
       c.period_end, c.value, c.unit, c.taxonomy AS source_taxonomy,
       c.concept AS source_concept, c.accession, c.form, c.filed
FROM _nl_chosen c
JOIN _nl_periods p
  ON c.cik = p.cik AND c.period_end = p.period_end
 AND c.period_start IS NOT DISTINCT FROM p.period_start
WHERE list_contains($periods, p.fiscal_period)
"""


def concept_table(catalogue: Catalogue) -> pa.Table:
    """(metric, taxonomy, concept, rank, period, unit_kind): the chains as rows."""
    rows: dict[str, list[object]] = {
        k: [] for k in ("metric", "taxonomy", "concept", "rank", "period", "unit_kind")
    }
    for spec in catalogue.metrics.values():
        for taxonomy, chain in spec.chains.items():
            offset = DEI_RANK_OFFSET if taxonomy == "dei" else 0
            for rank, concept in enumerate(chain):
                for key, value in zip(
                    rows,
                    (spec.name, taxonomy, concept, offset + rank, spec.period, spec.unit),
                    strict=True,
                ):
                    rows[key].append(value)
    return pa.table(rows)


def normalize(
    con: duckdb.DuckDBPyConnection,
    ciks: Sequence[int] | None = None,
    *,
    catalogue: Catalogue | None = None,
) -> dict[int, int]:
    """Rebuild ``financials`` and ``financials_history`` for ``ciks`` (every company with
    facts, and every marked one, when None) in one transaction that also clears their
    needs-normalize marks; return the financials rows per company."""
    spec = catalogue or load_catalogue()
    if ciks is None:
        ciks = [int(r[0]) for r in con.execute("SELECT DISTINCT cik FROM facts").fetchall()]
        ciks += marked_ciks(con)
    targets = sorted({int(c) for c in ciks})
    with transaction(con):
        with registered(con, "_nl_concepts", concept_table(spec)):
            _build(con, targets, spec)
        params = {"ciks": targets}
        con.execute("DELETE FROM financials WHERE list_contains($ciks, cik)", params)
        con.execute("DELETE FROM financials_history WHERE list_contains($ciks, cik)", params)
        con.execute(_INSERT_FINANCIALS, {"periods": list(OUTPUT_PERIODS)})
        con.execute(_INSERT_HISTORY, {"periods": list(OUTPUT_PERIODS)})
        for table in _TEMP_TABLES:
            con.execute(f"DROP TABLE IF EXISTS {table}")
        clear_marks(con, targets)
    counts = dict.fromkeys(targets, 0)
    rows = con.execute(
        "SELECT cik, count(*) FROM financials WHERE list_contains($ciks, cik) GROUP BY cik",
        params,
    ).fetchall()
    counts.update({int(cik): int(n) for cik, n in rows})
    log.info("normalized %d companies: %d financials rows", len(counts), sum(counts.values()))
    return counts


def _build(con: duckdb.DuckDBPyConnection, ciks: list[int], catalogue: Catalogue) -> None:
    con.execute(_CHOSEN, {"ciks": ciks, "forms": list(FORMS)})
    build_calendar(con, ciks)
    build_periods(con, "_nl_chosen")
    con.execute(_VALUES)
    derive_quarters(con, catalogue)
    derive_formulas(con, catalogue)
