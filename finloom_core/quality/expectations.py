"""Great Expectations suites (``expectations/*.json``) run against the DuckDB warehouse.

Each suite is named after the table it checks and is validated through GX's API: pandas data
source -> dataframe asset -> whole-dataframe batch definition -> ValidationDefinition. With
``docs_dir``, the results are also rendered as GX Data Docs (static HTML) into that folder.

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
  the shape of ``result.to_json_dict()`` (see :func:`merge_results`): an expectation
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

Data Docs show one validation run per chunk (the merged result exists only in the returned
dict); that is accepted.

``import great_expectations`` costs ~4 s, so it happens inside :func:`validate_tables` only.
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb

SUITES = ("facts", "filings", "financials")
DOCS_SITE = "finloom_local_site"
CHUNK_ROWS = 500_000  # row budget per chunk (whole CIKs; a larger company is its own chunk)
PARTITION_COLUMN = "cik"
PARTIAL_LIMIT = 20  # GX's length of the partial_unexpected_* lists
UNIQUENESS = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")

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


def quote(name: str) -> str:
    """``name`` as a DuckDB quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


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
    select = ", ".join(quote(c) if c != "*" else c for c in wanted)
    sql = f"SELECT {select} FROM {quote(table)}"
    if where is not None:
        sql += f" WHERE {where}"
    return con.execute(sql, list(params)).df()


def cik_chunks(con: duckdb.DuckDBPyConnection, table: str, chunk_rows: int) -> list[Chunk]:
    """``table`` split into chunks of whole CIKs of at most ``chunk_rows`` rows (see module doc).

    A table without rows or without a ``cik`` column is one chunk, the whole table. Raises
    ``duckdb.Error`` when the table does not exist.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    if PARTITION_COLUMN not in table_columns(con, table):
        con.execute(f"SELECT count(*) FROM {quote(table)}").fetchall()  # missing table: raises
        return [(None, [])]
    key = quote(PARTITION_COLUMN)
    counts = con.execute(
        f"SELECT {key}, count(*) FROM {quote(table)} GROUP BY {key} ORDER BY {key} NULLS LAST"
    ).fetchall()
    between = f"{key} BETWEEN ? AND ?"
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
            chunks.append((between, [low, high]))
            low, rows = None, 0
        if low is None:
            low = cik
        high, rows = cik, rows + count
    if low is not None:
        chunks.append((between, [low, high]))
    if has_null:
        chunks.append((f"{key} IS NULL", []))
    return chunks or [(None, [])]


def validate_tables(
    con: duckdb.DuckDBPyConnection,
    expectations_dir: Path | str,
    docs_dir: Path | str | None = None,
    tables: tuple[str, ...] = SUITES,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> dict[str, Any]:
    """Run each suite against its table; returns {table: GX result dict (``to_json_dict()``)}.

    Tables are validated in chunks of whole CIKs of at most ``chunk_rows`` rows and the chunk
    results merged (module docstring); ``result["meta"]["chunks"]`` is the number of chunks.
    A table missing from the database is reported as ``{"success": False, "error": ...}``
    rather than raising. With ``docs_dir`` the Data Docs site (``index.html`` and pages)
    replaces whatever that folder held.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="finloom-gx-") as project:
        # A file context in a throw-away project: everything offline, and Data Docs are
        # rendered by GX's own site builder from the stored validation results.
        context = gx.get_context(mode="file", project_root_dir=project)
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = context.data_sources.add_pandas("finloom")
        results: dict[str, Any] = {}
        validated = False
        for table in tables:
            raw = load_suite_json(expectations_dir, table)
            columns = suite_columns(raw)
            try:
                chunks = cik_chunks(con, table, chunk_rows)
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
            if len(chunks) > 1:
                _recheck_uniqueness(con, table, merged)
            results[table] = merged
        if docs_dir is not None and validated:
            _write_docs(context, Path(project), Path(docs_dir))
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
        gc.collect()  # defensive: anything GX left in reference cycles goes before the next read
        yield part


def _percent(part: int, whole: int) -> float | None:
    return part / whole * 100 if whole else None


def _value_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _merge_counts(lists: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``partial_unexpected_counts`` of several chunks: counts added by value, largest first."""
    totals: dict[str, dict[str, Any]] = {}
    for entries in lists:
        for entry in entries:
            row = totals.setdefault(_value_key(entry["value"]), {"value": entry["value"]})
            row["count"] = row.get("count", 0) + entry["count"]
    return sorted(totals.values(), key=lambda r: -r["count"])[:PARTIAL_LIMIT]


def _recount(result: dict[str, Any], kwargs: dict[str, Any]) -> None:
    """Percentages and (under ``mostly``) success of one expectation from its summed counts."""
    counts = result.get("result") or {}
    if "element_count" not in counts or "unexpected_count" not in counts:
        return
    elements = counts["element_count"]
    unexpected = counts["unexpected_count"]
    if "missing_count" in counts:
        present = elements - counts["missing_count"]
        counts["missing_percent"] = _percent(counts["missing_count"], elements)
        counts["unexpected_percent"] = _percent(unexpected, present)
        if "unexpected_percent_total" in counts:
            counts["unexpected_percent_total"] = _percent(unexpected, elements)
        if "unexpected_percent_nonmissing" in counts:
            counts["unexpected_percent_nonmissing"] = _percent(unexpected, present)
    else:
        present = elements
        counts["unexpected_percent"] = _percent(unexpected, elements)
    if kwargs.get("mostly") is not None and not (result.get("exception_info") or {}).get(
        "raised_exception"
    ):
        share = 1.0 if present == 0 else (present - unexpected) / present
        result["success"] = share >= kwargs["mostly"]


def _merge_expectation(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One expectation's results over all chunks, in the shape of a single one."""
    merged = dict(parts[0])
    merged["success"] = all(p.get("success") for p in parts)
    raised = [p for p in parts if (p.get("exception_info") or {}).get("raised_exception")]
    if raised:
        merged["exception_info"] = raised[0]["exception_info"]
    counts_list = [p.get("result") or {} for p in parts]
    counts = dict(counts_list[0])
    for name in ("element_count", "unexpected_count", "missing_count"):
        if all(isinstance(c.get(name), int) for c in counts_list):
            counts[name] = sum(c[name] for c in counts_list)
    if "partial_unexpected_list" in counts:
        counts["partial_unexpected_list"] = [
            v for c in counts_list for v in c.get("partial_unexpected_list") or []
        ][:PARTIAL_LIMIT]
    if "partial_unexpected_index_list" in counts:
        indexes: list[Any] = []
        offset = 0
        for c in counts_list:  # chunk-local positions -> positions in the chunked read order
            chunk = c.get("partial_unexpected_index_list") or []
            indexes += [i + offset if isinstance(i, int) else i for i in chunk]
            offset += c.get("element_count") or 0
        counts["partial_unexpected_index_list"] = indexes[:PARTIAL_LIMIT]
    if "partial_unexpected_counts" in counts:
        counts["partial_unexpected_counts"] = _merge_counts(
            [c.get("partial_unexpected_counts") or [] for c in counts_list]
        )
    merged["result"] = counts
    _recount(merged, merged.get("expectation_config", {}).get("kwargs") or {})
    return merged


def _statistics(results: list[dict[str, Any]]) -> dict[str, Any]:
    passed = sum(1 for r in results if r.get("success"))
    return {
        "evaluated_expectations": len(results),
        "successful_expectations": passed,
        "unsuccessful_expectations": len(results) - passed,
        "success_percent": _percent(passed, len(results)),
    }


def merge_results(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The GX result dicts of one suite's chunk runs as one (module docstring).

    Expectations are matched by ``expectation_config["id"]`` (the suite's, the same in every
    run), else by position; the first chunk's dict gives the order and the other fields.
    """
    if not parts:
        raise ValueError("no chunk results to merge")
    merged = dict(parts[0])
    grouped: list[list[dict[str, Any]]] = [[r] for r in parts[0].get("results", [])]
    ids = {}
    for position, r in enumerate(parts[0].get("results", [])):
        if r.get("expectation_config", {}).get("id") is not None:
            ids[r["expectation_config"]["id"]] = position
    for part in parts[1:]:
        for position, r in enumerate(part.get("results", [])):
            grouped[ids.get(r.get("expectation_config", {}).get("id"), position)].append(r)
    merged["results"] = [_merge_expectation(group) for group in grouped]
    merged["success"] = all(p.get("success") for p in parts) and all(
        r.get("success") for r in merged["results"]
    )
    merged["statistics"] = _statistics(merged["results"])
    merged["meta"] = {**(parts[0].get("meta") or {}), "chunks": len(parts)}
    return merged


def _recheck_uniqueness(con: duckdb.DuckDBPyConnection, table: str, merged: dict[str, Any]) -> None:
    """Redo, over the whole table in SQL, uniqueness expectations that lack the partition column.

    Chunks hold whole CIKs, so a key that includes ``cik`` never spans two chunks; any other
    key can, and its per-chunk counts would miss such duplicates.
    """
    for result in merged["results"]:
        config = result.get("expectation_config") or {}
        kwargs = config.get("kwargs") or {}
        if config.get("type") == "expect_column_values_to_be_unique":
            keys = [kwargs["column"]]
            skip = "all_values_are_missing"  # GX: a missing value is never unexpected
        elif config.get("type") == "expect_compound_columns_to_be_unique":
            keys = list(kwargs["column_list"])
            skip = kwargs.get("ignore_row_if") or "all_values_are_missing"
        else:
            continue
        if PARTITION_COLUMN in keys:
            continue
        if (result.get("exception_info") or {}).get("raised_exception"):
            continue  # GX could not evaluate it (e.g. a missing column); keep its failure
        unexpected, groups = _duplicates(con, table, keys, skip)
        counts = result.setdefault("result", {})
        counts["unexpected_count"] = unexpected
        partial = [value for value, count in groups for _ in range(min(count, PARTIAL_LIMIT))][
            :PARTIAL_LIMIT
        ]
        counts["partial_unexpected_list"] = partial
        if "partial_unexpected_counts" in counts:
            counts["partial_unexpected_counts"] = [
                {"value": value, "count": count} for value, count in groups
            ]
        if "partial_unexpected_index_list" in counts:
            counts["partial_unexpected_index_list"] = []  # positions are not looked up in SQL
        result["success"] = unexpected == 0
        _recount(result, kwargs)
    merged["statistics"] = _statistics(merged["results"])
    merged["success"] = merged["success"] and all(r.get("success") for r in merged["results"])


def _duplicates(
    con: duckdb.DuckDBPyConnection, table: str, keys: list[str], skip: str
) -> tuple[int, list[tuple[Any, int]]]:
    """Rows of ``table`` whose ``keys`` occur more than once, and up to 20 such keys with counts.

    ``skip`` is GX's ``ignore_row_if``: rows missing all (or any) key values are left out.
    A single key's value is returned as is, a compound key's as {column: value}.
    """
    columns = ", ".join(quote(k) for k in keys)
    nulls = [f"{quote(k)} IS NULL" for k in keys]
    where = {
        "all_values_are_missing": f"WHERE NOT ({' AND '.join(nulls)})",
        "any_value_is_missing": f"WHERE NOT ({' OR '.join(nulls)})",
    }.get(skip, "")
    dup = (
        f"SELECT {columns}, count(*) AS n FROM {quote(table)} {where} "
        f"GROUP BY {columns} HAVING count(*) > 1"
    )
    row = con.execute(f"SELECT coalesce(sum(n), 0)::BIGINT FROM ({dup})").fetchone()
    total = int(row[0]) if row else 0
    top = con.execute(
        f"SELECT * FROM ({dup}) ORDER BY n DESC, {columns} LIMIT {PARTIAL_LIMIT}"
    ).fetchall()
    groups: list[tuple[Any, int]] = []
    for *values, count in top:
        plain = [_jsonable(v) for v in values]
        groups.append((plain[0] if len(keys) == 1 else dict(zip(keys, plain, strict=True)), count))
    return total, groups


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _write_docs(context: Any, project: Path, docs_dir: Path) -> None:
    context.build_data_docs()
    sites = list(project.rglob("index.html"))
    if not sites:
        log.warning("GX built no Data Docs site under %s", project)
        return
    site = sites[0].parent
    if docs_dir.exists():
        shutil.rmtree(docs_dir)
    docs_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(site, docs_dir)


def summarize(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per table: success, evaluated and failed expectations, and the failed ones' types."""
    summary: dict[str, dict[str, Any]] = {}
    for table, result in results.items():
        if "error" in result:
            summary[table] = {
                "success": False,
                "evaluated": 0,
                "failed": [],
                "error": result["error"],
            }
            continue
        failed = [
            {
                "expectation": r["expectation_config"]["type"],
                "column": r["expectation_config"]["kwargs"].get("column")
                or r["expectation_config"]["kwargs"].get("column_list")
                or r["expectation_config"]["kwargs"].get("column_A"),
                "unexpected_count": (r.get("result") or {}).get("unexpected_count"),
            }
            for r in result.get("results", [])
            if not r.get("success")
        ]
        summary[table] = {
            "success": bool(result.get("success")),
            "evaluated": len(result.get("results", [])),
            "failed": failed,
        }
    return summary
