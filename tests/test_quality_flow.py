"""The ``quality`` flow under the Prefect engine, its place at the end of ``backfill``, and
``finloom quality full --json`` in a subprocess.

Warehouses are built in-process with ``run_pipeline`` (no Prefect start-up), once per module.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from finloom_core.edgar.sources import FolderSource
from finloom_core.errors import QualityCriticalError
from finloom_core.pipeline import run_pipeline
from finloom_core.quality.results import QualityReport
from finloom_core.quality.scope import PERIODIC_FORMS
from flows.quality import quality
from tasks.quality import REPORT_ARTIFACT_KEY, SCORES_ARTIFACT_KEY

pytestmark = pytest.mark.integration

APPLE, TSM = 320193, 1046179
SCORED_FORMS = ("10-K", "10-Q", "20-F")
ACCESSION = r" \d{10}-\d{2}-\d{6} "


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


def assert_scores_table(rows: list[dict[str, Any]], report: QualityReport) -> None:
    """The scores artifact: worst first, CIKs as 10-digit text."""
    scores = [row["score"] for row in rows]
    assert scores == sorted(scores)
    assert scores[0] == round(min(f.score for f in report.filings), 1)
    assert all(isinstance(r["cik"], str) and re.fullmatch(r"\d{10}", r["cik"]) for r in rows)
    assert {r["cik"] for r in rows} == {f"{APPLE:010d}", f"{TSM:010d}"}


def assert_failing_checks_readable(markdown: str, report: QualityReport) -> None:
    """The report's failing checks: the sample is text naming a record, not clipped JSON."""
    section = markdown.split("## Failing checks")[1].split("\n## ")[0]
    failing = [c for c in report.checks if not c.passed]
    assert failing, "the small warehouse has findings (completeness, filing_count)"
    for check in failing:
        (line,) = [ln for ln in section.splitlines() if ln.startswith(f"| {check.check} |")]
        sample = line.rstrip(" |").rsplit(" | ", 1)[1]
        assert "{" not in sample and '"' not in sample, sample
        assert re.match(r"cik \d{10}( |$)", sample), sample
        if check.sampled_from > 1:
            assert sample.endswith(f"(+{check.sampled_from - 1} more)"), sample


@pytest.mark.usefixtures("prefect_harness")
def test_quality_flow_publishes_both_artifacts_and_stores_the_run(
    small_db: Path, tmp_path: Path
) -> None:
    state = quality(db_path=str(small_db), docs_dir=str(tmp_path / "docs"), return_state=True)

    assert state.is_completed(), state
    report = state.result()
    run_id = str(state.state_details.flow_run_id)
    assert report.run_id == run_id
    assert report.critical == ()
    assert {c.check for c in report.checks} >= {
        "filing_count", "facts_to_filings", "normalized_to_raw", "duplicates",
        "completeness", "referential_integrity",
    }  # fmt: skip
    assert scored_accessions(small_db) <= {s.accession for s in report.filings}
    assert set(report.expectations) == {"facts", "filings", "financials"}
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
    assert len(rows) == len(report.filings)
    assert {"accession", "score", "grade", "reasons"} <= set(rows[0])
    assert_scores_table(rows, report)
    assert_failing_checks_readable(text, report)

    with duckdb.connect(str(small_db), read_only=True) as con:
        stored = con.execute(
            "SELECT count(*) FROM quality_scores WHERE run_id = ?", [run_id]
        ).fetchall()[0][0]
    assert stored == len(report.filings)


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

    with pytest.raises(QualityCriticalError, match="referential_integrity") as raised:
        quality(db_path=str(db), run_expectations=False)
    report = raised.value.report  # the error carries the published report
    assert report is not None and report.critical == ("referential_integrity",)

    markdown = artifact(REPORT_ARTIFACT_KEY)
    run = flow_run(markdown.flow_run_id)
    assert run.state.is_failed(), run.state
    assert "referential_integrity" in (run.state.message or "")
    assert markdown.created <= run.end_time
    assert "CRITICAL" in str(markdown.data).splitlines()[0]
    assert "| referential_integrity | critical |" in str(markdown.data)
    assert "cik 0000424242" in str(markdown.data)  # the sample names the unknown company
    assert str(artifact(SCORES_ARTIFACT_KEY).flow_run_id) == str(run.id)


def duckdb_shows(limit: str) -> str:
    """A memory limit as DuckDB's current_setting('memory_limit') shows it (e.g. 953.6 MiB)."""
    with duckdb.connect() as probe:
        probe.execute(f"SET memory_limit = '{limit}'")
        return str(probe.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize(("setting", "tasks_get"), [("768MB", "768MB"), ("3GB", "1GB")])
def test_every_quality_task_opens_duckdb_with_the_memory_limit_setting_capped(
    small_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, tasks_get: str
) -> None:
    """FINLOOM_DUCKDB_MEMORY_LIMIT, read once by the flow, reaches every task's connection,
    at most QUALITY_MEMORY_LIMIT (1GB), and VALIDATE_MEMORY_LIMIT for the GX step (whose
    chunk reads would otherwise fill DuckDB's buffer pool up to the setting)."""
    from contextlib import contextmanager

    import tasks.quality as quality_tasks

    assert quality_tasks.QUALITY_MEMORY_LIMIT == "1GB"
    validate = quality_tasks.VALIDATE_MEMORY_LIMIT
    assert len({duckdb_shows(x) for x in (setting, tasks_get, validate, "1GB")}) >= 3
    monkeypatch.setenv("FINLOOM_DUCKDB_MEMORY_LIMIT", setting)
    real = quality_tasks.open_warehouse
    limits: list[str] = []

    @contextmanager
    def recording(path: Path | str, **kwargs: Any) -> Any:
        with real(path, **kwargs) as con:
            limits.append(
                str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
            )
            yield con

    monkeypatch.setattr(quality_tasks, "open_warehouse", recording)
    db = tmp_path / "w.duckdb"
    shutil.copy(small_db, db)

    report = quality(db_path=str(db), docs_dir=str(tmp_path / "docs"))

    assert set(report.expectations) == {"facts", "filings", "financials"}
    mine, gx = duckdb_shows(tasks_get), duckdb_shows(validate)
    assert limits == [mine, mine, mine, gx, mine]  # scope, reconcile, score, validate, publish


@pytest.mark.usefixtures("prefect_harness")
def test_the_scores_artifact_holds_the_worst_filings_up_to_its_row_cap(
    small_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond SCORES_ARTIFACT_ROWS filings the table artifact holds the worst ones and says
    so; every score is still stored."""
    import tasks.quality as quality_tasks
    from finloom_core.quality.render import worst_first

    monkeypatch.setattr(quality_tasks, "SCORES_ARTIFACT_ROWS", 5)
    db = tmp_path / "w.duckdb"
    shutil.copy(small_db, db)

    state = quality(db_path=str(db), run_expectations=False, return_state=True)

    report = state.result()
    assert len(report.filings) > 5
    table = artifact(SCORES_ARTIFACT_KEY)
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert [r["accession"] for r in rows] == [f.accession for f in worst_first(report.filings)[:5]]
    assert f"the 5 worst of {len(report.filings):,} filings" in (table.description or "")
    run_id = str(state.state_details.flow_run_id)
    with duckdb.connect(str(db), read_only=True) as con:
        stored = con.execute(
            "SELECT count(*) FROM quality_scores WHERE run_id = ?", [run_id]
        ).fetchall()[0][0]
    assert stored == len(report.filings)


@pytest.mark.usefixtures("prefect_harness")
def test_backfill_ends_with_the_quality_subflow(shared_edgar: Path, tmp_path: Path) -> None:
    from flows.backfill import backfill

    db = tmp_path / "w.duckdb"
    summary = backfill(ciks=[APPLE], source=str(shared_edgar), db_path=str(db), quality=True)

    assert summary["facts"] > 0
    assert summary["quality"]["filings_scored"] > 0  # the subflow's report reached the summary
    run = flow_run(artifact(REPORT_ARTIFACT_KEY).flow_run_id)
    assert run.parent_task_run_id is not None, "the quality run is not a subflow"
    assert run.state.is_completed()


def stored_latest_grades(db: Path) -> dict[str, int]:
    """Grades of the newest stored score of every filing (by scored_at, then run_id)."""
    with duckdb.connect(str(db), read_only=True) as con:
        stored = con.execute("SELECT accession, scored_at, run_id, grade FROM quality_scores")
        latest: dict[str, tuple[Any, str, str]] = {}
        for accession, scored_at, run_id, grade in stored.fetchall():
            if accession not in latest or (scored_at, run_id) > latest[accession][:2]:
                latest[accession] = (scored_at, run_id, grade)
    grades = [g for _, _, g in latest.values()]
    return {letter: grades.count(letter) for letter in "ABCDF"}


@pytest.mark.usefixtures("prefect_harness")
def test_backfill_quality_covers_only_the_companies_it_changed(
    shared_edgar: Path, full_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 of 17 companies change: reconciliation, scores and GX cover those 2; the report's
    warehouse-wide grades are those of every filing's latest stored score."""
    from flows.backfill import backfill

    monkeypatch.chdir(tmp_path)
    db = tmp_path / "w.duckdb"
    shutil.copy(full_db, db)
    whole = quality(db_path=str(db), run_expectations=False)
    assert whole.scope is not None and whole.scope.label == "whole warehouse (34 companies)"
    with duckdb.connect(str(db)) as con:  # their stored documents no longer match the source
        con.execute(
            "UPDATE company_loads SET facts_sha256 = 'changed' WHERE list_contains(?, cik)",
            [[APPLE, TSM]],
        )

    summary = backfill(source=str(shared_edgar), db_path=str(db), quality=True)

    assert summary["by_status"]["loaded"] == 2
    digest = summary["quality"]
    assert digest["scope"] == "2 companies changed by this run"
    markdown = str(artifact(REPORT_ARTIFACT_KEY).data)
    assert "- scope: 2 companies changed by this run" in markdown
    run_id = str(artifact(REPORT_ARTIFACT_KEY).flow_run_id)
    with duckdb.connect(str(db), read_only=True) as con:
        stored = con.execute(
            "SELECT cik, count(*) FROM quality_scores WHERE run_id = ? GROUP BY cik", [run_id]
        ).fetchall()
        facts = con.execute(
            "SELECT count(*) FROM facts WHERE list_contains(?, cik)", [[APPLE, TSM]]
        ).fetchone()
    assert {cik for cik, _ in stored} == {APPLE, TSM}
    assert sum(n for _, n in stored) == digest["filings_scored"] > 0
    assert digest["filings_scored"] < len(whole.filings)
    assert digest["warehouse_grades"] == stored_latest_grades(db)
    assert sum(digest["warehouse_grades"].values()) == len(whole.filings)
    index = (tmp_path / "quality" / "data_docs" / "index.html").read_text()
    assert "Scope: 2 companies changed by this run." in index
    facts_page = (tmp_path / "quality" / "data_docs" / "facts.html").read_text()
    assert facts is not None and f"{facts[0]:,} rows checked" in facts_page


def test_cli_quality_full_writes_the_json_and_scores_every_periodic_filing(
    full_db: Path, tmp_path: Path
) -> None:
    from tests.test_cli import finloom

    out = tmp_path / "out.json"
    result = finloom(tmp_path / "cli", "quality", "full", "--json", str(out), "--db", str(full_db))

    assert result.code == 0, result
    assert "Traceback" not in result.output
    report = json.loads(out.read_text())
    assert set(report) == {
        "scope", "reconciliation", "scores", "companies", "warehouse_grades", "expectations"
    }  # fmt: skip
    assert report["scope"]["whole_warehouse"] and report["scope"]["companies"] == 34
    assert report["scope"]["label"] == "whole warehouse (34 companies)"
    assert all(
        {"check", "severity", "passed", "affected_records", "detail"} <= set(c)
        for c in report["reconciliation"]
    )
    scored = {s["accession"] for s in report["scores"]}
    assert scored_accessions(full_db) <= scored
    assert all({"cik", "accession", "form", "score", "grade", "components"} <= set(s)
               for s in report["scores"])  # fmt: skip
    assert all(set(c) == {"score", "weight", "reason"}
               for s in report["scores"] for c in s["components"].values())  # fmt: skip
    assert len(report["companies"]) == 17
    assert set(report["expectations"]) == {"facts", "filings", "financials"}
    assert (tmp_path / "cli" / "quality" / "data_docs" / "index.html").is_file()
    assert "scope: whole warehouse (34 companies)" in result.stdout
    docs = (tmp_path / "cli" / "quality" / "data_docs" / "index.html").read_text()
    assert "Scope: whole warehouse (34 companies)." in docs


def assert_fits_80_columns(stdout: str) -> None:
    wide = [line for line in stdout.splitlines() if len(line) > 80]
    assert wide == [], "\n".join(wide)
    assert "{" not in stdout  # no JSON cell


def test_cli_quality_score_of_one_company_fits_80_columns(full_db: Path, tmp_path: Path) -> None:
    from tests.test_cli import finloom

    result = finloom(tmp_path, "quality", "score", "--ticker", "AAPL", "--db", str(full_db),
                     env={"COLUMNS": "80"})  # fmt: skip

    assert result.code == 0, result
    assert_fits_80_columns(result.stdout)
    rows = [ln.split() for ln in result.stdout.splitlines() if re.search(ACCESSION, ln)]
    with duckdb.connect(str(full_db), read_only=True) as con:
        accessions = {a for (a,) in con.execute(
            "SELECT DISTINCT accession FROM facts WHERE cik = ? AND form IN ?",
            [APPLE, ["10-K", "10-K/A", "10-Q", "10-Q/A"]],
        ).fetchall()}  # fmt: skip
    assert {r[3] for r in rows} == accessions  # period (year, FY/Qn), form, accession, ...
    assert all(re.fullmatch(r"\d{1,3}\.\d", r[4]) for r in rows)  # the score, rounded
    assert any(r[6:] and r[6] != "-" for r in rows)  # a costliest component, where one cost
    assert "scope: 1 company selected" in result.stdout.splitlines()
    assert "warehouse grades (latest stored scores): " in result.stdout


def test_cli_quality_score_of_every_company_fits_80_columns(full_db: Path, tmp_path: Path) -> None:
    from tests.test_cli import finloom

    result = finloom(tmp_path, "quality", "score", "--all", "--db", str(full_db),
                     env={"COLUMNS": "80"})  # fmt: skip

    assert result.code == 0, result
    assert_fits_80_columns(result.stdout)
    companies = [ln for ln in result.stdout.splitlines() if re.match(r"\s*\d{10} ", ln)]
    assert len(companies) == 17
    grades = dict(re.findall(r"^\s*([A-F])\s+([\d,]+)\s*$", result.stdout, re.MULTILINE))
    assert list(grades) == ["A", "B", "C", "D", "F"]  # the distribution, as a table
    with duckdb.connect(str(full_db), read_only=True) as con:
        (scored,) = con.execute(
            "SELECT count(DISTINCT accession) FROM facts WHERE form IN ?", [list(PERIODIC_FORMS)]
        ).fetchone() or (0,)
    assert sum(int(n.replace(",", "")) for n in grades.values()) == scored > 600
