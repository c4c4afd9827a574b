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

from finloom_core.edgar import SecGate
from finloom_core.report import IncompleteRunError
from finloom_core.settings import FinloomSettings
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
    """Rows of every table in the warehouse but the audit log."""
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [
            r[0]
            for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            if r[0] != "audit_log"  # grows by an entry per run, whatever the run wrote
        ]
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


def record_gates(monkeypatch: pytest.MonkeyPatch) -> list[SecGate]:
    """Every SecGate the backfill flow builds, in order (one per flow run)."""
    built: list[SecGate] = []

    class RecordedGate(SecGate):
        @classmethod
        def from_settings(cls, settings: FinloomSettings, **kwargs: Any) -> SecGate:
            built.append(SecGate.from_settings(settings, **kwargs))
            return built[-1]

    monkeypatch.setattr("flows.backfill.SecGate", RecordedGate)
    return built


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
    # one company after another, so that "after the 429" is an order (the concurrent case:
    # tests/test_download_concurrency.py)
    monkeypatch.setenv("FINLOOM_DOWNLOAD_CONCURRENCY", "1")
    gates = record_gates(monkeypatch)
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
    (gate,) = gates  # the run's one gate: every request of the run went through it
    assert 0 < gate.cooloff_remaining() <= cooloff
    while gate.cooloff_remaining() > 0:
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


def test_the_flow_passes_its_memory_limit_setting_to_every_connection(
    shared_edgar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FINLOOM_DUCKDB_MEMORY_LIMIT, read once by the flow, reaches the load and normalize
    tasks' connections."""
    from contextlib import contextmanager

    from finloom_core import pipeline

    monkeypatch.setenv("FINLOOM_DUCKDB_MEMORY_LIMIT", "1GB")
    real = pipeline.open_warehouse
    limits: list[str] = []

    @contextmanager
    def recording(path: Path | str, **kwargs: Any) -> Any:
        with real(path, **kwargs) as con:
            setting = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
            limits.append(str(setting))
            yield con

    monkeypatch.setattr(pipeline, "open_warehouse", recording)
    folder = tmp_path / "edgar" / "companyfacts"
    folder.mkdir(parents=True)
    for name in ("CIK0001640147.json", "CIK0001835632.json"):
        (folder / name).symlink_to(shared_edgar / "companyfacts" / name)

    summary = backfill(source=str(folder.parent), db_path=str(tmp_path / "w.db"), quality=False)

    assert summary["by_status"]["loaded"] == 2
    assert limits == ["953.6 MiB"] * 2  # 1GB as DuckDB shows it: the load, the normalize


def test_a_run_cut_off_before_normalize_is_rebuilt_by_the_next_backfill(
    shared_edgar: Path, tmp_path: Path
) -> None:
    """The loads committed, the normalize never ran (the process was killed): the next
    backfill finds every company unchanged and still rebuilds their financials first."""
    from finloom_core.edgar.sources import FolderSource
    from finloom_core.pipeline import run_pipeline

    folder = tmp_path / "edgar" / "companyfacts"
    folder.mkdir(parents=True)
    for name in ("CIK0001640147.json", "CIK0001835632.json"):
        (folder / name).symlink_to(shared_edgar / "companyfacts" / name)
    ciks = [1640147, 1835632]
    clean, db = tmp_path / "clean.duckdb", tmp_path / "w.duckdb"
    run_pipeline(FolderSource(folder.parent), ciks, clean)
    run_pipeline(FolderSource(folder.parent), ciks, db, normalize=False)  # the cut-off run

    summary = backfill(source=str(folder.parent), db_path=str(db), quality=False)

    assert summary["by_status"]["unchanged"] == summary["companies"] == 2
    query = "SELECT * FROM financials ORDER BY ALL"
    with duckdb.connect(str(db), read_only=True) as con:
        rebuilt = con.execute(query).fetchall()
    with duckdb.connect(str(clean), read_only=True) as con:
        assert rebuilt == con.execute(query).fetchall()
    assert summary["financials"] == len(rebuilt) > 0


# ------------------------------------------------------------------ what the summary counts

APPLE = 320193
BUFFETT, BERKSHIRE = 315090, 1067983  # Warren Buffett's filings list Berkshire's as well


def listings(db: Path, ciks: list[int]) -> tuple[int, int]:
    """(rows of filing_companies, distinct filings) of these companies."""
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute(
            "SELECT count(*), count(DISTINCT accession) FROM filing_companies"
            " WHERE list_contains(?, cik)",
            [ciks],
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_a_filing_listed_by_two_companies_counts_once(shared_edgar: Path, tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    summary = backfill(
        ciks=[BUFFETT, BERKSHIRE], source=str(shared_edgar), db_path=str(db), quality=False
    )

    rows, distinct = listings(db, [BUFFETT, BERKSHIRE])
    assert rows > distinct  # the sample holds filings that both companies list
    assert summary["filings"] == distinct
    with duckdb.connect(str(db), read_only=True) as con:
        assert summary["filings"] == con.execute("SELECT count(*) FROM filings").fetchall()[0][0]
    per_company = {row["cik"]: row["filings"] for row in summary["per_company"]}
    assert sum(per_company.values()) == rows  # each company's own count still lists them all


def test_facts_written_counts_only_what_the_run_wrote(shared_edgar: Path, tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    first = backfill(ciks=[865941], source=str(shared_edgar), db_path=str(db), quality=False)
    again = backfill(ciks=[865941], source=str(shared_edgar), db_path=str(db), quality=False)

    assert first["facts"] == first["facts_written"] == EXPECTED_FACTS[865941]
    assert again["by_status"]["unchanged"] == 1
    assert again["facts"] == EXPECTED_FACTS[865941]  # still stored
    assert again["facts_written"] == 0  # but nothing written
    assert "written by this run: 0" in str(summary_artifact().data)


def test_missing_submissions_pages_are_noted(shared_edgar: Path, tmp_path: Path) -> None:
    """Apple's submissions document lists an older-filings page the sample lacks: the company
    loads, with a note naming the page."""
    summary = backfill(
        ciks=[APPLE, 865941], source=str(shared_edgar), db_path=str(tmp_path / "w.db"),
        quality=False,
    )  # fmt: skip

    (noted,) = summary["noted"]
    assert noted["cik"] == APPLE and noted["status"] == "loaded"
    assert "submissions page(s) not found" in noted["note"]
    assert "CIK0000320193-submissions-001.json" in noted["note"]


def test_the_flow_reports_its_progress_batch_by_batch(shared_edgar: Path, tmp_path: Path) -> None:
    from finloom_ops import progress

    events: list[tuple[Any, ...]] = []

    class Recorder:
        def started(self, companies: int, batches: int) -> None:
            events.append(("started", companies, batches))

        def batch_done(self, number: int, batches: int, outcomes: Any) -> None:
            events.append(("batch", number, batches, sorted(o.cik for o in outcomes)))

        def phase(self, name: str) -> None:
            events.append(("phase", name))

    with progress.listening(Recorder()):
        backfill(
            ciks=[APPLE, 865941], source=str(shared_edgar), db_path=str(tmp_path / "w.db"),
            batch_size=1, quality=False,
        )  # fmt: skip
    assert events == [
        ("started", 2, 2),
        ("batch", 1, 2, [APPLE]),
        ("batch", 2, 2, [865941]),
    ]


def test_the_summary_carries_the_quality_grades_also_when_the_run_fails(
    shared_edgar: Path, tmp_path: Path
) -> None:
    """A failed company and a critical quality finding: the run's error still carries the
    summary, with the quality subflow's grades, findings and Data Docs."""
    db = tmp_path / "w.duckdb"
    backfill(ciks=[865941], source=str(shared_edgar), db_path=str(db), quality=False)
    with duckdb.connect(str(db)) as con:  # a fact of a company that does not exist
        con.execute(
            "INSERT INTO facts SELECT * REPLACE (424242 AS cik) FROM facts WHERE cik = 865941"
            " LIMIT 1"
        )

    with pytest.raises(IncompleteRunError) as raised:
        backfill(ciks=[APPLE, 999999999], source=str(shared_edgar), db_path=str(db), quality=True)

    digest = raised.value.summary["quality"]
    assert "referential_integrity" in digest["critical"]
    assert digest["filings_scored"] == sum(digest["grades"].values()) > 0
    assert set(digest["grades"]) == {"A", "B", "C", "D", "F"}
    assert digest["data_docs"] == str(tmp_path / "quality" / "data_docs" / "index.html")
