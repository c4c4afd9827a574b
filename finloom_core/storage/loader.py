"""Bulk, exactly-once loads of parsed companies into the warehouse.

Every company is loaded wholly or not at all, and a rerun replaces its rows, so counts
never double. The companies of a batch are written set-wise (a handful of bulk statements
for the whole batch) inside one transaction, which DuckDB commits far faster than one
transaction per company; if that transaction fails, it is rolled back and each company is
retried in a transaction of its own, so one bad company never blocks the rest. A crash
(even SIGKILL) before COMMIT leaves every company of the batch at its previous version.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from finloom_core.parse.companyfacts import FACT_KEY, FACT_SCHEMA, drop_duplicate_facts
from finloom_core.parse.submissions import filings_from_facts
from finloom_core.records import ParsedCompany

log = logging.getLogger(__name__)

_FACT_COLUMNS = ", ".join(f.name for f in FACT_SCHEMA)
_COMPANY_FIELDS = (
    "cik", "name", "tickers", "exchanges", "sic", "sic_description", "fiscal_year_end",
    "entity_type", "category", "state_of_incorporation", "ein", "former_names",
)  # fmt: skip
_LIST_FIELDS = {"tickers", "exchanges", "former_names"}

# facts_sha256, submissions_sha256, fact_count, filing_count of the last load
StoredLoad = tuple[str | None, str | None, int, int]


@dataclass(frozen=True, slots=True)
class LoadResult:
    cik: int
    facts: int
    filings: int
    unchanged: bool = False
    duplicates_dropped: int = 0
    error: str | None = None


def load_company(
    con: duckdb.DuckDBPyConnection, parsed: ParsedCompany, *, source: str
) -> LoadResult:
    """Replace one company's rows in a single transaction (see load_companies)."""
    result = load_companies(con, [parsed], source=source)[0]
    if result.error is not None:
        raise duckdb.Error(result.error)
    return result


def load_companies(
    con: duckdb.DuckDBPyConnection, batch: Sequence[ParsedCompany], *, source: str
) -> list[LoadResult]:
    """Load a batch; unchanged companies (same content hashes) are skipped.

    Returns one LoadResult per company, in order; a company that could not be loaded has
    ``error`` set and its previous rows untouched.
    """
    stored = _stored_loads(con, [p.cik for p in batch])
    pending = [p for p in batch if not _unchanged(p, stored.get(p.cik))]
    results: dict[int, LoadResult] = {
        p.cik: LoadResult(p.cik, stored[p.cik][2], stored[p.cik][3], unchanged=True)
        for p in batch
        if p.cik in stored and p not in pending
    }
    if pending:
        try:
            results.update(_load_in_transaction(con, pending, source))
        except duckdb.Error as exc:
            if len(pending) == 1:
                results[pending[0].cik] = LoadResult(pending[0].cik, 0, 0, error=_line(exc))
            else:
                log.warning("batch load failed (%s); retrying company by company", _line(exc))
                for parsed in pending:
                    results[parsed.cik] = load_companies(con, [parsed], source=source)[0]
    return [results[p.cik] for p in batch]


def _load_in_transaction(
    con: duckdb.DuckDBPyConnection, batch: list[ParsedCompany], source: str
) -> dict[int, LoadResult]:
    facts, dropped = _unique_facts(con, [p.facts for p in batch if p.facts is not None])
    con.execute("BEGIN TRANSACTION")
    try:
        _replace_facts(con, [p.cik for p in batch if p.facts is not None], facts)
        filing_counts = _replace_filings(con, batch, facts)
        _upsert_companies(con, batch)
        fact_counts = _record_loads(con, batch, source, filing_counts, dropped)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return {
        p.cik: LoadResult(p.cik, fact_counts[p.cik], filing_counts.get(p.cik, 0),
                          duplicates_dropped=dropped.get(p.cik, 0))
        for p in batch
    }  # fmt: skip


def _stored_loads(con: duckdb.DuckDBPyConnection, ciks: list[int]) -> dict[int, StoredLoad]:
    rows = con.execute(
        "SELECT cik, facts_sha256, submissions_sha256, fact_count, filing_count"
        " FROM company_loads WHERE list_contains(?, cik)",
        [ciks],
    ).fetchall()
    return {int(r[0]): (r[1], r[2], int(r[3]), int(r[4])) for r in rows}


def _unchanged(
    parsed: ParsedCompany, stored: tuple[str | None, str | None, int, int] | None
) -> bool:
    if stored is None:
        return False
    facts_same = parsed.facts_sha256 is None or parsed.facts_sha256 == stored[0]
    subs_same = parsed.submissions_sha256 is None or parsed.submissions_sha256 == stored[1]
    return facts_same and subs_same


def _unique_facts(
    con: duckdb.DuckDBPyConnection, tables: list[pa.Table]
) -> tuple[pa.Table, dict[int, int]]:
    """All facts of the batch, one row per (cik, fact key), plus drops per CIK."""
    facts = pa.concat_tables(tables) if tables else FACT_SCHEMA.empty_table()
    if facts.num_rows == 0:
        return facts, {}
    keys = ", ".join(["cik", *FACT_KEY])
    con.register("staged_keys", facts)
    try:
        distinct = con.execute(
            f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM staged_keys)"  # fixed names
        ).fetchall()[0][0]
    finally:
        con.unregister("staged_keys")
    if distinct == facts.num_rows:
        return facts, {}
    unique, _ = drop_duplicate_facts(facts)
    before = facts.group_by("cik").aggregate([("cik", "count")]).to_pydict()
    after = dict(zip(*unique.group_by("cik").aggregate([("cik", "count")]).to_pydict().values(),
                     strict=True))  # fmt: skip
    dropped = {
        c: n - after.get(c, 0) for c, n in zip(before["cik"], before["cik_count"], strict=True)
    }
    dropped = {c: n for c, n in dropped.items() if n}
    log.warning("facts repeating a key were dropped (kept the last filed): %s", dropped)
    return unique, dropped


def _per_cik(facts: pa.Table) -> dict[int, int]:
    counts = facts.group_by("cik").aggregate([("cik", "count")]).to_pydict()
    return dict(zip(counts["cik"], counts["cik_count"], strict=True))


def _replace_facts(con: duckdb.DuckDBPyConnection, ciks: list[int], facts: pa.Table) -> None:
    if not ciks:
        return
    con.execute("DELETE FROM facts WHERE list_contains(?, cik)", [ciks])
    con.register("staged_facts", facts)
    try:
        con.execute(f"INSERT INTO facts ({_FACT_COLUMNS}) SELECT {_FACT_COLUMNS} FROM staged_facts")
    finally:
        con.unregister("staged_facts")


def _replace_filings(
    con: duckdb.DuckDBPyConnection, batch: list[ParsedCompany], facts: pa.Table
) -> dict[int, int]:
    """Submissions rows win; accessions seen only in facts get a row from the facts.

    ``filings`` keeps one row per accession, ``filing_companies`` every company listing it.
    A load without submissions replaces only the facts-derived rows of its company.
    Returns the number of filings each CIK lists afterwards.
    """
    full = [p.cik for p in batch if p.has_submissions]
    facts_only = [p.cik for p in batch if not p.has_submissions]
    for table in ("filings", "filing_companies"):
        con.execute(
            f"DELETE FROM {table} WHERE list_contains(?, cik)"  # fixed table names
            " OR (list_contains(?, cik) AND source = 'facts')",
            [full, facts_only],
        )
    staged = [p.filings for p in batch if p.filings.num_rows]
    if facts.num_rows:
        staged.append(filings_from_facts(facts))
    if staged:
        con.register("staged_filings", pa.concat_tables(staged))
        try:
            # one row per key, submissions before facts-derived (rows already stored win)
            con.execute(
                "INSERT OR IGNORE INTO filings BY NAME SELECT * FROM staged_filings"
                " QUALIFY row_number() OVER"
                " (PARTITION BY accession ORDER BY source = 'facts', cik) = 1"
            )
            con.execute(
                "INSERT OR IGNORE INTO filing_companies BY NAME"
                " SELECT accession, cik, source FROM staged_filings"
                " QUALIFY row_number() OVER"
                " (PARTITION BY accession, cik ORDER BY source = 'facts') = 1"
            )
        finally:
            con.unregister("staged_filings")
    rows = con.execute(
        "SELECT cik, count(*) FROM filing_companies WHERE list_contains(?, cik) GROUP BY cik",
        [[p.cik for p in batch]],
    ).fetchall()
    return {int(cik): int(n) for cik, n in rows}


def _upsert_companies(con: duckdb.DuckDBPyConnection, batch: list[ParsedCompany]) -> None:
    """Companies with submissions are replaced; facts-only loads only fill a missing name."""
    for full in (True, False):
        records = [p.company for p in batch if p.has_submissions is full]
        if not records:
            continue
        table = pa.table(
            {
                f: [list(getattr(r, f)) if f in _LIST_FIELDS else getattr(r, f) for r in records]
                for f in _COMPANY_FIELDS
            }
        )
        if full:
            updates = ", ".join(f"{c} = excluded.{c}" for c in _COMPANY_FIELDS[1:])
        else:
            updates = "name = coalesce(companies.name, excluded.name)"
        con.register("staged_companies", table)
        try:
            con.execute(
                f"INSERT INTO companies BY NAME SELECT *, current_timestamp AS updated_at"
                f" FROM staged_companies ON CONFLICT (cik) DO UPDATE SET {updates},"
                " updated_at = excluded.updated_at"
            )
        finally:
            con.unregister("staged_companies")


def _record_loads(
    con: duckdb.DuckDBPyConnection,
    batch: list[ParsedCompany],
    source: str,
    filing_counts: dict[int, int],
    dropped: dict[int, int],
) -> dict[int, int]:
    """Upsert the load log (hashes and counts); return the fact count per CIK."""
    previous = _stored_loads(con, [p.cik for p in batch])
    fact_counts = {
        p.cik: p.facts.num_rows - dropped.get(p.cik, 0)
        if p.facts is not None
        else previous.get(p.cik, (None, None, 0, 0))[2]
        for p in batch
    }
    table = pa.table(
        {
            "cik": [p.cik for p in batch],
            "facts_sha256": [p.facts_sha256 for p in batch],
            "submissions_sha256": [p.submissions_sha256 for p in batch],
            "fact_count": [fact_counts[p.cik] for p in batch],
            "filing_count": [filing_counts.get(p.cik, 0) for p in batch],
        }
    )
    con.register("staged_loads", table)
    try:
        con.execute(
            "INSERT INTO company_loads BY NAME"
            " SELECT *, ? AS source, current_timestamp AS loaded_at FROM staged_loads"
            " ON CONFLICT (cik) DO UPDATE SET"
            " facts_sha256 = coalesce(excluded.facts_sha256, company_loads.facts_sha256),"
            " submissions_sha256 ="
            " coalesce(excluded.submissions_sha256, company_loads.submissions_sha256),"
            " fact_count = excluded.fact_count, filing_count = excluded.filing_count,"
            " source = excluded.source, loaded_at = excluded.loaded_at",
            [source],
        )
    finally:
        con.unregister("staged_loads")
    return fact_counts


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
