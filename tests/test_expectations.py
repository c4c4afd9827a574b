"""The Great Expectations suites in expectations/, run through GX against DuckDB tables.

One GX run over a small clean warehouse, one over the same warehouse with a planted
violation in every table, one over the 17 real companies (module-scoped: each GX run
costs a second or two, the GX import ~4 s once).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from finloom_core.quality.expectations import SUITES, summarize, validate_tables
from finloom_core.storage.database import connect

REPO = Path(__file__).resolve().parents[1]
EXPECTATIONS = REPO / "expectations"
ACC = "0000320193-23-000106"

CLEAN = {
    "facts": [
        dict(cik=320193, taxonomy="us-gaap", concept="Revenues", unit="USD",
             period_start="2022-09-25", period_end="2023-09-30", value=383e9, accession=ACC,
             fiscal_year=2023, fiscal_period="FY", form="10-K", filed="2023-11-03",
             frame="CY2023"),
        dict(cik=320193, taxonomy="us-gaap", concept="Assets", unit="USD",
             period_start=None, period_end="2023-09-30", value=352e9, accession=ACC,
             fiscal_year=2023, fiscal_period="FY", form="10-K", filed="2023-11-03",
             frame="CY2023Q3I"),
        dict(cik=320193, taxonomy="us-gaap", concept="EarningsPerShareBasic",
             unit="USD/shares", period_start="2022-09-25", period_end="2023-09-30",
             value=6.16, accession=ACC, fiscal_year=2023, fiscal_period="FY", form="10-K",
             filed="2023-11-03", frame=None),
    ],
    "filings": [
        dict(accession=ACC, cik=320193, form="10-K", filed="2023-11-03",
             report_date="2023-09-30", is_xbrl=True, size=9_000_000, source="test"),
        dict(accession="0000320193-23-000077", cik=320193, form="SC 13G/A",
             filed="2023-08-04", is_xbrl=False, size=12_000, source="test"),
    ],
    "financials": [
        dict(cik=320193, metric="revenue", fiscal_year=2023, fiscal_period="FY",
             period_start="2022-09-25", period_end="2023-09-30", value=383e9, unit="USD",
             method="reported", is_restated=False),
        dict(cik=320193, metric="revenue", fiscal_year=2023, fiscal_period="Q4",
             period_start="2023-07-02", period_end="2023-09-30", value=89e9, unit="USD",
             method="derived", is_restated=False),
        dict(cik=320193, metric="eps_basic", fiscal_year=2023, fiscal_period="FY",
             period_start="2022-09-25", period_end="2023-09-30", value=6.16,
             unit="USD/shares", method="reported", is_restated=False),
    ],
}  # fmt: skip

# One planted defect per table, and the expectation (type, column) that must catch it.
PLANTED: dict[str, tuple[dict[str, Any], tuple[str, Any]]] = {
    "facts": (  # the same fact key twice, with a conflicting value
        {**CLEAN["facts"][0], "value": 1.0},
        ("expect_compound_columns_to_be_unique", None),
    ),
    "filings": (
        {**CLEAN["filings"][1], "accession": "0000320193-23-000078", "form": "10-k draft"},
        ("expect_column_values_to_match_regex", "form"),
    ),
    "financials": (
        {**CLEAN["financials"][0], "fiscal_period": "Q5"},
        ("expect_column_values_to_be_in_set", "fiscal_period"),
    ),
}
BACKWARDS = {**CLEAN["facts"][1], "concept": "Liabilities", "period_start": "2024-01-01"}


def build(path: Path, tables: dict[str, list[dict[str, Any]]]) -> Path:
    con = connect(path)
    try:
        for table, rows in tables.items():
            for row in rows:
                names = ", ".join(row)
                marks = ", ".join("?" for _ in row)
                con.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(row.values()))
    finally:
        con.close()
    return path


def run(db: Path, docs: Path | None = None) -> dict[str, Any]:
    with duckdb.connect(str(db), read_only=True) as con:
        return validate_tables(con, EXPECTATIONS, docs)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    folder = tmp_path_factory.mktemp("gx-clean")
    db = build(folder / "clean.duckdb", CLEAN)
    return run(db, folder / "data_docs"), folder / "data_docs"


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tables = {t: [*rows, PLANTED[t][0]] for t, rows in CLEAN.items()}
    tables["facts"].append(BACKWARDS)
    db = build(tmp_path_factory.mktemp("gx-planted") / "planted.duckdb", tables)
    return run(db)


def failed_expectations(result: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        (r["expectation_config"]["type"], r["expectation_config"]["kwargs"].get("column"))
        for r in result["results"]
        if not r["success"]
    ]


def test_suites_are_readable_gx_suite_json() -> None:
    for name in SUITES:
        suite = json.loads((EXPECTATIONS / f"{name}.json").read_text())
        assert suite["name"] == name
        types = {e["type"] for e in suite["expectations"]}
        assert "expect_column_values_to_not_be_null" in types
        assert types & {"expect_compound_columns_to_be_unique", "expect_column_values_to_be_unique"}


def test_clean_tables_pass_every_suite_and_data_docs_are_written(
    clean: tuple[dict[str, Any], Path],
) -> None:
    results, docs = clean
    assert set(results) == set(SUITES)
    for table, result in results.items():
        assert result["success"], (table, failed_expectations(result))
        assert result["results"], table
    assert (docs / "index.html").is_file()
    assert list(docs.rglob("*.html"))[1:], "no validation pages in the Data Docs"


@pytest.mark.parametrize("table", SUITES)
def test_each_suite_catches_its_planted_violation(planted: dict[str, Any], table: str) -> None:
    result = planted[table]
    assert not result["success"]
    assert PLANTED[table][1] in failed_expectations(result)


def test_period_end_before_period_start_is_caught(planted: dict[str, Any]) -> None:
    assert ("expect_column_pair_values_a_to_be_greater_than_b", None) in failed_expectations(
        planted["facts"]
    )


def test_real_companies_pass_the_suites(shared_edgar: Path, tmp_path: Path) -> None:
    from finloom_core.edgar.sources import FolderSource
    from finloom_core.pipeline import run_pipeline

    source = FolderSource(shared_edgar)
    db = tmp_path / "real.duckdb"
    run_pipeline(source, source.available_ciks(), db)
    summary = summarize(run(db))
    # The 17 sample companies hold no violation of the suites (checked when they were
    # written); a finding here means the data or the loader changed.
    assert {t: row["failed"] for t, row in summary.items()} == {t: [] for t in SUITES}
    assert all(row["evaluated"] >= 10 for row in summary.values())
