"""The typed quality results, their rendering (report, score rows, reasons, samples) and
their storage: components as a list of structs, and the migration that converts the JSON
components of an existing warehouse in place. Everything built in code; no Prefect."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from finloom_core.quality.render import (
    ELLIPSIS,
    reasons,
    report_markdown,
    sample_text,
    score_rows,
    short_reason,
    worst_reason,
)
from finloom_core.quality.results import (
    CheckResult,
    CompanyScore,
    Component,
    FilingScore,
    QualityReport,
    Scope,
    SuiteSummary,
)
from finloom_core.quality.scoring import COMPONENTS
from finloom_core.quality.store import latest_grades, store_results
from finloom_core.storage import schema
from finloom_core.storage.database import connect

REPO = Path(__file__).resolve().parents[1]
APPLE, ACME = 320193, 1111
K23 = "0000320193-23-000106"


def components(**scores: float) -> tuple[Component, ...]:
    """Every component at 100 but those given, each with a reason naming it."""
    return tuple(
        Component(name, scores.get(name, 100.0), weight, f"{name} reason")
        for name, (weight, _) in COMPONENTS.items()
    )


def filing(cik: int, accession: str, score: float, **lowered: float) -> FilingScore:
    grade = "A" if score >= 90 else "D"
    return FilingScore(cik, accession, "10-K", 2023, "FY", score, grade, components(**lowered))


def affected(n: int) -> list[dict[str, object]]:
    """``n`` affected filings of Apple, the first one K23."""
    return [
        {"cik": APPLE, "accession": f"0000320193-23-{106 + i:06d}", "form": "10-K"}
        for i in range(n)
    ]


FILINGS = (
    filing(APPLE, K23, 95.0),
    filing(ACME, "0000001111-23-000001", 61.5, identities=0.0, depth=85.0),
    filing(APPLE, "0000320193-22-000108", 74.0, balance_sheet=0.0),
)
CHECKS = (
    CheckResult.of("completeness", "warning", 13, {"annual_incomplete": 13}, affected(13)),
    CheckResult.of("duplicates", "error", 0, {"conflicting_keys": 0}, []),
)


def report(**kw: object) -> QualityReport:
    company = CompanyScore(APPLE, "Apple Inc.", 2, 84.5, "B", {"A": 1, "B": 0, "C": 1, "D": 0})
    return QualityReport.of("run-1", CHECKS, FILINGS, [company], **kw)  # type: ignore[arg-type]


# -- rendering ------------------------------------------------------------------------------


def test_score_rows_are_worst_first_with_ten_digit_ciks() -> None:
    rows = score_rows(FILINGS)
    assert [r["score"] for r in rows] == [61.5, 74.0, 95.0]
    assert [r["cik"] for r in rows] == ["0000001111", "0000320193", "0000320193"]
    assert rows[0]["reasons"] == "identities: identities reason; depth: depth reason"
    assert rows[2]["reasons"] == "-"  # nothing cost points


def test_worst_reason_is_the_costliest_component_cut_to_width() -> None:
    acme = FILINGS[1]
    assert [c.name for c in acme.costly()] == ["identities", "depth"]  # 25 points, then 1.5
    assert worst_reason(acme) == "identities: identities reason"
    cut = worst_reason(acme, width=12)
    assert cut == "identities:" + ELLIPSIS and len(cut) == 12
    assert worst_reason(FILINGS[0]) == "-"
    assert reasons(acme, limit=1) == "identities: identities reason"


def test_a_check_sample_reads_as_text() -> None:
    completeness = CHECKS[0]
    assert completeness.sampled_from == 13 and len(completeness.sample) == 13
    assert sample_text(completeness) == f"cik 0000320193 accession {K23} (+12 more)"
    one = CheckResult.of("facts_to_filings", "error", 4, {}, [{"cik": ACME, "facts": 4}])
    assert sample_text(one) == "cik 0000001111"
    assert sample_text(CHECKS[1]) == "-"
    many = CheckResult.of("x", "info", 30, {}, [{"cik": 1, "concept": "C" * 300}] * 30)
    assert len(many.sample) == 20 and many.sampled_from == 30
    text = sample_text(many, width=60)
    assert len(text) == 60 and text.endswith(f"{ELLIPSIS} (+29 more)")


def test_report_markdown_has_readable_samples_and_the_worst_filing_first() -> None:
    text = report_markdown(report())
    assert text.splitlines()[0] == "# FinLoom data quality: findings"
    assert "- reconciliation: 1 of 2 checks passed" in text
    assert f"| completeness | warning | 13 | cik 0000320193 accession {K23} (+12 more) |" in text
    worst = text.split("## Worst 10 filings")[1].split("## Grade distribution")[0]
    rows = [ln for ln in worst.splitlines() if ln.startswith("| 00")]
    assert [r.split(" | ")[4] for r in rows] == ["61.5", "74.0", "95.0"]
    assert rows[0].startswith("| 0000001111 | 0000001111-23-000001 | 10-K | 2023 FY |")
    grades = text.split("## Grade distribution")[1].split("## Companies")[0]
    assert "| A | 1 |" in grades and "| D | 2 |" in grades and "| F | 0 |" in grades
    assert "| 0000320193 | Apple Inc. | 2 | 84.5 | B | 1 | 0 | 1 | 0 | 0 |" in text
    assert "{" not in text


def test_critical_report_is_marked_and_names_the_check() -> None:
    dangling = [{"source": "facts", "target": "companies", "cik": 424242, "n": 1}]
    critical = CheckResult.of("referential_integrity", "critical", 1, {}, dangling)
    built = QualityReport.of("run-2", [*CHECKS, critical], FILINGS, [])
    assert built.critical == ("referential_integrity",)
    assert [c.check for c in built.failing()] == ["referential_integrity", "completeness"]
    text = report_markdown(built)
    assert text.startswith("# FinLoom data quality: CRITICAL")
    assert "cik 0000424242 source facts target companies" in text


def test_report_to_dict_is_json_with_components_by_name() -> None:
    summary = {"facts": SuiteSummary(True, 12), "filings": SuiteSummary(False, 0, (), "gone")}
    data = json.loads(json.dumps(report(expectations_summary=summary).to_dict()))
    assert set(data) >= {"run_id", "reconciliation", "scores", "companies", "expectations"}
    check = data["reconciliation"][0]
    assert set(check) == {"check", "severity", "passed", "affected_records", "detail"}
    assert check["detail"]["sample"][0] == affected(1)[0]
    assert check["detail"]["annual_incomplete"] == 13 and check["detail"]["sampled_from"] == 13
    acme = data["scores"][1]
    assert acme["components"]["identities"] == {
        "score": 0.0, "weight": 25.0, "reason": "identities reason"
    }  # fmt: skip
    assert list(acme["components"]) == list(COMPONENTS)
    assert data["companies"][0]["grade_distribution"] == {"A": 1, "B": 0, "C": 1, "D": 0}
    assert data["expectations_summary"]["filings"] == {
        "success": False, "evaluated": 0, "failed": [], "error": "gone"
    }  # fmt: skip


def test_results_are_frozen() -> None:
    with pytest.raises(AttributeError):
        FILINGS[0].score = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="severity"):
        CheckResult("x", "fatal", False, 1)


# -- storage ---------------------------------------------------------------------------------

STRUCTS = 'STRUCT("name" VARCHAR, score DOUBLE, weight DOUBLE, reason VARCHAR)[]'


def stored_components(con: duckdb.DuckDBPyConnection) -> list[tuple[str, object]]:
    return con.execute(
        "SELECT accession, components FROM quality_scores ORDER BY accession"
    ).fetchall()


def test_components_are_stored_as_structs(tmp_path: Path) -> None:
    with connect(tmp_path / "w.duckdb") as con:
        store_results(con, "run-1", CHECKS, FILINGS, now=dt.datetime(2024, 1, 2))
        (kind,) = con.execute(
            "SELECT data_type FROM duckdb_columns()"
            " WHERE table_name = 'quality_scores' AND column_name = 'components'"
        ).fetchone() or ("",)
        rows = dict(stored_components(con))
        detail = con.execute(
            "SELECT detail FROM reconciliation_results WHERE \"check\" = 'completeness'"
        ).fetchone()
    assert kind == STRUCTS
    acme = rows["0000001111-23-000001"]
    assert acme == [{"name": c.name} | c.to_dict() for c in FILINGS[1].components]
    assert detail is not None and json.loads(detail[0]) == CHECKS[0].to_dict()["detail"]


OLD_COMPONENTS = {  # as schema v3 stored them: a JSON object, keys sorted
    "balance_sheet": {"score": 0.0, "weight": 20.0, "reason": "assets != liabilities"},
    "coverage": {"score": 87.5, "weight": 15.0, "reason": "missing eps_basic"},
    "depth": {"score": 100.0, "weight": 10.0, "reason": "40 concepts"},
    "identities": {"score": 100.0, "weight": 25.0, "reason": "all 9 identity checks hold"},
}


def test_migration_converts_json_components_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "old.duckdb"
    with monkeypatch.context() as patch:  # a warehouse of schema v3, with one scored filing
        patch.setattr(schema, "MIGRATIONS", tuple(m for m in schema.MIGRATIONS if m.version <= 3))
        with connect(db) as con:
            assert schema.current_version(con) == 3
            con.execute(
                "INSERT INTO quality_scores VALUES ('old', ?, ?, '10-K', 2022, 'FY', 74.0, 'C',"
                " ?, TIMESTAMP '2023-01-01'), ('old', ?, 'no-components', '10-Q', 2022, 'Q1',"
                " 99.0, 'A', NULL, TIMESTAMP '2023-01-01')",
                [APPLE, K23, json.dumps(OLD_COMPONENTS, sort_keys=True), APPLE],
            )

    # upgraded by a process that dies without closing the warehouse (whatever it left in
    # the write-ahead log is replayed by the next open, offline)
    upgrade = (
        "import os, sys; from finloom_core.storage.database import connect; "
        "connect(sys.argv[1]); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", upgrade, str(db)], cwd=REPO, check=True, timeout=120)

    with connect(db) as con:
        assert schema.current_version(con) == schema.SCHEMA_VERSION >= 4
        rows = dict(stored_components(con))
        store_results(con, "new", CHECKS, FILINGS[1:2])  # the new format appends alongside
        count = con.execute("SELECT count(*) FROM quality_scores").fetchone()
    order = ["coverage", "balance_sheet", "identities", "depth"]  # the scorer's order
    assert rows[K23] == [{"name": name} | OLD_COMPONENTS[name] for name in order]
    assert rows["no-components"] is None
    assert count == (3,)


def test_the_short_reason_drops_the_closing_detail() -> None:
    eps = Component("identities", 0.0, 25.0, "fails: eps (1 of 40 checks)")
    scored = FilingScore(APPLE, K23, "10-K", 2023, "FY", 75.0, "C", (eps,))
    assert short_reason(eps) == "fails: eps"
    assert worst_reason(scored) == "identities: fails: eps"
    assert reasons(scored) == "identities: fails: eps (1 of 40 checks)"  # the report keeps it


# -- scope and the warehouse-wide grades ------------------------------------------------------


def test_scope_says_what_a_run_covers() -> None:
    whole = Scope.of(None, 1017)
    assert whole.whole and whole.label == "whole warehouse (1,017 companies)"
    changed = Scope.of([3, 1, 4, 1, 5], 0, "changed by this run")
    assert changed.label == "4 companies changed by this run"
    assert changed.to_dict() == {
        "whole_warehouse": False, "companies": 4, "ciks": [1, 3, 4, 5],
        "label": "4 companies changed by this run",
    }  # fmt: skip
    assert Scope.of([APPLE], 0).label == "1 company selected"


def test_report_shows_its_scope_and_both_grade_distributions() -> None:
    scope = Scope.of([APPLE, ACME], 0, "changed by this run")
    warehouse = {"A": 500, "B": 20, "C": 3, "D": 7, "F": 1}
    built = report(scope=scope, warehouse_grades=warehouse)
    text = report_markdown(built)
    assert "- scope: 2 companies changed by this run" in text.splitlines()
    grades = text.split("## Grade distribution")[1].split("## Companies")[0]
    assert "| grade | filings (this run) | filings (warehouse) |" in grades
    assert "| A | 1 | 500 |" in grades and "| D | 2 | 7 |" in grades
    assert "531 scored filings" in grades
    data = built.to_dict()
    assert data["scope"]["label"] == "2 companies changed by this run"
    assert data["warehouse_grades"] == warehouse
    assert "- scope: not recorded" in report_markdown(report())


def test_warehouse_grades_come_from_the_latest_stored_score_of_each_filing(
    tmp_path: Path,
) -> None:
    apple_d = filing(APPLE, K23, 61.0)
    with connect(tmp_path / "w.duckdb") as con:
        store_results(con, "old", CHECKS, FILINGS, now=dt.datetime(2024, 1, 1))
        # a later run re-scores one filing only: the others keep their stored grades
        store_results(con, "new", CHECKS, [apple_d], now=dt.datetime(2024, 1, 2))
        assert latest_grades(con) == {"A": 0, "B": 0, "C": 0, "D": 3, "F": 0}
        store_results(con, "newer", CHECKS, [FILINGS[0]], now=dt.datetime(2024, 1, 3))
        assert latest_grades(con) == {"A": 1, "B": 0, "C": 0, "D": 2, "F": 0}
