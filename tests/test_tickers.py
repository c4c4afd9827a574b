"""SEC's ticker map and the resolution of tickers and CIKs to companies."""

from __future__ import annotations

from pathlib import Path

import pytest

from finloom_core.edgar.tickers import (
    normalize_ticker,
    parse_company_tickers,
    resolve_companies,
)
from finloom_core.errors import InvalidCikError, ResponseParseError, UnknownTickerError
from tests.factories import company_tickers_doc, to_bytes

ROWS = [
    (320193, "AAPL", "Apple Inc."),
    (1067983, "BRK-B", "BERKSHIRE HATHAWAY INC"),
    (1067983, "BRK-A", "BERKSHIRE HATHAWAY INC"),
    (1652044, "GOOGL", "Alphabet Inc."),
    (1652044, "GOOG", "Alphabet Inc."),
]


@pytest.fixture
def ticker_map():
    return parse_company_tickers(to_bytes(company_tickers_doc(ROWS)), origin="test")


def test_parse_company_tickers(ticker_map) -> None:
    assert ticker_map.ciks == {ticker: cik for cik, ticker, _ in ROWS}
    assert ticker_map.titles == {cik: title for cik, _, title in ROWS}


def test_cik_str_may_be_a_padded_string() -> None:
    doc = {"0": {"cik_str": "0000320193", "ticker": "aapl", "title": "Apple Inc."}}
    assert parse_company_tickers(to_bytes(doc), origin="t").ciks == {"AAPL": 320193}


def test_resolve_normalizes_case_space_and_share_class_dot(ticker_map) -> None:
    assert ticker_map.resolve(["aapl", " BRK.B ", "brk-a", "Googl"]) == [
        320193,
        1067983,
        1067983,
        1652044,
    ]
    assert normalize_ticker("brk.b") == "BRK-B"


def test_unknown_tickers_are_all_named(ticker_map) -> None:
    with pytest.raises(UnknownTickerError) as info:
        ticker_map.resolve(["AAPL", "nope", "ZZZZ.Q"])
    assert info.value.tickers == ["NOPE", "ZZZZ-Q"]
    message = str(info.value)
    assert "NOPE" in message and "ZZZZ-Q" in message and "AAPL" not in message
    assert "\n" not in message


def test_resolve_companies_deduplicates_in_order(ticker_map) -> None:
    ciks = resolve_companies(ticker_map, ["GOOG", "aapl", "GOOGL"], ["0000320193", 1067983, 789019])
    assert ciks == [1652044, 320193, 1067983, 789019]


def test_resolve_companies_without_tickers_needs_no_map() -> None:
    assert resolve_companies(None, [], ["CIK0000320193", "320193", 1045810]) == [320193, 1045810]
    with pytest.raises(InvalidCikError):
        resolve_companies(None, [], ["apple"])


@pytest.mark.parametrize(
    "payload",
    [
        b"<!DOCTYPE html><html>Request Rate Threshold Exceeded</html>",
        b'{"0": {"cik_str": 320193, "ticker": "AAPL", "title"',
        b'{"0": {"ticker": "AAPL"}}',
        b'{"0": {"cik_str": "abc", "ticker": "AAPL"}}',
        b'{"0": ["AAPL", 320193]}',
    ],
)
def test_a_bad_map_is_a_response_parse_error(payload: bytes) -> None:
    with pytest.raises(ResponseParseError) as info:
        parse_company_tickers(payload, origin="company_tickers.json")
    assert "company_tickers.json" in str(info.value)


def test_real_ticker_map(shared_edgar: Path) -> None:
    path = shared_edgar / "reference" / "company_tickers.json"
    ticker_map = parse_company_tickers(path.read_bytes(), origin=str(path))
    assert ticker_map.resolve(["AAPL", "NVDA", "TSM", "GOOGL"]) == [
        320193,
        1045810,
        1046179,
        1652044,
    ]
    assert ticker_map.resolve(["brk.b"]) == [1067983]
    assert ticker_map.titles[320193] == "Apple Inc."
