"""parse_companyfacts on synthetic documents and on every real companyfacts file."""

from __future__ import annotations

import datetime as dt
import json
from functools import cache
from pathlib import Path

import pyarrow as pa
import pytest

from finloom_core.errors import ResponseParseError
from finloom_core.parse.companyfacts import (
    FACT_KEY,
    FACT_SCHEMA,
    drop_duplicate_facts,
    parse_companyfacts,
)
from tests.factories import Fact, accession, companyfacts_doc, to_bytes

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


def rows_by_concept(table: pa.Table) -> dict[str, dict]:
    return {row["concept"]: row for row in table.to_pylist()}


def test_schema_and_one_row_per_fact() -> None:
    table = parse_companyfacts(companyfacts_doc(CIK, FACTS))
    assert table.schema == FACT_SCHEMA
    assert table.num_rows == len(FACTS)


def test_every_taxonomy_is_kept() -> None:
    table = parse_companyfacts(companyfacts_doc(CIK, FACTS))
    assert set(table.column("taxonomy").to_pylist()) == {f.taxonomy for f in FACTS}
    assert sorted(
        zip(*(table.column(c).to_pylist() for c in ("taxonomy", "concept", "unit")), strict=True)
    ) == sorted((f.taxonomy, f.concept, f.unit) for f in FACTS)


def test_duration_and_instant_periods() -> None:
    rows = rows_by_concept(parse_companyfacts(companyfacts_doc(CIK, FACTS)))
    revenue, assets = rows["Revenues"], rows["Assets"]
    assert revenue["period_start"] == dt.date(2022, 10, 1)
    assert revenue["period_end"] == dt.date(2023, 9, 30)
    assert assets["period_start"] is None  # instant: end only
    assert assets["period_end"] == dt.date(2023, 9, 30)
    assert revenue["filed"] == dt.date(2023, 11, 3)


def test_values_round_trip_exactly() -> None:
    rows = rows_by_concept(parse_companyfacts(companyfacts_doc(CIK, FACTS)))
    for fact in FACTS:
        assert rows[fact.concept]["value"] == fact.val, fact.concept
    assert rows["Revenues"]["value"] == 383285000000
    assert rows["EarningsPerShareBasic"]["value"] == 1.52
    assert rows["EarningsPerShareDiluted"]["value"] == -0.07


def test_filing_fields_are_copied_and_missing_ones_are_null() -> None:
    rows = rows_by_concept(parse_companyfacts(companyfacts_doc(CIK, FACTS)))
    eps = rows["EarningsPerShareBasic"]
    assert (eps["accession"], eps["fiscal_year"], eps["fiscal_period"], eps["form"]) == (
        A2,
        2023,
        "Q3",
        "10-Q",
    )
    assert eps["frame"] is None  # no 'frame' key in the JSON
    assert rows["Revenues"]["frame"] == "CY2023"
    ifrs = rows["Revenue"]
    assert ifrs["fiscal_year"] is None and ifrs["fiscal_period"] is None  # fy/fp null (20-F, 6-K)


@pytest.mark.parametrize("doc_cik", [CIK, f"{CIK:010d}"])
def test_cik_as_int_or_zero_padded_string(doc_cik: int | str) -> None:
    table = parse_companyfacts(companyfacts_doc(doc_cik, FACTS))
    assert set(table.column("cik").to_pylist()) == {CIK}


def test_cik_argument_overrides_the_document() -> None:
    table = parse_companyfacts(companyfacts_doc(1, FACTS), cik=CIK)
    assert set(table.column("cik").to_pylist()) == {CIK}


def test_bytes_and_dict_parse_alike() -> None:
    doc = companyfacts_doc(CIK, FACTS)
    assert parse_companyfacts(to_bytes(doc)).equals(parse_companyfacts(doc))


def test_no_facts_gives_an_empty_table() -> None:
    table = parse_companyfacts(companyfacts_doc(CIK, []))
    assert table.num_rows == 0
    assert table.schema == FACT_SCHEMA


def test_html_page_is_a_response_parse_error_naming_the_origin() -> None:
    html = b"<!DOCTYPE html>\n<html><head><title>SEC.gov | Request Rate Threshold Exceeded"
    with pytest.raises(ResponseParseError) as info:
        parse_companyfacts(html, origin="https://data.sec.gov/api/xbrl/companyfacts/CIK1.json")
    assert "https://data.sec.gov/api/xbrl/companyfacts/CIK1.json" in str(info.value)
    assert "HTML" in str(info.value)
    assert info.value.url == "https://data.sec.gov/api/xbrl/companyfacts/CIK1.json"


def test_truncated_json_is_a_response_parse_error() -> None:
    body = to_bytes(companyfacts_doc(CIK, FACTS))
    with pytest.raises(ResponseParseError) as info:
        parse_companyfacts(body[: len(body) // 2], origin="cf-origin")
    assert "cf-origin" in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2, 3]",
        b'"facts"',
        b'{"cik": 320193, "entityName": "x"}',
        b'{"cik": 320193, "facts": []}',
        b'{"cik": 320193, "facts": {"us-gaap": {"Assets": {"units": {"USD": [{"end": "x"}]}}}}}',
        b'{"cik": 320193, "facts": {"us-gaap": {"Assets": {"units": ["USD"]}}}}',
    ],
)
def test_documents_that_are_not_companyfacts(body: bytes) -> None:
    with pytest.raises(ResponseParseError) as info:
        parse_companyfacts(body, origin="cf-origin")
    assert "cf-origin" in str(info.value)
    assert "\n" not in str(info.value)


def test_drop_duplicate_facts_keeps_the_last_filed() -> None:
    key = dict(concept="Revenues", accn=A1, end="2023-09-30", start="2022-10-01")
    facts = [
        Fact(**key, val=100, filed="2023-11-03"),
        Fact(**key, val=300, filed="2024-02-01"),  # the last filed
        Fact(**key, val=200, filed="2023-12-01"),
        Fact("Revenues", 999, A1, end="2023-09-30", start="2023-07-02"),  # other period
        Fact("Assets", 5, A1, end="2023-09-30"),
    ]
    table = parse_companyfacts(companyfacts_doc(CIK, facts))
    unique, dropped = drop_duplicate_facts(table)
    assert dropped == 2
    assert unique.num_rows == 3
    assert unique.group_by(list(FACT_KEY)).aggregate([]).num_rows == 3
    values = sorted(unique.column("value").to_pylist())
    assert values == [5, 300, 999]


def test_drop_duplicate_facts_leaves_unique_tables_alone() -> None:
    table = parse_companyfacts(companyfacts_doc(CIK, FACTS))
    unique, dropped = drop_duplicate_facts(table)
    assert dropped == 0
    assert unique.equals(table)


# ---- real SEC files -----------------------------------------------------------------------

REAL_TOTAL_FACTS = 258_602  # MANIFEST.md, section 1: sum of the 'facts' column


def _real_files() -> list[Path]:
    from tests.conftest import SHARED_EDGAR

    return sorted((SHARED_EDGAR / "companyfacts").glob("CIK*.json"))


@cache
def _counts(path: Path) -> tuple[int, int]:
    """(facts counted by walking the JSON here, rows parse_companyfacts returns)."""
    data = path.read_bytes()
    doc = json.loads(data)
    walked = sum(
        len(rows)
        for concepts in doc["facts"].values()
        for body in concepts.values()
        for rows in body["units"].values()
    )
    return walked, parse_companyfacts(data, origin=str(path)).num_rows


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


def test_lpa_string_cik(shared_edgar: Path) -> None:
    path = shared_edgar / "companyfacts" / "CIK0001997711.json"
    data = path.read_bytes()
    assert json.loads(data)["cik"] == "0001997711"  # the trap this test is about
    table = parse_companyfacts(data, origin=str(path))
    assert set(table.column("cik").to_pylist()) == {1997711}
    assert "ifrs-full" in set(table.column("taxonomy").to_pylist())
