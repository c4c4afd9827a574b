"""What the quality checks look at: the periodic report forms, the companies in scope and
the catalogue's concept chains as a SQL-visible table; and the SQL helpers they share."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb

from finloom_core.normalize.catalogue import Catalogue, load_catalogue
from finloom_core.normalize.financials import concept_table

ANNUAL_FORMS = ("10-K", "10-K/A", "20-F", "20-F/A")
QUARTERLY_FORMS = ("10-Q", "10-Q/A")
PERIODIC_FORMS = ANNUAL_FORMS + QUARTERLY_FORMS
CONCEPTS_VIEW = "_q_concepts"  # (metric, taxonomy, concept, rank, period, unit_kind)
# two values agree within a relative 1e-6 plus half a unit: float rounding never fails a check
TOLERANCE = "(1e-6 * greatest(abs({a}), abs({b})) + 0.5)"

Params = dict[str, Any]


def company_scope(con: duckdb.DuckDBPyConnection, ciks: Sequence[int] | None) -> list[int]:
    """``ciks`` sorted, or every company known to any table when None."""
    if ciks is not None:
        return sorted({int(c) for c in ciks})
    rows = con.execute(
        "SELECT cik FROM companies UNION SELECT cik FROM filings UNION SELECT cik FROM facts"
    ).fetchall()
    return sorted(int(r[0]) for r in rows)


def register_concepts(con: duckdb.DuckDBPyConnection, catalogue: Catalogue | None = None) -> None:
    """Expose the catalogue's chains as view ``_q_concepts`` (caller unregisters)."""
    con.register(CONCEPTS_VIEW, concept_table(catalogue or load_catalogue()))


def used_params(sql: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters ``sql`` names as ``$name`` (DuckDB refuses extra ones)."""
    return {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}


def close(a: str, b: str) -> str:
    """SQL that is true when the expressions ``a`` and ``b`` agree within :data:`TOLERANCE`."""
    return f"abs({a} - {b}) <= {TOLERANCE.format(a=a, b=b)}"


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any]) -> list[Params]:
    """The rows of ``sql`` (given the ``params`` it names) as dicts by column name."""
    cursor = con.execute(sql, used_params(sql, params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
