"""parse_company / parse_filings on synthetic and real submissions.

(Filing rows derived from facts are made by the loader in SQL: see test_loader.)
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from finloom_core.errors import ResponseParseError
from finloom_core.parse.json_doc import check_document_cik, declared_cik
from finloom_core.parse.submissions import (
    FILING_SCHEMA,
    is_page_name,
    parse_company,
    parse_filings,
    submissions_pages,
)
from tests.factories import Filing, accession, filing_columns, submissions_doc, to_bytes

CIK = 1318605
RECENT = [
    Filing(accession(CIK, 2024, 3), form="10-K", filed="2024-01-29", report_date="2023-12-31"),
    Filing(accession(CIK, 2023, 9), form="8-K", filed="2023-10-18", report_date="",
           is_xbrl=0, is_inline_xbrl=0, primary_document="", file_number=""),
    Filing(accession(CIK, 2023, 5), form="10-Q", filed="2023-07-24", report_date="2023-06-30"),
]  # fmt: skip
PAGE = [
    Filing(accession(CIK, 2023, 5), form="10-Q", filed="2023-07-24", description="from page"),
    Filing(accession(CIK, 2010, 1), form="S-1", filed="2010-01-29", report_date="",
           is_xbrl=0, is_inline_xbrl=0),
]  # fmt: skip


def by_accession(table) -> dict[str, dict]:
    return {row["accession"]: row for row in table.to_pylist()}


def test_parse_company_fields() -> None:
    doc = submissions_doc(
        CIK,
        name="Tesla, Inc.",
        tickers=["TSLA"],
        exchanges=["Nasdaq"],
        sic="3711",
        sic_description="Motor Vehicles & Passenger Car Bodies",
        fiscal_year_end="1231",
        formerNames=[{"name": "TESLA MOTORS INC", "from": "2005-02-17", "to": "2017-01-27"}],
    )
    company = parse_company(doc)
    assert company.cik == CIK  # from the zero-padded string
    assert company.name == "Tesla, Inc."
    assert company.tickers == ("TSLA",)
    assert company.exchanges == ("Nasdaq",)
    assert company.sic == "3711"
    assert company.sic_description == "Motor Vehicles & Passenger Car Bodies"
    assert company.fiscal_year_end == "1231"
    assert company.entity_type == "operating"
    assert company.state_of_incorporation == "CA"
    assert company.former_names == ("TESLA MOTORS INC",)


def test_parse_company_blank_fields_are_none_and_empty_tickers_dropped() -> None:
    doc = submissions_doc(CIK, sic="", fiscal_year_end="  ", tickers=["", "ABC"], exchanges=[None])
    company = parse_company(doc, cik=42)
    assert company.cik == 42
    assert company.sic is None and company.fiscal_year_end is None
    assert company.tickers == ("ABC",)
    assert company.exchanges == ()


def test_parse_filings_recent_and_page_with_overlap_kept_once() -> None:
    main = submissions_doc(CIK, RECENT, pages=["CIK0001318605-submissions-001.json"])
    page = filing_columns(PAGE)  # bare column arrays, as SEC serves pages
    table = parse_filings(main, [page], cik=CIK)
    assert table.schema == FILING_SCHEMA
    expected = {f.accn for f in RECENT} | {f.accn for f in PAGE}
    assert table.num_rows == len(expected) == 4
    assert set(table.column("accession").to_pylist()) == expected
    rows = by_accession(table)
    # the overlapping accession keeps its 'recent' row
    assert rows[accession(CIK, 2023, 5)]["primary_doc_description"] == "10-K"


def test_parse_filings_types_and_nulls() -> None:
    rows = by_accession(parse_filings(to_bytes(submissions_doc(CIK, RECENT)), cik=CIK))
    annual = rows[accession(CIK, 2024, 3)]
    current = rows[accession(CIK, 2023, 9)]
    assert annual["filed"] == dt.date(2024, 1, 29)
    assert annual["report_date"] == dt.date(2023, 12, 31)
    assert annual["is_xbrl"] is True and annual["is_inline_xbrl"] is True
    assert current["is_xbrl"] is False and current["is_inline_xbrl"] is False
    assert current["report_date"] is None  # "" -> NULL
    assert current["primary_document"] is None
    assert current["file_number"] is None
    assert annual["size"] == 1000
    assert {r["cik"] for r in rows.values()} == {CIK}
    assert {r["source"] for r in rows.values()} == {"submissions"}


def test_parse_filings_missing_optional_column_is_null() -> None:
    main = submissions_doc(CIK, RECENT)
    del main["filings"]["recent"]["isInlineXBRL"]
    table = parse_filings(main, cik=CIK)
    assert table.column("is_inline_xbrl").null_count == len(RECENT)


@pytest.mark.parametrize(
    "body",
    [b"<html><body>Forbidden</body></html>", b'{"cik": "1", "filings": {}}', b"[]", b'{"a":'],
)
def test_parse_filings_rejects_non_submissions(body: bytes) -> None:
    with pytest.raises(ResponseParseError):
        parse_filings(body, cik=CIK, origin="subs-origin")


def test_submissions_pages_lists_file_names() -> None:
    doc = submissions_doc(CIK, pages=["p-001.json", "p-002.json"])
    assert submissions_pages(doc) == ["p-001.json", "p-002.json"]
    assert submissions_pages(submissions_doc(CIK)) == []


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("CIK0001318605-submissions-001.json", True),
        ("CIK0001318605-submissions-042.json", True),
        ("../CIK0001318605-submissions-001.json", False),
        ("/tmp/CIK0001318605-submissions-001.json", False),
        ("sub/CIK0001318605-submissions-001.json", False),
        ("/dev/zero", False),
        ("CIK0001318605.json", False),  # the main document, not a page
        ("CIK0000320193-submissions-001.json", False),  # another company's page
        ("CIK0001318605-submissions-001.json\n", False),
        ("CIK0001318605-submissions-001.json/..", False),
        ("CIK\u0661\u0663\u0661\u0668\u0666\u0660\u0665\u0660\u0660\u0660-submissions-001.json",
         False),  # non-ASCII digits
    ],
)  # fmt: skip
def test_only_the_companys_own_page_names_are_pages(name: str, ok: bool) -> None:
    assert is_page_name(name, CIK) is ok


@pytest.mark.parametrize(
    ("head", "declared"),
    [
        (b'{"cik":320193,"entityName":"Apple Inc.","facts":{', 320193),
        (b'{  "cik": "0001997711",  "entityName": "x"', "0001997711"),
        (b'{"entityName":"a \\"cik\\": 1","cik":"0000320193"}', "0000320193"),
        (b'{"filings":{"cik":5},"cik":7}', 7),  # a nested "cik" is not the document's
        (b'{"entityName":"no cik here","facts":{"dei":{', None),
        (b'{"cik":null}', None),
        (b'{"cik":{"a":1}}', '{"a":1}}'),
        (b'{"name":"cut inside a str', None),
    ],
)
def test_declared_cik_reads_the_top_level_member_only(head: bytes, declared: object) -> None:
    assert declared_cik(head) == declared


def test_a_document_of_another_company_is_refused_naming_both() -> None:
    check_document_cik("0001318605", CIK, origin="subs.json")  # its own: accepted
    check_document_cik(None, CIK, origin="subs.json")  # states none: nothing to compare
    for other, shown in [("0000320193", "CIK 0000320193"), (320193, "CIK 0000320193"),
                         ("abc", "cik 'abc'"), (True, "cik 'True'")]:  # fmt: skip
        with pytest.raises(ResponseParseError) as info:
            check_document_cik(other, CIK, origin="subs.json")
        expected = f"subs.json: document states {shown} but was read for CIK 0001318605"
        assert str(info.value).startswith(expected)
        assert (info.value.source, info.value.cik) == ("subs.json", CIK)


# ---- real SEC files -----------------------------------------------------------------------


def test_real_tesla_recent_plus_page(shared_edgar: Path) -> None:
    folder = shared_edgar / "submissions"
    main_bytes = (folder / "CIK0001318605.json").read_bytes()
    page_bytes = (folder / "CIK0001318605-submissions-001.json").read_bytes()
    main, page = json.loads(main_bytes), json.loads(page_bytes)
    assert submissions_pages(main) == ["CIK0001318605-submissions-001.json"]
    recent = main["filings"]["recent"]["accessionNumber"]
    paged = page["accessionNumber"]
    overlap = len(set(recent) & set(paged))
    expected = len(set(recent) | set(paged))
    assert expected == len(recent) + len(paged) - overlap

    table = parse_filings(main_bytes, [page_bytes], cik=1318605)
    assert table.num_rows == expected
    assert table.num_rows > len(recent)  # the page added older filings
    assert table.column("accession").unique().to_pylist() == table.column("accession").to_pylist()
    assert min(table.column("filed").to_pylist()) == dt.date.fromisoformat(min(page["filingDate"]))
    company = parse_company(main)
    assert company.cik == 1318605
    assert company.tickers == tuple(main["tickers"])
    assert company.sic == main["sic"]
    assert company.fiscal_year_end == main["fiscalYearEnd"]


def test_real_zero_filings_company(shared_edgar: Path) -> None:
    data = (shared_edgar / "submissions" / "CIK0000350001.json").read_bytes()
    table = parse_filings(data, cik=350001)
    assert table.num_rows == 0
    assert table.schema == FILING_SCHEMA
    company = parse_company(json.loads(data))
    assert company.cik == 350001
    assert company.name == json.loads(data)["name"].strip()


def test_real_pages_listed(shared_edgar: Path) -> None:
    folder = shared_edgar / "submissions"
    apple = json.loads((folder / "CIK0000320193.json").read_bytes())
    fannie = json.loads((folder / "CIK0000310522.json").read_bytes())
    assert submissions_pages(apple) == ["CIK0000320193-submissions-001.json"]
    assert submissions_pages(fannie) == [f"CIK0000310522-submissions-00{i}.json" for i in (1, 2, 3)]
