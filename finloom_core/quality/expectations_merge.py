"""Merging the Great Expectations results of one suite's chunk runs (expectations.py).

The chunks hold whole CIKs (``PARTITION_COLUMN``). :func:`merge_results` turns the GX
result dicts of the chunk runs into one of the same shape: an expectation succeeds when it
succeeded in every chunk; counts are summed, percentages recomputed (and success under
``mostly`` with them), partial lists concatenated (``partial_unexpected_index_list`` holds
row positions in the chunked read order) and cut to :data:`PARTIAL_LIMIT` entries;
``meta["chunks"]`` is the number of chunks. :func:`recheck_uniqueness` redoes in SQL, over
the whole table, the uniqueness expectations whose key lacks the partition column (a
duplicate there can span two chunks). A run scoped to some companies re-checks only the
keys their rows carry, against every row of the table: a key of a changed company that
another company's row also holds is found, at a cost set by the changed companies' keys.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import duckdb

from finloom_core.sql import quote_ident

PARTITION_COLUMN = "cik"
PARTIAL_LIMIT = 20  # GX's length of the partial_unexpected_* lists
UNIQUENESS = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")


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


def recheck_uniqueness(
    con: duckdb.DuckDBPyConnection,
    table: str,
    merged: dict[str, Any],
    ciks: Sequence[int] | None = None,
) -> None:
    """Redo, over the whole table in SQL, uniqueness expectations that lack the partition column.

    Chunks hold whole CIKs, so a key that includes ``cik`` never spans two chunks; any other
    key can, and its per-chunk counts would miss such duplicates. With ``ciks``, only the
    keys that rows of those companies carry are counted (against the rows of every company).
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
        unexpected, groups = _duplicates(con, table, keys, skip, ciks)
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
    con: duckdb.DuckDBPyConnection,
    table: str,
    keys: list[str],
    skip: str,
    ciks: Sequence[int] | None = None,
) -> tuple[int, list[tuple[Any, int]]]:
    """Rows of ``table`` whose ``keys`` occur more than once, and up to 20 such keys with counts.

    ``skip`` is GX's ``ignore_row_if``: rows missing all (or any) key values are left out.
    With ``ciks``, only keys that a row of those companies carries. A single key's value is
    returned as is, a compound key's as {column: value}.
    """
    columns = ", ".join(quote_ident(k) for k in keys)
    nulls = [f"{quote_ident(k)} IS NULL" for k in keys]
    where = {
        "all_values_are_missing": f"WHERE NOT ({' AND '.join(nulls)})",
        "any_value_is_missing": f"WHERE NOT ({' OR '.join(nulls)})",
    }.get(skip, "")
    params: list[Any] = []
    if ciks is not None:
        mine = (
            f"({columns}) IN (SELECT {columns} FROM {quote_ident(table)}"
            f" WHERE list_contains(?, {quote_ident(PARTITION_COLUMN)}))"
        )
        where = f"{where} AND {mine}" if where else f"WHERE {mine}"
        params = [sorted({int(c) for c in ciks})]
    dup = (
        f"SELECT {columns}, count(*) AS n FROM {quote_ident(table)} {where} "
        f"GROUP BY {columns} HAVING count(*) > 1"
    )
    row = con.execute(f"SELECT coalesce(sum(n), 0)::BIGINT FROM ({dup})", params).fetchone()
    total = int(row[0]) if row else 0
    top = con.execute(
        f"SELECT * FROM ({dup}) ORDER BY n DESC, {columns} LIMIT {PARTIAL_LIMIT}", params
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
