"""The normalizer: raw facts -> ``financials`` (per metric and fiscal period, the latest
value and the first reported one) and ``financials_history`` (every filing's value, the
point-in-time record ``financials_as_of(DATE)`` reads), built set-wise in DuckDB.

Steps, each one SQL statement over all requested companies at once:

1. candidate facts: facts of the catalogue's concepts, of periodic report forms, whose
   period type and unit kind fit the metric; in the company's reporting currency (the
   currency most of its monetary facts are in) wherever a period is reported in it;
2. **per filing**, per (metric, period), one value: the first concept of the chain that
   filing reports. Where the filing reports several chain concepts with different values,
   the catalogue may settle it (``agrees_with``: the one equal to a statement identity over
   the same filing's values; ``pick = "largest"``: the whole, not a part), and ``formula``
   says so. A filing's value never depends on what other filings tagged;
3. fiscal year and period from dates (see periods.py): FY, Q1-Q4, or T for a transition
   period between two fiscal-year calendars;
4. the *versions* of each (cik, metric, fiscal year, fiscal period): one per filing that
   reports it, ordered by (filed, accession). An annual period comes from annual reports
   (10-K, 20-F, 40-F, 10-KT and amendments); a year-long fact of a 10-Q counts only when
   no annual report covers that period;
5. versions of quarters derived from year-to-date spans and of Q4 = FY - 9M, then of the
   catalogue's formulas, each computed as of every filing that changed an input (see
   derive.py), so a derived value too is known only from the filing that completed it;
6. ``financials``: per key the latest version, with the first (earliest filed) version as
   first reported; ``is_restated`` when they differ, whatever concepts they came from.
   ``financials_history``: every version. The companies' rows are replaced, and their
   needs-normalize marks cleared (see freshness.py), in one transaction.

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
from finloom_core.normalize.periods import (
    ANNUAL_REPORT_FORMS,
    FORMS,
    build_calendar,
    build_periods,
)
from finloom_core.sql import registered, transaction

log = logging.getLogger(__name__)

DEI_RANK_OFFSET = 100  # dei chains are the fallback after the company's own taxonomy
OUTPUT_PERIODS = ("FY", "Q1", "Q2", "Q3", "Q4", "T")
# A value agrees with its statement identity within 0.1% (or one unit): rounding in
# filings that tag in thousands
AGREEMENT_TOLERANCE = 0.001
_TEMP_TABLES = ("_nl_calendar", "_nl_candidates", "_nl_chosen", "_nl_periods", "_nl_versions")

_CANDIDATES = """
CREATE OR REPLACE TEMP TABLE _nl_candidates AS
WITH currency AS (
    SELECT cik, first(unit ORDER BY n DESC, unit) AS currency
    FROM (SELECT cik, unit, count(*) AS n FROM facts
          WHERE list_contains($ciks, cik) AND regexp_full_match(unit, '[A-Z]{3}')
          GROUP BY cik, unit)
    GROUP BY cik
),
candidates AS (
    SELECT f.cik, m.metric, m.rank, m.pick, f.taxonomy, f.concept, f.unit, f.period_start,
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
SELECT * EXCLUDE (reporting_unit) FROM candidates WHERE reporting_unit
UNION ALL  -- another unit only for a period never reported in the reporting currency
SELECT * EXCLUDE (reporting_unit) FROM candidates n
WHERE NOT n.reporting_unit
  AND NOT EXISTS (SELECT 1 FROM candidates r
                  WHERE r.reporting_unit AND r.cik = n.cik AND r.metric = n.metric
                    AND r.period_start IS NOT DISTINCT FROM n.period_start
                    AND r.period_end = n.period_end)
"""

_CHOSEN = """
CREATE OR REPLACE TEMP TABLE _nl_chosen AS
WITH top AS (  -- each filing's first chain concept of the metrics identities are made of
    SELECT * FROM _nl_candidates
    WHERE metric IN (SELECT term FROM _nl_agreements)
    QUALIFY row_number() OVER (
        PARTITION BY cik, metric, accession, period_start, period_end
        ORDER BY rank, unit, value DESC
    ) = 1
),
expected AS (  -- a metric's statement identity, from the same filing's values
    SELECT a.metric, t.cik, t.accession, t.unit, t.period_start, t.period_end,
           sum(a.sign * t.value) AS value, any_value(a.formula) AS formula
    FROM top t JOIN _nl_agreements a ON t.metric = a.term
    GROUP BY a.metric, t.cik, t.accession, t.unit, t.period_start, t.period_end
    HAVING count(DISTINCT t.metric) = any_value(a.terms)
),
disputed AS (  -- keys where one filing reports several values (the rare case)
    SELECT cik, metric, accession, period_start, period_end,
           arg_min(concept, rank) AS first_concept
    FROM _nl_candidates
    GROUP BY cik, metric, accession, period_start, period_end
    HAVING count(DISTINCT value) > 1
),
scored AS (
    SELECT c.*, e.formula AS agreement, d.first_concept,
           coalesce(abs(c.value - e.value)
                    <= greatest(abs(e.value) * $tolerance, 1), false) AS agrees
    FROM _nl_candidates c
    LEFT JOIN expected e
      ON c.metric = e.metric AND c.cik = e.cik AND c.accession = e.accession
     AND c.unit = e.unit AND c.period_start IS NOT DISTINCT FROM e.period_start
     AND c.period_end = e.period_end
    LEFT JOIN disputed d
      ON c.cik = d.cik AND c.metric = d.metric AND c.accession = d.accession
     AND c.period_start IS NOT DISTINCT FROM d.period_start AND c.period_end = d.period_end
)
SELECT cik, metric, taxonomy, concept, unit, period_start, period_end, value, accession,
       form, filed,
       CASE WHEN first_concept IS NULL OR concept = first_concept THEN NULL
            WHEN agrees THEN concept || ' over ' || first_concept || ': agrees with '
                             || agreement
            ELSE concept || ' over ' || first_concept || ': the largest reported'
       END AS choice
FROM scored
QUALIFY row_number() OVER (
    PARTITION BY cik, metric, accession, period_start, period_end
    ORDER BY agrees DESC, CASE WHEN pick = 'largest' THEN -abs(value) END NULLS LAST,
             rank, unit, value DESC
) = 1
"""

# One version per filing and key; an annual period from annual reports where one covers it
_VERSIONS = """
CREATE OR REPLACE TEMP TABLE _nl_versions AS
WITH keyed AS (
    SELECT c.*, p.fiscal_year, p.fiscal_period,
           list_contains($annual_forms, c.form) AS annual
    FROM _nl_chosen c
    JOIN _nl_periods p
      ON c.cik = p.cik AND c.period_end = p.period_end
     AND c.period_start IS NOT DISTINCT FROM p.period_start
),
kept AS (
    SELECT * FROM keyed
    QUALIFY fiscal_period <> 'FY' OR annual OR NOT bool_or(annual) OVER (
        PARTITION BY cik, metric, fiscal_year, fiscal_period)
),
filings AS (  -- the order in which filings became public: (filed, accession)
    SELECT filed, accession, row_number() OVER (ORDER BY filed, accession) AS seq
    FROM (SELECT DISTINCT filed, accession FROM kept)
)
SELECT k.cik, k.metric, k.fiscal_year, k.fiscal_period, k.period_start, k.period_end,
       k.value, k.unit, 'reported' AS method, k.taxonomy AS source_taxonomy,
       k.concept AS source_concept, k.accession, k.form, k.filed, k.choice AS formula, f.seq
FROM kept k JOIN filings f ON f.accession = k.accession AND f.filed IS NOT DISTINCT FROM k.filed
QUALIFY row_number() OVER (
    PARTITION BY k.cik, k.metric, k.fiscal_year, k.fiscal_period, k.accession
    ORDER BY k.period_end DESC, k.period_start DESC, k.value DESC
) = 1
"""

_INSERT_FINANCIALS = """
INSERT INTO financials BY NAME
WITH ends AS (
    SELECT cik, metric, fiscal_year, fiscal_period,
           arg_max(v, v.seq) AS latest, arg_min(v, v.seq) AS first
    FROM _nl_versions v WHERE list_contains($periods, fiscal_period)
    GROUP BY cik, metric, fiscal_year, fiscal_period
)
SELECT cik, metric, fiscal_year, fiscal_period, latest.period_start, latest.period_end,
       latest.value, latest.unit, latest.method, latest.source_taxonomy,
       latest.source_concept, latest.accession, latest.filed, latest.formula,
       first.value AS first_reported_value, first.filed AS first_reported_filed,
       first.accession AS first_reported_accession,
       first.value IS DISTINCT FROM latest.value AS is_restated
FROM ends
"""

_INSERT_HISTORY = """
INSERT INTO financials_history BY NAME
SELECT * EXCLUDE (seq) FROM _nl_versions WHERE list_contains($periods, fiscal_period)
"""


def concept_table(catalogue: Catalogue) -> pa.Table:
    """(metric, taxonomy, concept, rank, period, unit_kind): the chains as rows."""
    rows: dict[str, list[object]] = {
        k: [] for k in ("metric", "taxonomy", "concept", "rank", "period", "unit_kind", "pick")
    }
    for spec in catalogue.metrics.values():
        for taxonomy, chain in spec.chains.items():
            offset = DEI_RANK_OFFSET if taxonomy == "dei" else 0
            for rank, concept in enumerate(chain):
                row = (spec.name, taxonomy, concept, offset + rank, spec.period, spec.unit)
                for key, value in zip(rows, (*row, spec.pick), strict=True):
                    rows[key].append(value)
    return pa.table(rows)


def agreement_table(catalogue: Catalogue) -> pa.Table:
    """(metric, term, sign, terms, formula): each metric's statement identity as rows."""
    rows: dict[str, list[object]] = {k: [] for k in ("metric", "term", "sign", "terms", "formula")}
    for spec in catalogue.metrics.values():
        for term in spec.agreement:
            values = (spec.name, term.metric, term.sign, len(spec.agreement), spec.agreement_text)
            for key, value in zip(rows, values, strict=True):
                rows[key].append(value)
    schema = pa.schema(
        [("metric", pa.string()), ("term", pa.string()), ("sign", pa.int32()),
         ("terms", pa.int32()), ("formula", pa.string())]
    )  # fmt: skip
    return pa.table(rows, schema=schema)


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
        with (
            registered(con, "_nl_concepts", concept_table(spec)),
            registered(con, "_nl_agreements", agreement_table(spec)),
        ):
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
    con.execute(_CANDIDATES, {"ciks": ciks, "forms": list(FORMS)})
    con.execute(_CHOSEN, {"tolerance": AGREEMENT_TOLERANCE})
    build_calendar(con, ciks)
    build_periods(con, "_nl_chosen")
    con.execute(_VERSIONS, {"annual_forms": list(ANNUAL_REPORT_FORMS)})
    derive_quarters(con, catalogue)
    derive_formulas(con, catalogue)
