"""Bulk, exactly-once loads of parsed companies into the warehouse.

Every company is loaded wholly or not at all, and a rerun replaces its rows, so counts
never double. The companies of a batch are written set-wise (a handful of bulk statements
for the whole batch) inside one transaction, which DuckDB commits far faster than one
transaction per company; if that transaction fails, it is rolled back and each company is
retried in a transaction of its own, so one bad company never blocks the rest. A crash
(even SIGKILL) before COMMIT leaves every company of the batch at its previous version.

The transaction that replaces a company's facts also marks it ``needs_normalize`` in
``company_loads``; the normalizer clears the mark in the transaction that rebuilds its
financials. A crash between the two leaves the mark, and the next run rebuilds the marked
companies first (see finloom_core.normalize.freshness), so facts and financials never
stay apart.

The HTTP validators of a company's downloaded documents are stored in the transaction that
loads it (or, for an unchanged company, one that only confirms them), never before: a crash
in between leaves no validator that would make the next run skip the download. A company
SEC answered 304 for (``not_modified``) is unchanged without any write.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from finloom_core.errors import first_line
from finloom_core.parse.companyfacts import FACT_COLUMNS, FACT_KEY, facts_select
from finloom_core.records import ParsedCompany
from finloom_core.sql import registered, transaction
from finloom_core.storage.validators import store_validators
from finloom_core.validators import Validators

log = logging.getLogger(__name__)

_COMPANY_FIELDS = (
    "cik", "name", "tickers", "exchanges", "sic", "sic_description", "fiscal_year_end",
    "entity_type", "category", "state_of_incorporation", "ein", "former_names",
)  # fmt: skip
_LIST_FIELDS = {"tickers", "exchanges", "former_names"}

_PARSE_ERRORS = (duckdb.InvalidInputException, duckdb.ConversionException)

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
    error_stage: str = "load"
    name: str | None = None  # the stored name of a company not re-read (304)


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
    order = batch
    stored = _stored_loads(con, [p.cik for p in batch])
    results = _not_modified(con, [p for p in batch if p.not_modified], stored)
    batch = [p for p in batch if not p.not_modified]
    pending = [p for p in batch if not _unchanged(p, stored.get(p.cik))]
    confirmed = [p for p in batch if p.cik in stored and p not in pending]
    results |= {
        p.cik: LoadResult(p.cik, stored[p.cik][2], stored[p.cik][3], unchanged=True)
        for p in confirmed
    }
    if any(p.validators for p in confirmed):  # content stored unchanged: its validators too
        with transaction(con):
            store_validators(con, _validator_rows(confirmed))
    if pending:
        try:
            results.update(_load_in_transaction(con, pending, source))
        except duckdb.Error as exc:
            if len(pending) == 1:
                # DuckDB's JSON reader refusing a document is a parse failure
                stage = "parse" if isinstance(exc, _PARSE_ERRORS) else "load"
                results[pending[0].cik] = LoadResult(
                    pending[0].cik, 0, 0, error=first_line(exc), error_stage=stage
                )
            else:
                log.warning("batch load failed (%s); retrying company by company", first_line(exc))
                for parsed in pending:
                    results[parsed.cik] = load_companies(con, [parsed], source=source)[0]
    return [results[p.cik] for p in order]


def _not_modified(
    con: duckdb.DuckDBPyConnection, batch: list[ParsedCompany], stored: dict[int, StoredLoad]
) -> dict[int, LoadResult]:
    """Companies whose documents SEC answered 304: unchanged, with their stored counts."""
    if not batch:
        return {}
    rows = con.execute(
        "SELECT cik, name FROM companies WHERE list_contains(?, cik)", [[p.cik for p in batch]]
    ).fetchall()
    names = {int(cik): name for cik, name in rows}
    results: dict[int, LoadResult] = {}
    for p in batch:
        if p.cik in stored:
            facts, filings = stored[p.cik][2], stored[p.cik][3]
            name = names.get(p.cik)
            results[p.cik] = LoadResult(p.cik, facts, filings, unchanged=True, name=name)
        else:  # validators are read only for loaded companies: a race with a deletion
            error = "SEC answered 304 Not Modified for a company not in the warehouse: run again"
            results[p.cik] = LoadResult(p.cik, 0, 0, error=error)
    return results


def _validator_rows(batch: Sequence[ParsedCompany]) -> list[tuple[int, str, Validators]]:
    return [(p.cik, url, v) for p in batch for url, v in p.validators]


def _load_in_transaction(
    con: duckdb.DuckDBPyConnection, batch: list[ParsedCompany], source: str
) -> dict[int, LoadResult]:
    with_facts = [p for p in batch if p.facts is not None]
    with transaction(con):
        fact_counts, dropped = _replace_facts(con, with_facts)
        filing_counts = _replace_filings(con, batch, [p.cik for p in with_facts])
        _upsert_companies(con, batch)
        fact_counts = _record_loads(con, batch, source, fact_counts, filing_counts)
        store_validators(con, _validator_rows(batch))
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


def _replace_facts(
    con: duckdb.DuckDBPyConnection, batch: list[ParsedCompany]
) -> tuple[dict[int, int], dict[int, int]]:
    """Replace the facts of every company in ``batch`` from its companyfacts file.

    DuckDB parses the files inside the transaction (or, for facts a Dask worker parsed,
    bulk-reads their Parquet files, in the same order). Facts repeating a key are cut to the
    last filed (SEC's documents carry each key once; this guards the uniqueness rule).
    Returns facts per CIK and facts dropped per CIK.
    """
    if not batch:
        return {}, {}
    ciks = [p.cik for p in batch]
    con.execute("DELETE FROM facts WHERE list_contains(?, cik)", [ciks])
    docs = [p.facts for p in batch if p.facts is not None]
    files = [(p.cik, p.facts.path) for p in batch if p.facts is not None and not p.facts.parquet]
    if files:
        with facts_select(con, files) as (select, params):
            con.execute(f"INSERT INTO facts ({FACT_COLUMNS}) SELECT {FACT_COLUMNS} FROM ({select})",
                        params)  # fmt: skip
    parsed = [str(d.path) for d in docs if d.parquet]  # parsed on a Dask worker, in batch order
    if parsed:
        con.execute(
            f"INSERT INTO facts ({FACT_COLUMNS}) SELECT {FACT_COLUMNS} FROM read_parquet(?)",
            [parsed],
        )
    # equal keys hash equal: only companies with a repeated hash (a repeated key, or a
    # collision) need the exact count
    keys = ", ".join(FACT_KEY)
    counts, hashed = _key_counts(con, ciks, f"hash({keys})")
    suspects = [cik for cik in counts if hashed[cik] != counts[cik]]
    exact = _key_counts(con, suspects, f"({keys})")[1] if suspects else {}
    dropped = {cik: counts[cik] - exact[cik] for cik in suspects if exact[cik] != counts[cik]}
    if dropped:
        _drop_repeated_keys(con, list(dropped))
        log.warning("facts repeating a key were cut to the last filed: %s", dropped)
        counts.update({cik: counts[cik] - n for cik, n in dropped.items()})
    return {cik: counts.get(cik, 0) for cik in ciks}, dropped


def _key_counts(
    con: duckdb.DuckDBPyConnection, ciks: list[int], key: str
) -> tuple[dict[int, int], dict[int, int]]:
    """Facts per CIK, and distinct ``key`` values per CIK."""
    rows = con.execute(
        f"SELECT cik, count(*), count(DISTINCT {key}) FROM facts"  # key: fixed column names
        " WHERE list_contains(?, cik) GROUP BY cik",
        [ciks],
    ).fetchall()
    return {int(c): int(n) for c, n, _ in rows}, {int(c): int(d) for c, _, d in rows}


def _drop_repeated_keys(con: duckdb.DuckDBPyConnection, ciks: list[int]) -> None:
    keys = ", ".join(FACT_KEY)
    con.execute(
        "DELETE FROM facts WHERE rowid IN (SELECT rowid FROM facts"
        " WHERE list_contains(?, cik) QUALIFY row_number() OVER"
        f" (PARTITION BY cik, {keys}"  # fixed column names
        " ORDER BY filed DESC NULLS LAST, rowid DESC) > 1)",
        [ciks],
    )


def _replace_filings(
    con: duckdb.DuckDBPyConnection, batch: list[ParsedCompany], fact_ciks: list[int]
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
    submitted = [p.filings for p in batch if p.filings.num_rows]
    if submitted:  # first, so that submissions rows win over facts-derived ones
        with registered(con, "staged_filings", pa.concat_tables(submitted)):
            # a filing listed by two companies of the batch: the lower CIK's row is kept
            con.execute(
                "INSERT OR IGNORE INTO filings BY NAME SELECT * FROM staged_filings"
                " QUALIFY row_number() OVER (PARTITION BY accession ORDER BY cik) = 1"
            )
            con.execute(
                "INSERT OR IGNORE INTO filing_companies BY NAME"
                " SELECT accession, cik, source FROM staged_filings"
            )
    if fact_ciks:
        _insert_filings_from_facts(con, fact_ciks)
    rows = con.execute(
        "SELECT cik, count(*) FROM filing_companies WHERE list_contains(?, cik) GROUP BY cik",
        [[p.cik for p in batch]],
    ).fetchall()
    return {int(cik): int(n) for cik, n in rows}


def _insert_filings_from_facts(con: duckdb.DuckDBPyConnection, ciks: list[int]) -> None:
    """Accessions of these companies' facts not yet in filings: CIK and form of the
    accession, earliest filed date; and every (accession, cik) pair in filing_companies."""
    con.execute(
        "INSERT OR IGNORE INTO filings (accession, cik, form, filed, is_xbrl, source)"
        " SELECT accession, min(cik), mode(form ORDER BY form), min(filed), true, 'facts'"
        " FROM facts WHERE list_contains(?, cik) GROUP BY accession",
        [ciks],
    )
    con.execute(
        "INSERT OR IGNORE INTO filing_companies (accession, cik, source)"
        " SELECT DISTINCT accession, cik, 'facts' FROM facts WHERE list_contains(?, cik)",
        [ciks],
    )


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
        with registered(con, "staged_companies", table):
            con.execute(
                f"INSERT INTO companies BY NAME SELECT *, current_timestamp AS updated_at"
                f" FROM staged_companies ON CONFLICT (cik) DO UPDATE SET {updates},"
                " updated_at = excluded.updated_at"
            )


def _record_loads(
    con: duckdb.DuckDBPyConnection,
    batch: list[ParsedCompany],
    source: str,
    loaded_facts: dict[int, int],
    filing_counts: dict[int, int],
) -> dict[int, int]:
    """Upsert the load log (hashes, counts, and the "needs normalize" mark of every company
    whose facts were replaced); return the fact count per CIK."""
    previous = _stored_loads(con, [p.cik for p in batch])
    fact_counts = {
        p.cik: loaded_facts[p.cik]
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
            # new facts: the financials are rebuilt by the normalizer, which clears the mark
            "needs_normalize": [p.facts is not None for p in batch],
        }
    )
    with registered(con, "staged_loads", table):
        con.execute(
            "INSERT INTO company_loads BY NAME"
            " SELECT *, ? AS source, current_timestamp AS loaded_at FROM staged_loads"
            " ON CONFLICT (cik) DO UPDATE SET"
            " facts_sha256 = coalesce(excluded.facts_sha256, company_loads.facts_sha256),"
            " submissions_sha256 ="
            " coalesce(excluded.submissions_sha256, company_loads.submissions_sha256),"
            " fact_count = excluded.fact_count, filing_count = excluded.filing_count,"
            " needs_normalize ="
            " excluded.needs_normalize OR coalesce(company_loads.needs_normalize, false),"
            " source = excluded.source, loaded_at = excluded.loaded_at",
            [source],
        )
    return fact_counts
