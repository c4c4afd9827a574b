"""The ``quality`` flow under the Prefect engine, its place at the end of ``backfill``, and
``finloom quality full --json`` in a subprocess.

Warehouses are built in-process with ``run_pipeline`` (no Prefect start-up), once per module.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from finloom_core.edgar.sources import FolderSource
from finloom_core.errors import QualityCriticalError
from finloom_core.pipeline import run_pipeline
from flows.quality import quality
from tasks.quality import REPORT_ARTIFACT_KEY, SCORES_ARTIFACT_KEY

pytestmark = pytest.mark.integration

APPLE, TSM = 320193, 1046179
SCORED_FORMS = ("10-K", "10-Q", "20-F")


@pytest.fixture(scope="module")
def small_db(shared_edgar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("quality") / "small.duckdb"
    run_pipeline(FolderSource(shared_edgar), [APPLE, TSM], db)
    return db


@pytest.fixture(scope="module")
def full_db(shared_edgar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = FolderSource(shared_edgar)
    db = tmp_path_factory.mktemp("quality-full") / "all.duckdb"
    run_pipeline(source, source.available_ciks(), db)
    return db


def artifact(key: str) -> Any:
    from prefect.artifacts import Artifact

    found = Artifact.get(key)
    assert found is not None, f"no artifact {key}"
    return found


def flow_run(flow_run_id: Any) -> Any:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def scored_accessions(db: Path) -> set[str]:
    """Every 10-K/10-Q/20-F with facts loaded: each must get a score."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT DISTINCT g.accession FROM filings g SEMI JOIN facts f"
            " ON f.accession = g.accession WHERE g.form IN ?",
            [list(SCORED_FORMS)],
        ).fetchall()
    return {r[0] for r in rows}


@pytest.mark.usefixtures("prefect_harness")
def test_quality_flow_publishes_both_artifacts_and_stores_the_run(
    small_db: Path, tmp_path: Path
) -> None:
    state = quality(db_path=str(small_db), docs_dir=str(tmp_path / "docs"), return_state=True)

    assert state.is_completed(), state
    report = state.result()
    run_id = str(state.state_details.flow_run_id)
    assert report["run_id"] == run_id
    assert report["critical"] == []
    assert {c["check"] for c in report["reconciliation"]} >= {
        "filing_count", "facts_to_filings", "normalized_to_raw", "duplicates",
        "completeness", "referential_integrity",
    }  # fmt: skip
    assert scored_accessions(small_db) <= {s["accession"] for s in report["scores"]}
    assert set(report["expectations"]) == {"facts", "filings", "financials"}
    assert (tmp_path / "docs" / "index.html").is_file()

    markdown = artifact(REPORT_ARTIFACT_KEY)
    assert markdown.type == "markdown"
    assert str(markdown.flow_run_id) == run_id
    text = str(markdown.data)
    for heading in ("## Failing checks", "## Worst 10 filings", "## Grade distribution"):
        assert heading in text
    table = artifact(SCORES_ARTIFACT_KEY)
    assert table.type == "table"
    assert str(table.flow_run_id) == run_id
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert len(rows) == len(report["scores"])
    assert {"accession", "score", "grade", "reasons"} <= set(rows[0])

    with duckdb.connect(str(small_db), read_only=True) as con:
        stored = con.execute(
            "SELECT count(*) FROM quality_scores WHERE run_id = ?", [run_id]
        ).fetchall()[0][0]
    assert stored == len(report["scores"])


@pytest.mark.usefixtures("prefect_harness")
def test_a_critical_finding_fails_the_run_after_the_artifacts_are_published(
    small_db: Path, tmp_path: Path
) -> None:
    db = tmp_path / "orphan.duckdb"
    shutil.copy(small_db, db)
    with duckdb.connect(str(db)) as con:  # a fact of a company that does not exist
        con.execute(
            "INSERT INTO facts SELECT * REPLACE (424242 AS cik) FROM facts WHERE cik = ? LIMIT 1",
            [APPLE],
        )

    with pytest.raises(QualityCriticalError, match="referential_integrity"):
        quality(db_path=str(db), run_expectations=False)

    markdown = artifact(REPORT_ARTIFACT_KEY)
    run = flow_run(markdown.flow_run_id)
    assert run.state.is_failed(), run.state
    assert "referential_integrity" in (run.state.message or "")
    assert markdown.created <= run.end_time
    assert "CRITICAL" in str(markdown.data).splitlines()[0]
    assert str(artifact(SCORES_ARTIFACT_KEY).flow_run_id) == str(run.id)


@pytest.mark.usefixtures("prefect_harness")
def test_backfill_ends_with_the_quality_subflow(shared_edgar: Path, tmp_path: Path) -> None:
    from flows.backfill import backfill

    db = tmp_path / "w.duckdb"
    summary = backfill(ciks=[APPLE], source=str(shared_edgar), db_path=str(db), quality=True)

    assert summary["facts"] > 0
    run = flow_run(artifact(REPORT_ARTIFACT_KEY).flow_run_id)
    assert run.parent_task_run_id is not None, "the quality run is not a subflow"
    assert run.state.is_completed()


def test_cli_quality_full_writes_the_json_and_scores_every_periodic_filing(
    full_db: Path, tmp_path: Path
) -> None:
    from tests.test_cli import finloom

    out = tmp_path / "out.json"
    result = finloom(tmp_path / "cli", "quality", "full", "--json", str(out), "--db", str(full_db))

    assert result.code == 0, result
    assert "Traceback" not in result.output
    report = json.loads(out.read_text())
    assert set(report) == {"reconciliation", "scores", "companies", "expectations"}
    assert all(
        {"check", "severity", "passed", "affected_records", "detail"} <= set(c)
        for c in report["reconciliation"]
    )
    scored = {s["accession"] for s in report["scores"]}
    assert scored_accessions(full_db) <= scored
    assert all({"cik", "accession", "form", "score", "grade", "components"} <= set(s)
               for s in report["scores"])  # fmt: skip
    assert len(report["companies"]) == 17
    assert set(report["expectations"]) == {"facts", "filings", "financials"}
    assert (tmp_path / "cli" / "quality" / "data_docs" / "index.html").is_file()
