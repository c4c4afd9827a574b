"""Bulk, exactly-once loads: one transaction per company replaces all of its rows.

A company's facts, its filings and its company row are written together or not at all:
a crash (even SIGKILL) before COMMIT leaves the previous version intact, and a rerun
replaces rather than appends, so counts never double.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from finloom_core.parse.companyfacts import FACT_KEY, drop_duplicate_facts
from finloom_core.parse.submissions import CompanyRecord, filings_from_facts
from finloom_core.records import ParsedCompany

log = logging.getLogger(__name__)

_FACT_COLUMNS = (
    "cik, taxonomy, concept, unit, period_start, period_end, value, accession,"
    " fiscal_year, fiscal_period, form, filed, frame"
)
_COMPANY_COLUMNS = (
    "cik", "name", "tickers", "exchanges", "sic", "sic_description", "fiscal_year_end",
    "entity_type", "category", "state_of_incorporation", "ein", "former_names",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LoadResult:
    cik: int
    facts: int
    filings: int
    unchanged: bool = False
    duplicates_dropped: int = 0


def load_company(
    con: duckdb.DuckDBPyConnection, parsed: ParsedCompany, *, source: str
) -> LoadResult:
    """Replace one company's rows in a single transaction; skip it if nothing changed."""
    if _unchanged(con, parsed):
        counts = _stored_counts(con, parsed.cik)
        return LoadResult(parsed.cik, counts[0], counts[1], unchanged=True)
    facts, dropped = _unique_facts(con, parsed)
    con.execute("BEGIN TRANSACTION")
    try:
        if facts is not None:
            _replace_facts(con, parsed.cik, facts)
        filing_count = _replace_filings(con, parsed, facts)
        _upsert_company(con, parsed.company, full=parsed.has_submissions)
        fact_count = _stored_counts(con, parsed.cik)[0]
        _record_load(con, parsed, source, fact_count, filing_count)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    log.debug("cik %s loaded: %s facts, %s filings", parsed.cik, fact_count, filing_count)
    return LoadResult(parsed.cik, fact_count, filing_count, duplicates_dropped=dropped)


def _unchanged(con: duckdb.DuckDBPyConnection, parsed: ParsedCompany) -> bool:
    rows = con.execute(
        "SELECT facts_sha256, submissions_sha256 FROM company_loads WHERE cik = ?", [parsed.cik]
    ).fetchall()
    if not rows:
        return False
    stored_facts, stored_submissions = rows[0]
    facts_same = parsed.facts_sha256 is None or parsed.facts_sha256 == stored_facts
    subs_same = parsed.submissions_sha256 is None or parsed.submissions_sha256 == stored_submissions
    return facts_same and subs_same


def _unique_facts(
    con: duckdb.DuckDBPyConnection, parsed: ParsedCompany
) -> tuple[pa.Table | None, int]:
    facts = parsed.facts
    if facts is None or facts.num_rows == 0:
        return facts, 0
    keys = ", ".join(FACT_KEY)
    con.register("staged_keys", facts.select(list(FACT_KEY)))
    try:
        rows = con.execute(f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM staged_keys)")
        distinct = rows.fetchall()[0][0]
    finally:
        con.unregister("staged_keys")
    if distinct == facts.num_rows:
        return facts, 0
    unique, dropped = drop_duplicate_facts(facts)
    log.warning("cik %s: %s facts repeated a key; kept the last filed", parsed.cik, dropped)
    return unique, dropped


def _replace_facts(con: duckdb.DuckDBPyConnection, cik: int, facts: pa.Table) -> None:
    con.execute("DELETE FROM facts WHERE cik = ?", [cik])
    con.register("staged_facts", facts)
    try:
        con.execute(f"INSERT INTO facts ({_FACT_COLUMNS}) SELECT {_FACT_COLUMNS} FROM staged_facts")
    finally:
        con.unregister("staged_facts")


def _replace_filings(
    con: duckdb.DuckDBPyConnection, parsed: ParsedCompany, facts: pa.Table | None
) -> int:
    """Submissions rows win; accessions seen only in facts get a row from the facts."""
    if parsed.has_submissions:
        con.execute("DELETE FROM filings WHERE cik = ?", [parsed.cik])
    else:
        con.execute("DELETE FROM filings WHERE cik = ? AND source = 'facts'", [parsed.cik])
    _insert_filings(con, parsed.filings)
    if facts is not None:
        _insert_filings(con, filings_from_facts(facts, parsed.cik))
    rows = con.execute("SELECT count(*) FROM filings WHERE cik = ?", [parsed.cik]).fetchall()
    return int(rows[0][0])


def _insert_filings(con: duckdb.DuckDBPyConnection, filings: pa.Table) -> None:
    if filings.num_rows == 0:
        return
    con.register("staged_filings", filings)
    try:
        con.execute("INSERT OR IGNORE INTO filings BY NAME SELECT * FROM staged_filings")
    finally:
        con.unregister("staged_filings")


def _upsert_company(con: duckdb.DuckDBPyConnection, company: CompanyRecord, *, full: bool) -> None:
    values = [getattr(company, name) for name in _COMPANY_COLUMNS]
    values = [list(v) if isinstance(v, tuple) else v for v in values]
    columns = ", ".join(_COMPANY_COLUMNS)
    marks = ", ".join("?" for _ in _COMPANY_COLUMNS)
    if full:
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COMPANY_COLUMNS[1:])
    else:  # facts-only load: fill the name, keep what submissions said before
        updates = "name = coalesce(companies.name, excluded.name)"
    con.execute(
        f"INSERT INTO companies ({columns}, updated_at) VALUES ({marks}, current_timestamp)"
        f" ON CONFLICT (cik) DO UPDATE SET {updates}, updated_at = excluded.updated_at",
        values,
    )


def _record_load(
    con: duckdb.DuckDBPyConnection,
    parsed: ParsedCompany,
    source: str,
    fact_count: int,
    filing_count: int,
) -> None:
    con.execute(
        "INSERT INTO company_loads"
        " (cik, facts_sha256, submissions_sha256, fact_count, filing_count, source, loaded_at)"
        " VALUES (?, ?, ?, ?, ?, ?, current_timestamp)"
        " ON CONFLICT (cik) DO UPDATE SET"
        " facts_sha256 = coalesce(excluded.facts_sha256, company_loads.facts_sha256),"
        " submissions_sha256 ="
        " coalesce(excluded.submissions_sha256, company_loads.submissions_sha256),"
        " fact_count = excluded.fact_count, filing_count = excluded.filing_count,"
        " source = excluded.source, loaded_at = excluded.loaded_at",
        [parsed.cik, parsed.facts_sha256, parsed.submissions_sha256, fact_count, filing_count,
         source],
    )  # fmt: skip


def _stored_counts(con: duckdb.DuckDBPyConnection, cik: int) -> tuple[int, int]:
    rows = con.execute(
        "SELECT (SELECT count(*) FROM facts WHERE cik = $1),"
        " (SELECT count(*) FROM filings WHERE cik = $1)",
        [cik],
    ).fetchall()
    return int(rows[0][0]), int(rows[0][1])
