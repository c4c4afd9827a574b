"""The ``nightly`` flow run by the Prefect engine against the EDGAR stand-in: a day without
an index is no error, a company that fails stays pending and holds the watermark."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from finloom_core.errors import IncompleteRunError
from finloom_core.storage.database import open_warehouse
from finloom_core.storage.nightly import get_watermark, pending_companies
from flows.nightly import nightly
from tests.edgar_standin import EdgarStandIn
from tests.nightly_helpers import ciks_in, index_path, master_idx

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("prefect_harness", "clean_finloom_env"),
]

SATURDAY = date(2026, 11, 28)
TUESDAY = date(2026, 11, 24)
CELADON, MARVELL, APPLE = 865941, 1835632, 320193


def state(db: Path) -> tuple[date | None, list[int], int]:
    with open_warehouse(db) as con:
        watermark, pending = get_watermark(con), pending_companies(con)
        loaded = con.execute("SELECT count(DISTINCT cik) FROM facts").fetchall()[0][0]
    return watermark, [p.cik for p in pending], loaded


def test_a_weekend_is_no_error_and_starts_no_backfill(
    standin: EdgarStandIn, tmp_path: Path
) -> None:
    db = tmp_path / "w.duckdb"
    summary = nightly(from_date=SATURDAY, to_date=SATURDAY + timedelta(1), db_path=str(db))
    assert summary["days_without_index"] == ["2026-11-28", "2026-11-29"]
    assert summary["companies"] == [] and summary["pending"] == []
    assert summary["watermark"] == "2026-11-29" and summary["backfill"] == {}
    assert standin.statuses() == [403, 403]  # SEC's AccessDenied: no filings those days
    assert state(db) == (date(2026, 11, 29), [], 0)


def test_a_failed_company_stays_pending_and_holds_the_watermark(
    standin: EdgarStandIn, tmp_path: Path
) -> None:
    db = tmp_path / "w.duckdb"
    standin.serve_document(
        index_path(TUESDAY),
        master_idx(TUESDAY, [(CELADON, "CELADON GROUP INC", "10-Q"),
                             (MARVELL, "Marvell Technology, Inc.", "10-Q"),
                             (APPLE, "Apple Inc.", "4")]),
    )  # fmt: skip
    standin.add_fault(f"/api/xbrl/companyfacts/CIK{CELADON:010d}.json", 410)
    with pytest.raises(IncompleteRunError, match="1 companies pending") as caught:
        nightly(from_date=TUESDAY, to_date=TUESDAY, db_path=str(db), quality=False)
    summary = caught.value.summary
    assert [(p["cik"], p["status"], p["day"]) for p in summary["pending"]] == [
        (CELADON, "failed", "2026-11-24")
    ]
    statuses = {row["cik"]: row["status"] for row in summary["companies"]}
    assert statuses == {CELADON: "failed", MARVELL: "loaded"}
    assert state(db) == (TUESDAY - timedelta(1), [CELADON], 1)  # not onto its day
    assert not any(APPLE in ciks_in(hit.path) for hit in standin.hits)

    # the next night (Wednesday: no index) reads Tuesday again and loads it
    summary = nightly(to_date=TUESDAY + timedelta(1), db_path=str(db), quality=False)
    assert summary["days"] == ["2026-11-24", "2026-11-25"]
    assert {row["cik"]: row["status"] for row in summary["companies"]} == {
        CELADON: "loaded",
        MARVELL: "unchanged",
    }
    assert summary["pending"] == []
    assert state(db) == (TUESDAY + timedelta(1), [], 2)
    with duckdb.connect(str(db), read_only=True) as con:
        [(n,)] = con.execute("SELECT count(*) FROM facts WHERE cik = ?", [CELADON]).fetchall()
    assert n == 7_542


def test_a_watch_list_loads_only_its_companies_and_the_summary_is_published(
    standin: EdgarStandIn, tmp_path: Path
) -> None:
    from prefect.artifacts import Artifact

    from tasks.nightly import NIGHTLY_ARTIFACT_KEY

    db = tmp_path / "w.duckdb"
    tsm = 1046179
    standin.serve_document(
        index_path(TUESDAY),
        master_idx(TUESDAY, [(CELADON, "CELADON GROUP INC", "10-Q"),
                             (MARVELL, "Marvell Technology, Inc.", "10-K/A"),
                             (tsm, "TAIWAN SEMICONDUCTOR", "20-F")]),
    )  # fmt: skip
    summary = nightly(
        from_date=TUESDAY, to_date=TUESDAY, tickers=["MRVL"], ciks=[CELADON], db_path=str(db),
        quality=False,
    )  # fmt: skip
    assert [row["cik"] for row in summary["companies"]] == [CELADON, MARVELL]
    fetched = set().union(*(ciks_in(hit.path) for hit in standin.hits))
    assert fetched == {CELADON, MARVELL}  # not TSM, though it filed a 20-F
    assert "/files/company_tickers.json" in [hit.path for hit in standin.hits]  # MRVL
    artifact = Artifact.get(NIGHTLY_ARTIFACT_KEY)
    assert artifact is not None
    text = str(artifact.data)
    assert "2026-11-24" in text and "0001835632" in text and "0001046179" not in text


def test_a_filer_without_xbrl_facts_is_recorded_and_not_pending(
    standin: EdgarStandIn, tmp_path: Path
) -> None:
    db = tmp_path / "w.duckdb"
    microsoft = 789019  # submissions at the stand-in, companyfacts 404
    standin.serve_document(
        index_path(TUESDAY), master_idx(TUESDAY, [(microsoft, "MICROSOFT CORP", "10-Q")])
    )
    summary = nightly(from_date=TUESDAY, to_date=TUESDAY, db_path=str(db), quality=False)
    assert [(r["cik"], r["status"]) for r in summary["companies"]] == [(microsoft, "no_xbrl_facts")]
    assert summary["pending"] == [] and summary["watermark"] == "2026-11-24"
    assert state(db) == (TUESDAY, [], 0)


def test_a_good_night_is_backed_up_when_asked_and_readers_get_its_watermark(
    standin: EdgarStandIn, tmp_path: Path
) -> None:
    from finloom_core.backup import list_backups, restore_backup
    from finloom_core.storage.published import current_snapshot

    db = tmp_path / "w.duckdb"
    standin.serve_document(
        index_path(TUESDAY), master_idx(TUESDAY, [(CELADON, "CELADON GROUP INC", "10-Q")])
    )
    folder = tmp_path / "backups"
    summary = nightly(
        from_date=TUESDAY, to_date=TUESDAY, ciks=[CELADON], db_path=str(db), quality=False,
        backup_to=str(folder), backup_keep=2,
    )  # fmt: skip
    (taken,) = list_backups(str(folder))
    assert summary["backup"] == taken.id
    snapshot = current_snapshot(db)
    assert snapshot is not None
    with duckdb.connect(str(snapshot), read_only=True) as published:
        watermark = published.execute("SELECT last_day FROM nightly_watermark").fetchall()
    assert watermark == [(TUESDAY,)]  # the published copy carries the night's watermark
    restored = tmp_path / "restored.duckdb"
    restore_backup(str(folder), restored)
    assert state(restored)[0] == TUESDAY
