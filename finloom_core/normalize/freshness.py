"""Whether a company's ``financials`` reflect its facts: the needs-normalize mark.

The loader sets ``company_loads.needs_normalize`` in the transaction that replaces a
company's facts; the normalizer clears it in the transaction that rebuilds the company's
financials. A crash (even SIGKILL) between the two leaves the mark, and every run
(``run_pipeline``, the ``backfill`` flow) rebuilds the marked companies first, also when
all of its companies are unchanged. The reconciliation check ``stale_financials`` and
``finloom financials`` read the same state through :func:`stale_companies`.

A warehouse opened read-only may predate the mark (schema migration 5): it then counts a
company with facts and no financials as stale, as the migration would mark it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

MARK = "needs_normalize"

_MARKED = "SELECT cik FROM company_loads WHERE needs_normalize"

# a company whose facts changed after its financials were built (marked), or one with
# facts, no financials and no load record saying it was normalized since its last load
_STALE = """
WITH marked AS ({marked}),
normalized AS ({normalized}),
scope AS (SELECT DISTINCT cik FROM facts WHERE list_contains($ciks, cik)
          UNION SELECT cik FROM marked WHERE list_contains($ciks, cik)),
built AS (SELECT cik, count(*) AS n FROM financials WHERE list_contains($ciks, cik)
          GROUP BY cik)
SELECT s.cik, coalesce(b.n, 0) AS financials,
       CASE WHEN s.cik IN (SELECT cik FROM marked)
            THEN 'facts changed after its financials were built'
            ELSE 'facts but no financials' END AS reason
FROM scope s LEFT JOIN built b USING (cik)
WHERE s.cik IN (SELECT cik FROM marked)
   OR (b.n IS NULL AND s.cik NOT IN (SELECT cik FROM normalized))
ORDER BY s.cik
"""


def has_mark(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the warehouse's ``company_loads`` carries the mark (schema 5 and later)."""
    rows = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database()"
        " AND table_name = 'company_loads' AND column_name = ?",
        [MARK],
    ).fetchall()
    return bool(rows[0][0])


def marked_ciks(con: duckdb.DuckDBPyConnection) -> list[int]:
    """The companies whose facts were replaced and whose financials were not yet rebuilt."""
    if not has_mark(con):
        return []
    return [int(r[0]) for r in con.execute(f"{_MARKED} ORDER BY cik").fetchall()]


def clear_marks(con: duckdb.DuckDBPyConnection, ciks: Sequence[int]) -> None:
    """Clear the mark of ``ciks``; called inside the transaction that rebuilds them."""
    con.execute(
        "UPDATE company_loads SET needs_normalize = false"
        " WHERE needs_normalize AND list_contains(?, cik)",
        [list(ciks)],
    )


def stale_companies(con: duckdb.DuckDBPyConnection, ciks: Sequence[int]) -> list[dict[str, Any]]:
    """Companies among ``ciks`` whose financials are older than their facts: ``cik``,
    ``financials`` (rows it has now) and ``reason``."""
    if has_mark(con):
        marked = _MARKED
        normalized = "SELECT cik FROM company_loads WHERE NOT coalesce(needs_normalize, false)"
    else:
        marked = normalized = "SELECT CAST(NULL AS BIGINT) AS cik WHERE false"
    sql = _STALE.format(marked=marked, normalized=normalized)  # fixed SQL fragments only
    cursor = con.execute(sql, {"ciks": sorted({int(c) for c in ciks})})
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
