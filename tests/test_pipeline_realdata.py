"""The whole download -> parse -> load path over the real shared EDGAR sample."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from finloom_core.edgar.sources import FolderSource, ZipSource
from finloom_core.pipeline import run_pipeline
from finloom_core.records import CompanyOutcome, Status
from finloom_core.storage.database import open_warehouse
from tests.factories import count_facts_in_json

TOTAL_FACTS = 258_602  # issue acceptance text and MANIFEST.md section 1
EXPECTED = {  # per-company fact counts, same sources
    320193: 24_579,  # AAPL
    1045810: 26_903,  # NVDA
    1046179: 5_979,  # TSM
    1652044: 20_324,  # GOOGL
    865941: 7_542,  # Celadon
}
TABLES = ("companies", "filings", "facts", "company_loads")


@dataclass(frozen=True)
class Loaded:
    db: Path
    ciks: list[int]
    outcomes: list[CompanyOutcome]
    files_before: dict[Path, str]  # sha256 of every companyfacts file before the run


def file_hashes(folder: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("CIK*.json")}


def counts(db: Path) -> dict[str, int]:
    with open_warehouse(db, read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in TABLES}


def facts_per_cik(db: Path) -> dict[int, int]:
    with open_warehouse(db, read_only=True) as con:
        return dict(con.execute("SELECT cik, count(*) FROM facts GROUP BY cik").fetchall())


@pytest.fixture(scope="module")
def loaded(shared_edgar: Path, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    source = FolderSource(shared_edgar)
    ciks = source.available_ciks()
    db = tmp_path_factory.mktemp("realdata") / "warehouse.duckdb"
    before = file_hashes(shared_edgar / "companyfacts")
    return Loaded(db, ciks, run_pipeline(source, ciks, db), before)


def test_every_company_has_an_ok_outcome(loaded: Loaded, shared_edgar: Path) -> None:
    assert [o.cik for o in loaded.outcomes] == loaded.ciks
    assert all(o.ok for o in loaded.outcomes), [o for o in loaded.outcomes if not o.ok]
    with_facts = {int(p.name[3:13]) for p in (shared_edgar / "companyfacts").glob("CIK*.json")}
    statuses = {o.cik: o.status for o in loaded.outcomes}
    assert {c for c, s in statuses.items() if s is Status.LOADED} == with_facts
    assert {c for c, s in statuses.items() if s is Status.NO_XBRL} == set(loaded.ciks) - with_facts


def test_total_facts(loaded: Loaded) -> None:
    assert counts(loaded.db)["facts"] == TOTAL_FACTS
    assert sum(o.facts for o in loaded.outcomes) == TOTAL_FACTS


def test_per_company_fact_counts(loaded: Loaded) -> None:
    stored = facts_per_cik(loaded.db)
    assert {cik: stored[cik] for cik in EXPECTED} == EXPECTED
    by_outcome = {o.cik: o.facts for o in loaded.outcomes}
    assert {cik: by_outcome[cik] for cik in EXPECTED} == EXPECTED


def test_per_company_counts_match_the_json(loaded: Loaded, shared_edgar: Path) -> None:
    stored = facts_per_cik(loaded.db)
    for path in sorted((shared_edgar / "companyfacts").glob("CIK*.json")):
        assert stored[int(path.name[3:13])] == count_facts_in_json(path), path.name


def test_every_fact_accession_has_a_filing(loaded: Loaded) -> None:
    with open_warehouse(loaded.db, read_only=True) as con:
        orphans = con.execute(
            "SELECT count(*) FROM (SELECT DISTINCT accession FROM facts) f"
            " ANTI JOIN filings g ON g.accession = f.accession"
        ).fetchall()
        companies = con.execute("SELECT count(*) FROM companies").fetchall()
    assert orphans == [(0,)]
    assert companies == [(len(loaded.ciks),)]


def test_the_zero_filings_company_is_loaded_without_filings(loaded: Loaded) -> None:
    with open_warehouse(loaded.db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM filings WHERE cik = 350001").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM companies WHERE cik = 350001").fetchall() == [(1,)]


def test_the_folder_files_are_read_in_place_and_kept(loaded: Loaded, shared_edgar: Path) -> None:
    # a folder source's documents are parsed where they lie: never deleted nor modified
    assert len(loaded.files_before) == 17
    assert file_hashes(shared_edgar / "companyfacts") == loaded.files_before


def test_a_second_run_changes_no_row_count(loaded: Loaded, shared_edgar: Path) -> None:
    before = counts(loaded.db)
    per_cik = facts_per_cik(loaded.db)
    outcomes = run_pipeline(FolderSource(shared_edgar), loaded.ciks, loaded.db)
    assert {o.status for o in outcomes} <= {Status.UNCHANGED, Status.NO_XBRL}
    assert counts(loaded.db) == before
    assert facts_per_cik(loaded.db) == per_cik


def test_the_same_from_a_companyfacts_zip(companyfacts_zip: Path, tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    source = ZipSource(companyfacts_zip, staging)
    try:
        outcomes = run_pipeline(source, source.available_ciks(), tmp_path / "zip.duckdb")
    finally:
        source.close()
    assert all(o.status is Status.LOADED for o in outcomes)
    assert list(staging.iterdir()) == []  # every staged member was deleted once loaded
    assert len(outcomes) == 17
    assert counts(tmp_path / "zip.duckdb")["facts"] == TOTAL_FACTS
    stored = facts_per_cik(tmp_path / "zip.duckdb")
    assert {cik: stored[cik] for cik in EXPECTED} == EXPECTED
