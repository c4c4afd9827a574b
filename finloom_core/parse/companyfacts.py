"""companyfacts JSON -> one Arrow row per XBRL fact, for every taxonomy present.

Layout: ``facts[taxonomy][concept].units[unit] = [{start?, end, val, accn, fy, fp, form,
filed, frame?}, ...]``. The document is decoded straight into typed msgspec structs (which
validates it: a fact without ``end``, ``val`` or ``accn`` is a parse error) and turned into
columns with one C-level pass per field, then converted by Arrow.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from finloom_core.cik import parse_cik
from finloom_core.errors import InvalidCikError, ResponseParseError

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

FACT_KEY = ("accession", "taxonomy", "concept", "unit", "period_start", "period_end")


class Fact(msgspec.Struct, gc=False):
    end: str
    val: float
    accn: str
    start: str | None = None
    fy: int | None = None
    fp: str | None = None
    form: str | None = None
    filed: str | None = None
    frame: str | None = None


class Concept(msgspec.Struct, gc=False):
    units: dict[str, list[Fact]] = {}


class CompanyFactsDoc(msgspec.Struct, gc=False):
    facts: dict[str, dict[str, Concept]]
    cik: int | str | None = None
    entityName: str | None = None


_DECODER = msgspec.json.Decoder(CompanyFactsDoc)

# struct field -> (column, Arrow type of the raw JSON value)
_FIELDS = (
    ("start", "period_start", pa.string()),
    ("end", "period_end", pa.string()),
    ("val", "value", pa.float64()),
    ("accn", "accession", pa.string()),
    ("fy", "fiscal_year", pa.int32()),
    ("fp", "fiscal_period", pa.string()),
    ("form", "form", pa.string()),
    ("filed", "filed", pa.string()),
    ("frame", "frame", pa.string()),
)
_DATE_COLUMNS = ("period_start", "period_end", "filed")


def decode_companyfacts(data: bytes | str, *, origin: str) -> CompanyFactsDoc:
    """Decode and validate a companyfacts document; ResponseParseError names ``origin``."""
    try:
        return _DECODER.decode(data)
    except msgspec.DecodeError as exc:
        head = data[:64] if isinstance(data, bytes) else data[:64].encode()
        html = head.lstrip().lower().startswith((b"<!doc", b"<html"))
        what = "an HTML page" if html else f"not a valid companyfacts document ({exc})"
        raise ResponseParseError(f"{origin}: body is {what}", url=origin) from None


def parse_companyfacts(
    data: bytes | str | CompanyFactsDoc | dict[str, Any],
    *,
    origin: str = "companyfacts",
    cik: int | None = None,
) -> pa.Table:
    """Parse a companyfacts document into a table with FACT_SCHEMA.

    ``cik`` overrides the document's own (which may be an int or a zero-padded string).
    """
    if isinstance(data, dict):
        data = msgspec.json.encode(data)
    doc = data if isinstance(data, CompanyFactsDoc) else decode_companyfacts(data, origin=origin)
    if cik is None:
        try:
            cik = parse_cik(doc.cik)
        except InvalidCikError as exc:
            raise ResponseParseError(f"{origin}: {exc}", url=origin) from None
    try:
        return facts_table(doc, cik)
    except (pa.ArrowInvalid, ValueError) as exc:
        raise ResponseParseError(f"{origin}: malformed companyfacts: {exc}", url=origin) from None


def facts_table(doc: CompanyFactsDoc, cik: int) -> pa.Table:
    records: list[Fact] = []
    labels: list[tuple[str, str, str]] = []
    counts: list[int] = []
    for taxonomy, concepts in doc.facts.items():
        for concept, body in concepts.items():
            for unit, rows in body.units.items():
                records.extend(rows)
                labels.append((taxonomy, concept, unit))
                counts.append(len(rows))
    columns: dict[str, pa.Array] = {}
    for key, name, raw_type in _FIELDS:
        columns[name] = pa.array(list(map(attrgetter(key), records)), type=raw_type)
    for name in _DATE_COLUMNS:
        columns[name] = columns[name].cast(pa.date32())
    positions = pa.array(np.repeat(np.arange(len(labels), dtype=np.int64), counts))
    for i, name in enumerate(("taxonomy", "concept", "unit")):
        columns[name] = pa.array([label[i] for label in labels], pa.string()).take(positions)
    columns["cik"] = pa.array(np.full(len(records), cik, dtype=np.int64))
    return pa.table([columns[f.name] for f in FACT_SCHEMA], schema=FACT_SCHEMA)


def drop_duplicate_facts(table: pa.Table) -> tuple[pa.Table, int]:
    """Keep one row per (cik, FACT_KEY), the last filed; return the table and the drop count.

    SEC's companyfacts carries each key once; this guards the warehouse's uniqueness rule
    against a document that does not.
    """
    if table.num_rows == 0:
        return table, 0
    keys = ["cik", *FACT_KEY]
    indexed = table.append_column("_row", pa.array(np.arange(table.num_rows)))
    latest = indexed.sort_by([("filed", "descending"), ("_row", "descending")])
    keep = latest.group_by(keys, use_threads=False).aggregate([("_row", "first")])
    rows = np.sort(keep.column("_row_first").to_numpy())
    return table.take(pa.array(rows)), table.num_rows - len(rows)
