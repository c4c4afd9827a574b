"""submissions JSON -> a company record and one Arrow row per filing.

The main document holds company metadata and ``filings.recent`` (column arrays); older
filings sit in pages listed in ``filings.files``, served as bare column arrays.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from finloom_core.cik import parse_cik
from finloom_core.errors import ResponseParseError
from finloom_core.parse.json_doc import load_json_object
from finloom_core.records import CompanyRecord

FILING_SCHEMA = pa.schema(
    [
        ("accession", pa.string()),
        ("cik", pa.int64()),
        ("form", pa.string()),
        ("filed", pa.date32()),
        ("report_date", pa.date32()),
        ("acceptance_datetime", pa.string()),
        ("is_xbrl", pa.bool_()),
        ("is_inline_xbrl", pa.bool_()),
        ("primary_document", pa.string()),
        ("primary_doc_description", pa.string()),
        ("file_number", pa.string()),
        ("size", pa.int64()),
        ("source", pa.string()),
    ]
)

# submissions column -> (FILING_SCHEMA column, raw Arrow type)
_COLUMNS = (
    ("accessionNumber", "accession", pa.string()),
    ("form", "form", pa.string()),
    ("filingDate", "filed", pa.string()),
    ("reportDate", "report_date", pa.string()),
    ("acceptanceDateTime", "acceptance_datetime", pa.string()),
    ("isXBRL", "is_xbrl", pa.int8()),
    ("isInlineXBRL", "is_inline_xbrl", pa.int8()),
    ("primaryDocument", "primary_document", pa.string()),
    ("primaryDocDescription", "primary_doc_description", pa.string()),
    ("fileNumber", "file_number", pa.string()),
    ("size", "size", pa.int64()),
)


def parse_company(doc: dict[str, Any], *, cik: int | None = None) -> CompanyRecord:
    """The company row of a submissions document (the main one, not a page)."""
    return CompanyRecord(
        cik=cik if cik is not None else parse_cik(doc.get("cik")),
        name=_text(doc.get("name")),
        tickers=tuple(str(t) for t in doc.get("tickers") or () if t),
        exchanges=tuple(str(e) for e in doc.get("exchanges") or () if e),
        sic=_text(doc.get("sic")),
        sic_description=_text(doc.get("sicDescription")),
        fiscal_year_end=_text(doc.get("fiscalYearEnd")),
        entity_type=_text(doc.get("entityType")),
        category=_text(doc.get("category")),
        state_of_incorporation=_text(doc.get("stateOfIncorporation")),
        ein=_text(doc.get("ein")),
        former_names=tuple(
            str(f.get("name")) for f in doc.get("formerNames") or () if isinstance(f, dict)
        ),
    )


def submissions_pages(doc: dict[str, Any]) -> list[str]:
    """File names of the older-filings pages listed in ``filings.files`` (as the document
    states them: check each with ``is_page_name`` before using it as a path or URL)."""
    files = (doc.get("filings") or {}).get("files") or []
    return [str(f["name"]) for f in files if isinstance(f, dict) and f.get("name")]


PAGE_NAME = re.compile(r"CIK(\d{10})-submissions-\d{3}\.json", re.ASCII)


def is_page_name(name: str, cik: int) -> bool:
    """Whether ``name`` is a page of company ``cik``: ``CIK##########-submissions-NNN.json``
    with its own CIK, and nothing else (no folder, no ``..``, no other company's page)."""
    match = PAGE_NAME.fullmatch(name)
    return match is not None and int(match[1]) == cik


def parse_filings(
    main: dict[str, Any] | bytes,
    pages: list[dict[str, Any] | bytes] = (),  # type: ignore[assignment]
    *,
    cik: int,
    origin: str = "submissions",
) -> pa.Table:
    """All filings of a company: ``filings.recent`` plus every page, one row per accession."""
    doc = load_json_object(main, origin=origin, cik=cik)
    recent = (doc.get("filings") or {}).get("recent")
    if not isinstance(recent, dict):
        raise ResponseParseError(
            f"{origin}: no filings.recent: not a submissions document", source=origin, cik=cik
        )
    blocks = [_block(recent, cik, origin)]
    blocks += [_block(load_json_object(p, origin=origin, cik=cik), cik, origin) for p in pages]
    table = pa.concat_tables(blocks)
    # a page may overlap 'recent': keep the first occurrence of each accession
    return _first_per_accession(table)


def _block(columns_doc: dict[str, Any], cik: int, origin: str) -> pa.Table:
    accessions = columns_doc.get("accessionNumber")
    if not isinstance(accessions, list):
        raise ResponseParseError(
            f"{origin}: filings block without accessionNumber", source=origin, cik=cik
        )
    n = len(accessions)
    columns: dict[str, pa.Array] = {}
    for key, name, raw_type in _COLUMNS:
        values = columns_doc.get(key)
        if not isinstance(values, list) or len(values) != n:
            values = [None] * n
        array = pa.array([v if v != "" else None for v in values], type=raw_type)
        if name in ("filed", "report_date"):
            array = array.cast(pa.date32())
        elif raw_type == pa.int8():
            array = pc.not_equal(array, 0)
        columns[name] = array
    columns["cik"] = pa.array([cik] * n, pa.int64())
    columns["source"] = pa.array(["submissions"] * n)
    return _conform(columns, n)


def _conform(columns: dict[str, pa.Array], n: int) -> pa.Table:
    arrays = [
        columns[f.name].cast(f.type) if f.name in columns else pa.nulls(n, f.type)
        for f in FILING_SCHEMA
    ]
    return pa.table(arrays, schema=FILING_SCHEMA)


def _first_per_accession(table: pa.Table) -> pa.Table:
    accessions = table.column("accession")
    if pc.count_distinct(accessions).as_py() == table.num_rows:
        return table
    seen: set[str] = set()
    keep = []
    for i, accession in enumerate(accessions.to_pylist()):
        if accession not in seen:
            seen.add(accession)
            keep.append(i)
    return table.take(pa.array(keep))


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
