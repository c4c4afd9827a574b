"""The real ``backfill`` flow, run by the Prefect engine (one temporary API for the session).

The live-API runs talk real HTTP to the EDGAR stand-in serving /work/shared/edgar; it
demands a declared User-Agent (403 otherwise) and answers 429 above 10 requests/s, so
"no 429, no 403" proves the client's fair-access behaviour end to end. The flow reads
its settings from the environment, as a deployment would.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path
from typing import Any

import duckdb
import pytest

from finloom_core.edgar import client as edgar_client
from finloom_core.report import IncompleteRunError
from finloom_core.settings import load_settings
from flows.backfill import backfill
from tasks.publish import BACKFILL_ARTIFACT_KEY
from tests.conftest import STANDIN_USER_AGENT as UA
from tests.edgar_standin import HTML, EdgarStandIn

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("prefect_harness", "clean_finloom_env"),
]

TICKERS = ["AAPL", "NVDA", "TSM", "GOOGL"]
EXTRA_CIKS = ["865941"]
EXPECTED_FACTS = {
    320193: 24_579,  # AAPL
    1045810: 26_903,  # NVDA
    1046179: 5_979,  # TSM (IFRS)
    1652044: 20_324,  # GOOGL
    865941: 7_542,  # Celadon (no ticker: a CIK)
}
NAMES = {
    320193: "Apple",
    1045810: "NVIDIA",
    1046179: "TAIWAN SEMICONDUCTOR",
    1652044: "Alphabet",
    865941: "CELADON",
}
TOTAL_FACTS = 258_602


def facts_path(cik: int) -> str:
    return f"/api/xbrl/companyfacts/CIK{cik:010d}.json"


def row_counts(db: Path) -> dict[str, int]:
    """Rows of every table in the warehouse."""
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in tables}


def facts_by_cik(db: Path) -> dict[int, int]:
    with duckdb.connect(str(db), read_only=True) as con:
        return dict(con.execute("SELECT cik, count(*) FROM facts GROUP BY cik").fetchall())


def orphan_accessions(db: Path) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "SELECT count(DISTINCT f.accession) FROM facts f"
            " ANTI JOIN filings g ON g.accession = f.accession"
        ).fetchall()[0][0]


def summary_artifact() -> Any:
    """The latest "finloom-backfill-summary" artifact, read back from the Prefect API."""
    from prefect.artifacts import Artifact

    artifact = Artifact.get(BACKFILL_ARTIFACT_KEY)
    assert artifact is not None, "no summary artifact"
    assert artifact.type == "markdown"
    return artifact


def flow_run_of(artifact: Any) -> Any:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(artifact.flow_run_id)


def run_api_backfill(db: Path, **kwargs: Any) -> Any:
    kwargs.setdefault("quality", False)  # the quality subflow has its own tests
    return backfill(tickers=TICKERS, ciks=EXTRA_CIKS, db_path=str(db), **kwargs)


# ------------------------------------------------------------------ the live API path


def test_api_backfill_loads_every_fact_politely_and_reruns_idempotently(
    standin: EdgarStandIn, tmp_path: Path
) -> None:
    db = tmp_path / "warehouse.duckdb"

    state = run_api_backfill(db, return_state=True)

    assert state.is_completed(), state
    summary = state.result()
    assert summary["facts"] == sum(EXPECTED_FACTS.values())
    assert summary["failed"] == [] and summary["deferred"] == []
    assert facts_by_cik(db) == EXPECTED_FACTS
    assert orphan_accessions(db) == 0

    artifact = summary_artifact()
    assert artifact.flow_run_id == state.state_details.flow_run_id
    markdown = str(artifact.data)
    assert "complete" in markdown.splitlines()[0] and "INCOMPLETE" not in markdown
    for cik, name in NAMES.items():
        assert f"{cik:010d}" in markdown
        assert name.lower() in markdown.lower(), name

    before = row_counts(db)
    assert {"companies", "filings", "facts"} <= set(before)
    second = run_api_backfill(db)
    assert row_counts(db) == before
    assert second["by_status"]["unchanged"] == len(EXPECTED_FACTS)

    assert standin.count(429) == 0
    assert standin.count(403) == 0
    assert standin.hits and all(hit.user_agent == UA for hit in standin.hits)


def test_rate_limit_defers_the_rest_without_requests_then_a_rerun_catches_up(
    standin: EdgarStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cooloff = 3.0
    monkeypatch.setenv("FINLOOM_BREAKER_COOLOFF_SECONDS", str(cooloff))
    db = tmp_path / "warehouse.duckdb"
    nvidia = 1045810
    standin.add_fault(facts_path(nvidia), 429, standin.rate_page(), {"Content-Type": HTML})
    after_nvidia = [1046179, 1652044, 865941]

    with pytest.raises(IncompleteRunError, match=r"4 deferred .*CIK 1045810") as caught:
        run_api_backfill(db)

    error = caught.value
    deferred = {row["cik"] for row in error.summary["deferred"]}
    assert deferred == {nvidia, *after_nvidia}
    assert error.summary["failed"] == []
    assert facts_by_cik(db) == {320193: EXPECTED_FACTS[320193]}

    # The companies after the 429 were deferred locally: none of their requests left.
    assert standin.count(429) == 1
    for cik in after_nvidia:
        assert not [h for h in standin.hits if f"CIK{cik:010d}" in h.path], cik
    assert not [h for h in standin.hits if h.path == f"/submissions/CIK{nvidia:010d}.json"]

    # The summary was published by this run, before it ended Failed, naming every
    # deferred company.
    artifact = summary_artifact()
    flow_run = flow_run_of(artifact)
    assert flow_run.state.is_failed(), flow_run.state
    assert "IncompleteRunError" in (flow_run.state.message or "")
    assert artifact.created <= flow_run.end_time
    markdown = str(artifact.data)
    assert "INCOMPLETE" in markdown
    deferred_rows = [
        line for line in markdown.splitlines() if line.startswith("| 0") and "| deferred |" in line
    ]
    assert len(deferred_rows) == 4
    for cik in deferred:
        assert any(f"{cik:010d}" in row for row in deferred_rows), cik

    # Once the cool-off has passed, a rerun loads what was deferred.
    breaker = edgar_client.shared_breaker(load_settings())
    assert 0 < edgar_client.cooloff_remaining(breaker) <= cooloff
    while edgar_client.cooloff_remaining(breaker) > 0:
        time.sleep(0.05)
    summary = run_api_backfill(db)
    assert summary["deferred"] == [] and summary["failed"] == []
    assert facts_by_cik(db) == EXPECTED_FACTS
    assert standin.count(429) == 1 and standin.count(403) == 0


def test_one_truncated_document_fails_only_that_company(
    standin: EdgarStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINLOOM_BREAKER_COOLOFF_SECONDS", "601")
    db = tmp_path / "warehouse.duckdb"
    tsm = 1046179
    standin.serve_truncated(facts_path(tsm), nbytes=4096)

    state = run_api_backfill(db, return_state=True)

    assert state.is_failed(), state
    error = state.result(raise_on_failure=False)
    assert isinstance(error, IncompleteRunError)
    assert "1 failed (CIK 1046179)" in str(error)
    assert summary_artifact().flow_run_id == state.state_details.flow_run_id
    (failed,) = error.summary["failed"]
    assert failed["cik"] == tsm
    assert f"{standin.data_url}{facts_path(tsm)}" in failed["reason"]
    assert error.summary["deferred"] == []
    expected = {cik: n for cik, n in EXPECTED_FACTS.items() if cik != tsm}
    assert facts_by_cik(db) == expected
    assert standin.count(429) == 0 and standin.count(403) == 0


# ------------------------------------------------------------------ local sources


def test_folder_source_loads_every_fact(shared_edgar: Path, tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"

    summary = backfill(source=str(shared_edgar), db_path=str(db), quality=False)

    assert summary["facts"] == TOTAL_FACTS
    assert summary["failed"] == [] and summary["deferred"] == []
    counts = row_counts(db)
    assert counts["facts"] == TOTAL_FACTS
    assert orphan_accessions(db) == 0
    # the changed (here: every) company was normalized after its batch's load
    assert summary["financials"] == counts["financials"] > 0
    with duckdb.connect(str(db), read_only=True) as con:
        normalized = {r[0] for r in con.execute("SELECT DISTINCT cik FROM financials").fetchall()}
    assert normalized == set(facts_by_cik(db))
    assert f"financials rows rebuilt (companies whose facts changed): {counts['financials']:,}" in (
        str(summary_artifact().data)
    )

    # nothing changed: the normalize task is skipped and financials stay as they are
    again = backfill(source=str(shared_edgar), db_path=str(db), quality=False)
    assert again["financials"] == 0
    assert row_counts(db) == counts


def test_companyfacts_zip_source_loads_every_fact(shared_edgar: Path, tmp_path: Path) -> None:
    archive = tmp_path / "companyfacts.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out:
        for file in sorted((shared_edgar / "companyfacts").glob("CIK*.json")):
            out.write(file, file.name)
    db = tmp_path / "warehouse.duckdb"

    summary = backfill(source=str(archive), db_path=str(db), quality=False)

    assert summary["companies"] == 17
    assert summary["by_status"]["loaded"] == 17
    assert summary["facts"] == TOTAL_FACTS
    assert row_counts(db)["facts"] == TOTAL_FACTS
