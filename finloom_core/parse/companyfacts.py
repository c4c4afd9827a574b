"""companyfacts JSON -> one row per XBRL fact, for every taxonomy present.

Layout: ``facts[taxonomy][concept].units[unit] = [{start?, end, val, accn, fy, fp, form,
filed, frame?}, ...]``. The documents are parsed by DuckDB's JSON reader with a typed MAP
schema and UNNEST (multi-threaded, no Python object per fact), straight from the files:
``facts_select`` is the one definition of the mapping, used by the loader inside its
transaction and by ``parse_companyfacts`` on an in-memory connection.

A value that is not a finite number (``NaN``, ``Infinity`` or ``1e400``, which JSON
readers accept and turn into NaN or infinity) fails the read with an InvalidInputException
naming the concept, unit and accession: the company is refused, never stored with it.

``sniff_companyfacts`` is the cheap check done before loading: an HTML error page, a
document that is not a JSON object or a truncated one is refused there, with its origin
(the error's ``source``) and CIK.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from finloom_core.errors import ResponseParseError, first_line
from finloom_core.sql import registered
from finloom_core.staging import MAX_DOCUMENT_BYTES

FACT_SCHEMA = pa.schema(
    [
        ("cik", pa.int64()),
        ("taxonomy", pa.string()),
        ("concept", pa.string()),
        ("unit", pa.string()),
        ("period_start", pa.date32()),
        ("period_end", pa.date32()),
        ("value", pa.float64()),
        ("accession", pa.string()),
        ("fiscal_year", pa.int32()),
        ("fiscal_period", pa.string()),
        ("form", pa.string()),
        ("filed", pa.date32()),
        ("frame", pa.string()),
    ]
)
FACT_COLUMNS = ", ".join(f.name for f in FACT_SCHEMA)
FACT_KEY = ("accession", "taxonomy", "concept", "unit", "period_start", "period_end")

_FACT_TYPE = (
    'STRUCT("start" VARCHAR, "end" VARCHAR, val DOUBLE, accn VARCHAR, fy INTEGER,'
    " fp VARCHAR, form VARCHAR, filed VARCHAR, frame VARCHAR)"
)
_FACTS_TYPE = f"MAP(VARCHAR, MAP(VARCHAR, STRUCT(units MAP(VARCHAR, {_FACT_TYPE}[]))))"

# $1: list of file paths. The CIK of each file comes from the registered _finloom_files
# table (what the source asked for), not from the document. (Reading `cik` too is not
# needed but keeps DuckDB 2.0's reader on its fast path: with `facts` alone it is ~15x
# slower.)
_SELECT = f"""
WITH docs AS (
    SELECT filename, unnest(map_entries(facts)) AS tx
    FROM read_json($1, columns = {{cik: 'JSON', facts: '{_FACTS_TYPE}'}},
                   format = 'unstructured', filename = true,
                   maximum_object_size = {MAX_DOCUMENT_BYTES})
), concepts AS (
    SELECT filename, tx.key AS taxonomy, unnest(map_entries(tx.value)) AS cx FROM docs
), units AS (
    SELECT filename, taxonomy, cx.key AS concept, unnest(map_entries(cx.value.units)) AS ux
    FROM concepts
), rows AS (
    SELECT filename, taxonomy, concept, ux.key AS unit, unnest(ux.value) AS f FROM units
)
SELECT files.cik AS cik, taxonomy, concept, unit,
       CAST(f."start" AS DATE) AS period_start, CAST(f."end" AS DATE) AS period_end,
       CASE WHEN f.val IS NULL OR isfinite(f.val) THEN f.val
            ELSE error(format('value {{}} of {{}}:{{}} ({{}}) in accession {{}} is not a finite'
                              ' number', f.val, taxonomy, concept, unit, f.accn))
       END AS value, f.accn AS accession, f.fy AS fiscal_year, f.fp AS fiscal_period,
       f.form AS form, CAST(f.filed AS DATE) AS filed, f.frame AS frame
FROM rows JOIN _finloom_files files USING (filename)
"""


@contextmanager
def facts_select(
    con: duckdb.DuckDBPyConnection, files: Sequence[tuple[int, Path]]
) -> Iterator[tuple[str, list[object]]]:
    """A SELECT (and its parameters) yielding FACT_SCHEMA rows from ``(cik, path)`` files."""
    names = [str(path) for _, path in files]
    table = pa.table({"filename": names, "cik": [cik for cik, _ in files]})
    with registered(con, "_finloom_files", table):
        yield _SELECT, [names]


def parse_companyfacts(path: Path, cik: int) -> pa.Table:
    """All facts of one companyfacts file as an Arrow table with FACT_SCHEMA."""
    sniff_companyfacts(path, origin=str(path), cik=cik)
    with duckdb.connect() as con, facts_select(con, [(cik, path)]) as (select, params):
        try:
            query = f"SELECT {FACT_COLUMNS} FROM ({select})"
            table = con.sql(query, params=params).to_arrow_table()
        except duckdb.Error as exc:
            raise ResponseParseError(
                f"{path}: {first_line(exc)}", source=str(path), cik=cik
            ) from None
    return table.cast(FACT_SCHEMA)


@dataclass(frozen=True, slots=True)
class CompanyFactsHead:
    entity_name: str | None


_ENTITY_NAME = re.compile(rb'"entityName"\s*:\s*("(?:[^"\\]|\\.)*")')
_HEAD_BYTES = 4096


def sniff_companyfacts(path: Path, *, origin: str, cik: int | None = None) -> CompanyFactsHead:
    """Refuse what cannot be companyfacts (HTML, not an object, truncated); read the name.

    ``origin``: where the document came from (a URL, a file path or ``archive.zip:member``;
    ``path`` may be a staged copy); it and ``cik`` are the ResponseParseError's source and
    CIK.
    """
    with path.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
        handle.seek(max(0, path.stat().st_size - 64))
        tail = handle.read()
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if start[:5].lower() in (b"<!doc", b"<html") or start[:1] == b"<":
        problem = "body is an HTML or XML page, not JSON"
    elif not start.startswith(b"{"):
        problem = "body is not a JSON object"
    elif not tail.rstrip().endswith(b"}") or b'"facts"' not in head + tail:
        problem = "truncated or not a companyfacts document"
    else:
        problem = ""
    if problem:
        raise ResponseParseError(f"{origin}: {problem}", source=origin, cik=cik)
    match = _ENTITY_NAME.search(head)
    name = json.loads(match.group(1)) if match else None
    return CompanyFactsHead(entity_name=name)
