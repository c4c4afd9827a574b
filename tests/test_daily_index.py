"""SEC's daily master index: parsing (real files), its URL, the client's fetch (a missing
day is 403 AccessDenied: no filings, no breaker failure), and the nightly bookkeeping."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pybreaker
import pytest

from finloom_core.edgar import EdgarClient, EdgarUrls, SecGate
from finloom_core.edgar.daily_index import (
    XBRL_FORMS,
    is_xbrl_form,
    parse_master_index,
    scan_days,
    xbrl_filers,
)
from finloom_core.errors import ResponseParseError
from finloom_core.nightly import day_range, due_companies, next_watermark, still_pending
from finloom_core.settings import FinloomSettings
from finloom_core.storage.nightly import (
    PendingCompany,
    get_watermark,
    pending_companies,
    record_night,
    set_watermark,
)
from finloom_core.storage.schema import migrate
from tests.conftest import STANDIN_USER_AGENT
from tests.edgar_standin import EdgarStandIn

DAILY = Path("Archives/edgar/daily-index")
MASTER = DAILY / "2020/QTR1/master.20200103.idx"


def test_parses_a_real_master_index(shared_edgar: Path) -> None:
    body = (shared_edgar / MASTER).read_bytes()
    entries = parse_master_index(body)
    data_lines = body.decode("latin-1").splitlines()
    rows = len(data_lines) - 1 - data_lines.index("-" * 80)
    assert len(entries) == rows > 7_900
    assert entries[0].cik == 1000229 and entries[0].form == "4"
    assert entries[0].company == "CORE LABORATORIES N V"
    assert entries[0].filed == date(2020, 1, 3)
    assert entries[0].file_name == "edgar/data/1000229/0001209191-20-000788.txt"
    forms = {e.form for e in entries}
    assert {"4", "8-K"} <= forms
    filers = xbrl_filers(entries)
    xbrl = {e.cik for e in entries if e.form in XBRL_FORMS}
    assert filers.keys() == xbrl and filers  # this day has 10-Q / 10-K filers
    only_other = {e.cik for e in entries} - xbrl
    assert only_other and not only_other & filers.keys()


def test_other_index_kinds_are_not_master_indexes(shared_edgar: Path) -> None:
    body = (shared_edgar / DAILY / "2020/QTR1/form.20200318.idx").read_bytes()
    with pytest.raises(ResponseParseError, match="header line"):
        parse_master_index(body)
    with pytest.raises(ResponseParseError, match="header line"):
        parse_master_index(b"<html>maintenance</html>")


@pytest.mark.parametrize(
    ("form", "xbrl"),
    [("10-K", True), ("10-Q/A", True), ("20-F", True), ("40-F/A", True), ("10-KT", True),
     ("10-QT/A", True), ("4", False), ("8-K", False), ("S-8", False), ("10-K405", False),
     ("DEF 14A", False)],
)  # fmt: skip
def test_xbrl_forms(form: str, xbrl: bool) -> None:
    assert is_xbrl_form(form) is xbrl


def test_daily_index_url() -> None:
    urls = EdgarUrls("https://data.sec.gov", "https://www.sec.gov")
    assert urls.daily_index(date(2020, 1, 3)) == (
        "https://www.sec.gov/Archives/edgar/daily-index/2020/QTR1/master.20200103.idx"
    )
    assert urls.daily_index(date(2022, 10, 3)).endswith("/2022/QTR4/master.20221003.idx")
    assert "/2024/QTR2/master.20240630.idx" in urls.daily_index(date(2024, 6, 30))


def test_client_fetches_a_day_and_a_missing_day_is_none_without_breaker_failure(
    shared_edgar: Path, tmp_path: Path
) -> None:
    settings = FinloomSettings(sec_user_agent=STANDIN_USER_AGENT, state_dir=tmp_path)
    with EdgarStandIn(shared_edgar) as standin:
        settings = settings.model_copy(
            update={"edgar_data_url": standin.data_url, "edgar_www_url": standin.www_url}
        )
        gate = SecGate.from_settings(settings)
        with EdgarClient(settings, gate) as client:
            assert client.daily_index(date(2020, 1, 3)) == (shared_edgar / MASTER).read_bytes()
            weekend = [date(2020, 1, 4) + timedelta(n) for n in range(8)]
            assert all(client.daily_index(day) is None for day in weekend)
        assert standin.count(403) == 8  # answered with SEC's AccessDenied XML
        assert gate.breaker.fail_counter == 0
        assert gate.breaker.current_state == pybreaker.STATE_CLOSED
        assert not gate.is_open()


def test_the_rate_limit_page_on_an_index_still_opens_the_circuit(
    shared_edgar: Path, tmp_path: Path
) -> None:
    from finloom_core.errors import RateLimitedError
    from tests.edgar_standin import HTML

    settings = FinloomSettings(sec_user_agent=STANDIN_USER_AGENT, state_dir=tmp_path)
    with EdgarStandIn(shared_edgar) as standin:
        settings = settings.model_copy(
            update={"edgar_data_url": standin.data_url, "edgar_www_url": standin.www_url}
        )
        path = "/Archives/edgar/daily-index/2020/QTR1/master.20200103.idx"
        standin.add_fault(path, 403, standin.rate_page(), {"Content-Type": HTML})
        gate = SecGate.from_settings(settings)
        with EdgarClient(settings, gate) as client, pytest.raises(RateLimitedError):
            client.daily_index(date(2020, 1, 3))
        assert gate.is_open()


def test_scan_stops_at_the_first_day_that_fails() -> None:
    body = (
        b"CIK|Company Name|Form Type|Date Filed|File Name\n"
        + b"-" * 80
        + (b"\n1|ONE|10-Q|20240102|a.txt\n2|TWO|4|20240102|b.txt\n")
    )

    def fetch(day: date) -> bytes | None:
        if day == date(2024, 1, 4):
            return b"garbage"
        return body if day.day == 2 else None

    scan = scan_days(fetch, [date(2024, 1, d) for d in (2, 3, 4, 5)])
    assert scan.filers == {date(2024, 1, 2): {1: "ONE"}, date(2024, 1, 3): {}}
    assert scan.without_index == (date(2024, 1, 3),)
    assert scan.last_fetched == date(2024, 1, 3)
    assert scan.error and "2024-01-04" in scan.error


def test_day_range() -> None:
    d = date(2026, 11, 24)
    assert day_range(None, None, d) == (d, d)  # no watermark: the --to day only
    assert day_range(d - timedelta(3), None, d) == (d - timedelta(2), d)
    assert day_range(d, None, d) == (d + timedelta(1), d)  # nothing new: empty
    assert day_range(d, d - timedelta(9), d) == (d - timedelta(9), d)
    with pytest.raises(ValueError, match="after"):
        day_range(None, d + timedelta(1), d)


def test_due_companies_and_watermark() -> None:
    d1, d2 = date(2026, 11, 23), date(2026, 11, 24)
    pending = [PendingCompany(7, "SEVEN", d1 - timedelta(5), "failed", "x", 2)]
    due = due_companies({d1: {1: "ONE"}, d2: {1: "ONE", 2: "TWO", 7: "SEVEN"}}, pending, None)
    assert list(due) == [1, 2, 7]
    assert due[1].first_day == d1 and due[2].first_day == d2
    assert due[7].first_day == d1 - timedelta(5) and due[7].attempts == 2
    assert list(due_companies({d2: {1: "ONE", 2: "TWO"}}, pending, {2, 7})) == [2, 7]

    retry = still_pending(due, {2: ("deferred", "circuit open")})
    assert retry == [PendingCompany(2, "TWO", d2, "deferred", "circuit open", 1)]
    assert next_watermark(None, d2, retry) == d1  # not onto the pending company's day
    assert next_watermark(d1, d2, retry) is None  # does not move
    assert next_watermark(None, d2, []) == d2
    assert next_watermark(d2, None, []) is None  # no day fetched


def test_watermark_and_pending_in_the_warehouse(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        migrate(con)
        assert get_watermark(con) is None and pending_companies(con) == []
        set_watermark(con, date(2026, 1, 2))
        set_watermark(con, date(2026, 1, 5))
        assert get_watermark(con) == date(2026, 1, 5)
        p = [PendingCompany(1, "ONE", date(2026, 1, 6), "failed", "HTTP 410", 1),
             PendingCompany(2, None, date(2026, 1, 6), "deferred", None, 1)]  # fmt: skip
        record_night(con, pending=p, settled=[3], watermark=None)
        assert pending_companies(con) == p
        record_night(con, pending=p[1:], settled=[1], watermark=date(2026, 1, 7))
        assert pending_companies(con) == p[1:]
        assert get_watermark(con) == date(2026, 1, 7)
