"""``finloom backfill --bulk``: SEC's bulk archives fetched through the gate, resumed with
Range, conditional on the last download's validators, checked, then loaded.

The archives are built in a temporary folder from ../shared/edgar and served by the EDGAR
stand-in at SEC's paths.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from finloom_core.edgar import SecGate
from finloom_core.edgar.bulk import BulkDownloader, check_archive
from finloom_core.errors import SourceError
from finloom_core.settings import load_settings
from finloom_core.storage.database import open_warehouse
from tests.conftest import STANDIN_USER_AGENT
from tests.edgar_standin import EdgarStandIn
from tests.test_cli import Result, finloom

FACTS_ZIP = "/Archives/edgar/daily-index/xbrl/companyfacts.zip"
SUBS_ZIP = "/Archives/edgar/daily-index/bulkdata/submissions.zip"
TOTAL_FACTS = 258_602
ARCHIVE_DAY = 1_764_374_400.0  # 2025-11-29 00:00 UTC


@pytest.fixture(scope="module")
def archives(shared_edgar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """companyfacts.zip and submissions.zip of every shared document (deflated, as SEC's)."""
    folder = tmp_path_factory.mktemp("sec-archives")
    for kind in ("companyfacts", "submissions"):
        with zipfile.ZipFile(folder / f"{kind}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted((shared_edgar / kind).glob("CIK*.json")):
                archive.write(file, file.name)
    return folder


@pytest.fixture
def bulk_standin(shared_edgar: Path, archives: Path) -> Iterator[EdgarStandIn]:
    with EdgarStandIn(shared_edgar) as server:
        server.serve_file(FACTS_ZIP, archives / "companyfacts.zip", ARCHIVE_DAY)
        server.serve_file(SUBS_ZIP, archives / "submissions.zip", ARCHIVE_DAY)
        yield server


def run_bulk(home: Path, standin: EdgarStandIn, db: Path, bulk_dir: Path) -> Result:
    env = {
        "FINLOOM_SEC_USER_AGENT": STANDIN_USER_AGENT,
        "FINLOOM_EDGAR_DATA_URL": standin.data_url,
        "FINLOOM_EDGAR_WWW_URL": standin.www_url,
        "FINLOOM_BULK_DIR": str(bulk_dir),
        "FINLOOM_STATE_DIR": str(home / "state"),
    }
    return finloom(
        home, "backfill", "--bulk", "--db", str(db), "--no-quality", timeout=600, env=env
    )


def archive_hits(standin: EdgarStandIn, start: int = 0) -> list[tuple[str, int]]:
    return [(h.path, h.status) for h in standin.hits[start:] if h.path.startswith("/Archives")]


def row_counts(db: Path) -> dict[str, int]:
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [
            r[0]
            for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            if r[0] != "audit_log"  # grows by an entry per run, whatever the run wrote
        ]
        return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in tables}


def warehouse(db: Path) -> tuple[int, int, object]:
    with duckdb.connect(str(db), read_only=True) as con:
        facts = con.execute("SELECT count(*) FROM facts").fetchall()[0][0]
        companies = con.execute("SELECT count(*) FROM companies").fetchall()[0][0]
        watermark = con.execute("SELECT max(last_day) FROM nightly_watermark").fetchall()[0][0]
    return facts, companies, watermark


@pytest.mark.integration
def test_bulk_backfill_loads_the_archives_then_a_rerun_downloads_nothing(
    bulk_standin: EdgarStandIn, tmp_path: Path
) -> None:
    db, bulk_dir = tmp_path / "w.duckdb", tmp_path / "bulk"
    first = run_bulk(tmp_path, bulk_standin, db, bulk_dir)
    assert first.code == 0, first.output
    assert "facts stored: 258,602 (written by this run: 258,602)" in first.stdout
    assert archive_hits(bulk_standin) == [(FACTS_ZIP, 200), (SUBS_ZIP, 200)]
    facts, companies, watermark = warehouse(db)
    assert facts == TOTAL_FACTS and companies == 34
    assert str(watermark) == "2025-11-29"  # the nightly runs start after the archive's date
    assert (bulk_dir / "companyfacts.zip").is_file() and (bulk_dir / "submissions.zip").is_file()
    assert not list(bulk_dir.glob("*.part"))

    start = len(bulk_standin.hits)
    second = run_bulk(tmp_path, bulk_standin, db, bulk_dir)
    assert second.code == 0, second.output
    assert archive_hits(bulk_standin, start) == [(FACTS_ZIP, 304), (SUBS_ZIP, 304)]
    assert "written by this run: 0" in second.stdout
    assert warehouse(db)[0] == TOTAL_FACTS


@pytest.mark.integration
def test_a_truncated_archive_fails_in_one_line_and_leaves_the_warehouse_untouched(
    bulk_standin: EdgarStandIn, archives: Path, tmp_path: Path
) -> None:
    db, bulk_dir = tmp_path / "w.duckdb", tmp_path / "bulk"
    truncated = tmp_path / "truncated.zip"
    data = (archives / "companyfacts.zip").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    bulk_standin.serve_file(FACTS_ZIP, truncated, ARCHIVE_DAY)
    with open_warehouse(db) as con:
        con.execute("INSERT INTO companies (cik, name, updated_at) VALUES (1, 'Kept', now())")
    before = row_counts(db)

    result = run_bulk(tmp_path, bulk_standin, db, bulk_dir)
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr  # the run's logs aside, one error line
    assert "truncated or corrupt" in lines[0] and FACTS_ZIP in lines[0], lines
    assert row_counts(db) == before  # nothing written
    assert not (bulk_dir / "companyfacts.zip").exists() and not list(bulk_dir.glob("*.part"))


def test_a_broken_connection_resumes_with_range(
    bulk_standin: EdgarStandIn, archives: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINLOOM_SEC_USER_AGENT", STANDIN_USER_AGENT)
    monkeypatch.setenv("FINLOOM_EDGAR_WWW_URL", bulk_standin.www_url)
    monkeypatch.setenv("FINLOOM_HTTP_BACKOFF_SECONDS", "0")
    settings = load_settings()
    gate = SecGate.from_settings(settings)
    cut = 1_000_000
    bulk_standin.cut_after(FACTS_ZIP, cut)
    ranges: list[str | None] = []
    real_stream = __import__("httpx").Client.stream

    def recording(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def]
        ranges.append((kwargs.get("headers") or {}).get("Range"))
        return real_stream(self, method, url, *args, **kwargs)

    monkeypatch.setattr("httpx.Client.stream", recording)
    downloader = BulkDownloader(settings, gate, tmp_path / "bulk", sleep=lambda _s: None)
    try:
        archive = downloader.companyfacts()
    finally:
        downloader.close()
    assert (
        archive.downloaded
        and archive.path.read_bytes() == (archives / "companyfacts.zip").read_bytes()
    )
    assert archive_hits(bulk_standin) == [(FACTS_ZIP, 200), (FACTS_ZIP, 206)]
    assert ranges[0] is None and ranges[1] is not None
    resumed_at = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= cut  # what had arrived was kept, the rest asked for
    assert gate.breaker.fail_counter == 0
    check_archive(archive.path, origin="test")  # whole and every CRC right


def test_a_corrupt_member_is_refused(archives: Path, tmp_path: Path) -> None:
    broken = tmp_path / "companyfacts.zip"
    data = bytearray((archives / "companyfacts.zip").read_bytes())
    data[2_000] ^= 0xFF  # inside the first member's compressed data
    broken.write_bytes(bytes(data))
    with pytest.raises(SourceError) as info:
        check_archive(broken, origin="companyfacts.zip")
    assert "corrupt" in str(info.value) and "\n" not in str(info.value)
    assert not broken.exists()
