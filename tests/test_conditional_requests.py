"""Conditional requests: ETag / Last-Modified kept per document, 304 costs no download.

Validators are stored only in the transaction that loads their document: a crash between
download and load never leaves validators that would make the next run skip the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from finloom_core.edgar import EdgarClient, SecGate
from finloom_core.edgar.sources import ApiSource
from finloom_core.pipeline import download_batch, load_batch, parse_batch
from finloom_core.records import CompanyDocuments, ParsedCompany, Status
from finloom_core.settings import load_settings
from finloom_core.storage.validators import known_validators
from finloom_core.validators import Validators
from flows.backfill import backfill
from tests.edgar_standin import EdgarStandIn

pytestmark = pytest.mark.usefixtures("clean_finloom_env")

CELADON = 865941
NVIDIA = 1045810
CIKS = [CELADON, NVIDIA]


def facts_path(cik: int) -> str:
    return f"/api/xbrl/companyfacts/CIK{cik:010d}.json"


def subs_path(cik: int) -> str:
    return f"/submissions/CIK{cik:010d}.json"


def statuses_since(standin: EdgarStandIn, start: int) -> dict[str, list[int]]:
    by_path: dict[str, list[int]] = {}
    for hit in standin.hits[start:]:
        by_path.setdefault(hit.path, []).append(hit.status)
    return by_path


def validator_rows(db: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "SELECT url, cik, etag, last_modified FROM http_validators ORDER BY url"
        ).fetchall()


def load_times(db: Path) -> dict[int, Any]:
    with duckdb.connect(str(db), read_only=True) as con:
        return dict(con.execute("SELECT cik, loaded_at FROM company_loads").fetchall())


GATES: dict[str, SecGate] = {}


def run_pipeline_once(standin: EdgarStandIn, db: Path, staging: Path) -> list[Any]:
    """download -> parse -> load of CIKS over the stand-in, with the stored validators
    (every run of a test through one gate: one rate limit, as the stand-in counts)."""
    settings = load_settings()
    gate = GATES.setdefault(standin.base_url, SecGate.from_settings(settings))
    with EdgarClient(settings, gate) as client:
        source = ApiSource(client, staging, known_validators(db, CIKS))
        staged = parse_batch(download_batch(source, CIKS))
    return load_batch(db, staged, source=source.name)


def test_the_client_gets_a_304_that_is_neither_an_error_nor_a_breaker_failure(
    standin: EdgarStandIn,
) -> None:
    settings = load_settings()
    gate = SecGate.from_settings(settings)
    url = f"{standin.data_url}{facts_path(CELADON)}"
    with EdgarClient(settings, gate) as client:
        body, validators = client.get_conditional(url, None)
        assert body and validators.etag and validators.last_modified
        assert client.answered[url] == validators
        again, same = client.get_conditional(url, validators)
        assert again is None and same == validators
        by_date, _ = client.get_conditional(url, Validators(None, validators.last_modified))
        assert by_date is None  # If-Modified-Since alone
        stale, fresh = client.get_conditional(url, Validators('"stale"', None))
        assert stale == body and fresh == validators
    assert standin.statuses() == [200, 304, 304, 200]
    assert gate.breaker.fail_counter == 0 and not gate.is_open()


def test_a_second_backfill_gets_304s_and_loads_nothing_and_a_changed_document_loads(
    standin: EdgarStandIn, tmp_path: Path, prefect_harness: None
) -> None:
    db = tmp_path / "warehouse.duckdb"
    first = backfill(ciks=CIKS, db_path=str(db), quality=False)
    assert first["by_status"]["loaded"] == 2
    stored = validator_rows(db)
    urls = {row[0] for row in stored}
    assert urls == {f"{standin.data_url}{p(c)}" for c in CIKS for p in (facts_path, subs_path)}
    assert all(row[2] and row[3] for row in stored)
    loaded_at = load_times(db)

    start = len(standin.hits)
    second = backfill(ciks=CIKS, db_path=str(db), quality=False)
    assert second["by_status"]["unchanged"] == 2 and second["by_status"]["loaded"] == 0
    assert second["facts_written"] == 0 and second["facts"] == first["facts"]
    seen = statuses_since(standin, start)
    assert seen == {p(c): [304] for c in CIKS for p in (facts_path, subs_path)}
    assert load_times(db) == loaded_at  # nothing written

    # SEC publishes a new companyfacts for Celadon: new bytes, a new ETag
    document = orjson.loads(
        (standin.root / "companyfacts" / f"CIK{CELADON:010d}.json").read_bytes()
    )
    units = next(iter(document["facts"]["us-gaap"].values()))["units"]
    next(iter(units.values())).pop()  # one fact fewer
    standin.change_document(facts_path(CELADON), orjson.dumps(document))
    start = len(standin.hits)
    third = backfill(ciks=CIKS, db_path=str(db), quality=False)
    assert third["by_status"]["loaded"] == 1 and third["by_status"]["unchanged"] == 1
    seen = statuses_since(standin, start)
    assert seen[facts_path(CELADON)] == [200]
    assert seen[subs_path(CELADON)] == [304, 200]  # asked again: the company is reloaded
    assert seen[facts_path(NVIDIA)] == [304] and seen[subs_path(NVIDIA)] == [304]
    with duckdb.connect(str(db), read_only=True) as con:
        facts = con.execute("SELECT count(*) FROM facts WHERE cik = ?", [CELADON]).fetchall()
    assert facts[0][0] == 7_542 - 1
    assert third["facts_written"] == 7_542 - 1
    new_etag = {r[0]: r[2] for r in validator_rows(db)}
    old_etag = {r[0]: r[2] for r in stored}
    facts_url = f"{standin.data_url}{facts_path(CELADON)}"
    assert new_etag[facts_url] != old_etag[facts_url]


def test_a_crash_between_download_and_load_leaves_no_validators(
    standin: EdgarStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "warehouse.duckdb"
    staging = tmp_path / "staging"

    # downloaded and parsed, then the process dies before the load: nothing stored
    settings = load_settings()
    gate = GATES.setdefault(standin.base_url, SecGate.from_settings(settings))
    with EdgarClient(settings, gate) as client:
        staged = parse_batch(download_batch(ApiSource(client, staging), CIKS))
    assert all(isinstance(s, ParsedCompany) and s.validators for s in staged)
    assert known_validators(db, CIKS) == {}

    # the load transaction fails after the facts were written: rolled back, validators too
    def crash(*_args: Any) -> None:
        raise duckdb.IOException("simulated crash before COMMIT")

    with monkeypatch.context() as patched:
        patched.setattr("finloom_core.storage.loader._upsert_companies", crash)
        failed = run_pipeline_once(standin, db, staging)
    assert [o.status for o in failed] == [Status.FAILED, Status.FAILED]
    assert validator_rows(db) == []

    start = len(standin.hits)
    loaded = run_pipeline_once(standin, db, staging)
    assert [o.status for o in loaded] == [Status.LOADED, Status.LOADED]
    assert 304 not in standin.statuses()[start:]  # nothing was skipped
    assert len(validator_rows(db)) == 4

    start = len(standin.hits)
    again = run_pipeline_once(standin, db, staging)
    assert [o.status for o in again] == [Status.UNCHANGED, Status.UNCHANGED]
    assert [o.facts for o in again] == [o.facts for o in loaded]
    assert standin.statuses()[start:] == [304] * 4


def test_unchanged_content_downloaded_again_stores_its_validators(
    standin: EdgarStandIn, tmp_path: Path
) -> None:
    """Loaded without validators (e.g. before they were kept): the next plain download of
    the same bytes confirms the stored content, and its validators are stored then."""
    db = tmp_path / "warehouse.duckdb"
    staging = tmp_path / "staging"
    run_pipeline_once(standin, db, staging)
    with duckdb.connect(str(db)) as con:
        con.execute("DELETE FROM http_validators")
    again = run_pipeline_once(standin, db, staging)
    assert [o.status for o in again] == [Status.UNCHANGED, Status.UNCHANGED]
    assert len(validator_rows(db)) == 4


def test_not_modified_documents_skip_parsing(tmp_path: Path) -> None:
    docs = CompanyDocuments(CELADON, None, not_modified=True)
    staged = parse_batch([docs])
    assert isinstance(staged[0], ParsedCompany) and staged[0].not_modified
