"""``finloom nightly`` in subprocesses against the EDGAR stand-in: a synthetic day's master
index decides which companies are fetched; a night with nothing new is a few requests."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from tests.conftest import STANDIN_USER_AGENT
from tests.edgar_standin import EdgarStandIn
from tests.nightly_helpers import ciks_in, index_path, master_idx
from tests.test_cli import Result, assert_usage_error, finloom

DAY = date(2026, 11, 24)  # a Tuesday
HELD = {1046179: "TAIWAN SEMICONDUCTOR MANUFACTURING CO LTD", 1835632: "Marvell Technology, Inc.",
        865941: "CELADON GROUP INC"}  # fmt: skip
NEW = (1731289, "Nikola Corp")  # files a 10-K, not yet in the warehouse
OTHERS = {320193: "4", 1318605: "8-K", 789019: "S-8", 1045810: "4"}  # no XBRL form


def standin_env(standin: EdgarStandIn) -> dict[str, str]:
    return {
        "FINLOOM_EDGAR_DATA_URL": standin.data_url,
        "FINLOOM_EDGAR_WWW_URL": standin.www_url,
        "FINLOOM_SEC_USER_AGENT": STANDIN_USER_AGENT,
    }


def test_nightly_from_after_to_is_a_usage_error(tmp_path: Path) -> None:
    env = {"FINLOOM_SEC_USER_AGENT": STANDIN_USER_AGENT}
    result = finloom(tmp_path, "nightly", "--from", "2026-11-25", "--to", "2026-11-24", env=env)
    assert_usage_error(result, "--from 2026-11-25 is after --to 2026-11-24")
    result = finloom(tmp_path, "nightly", "--to", "2026-13-01", env=env)
    assert_usage_error(result, "--to '2026-13-01'", "YYYY-MM-DD")
    assert_usage_error(finloom(tmp_path, "nightly", "--ciks", "12x", env=env), "12x")


@pytest.fixture(scope="module")
def night(
    shared_edgar: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, EdgarStandIn, Result, Result, float]:
    home = tmp_path_factory.mktemp("nightly-cli")
    db = home / "warehouse.duckdb"
    held = ",".join(str(c) for c in HELD)
    loaded = finloom(home, "backfill", "--source", str(shared_edgar), "--ciks", held,
                     "--db", str(db), "--no-quality")  # fmt: skip
    assert loaded.code == 0, loaded
    rows = [(cik, name, "10-Q") for cik, name in HELD.items()] + [(*NEW, "10-K")]
    rows += [(cik, f"OTHER {cik}", form) for cik, form in OTHERS.items()]
    with EdgarStandIn(shared_edgar) as standin:
        standin.serve_document(index_path(DAY), master_idx(DAY, sorted(rows)))
        env = standin_env(standin)
        first = finloom(home, "nightly", "--from", DAY.isoformat(), "--to", DAY.isoformat(),
                        "--db", str(db), env=env, timeout=600)  # fmt: skip
        before = len(standin.hits)
        started = time.perf_counter()
        second = finloom(home, "nightly", "--to", DAY.isoformat(), "--db", str(db), env=env)
        seconds = time.perf_counter() - started
        standin.first_night = standin.hits[:before]  # type: ignore[attr-defined]
    return db, standin, first, second, seconds


@pytest.mark.integration
def test_a_night_fetches_exactly_the_companies_that_filed_xbrl_forms(
    night: tuple[Path, EdgarStandIn, Result, Result, float],
) -> None:
    db, standin, first, _, _ = night
    assert first.code == 0, first
    assert "Traceback" not in first.output
    hits = standin.first_night  # type: ignore[attr-defined]
    assert hits[0].path == index_path(DAY)
    fetched = set().union(*(ciks_in(hit.path) for hit in hits))
    assert fetched == {*HELD, NEW[0]}  # nothing for the Form 4 / 8-K / S-8 filers
    assert not [hit for hit in hits if hit.status == 429]
    for cik in (*HELD, NEW[0]):
        assert f"CIK {cik:010d}" in first.stdout
    assert "quality grades:" in first.stdout  # loaded and scored
    assert f"watermark: {DAY}" in first.stdout
    with duckdb.connect(str(db), read_only=True) as con:
        ciks = {r[0] for r in con.execute("SELECT DISTINCT cik FROM facts").fetchall()}
        scored = {r[0] for r in con.execute("SELECT DISTINCT cik FROM quality_scores").fetchall()}
        [(watermark,)] = con.execute("SELECT last_day FROM nightly_watermark").fetchall()
    assert ciks == {*HELD, NEW[0]}  # the new company joined the warehouse
    assert NEW[0] in scored
    assert watermark == DAY


@pytest.mark.integration
def test_a_night_with_nothing_new_is_a_few_requests_and_fast(
    night: tuple[Path, EdgarStandIn, Result, Result, float],
) -> None:
    _, standin, _, second, seconds = night
    assert second.code == 0, second
    assert "nothing new to load" in second.stdout
    assert len(standin.hits) - len(standin.first_night) <= 3  # type: ignore[attr-defined]
    assert seconds < 30, seconds
