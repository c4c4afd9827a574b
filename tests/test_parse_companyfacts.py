"""parse_companyfacts / sniff_companyfacts on synthetic documents and on every real file."""

from __future__ import annotations

import datetime as dt
import json
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from finloom_core.errors import ResponseParseError
from finloom_core.parse.companyfacts import (
    FACT_KEY,
    FACT_SCHEMA,
    parse_companyfacts,
    sniff_companyfacts,
)
from tests.factories import Fact, accession, companyfacts_doc, count_facts_in_json, to_bytes

CIK = 320193
A1 = accession(CIK, 2023, 106)
A2 = accession(CIK, 2023, 77)

FACTS = [
    Fact("Revenues", 383285000000, A1, end="2023-09-30", start="2022-10-01", frame="CY2023"),
    Fact("EarningsPerShareBasic", 1.52, A2, "2023-07-01", "2023-04-02", unit="USD/shares",
         fy=2023, fp="Q3", form="10-Q", filed="2023-08-04"),
    Fact("EarningsPerShareDiluted", -0.07, A2, "2023-07-01", "2023-04-02", unit="USD/shares",
         fp="Q3", form="10-Q", filed="2023-08-04"),
    Fact("Assets", 352583000000, A1, "2023-09-30", frame="CY2023Q3I"),
    Fact("EntityCommonStockSharesOutstanding", 15552752000, A1, "2023-10-20",
         taxonomy="dei", unit="shares"),
    Fact("Revenue", 2161735841000, A1, "2023-12-31", "2023-01-01", taxonomy="ifrs-full",
         unit="TWD", fy=None, fp=None, form="20-F", filed="2024-04-18"),
    Fact("ProductWarrantyAccrual", 10.0, A1, "2023-09-30", taxonomy="srt"),
    Fact("InvestmentOwnedBalancePrincipalAmount", 5, A1, "2023-09-30", taxonomy="invest"),
    Fact("PeoTotalCompAmt", 63209845, A1, "2023-09-30", "2022-10-01", taxonomy="ecd",
         form="DEF 14A", filed="2024-01-11", fy=None, fp=None),
]  # fmt: skip

# values whose shortest repr is exact in binary64: each must come back as the same float
TRICKY_VALUES = [0.1, 1.1, 2.675, 123456789.12345679, 1e21, 1e-07, 9007199254740991, -0.07,
                 5e-324, 1.7976931348623157e308, 0, -0.0, 42]  # fmt: skip


def write(directory: Path, doc: dict[str, Any] | bytes, name: str = "CIK.json") -> Path:
    path = directory / name
    path.write_bytes(doc if isinstance(doc, bytes) else to_bytes(doc))
    return path


def parse(directory: Path, doc: dict[str, Any] | bytes, cik: int = CIK) -> pa.Table:
    return parse_companyfacts(write(directory, doc), cik)


def rows_by_concept(table: pa.Table) -> dict[str, dict]:
    return {row["concept"]: row for row in table.to_pylist()}


def test_schema_and_one_row_per_fact(tmp_path: Path) -> None:
    table = parse(tmp_path, companyfacts_doc(CIK, FACTS))
    assert table.schema == FACT_SCHEMA
    assert table.num_rows == len(FACTS)


def test_every_taxonomy_is_kept(tmp_path: Path) -> None:
    table = parse(tmp_path, companyfacts_doc(CIK, FACTS))
    assert set(table.column("taxonomy").to_pylist()) == {f.taxonomy for f in FACTS}
    assert sorted(
        zip(*(table.column(c).to_pylist() for c in ("taxonomy", "concept", "unit")), strict=True)
    ) == sorted((f.taxonomy, f.concept, f.unit) for f in FACTS)


def test_duration_and_instant_periods(tmp_path: Path) -> None:
    rows = rows_by_concept(parse(tmp_path, companyfacts_doc(CIK, FACTS)))
    revenue, assets = rows["Revenues"], rows["Assets"]
    assert revenue["period_start"] == dt.date(2022, 10, 1)
    assert revenue["period_end"] == dt.date(2023, 9, 30)
    assert assets["period_start"] is None  # instant: end only
    assert assets["period_end"] == dt.date(2023, 9, 30)
    assert revenue["filed"] == dt.date(2023, 11, 3)
    instants = {f.concept for f in FACTS if f.start is None}
    assert {c for c, r in rows.items() if r["period_start"] is None} == instants


def test_values_round_trip_exactly(tmp_path: Path) -> None:
    rows = rows_by_concept(parse(tmp_path, companyfacts_doc(CIK, FACTS)))
    for fact in FACTS:
        assert rows[fact.concept]["value"] == fact.val, fact.concept
    assert rows["Revenues"]["value"] == 383285000000
    assert rows["EarningsPerShareBasic"]["value"] == 1.52
    assert rows["EarningsPerShareDiluted"]["value"] == -0.07
    assert rows["Revenue"]["value"] == 2161735841000


def test_int_and_float_values_round_trip_exactly(tmp_path: Path) -> None:
    facts = [
        Fact(f"C{i}", val, A1, "2023-09-30", unit="pure") for i, val in enumerate(TRICKY_VALUES)
    ]
    rows = rows_by_concept(parse(tmp_path, companyfacts_doc(CIK, facts)))
    for i, val in enumerate(TRICKY_VALUES):
        got = rows[f"C{i}"]["value"]
        assert isinstance(got, float)
        assert got == val and repr(got) == repr(float(val)), (val, got)


def test_filing_fields_are_copied_and_missing_ones_are_null(tmp_path: Path) -> None:
    rows = rows_by_concept(parse(tmp_path, companyfacts_doc(CIK, FACTS)))
    eps = rows["EarningsPerShareBasic"]
    assert (eps["accession"], eps["fiscal_year"], eps["fiscal_period"], eps["form"]) == (
        A2,
        2023,
        "Q3",
        "10-Q",
    )
    assert eps["filed"] == dt.date(2023, 8, 4)
    assert eps["frame"] is None  # no 'frame' key in the JSON
    assert rows["Revenues"]["frame"] == "CY2023"
    assert rows["Assets"]["frame"] == "CY2023Q3I"
    ifrs = rows["Revenue"]
    assert ifrs["fiscal_year"] is None and ifrs["fiscal_period"] is None  # fy/fp null (20-F, 6-K)
    assert ifrs["form"] == "20-F"


def test_unknown_keys_are_ignored(tmp_path: Path) -> None:
    fact = Fact("Assets", 1, A1, "2023-09-30", extra={"segment": {"x": 1}, "note": "n"})
    [row] = parse(tmp_path, companyfacts_doc(CIK, [fact])).to_pylist()
    assert (row["concept"], row["value"], row["accession"]) == ("Assets", 1, A1)


@pytest.mark.parametrize("doc_cik", [CIK, f"{CIK:010d}"])
def test_cik_as_int_or_zero_padded_string(tmp_path: Path, doc_cik: int | str) -> None:
    table = parse(tmp_path, companyfacts_doc(doc_cik, FACTS))
    assert table.num_rows == len(FACTS)
    assert set(table.column("cik").to_pylist()) == {CIK}


def test_cik_argument_overrides_the_document(tmp_path: Path) -> None:
    table = parse(tmp_path, companyfacts_doc(1, FACTS), cik=CIK)
    assert set(table.column("cik").to_pylist()) == {CIK}


def test_compact_and_pretty_printed_parse_alike(tmp_path: Path) -> None:
    doc = companyfacts_doc(CIK, FACTS)
    compact = parse_companyfacts(write(tmp_path, doc, "a.json"), CIK)
    pretty = parse_companyfacts(write(tmp_path, json.dumps(doc, indent=2).encode(), "b.json"), CIK)
    assert pretty.sort_by("concept").equals(compact.sort_by("concept"))


def test_repeated_keys_are_all_returned(tmp_path: Path) -> None:
    """The parser keeps every row; the loader cuts repeated keys (see test_loader)."""
    key = dict(concept="Revenues", accn=A1, end="2023-09-30", start="2022-10-01")
    facts = [Fact(**key, val=100, filed="2023-11-03"), Fact(**key, val=300, filed="2024-02-01")]
    table = parse(tmp_path, companyfacts_doc(CIK, facts))
    assert table.num_rows == 2
    assert table.group_by(list(FACT_KEY)).aggregate([]).num_rows == 1
    assert sorted(table.column("value").to_pylist()) == [100, 300]


def test_no_facts_gives_an_empty_table(tmp_path: Path) -> None:
    table = parse(tmp_path, companyfacts_doc(CIK, []))
    assert table.num_rows == 0
    assert table.schema == FACT_SCHEMA


# ---- sniff_companyfacts and documents that are not companyfacts ---------------------------

ORIGIN = "https://data.sec.gov/api/xbrl/companyfacts/CIK1.json"


def test_sniff_reads_the_entity_name(tmp_path: Path) -> None:
    doc = companyfacts_doc(CIK, FACTS, entity_name='Caf\u00e9 "Quote" \\ Co')
    assert sniff_companyfacts(write(tmp_path, doc), origin=ORIGIN).entity_name == (
        'Caf\u00e9 "Quote" \\ Co'
    )
    pretty = b"\xef\xbb\xbf\n  " + json.dumps(doc, indent=2).encode() + b"\n"  # BOM, whitespace
    assert sniff_companyfacts(write(tmp_path, pretty), origin=ORIGIN).entity_name == (
        'Caf\u00e9 "Quote" \\ Co'
    )
    assert parse_companyfacts(write(tmp_path, pretty), CIK).num_rows == len(FACTS)
    del doc["entityName"]
    assert sniff_companyfacts(write(tmp_path, doc), origin=ORIGIN).entity_name is None


HTML = b"<!DOCTYPE html>\n<html><head><title>SEC.gov | Request Rate Threshold Exceeded</title>"
XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
    b"<Message>The specified key does not exist.</Message></Error>"
)


@pytest.mark.parametrize("body", [HTML, b"\n  <html><body>Forbidden</body></html>", XML])
def test_html_or_xml_page_is_a_response_parse_error_naming_the_origin(
    tmp_path: Path, body: bytes
) -> None:
    with pytest.raises(ResponseParseError) as info:
        sniff_companyfacts(write(tmp_path, body), origin=ORIGIN)
    assert ORIGIN in str(info.value)
    assert "HTML or XML" in str(info.value)
    assert info.value.url == ORIGIN
    assert "\n" not in str(info.value)


def test_truncated_json_is_a_response_parse_error(tmp_path: Path) -> None:
    body = to_bytes(companyfacts_doc(CIK, FACTS))
    with pytest.raises(ResponseParseError) as info:
        sniff_companyfacts(write(tmp_path, body[: len(body) // 2]), origin="cf-origin")
    assert "cf-origin" in str(info.value)
    assert "truncated" in str(info.value)


@pytest.mark.parametrize("body", [b"[1, 2, 3]", b'[{"facts": {}}]', b'"facts"', b"", b"null"])
def test_a_json_list_or_scalar_is_a_response_parse_error(tmp_path: Path, body: bytes) -> None:
    with pytest.raises(ResponseParseError) as info:
        sniff_companyfacts(write(tmp_path, body), origin="cf-origin")
    assert "cf-origin" in str(info.value)
    assert "not a JSON object" in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        HTML,
        XML,
        b"[1, 2, 3]",
        b'"facts"',
        b'{"cik": 320193, "entityName": "x"}',
        b'{"cik": 320193, "facts": []}',
        b'{"cik": 320193, "facts": {"us-gaap": {"Assets": {"units": {"USD": [{"end": "x"}]}}}}}',
        b'{"cik": 320193, "facts": {"us-gaap": {"Assets": {"units": ["USD"]}}}}',
        b'{"cik": 320193, "facts": {"us-gaap": {"Assets": {"units": {"USD": [{"val": "a"}]}}}}}',
        b'{"cik": 320193, "facts": {"us-gaap": {"Assets": {"units": {"USD": [{"end" "x"}]}}}}}',
    ],
)
def test_documents_that_are_not_companyfacts(tmp_path: Path, body: bytes) -> None:
    """Refused by the sniff or by DuckDB's reader: either way a one-line ResponseParseError
    naming the file."""
    path = write(tmp_path, body)
    with pytest.raises(ResponseParseError) as info:
        parse_companyfacts(path, CIK)
    assert str(path) in str(info.value)
    assert info.value.source == str(path)
    assert info.value.url is None  # a file, not an HTTP URL
    assert info.value.cik == CIK
    assert "\n" not in str(info.value)


NON_FINITE = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b'"NaN"', b'"Infinity"']


def non_finite_document(token: bytes) -> bytes:
    """The FACTS document with the Assets value replaced by ``token``, as raw bytes: JSON has
    no NaN or infinity, but readers accept these tokens (and overflow 1e400)."""
    body = to_bytes(companyfacts_doc(CIK, FACTS))
    assert body.count(b'"val": 352583000000') == 1
    return body.replace(b'"val": 352583000000', b'"val": ' + token)


@pytest.mark.parametrize("token", NON_FINITE, ids=lambda t: t.decode())
def test_a_value_that_is_not_a_finite_number_is_refused(tmp_path: Path, token: bytes) -> None:
    path = write(tmp_path, non_finite_document(token))
    with pytest.raises(ResponseParseError) as info:
        parse_companyfacts(path, CIK)
    message = str(info.value)
    assert "us-gaap:Assets (USD)" in message and A1 in message
    assert "not a finite number" in message
    assert "\n" not in message and info.value.cik == CIK


def test_null_values_are_kept(tmp_path: Path) -> None:
    table = parse(tmp_path, non_finite_document(b"null"))
    assert rows_by_concept(table)["Assets"]["value"] is None


# ---- real SEC files -----------------------------------------------------------------------

REAL_TOTAL_FACTS = 258_602  # MANIFEST.md, section 1: sum of the 'facts' column


def _real_files() -> list[Path]:
    from tests.conftest import SHARED_EDGAR

    return sorted((SHARED_EDGAR / "companyfacts").glob("CIK*.json"))


@cache
def _counts(path: Path) -> tuple[int, int]:
    """(facts counted by walking the JSON here, rows parse_companyfacts returns)."""
    walked = count_facts_in_json(path)
    table = parse_companyfacts(path, int(path.name[3:13]))
    assert set(table.column("cik").to_pylist()) == {int(path.name[3:13])}
    return walked, table.num_rows


@pytest.mark.parametrize("path", _real_files(), ids=lambda p: p.stem)
def test_real_file_parses_every_fact(path: Path, shared_edgar: Path) -> None:
    walked, parsed = _counts(path)
    assert walked > 0
    assert parsed == walked


def test_all_real_files_total(shared_edgar: Path) -> None:
    files = _real_files()
    assert len(files) == 17
    assert sum(_counts(p)[1] for p in files) == REAL_TOTAL_FACTS
    assert sum(_counts(p)[0] for p in files) == REAL_TOTAL_FACTS


def test_real_entity_names_are_sniffed(shared_edgar: Path) -> None:
    for path in _real_files():
        expected = json.loads(path.read_bytes())["entityName"]
        assert sniff_companyfacts(path, origin=str(path)).entity_name == expected, path.name


def test_lpa_string_cik(shared_edgar: Path) -> None:
    path = shared_edgar / "companyfacts" / "CIK0001997711.json"
    assert json.loads(path.read_bytes())["cik"] == "0001997711"  # the trap this test is about
    table = parse_companyfacts(path, 1997711)
    assert set(table.column("cik").to_pylist()) == {1997711}
    assert "ifrs-full" in set(table.column("taxonomy").to_pylist())
