"""Great Expectations suites (``expectations/*.json``) run against the DuckDB warehouse.

Each suite is named after the table it checks and is validated through GX's API: pandas data
source -> dataframe asset -> whole-dataframe batch definition -> ValidationDefinition. With
``docs_dir``, the results are also rendered as Data Docs (static HTML pages that need no
network: :mod:`finloom_core.quality.data_docs`) into that folder.

Bounded memory: chunks of whole CIKs
------------------------------------
A whole table in one DataFrame does not fit an archive-sized warehouse (facts: ~13 M rows,
~12 GB peak), so every table with a ``cik`` column is read and validated in *chunks*:

* ``SELECT cik, count(*) ... GROUP BY cik ORDER BY cik`` gives the row count per company;
  consecutive CIKs are packed into chunks of at most ``chunk_rows`` rows (:data:`CHUNK_ROWS`
  by default). A company is never split, so one larger than the budget is a chunk of its
  own: peak memory is bounded by ``max(chunk_rows, rows of the largest company)``.
* Each chunk is read with bound parameters (``WHERE "cik" BETWEEN ? AND ?``; rows whose cik
  is NULL form a last chunk, ``WHERE "cik" IS NULL``), so every row is checked exactly once.
  Only the suite's columns are read (quoted identifiers from the suite, never data values).
* The table's ValidationDefinition runs once per chunk; each chunk's DataFrame and GX result
  are dropped before the next chunk is read. The chunk results are merged into one dict of
  the shape of ``result.to_json_dict()`` (expectations_merge.py): an expectation
  succeeds when it succeeded in every chunk; counts are summed, percentages recomputed,
  partial lists concatenated (``partial_unexpected_index_list`` holds row positions in the
  chunked read order, i.e. by cik) and cut to 20 entries; ``meta["chunks"]`` is the
  number of chunks. A table without rows (or without a ``cik`` column) is one chunk.

Row-wise expectations (not-null, in-set, regex, between, column pairs) are exact under this
split. So is every uniqueness expectation whose columns include ``cik`` (the compound keys of
facts and financials): all rows of one company are in one chunk, so equal keys always meet.
A uniqueness expectation *without* ``cik`` (filings: ``accession`` alone) could miss a
duplicate spread over two chunks; for those the merged result is recomputed by SQL over the
whole table (``GROUP BY <columns> HAVING count(*) > 1``; same null handling as GX: missing
values are skipped for single-column uniqueness, ``ignore_row_if`` for compound keys). That
keeps filings chunked too, instead of reading the whole table. Aggregate expectations (mean,
row count, ...) would not be exact per chunk; none of the suites uses one.

Data Docs are rendered from the merged results, so they show each table once, as the
returned dict does.

What stays between chunks: after each chunk, the memory it freed goes back to the operating
system (the C heap's free pages through glibc's ``malloc_trim`` where there is one, and
Arrow's pool, which holds the chunk's strings), else the process grows by a few MB per
chunk of heap fragments (~0.4 GB over a 66 M-fact table). DuckDB keeps every block the
chunk reads cached in its buffer pool, up to the connection's memory limit: a caller that
reads a whole archive opens the connection with a small limit (the quality flow's validate
task caps it at 256 MB), since no block is read twice.

``import great_expectations`` costs ~4 s, so it happens inside :func:`validate_tables` only.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from finloom_core.quality.data_docs import write_docs
from finloom_core.quality.expectations_merge import (
    PARTITION_COLUMN,
    merge_results,
    recheck_uniqueness,
)
from finloom_core.quality.results import FailedExpectation, SuiteSummary
from finloom_core.sql import quote_ident

SUITES = ("facts", "filings", "financials")
DOCS_SITE = "finloom_local_site"
CHUNK_ROWS = 500_000  # row budget per chunk (whole CIKs; a larger company is its own chunk)

# One chunk: a WHERE clause over the partition column (None: the whole table) and its parameters.
Chunk = tuple[str | None, list[Any]]

log = logging.getLogger(__name__)


def load_suite_json(expectations_dir: Path | str, name: str) -> dict[str, Any]:
    path = Path(expectations_dir) / f"{name}.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def suite_columns(suite: dict[str, Any]) -> list[str]:
    """Every column a suite's expectations name, in first-seen order."""
    columns: list[str] = []
    for expectation in suite.get("expectations", []):
        kwargs = expectation.get("kwargs", {})
        names = [kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B")]
        names += list(kwargs.get("column_list") or [])
        for name in names:
            if name and name not in columns:
                columns.append(name)
    return columns


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {
        row[0]
        for row in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]
        ).fetchall()
    }


def table_frame(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: list[str],
    *,
    where: str | None = None,
    params: Sequence[Any] = (),
) -> Any:
    """The suite's columns of ``table`` as a pandas DataFrame (dates as datetime64).

    ``where`` is a SQL condition with ``?`` placeholders bound to ``params`` (one chunk).
    """
    existing = table_columns(con, table)
    wanted = [c for c in columns if c in existing] or ["*"]
    select = ", ".join(quote_ident(c) if c != "*" else c for c in wanted)
    sql = f"SELECT {select} FROM {quote_ident(table)}"
    if where is not None:
        sql += f" WHERE {where}"
    return con.execute(sql, list(params)).df()


def cik_chunks(
    con: duckdb.DuckDBPyConnection,
    table: str,
    chunk_rows: int,
    ciks: Sequence[int] | None = None,
) -> list[Chunk]:
    """``table`` split into chunks of whole CIKs of at most ``chunk_rows`` rows (see module doc).

    With ``ciks``, only the rows of those companies (every chunk's condition also binds the
    list; no NULL-cik chunk). A table without rows or without a ``cik`` column is one chunk,
    the whole table. Raises ``duckdb.Error`` when the table does not exist.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    if PARTITION_COLUMN not in table_columns(con, table):
        con.execute(
            f"SELECT count(*) FROM {quote_ident(table)}"
        ).fetchall()  # missing table: raises
        return [(None, [])]
    key = quote_ident(PARTITION_COLUMN)
    only = f" WHERE list_contains(?, {key})" if ciks is not None else ""
    scoped = [sorted({int(c) for c in ciks})] if ciks is not None else []
    counts = con.execute(
        f"SELECT {key}, count(*) FROM {quote_ident(table)}{only} GROUP BY {key}"
        f" ORDER BY {key} NULLS LAST",
        scoped,
    ).fetchall()
    between = f"{key} BETWEEN ? AND ?" + (f" AND list_contains(?, {key})" if scoped else "")
    chunks: list[Chunk] = []
    low: Any = None
    high: Any = None
    rows = 0
    has_null = False
    for cik, count in counts:
        if cik is None:
            has_null = True
            continue
        if low is not None and rows + count > chunk_rows:
            chunks.append((between, [low, high, *scoped]))
            low, rows = None, 0
        if low is None:
            low = cik
        high, rows = cik, rows + count
    if low is not None:
        chunks.append((between, [low, high, *scoped]))
    if has_null:
        chunks.append((f"{key} IS NULL", []))
    if not chunks and scoped:  # none of these companies has a row: an empty chunk
        return [(f"list_contains(?, {key})", scoped)]
    return chunks or [(None, [])]


def validate_tables(
    con: duckdb.DuckDBPyConnection,
    expectations_dir: Path | str,
    docs_dir: Path | str | None = None,
    tables: tuple[str, ...] = SUITES,
    *,
    chunk_rows: int = CHUNK_ROWS,
    ciks: Sequence[int] | None = None,
    scope: str | None = None,
) -> dict[str, Any]:
    """Run each suite against its table; returns {table: GX result dict (``to_json_dict()``)}.

    Tables are validated in chunks of whole CIKs of at most ``chunk_rows`` rows and the chunk
    results merged (module docstring); ``result["meta"]["chunks"]`` is the number of chunks.
    A table missing from the database is reported as ``{"success": False, "error": ...}``
    rather than raising. With ``docs_dir`` the Data Docs site (``index.html`` and pages)
    replaces whatever that folder held.

    With ``ciks``, only those companies' rows are validated (their chunks), and the
    uniqueness re-check looks at the keys those rows carry, across the whole table.
    ``scope`` (e.g. "4 companies changed by this run") goes to ``result["meta"]["scope"]``
    and the Data Docs.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="finloom-gx-") as project:
        # A file context in a throw-away project: everything offline (Data Docs are FinLoom's
        # own pages, rendered from the merged results below).
        context = gx.get_context(mode="file", project_root_dir=project)
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = context.data_sources.add_pandas("finloom")
        results: dict[str, Any] = {}
        validated = False
        for table in tables:
            raw = load_suite_json(expectations_dir, table)
            columns = suite_columns(raw)
            try:
                chunks = cik_chunks(con, table, chunk_rows, ciks)
            except duckdb.Error as exc:
                results[table] = {"success": False, "error": str(exc).splitlines()[0]}
                continue
            suite = context.suites.add(
                gx.ExpectationSuite(
                    name=raw["name"], expectations=raw["expectations"], meta=raw.get("meta")
                )
            )
            asset = source.add_dataframe_asset(name=table)
            batch = asset.add_batch_definition_whole_dataframe(f"{table}-all")
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(name=f"{table}-validation", data=batch, suite=suite)
            )
            try:
                parts = list(_run_chunks(definition, con, table, columns, chunks))
            except duckdb.Error as exc:
                results[table] = {"success": False, "error": str(exc).splitlines()[0]}
                continue
            validated = True
            merged = merge_results(parts)
            if len(chunks) > 1 or ciks is not None:
                recheck_uniqueness(con, table, merged, ciks)
            if scope is not None:
                merged["meta"]["scope"] = scope
            results[table] = merged
        if docs_dir is not None and validated:
            write_docs(results, Path(docs_dir))
    return results


def _run_chunks(
    definition: Any,
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: list[str],
    chunks: list[Chunk],
) -> Iterator[dict[str, Any]]:
    """One GX result dict per chunk; a chunk's DataFrame is freed before the next is read."""
    for where, params in chunks:
        frame = table_frame(con, table, columns, where=where, params=params)
        result = definition.run(batch_parameters={"dataframe": frame})
        part: dict[str, Any] = result.to_json_dict()
        del frame, result
        release_memory()
        yield part


def release_memory() -> None:
    """Free what a chunk left behind before the next is read (module docstring): reference
    cycles GX leaves, Arrow's cached pool memory and the C heap's free pages."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None


def summarize(results: dict[str, Any]) -> dict[str, SuiteSummary]:
    """Per table: success, evaluated and failed expectations, and the failed ones' types."""
    summary: dict[str, SuiteSummary] = {}
    for table, result in results.items():
        if "error" in result:
            summary[table] = SuiteSummary(False, 0, (), str(result["error"]))
            continue
        failed = tuple(_failed(r) for r in result.get("results", []) if not r.get("success"))
        evaluated = len(result.get("results", []))
        summary[table] = SuiteSummary(bool(result.get("success")), evaluated, failed)
    return summary


def _failed(result: dict[str, Any]) -> FailedExpectation:
    """A failed expectation of a GX result: its type, column(s) and unexpected count."""
    config = result["expectation_config"]
    kwargs = config["kwargs"]
    column = kwargs.get("column") or kwargs.get("column_list") or kwargs.get("column_A")
    count = (result.get("result") or {}).get("unexpected_count")
    return FailedExpectation(
        config["type"], tuple(column) if isinstance(column, list) else column, count
    )
