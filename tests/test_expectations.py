"""The Great Expectations suites in expectations/, run through GX against DuckDB tables.

One GX run over a small clean warehouse, one over the same warehouse with a planted
violation in every table, one over the 17 real companies (module-scoped: each GX run
costs a second or two, the GX import ~4 s once). Then the chunked validation (whole CIKs per
chunk, results merged): tiny ``chunk_rows`` over a few companies, compared with one chunk.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest

from finloom_core.quality.expectations import SUITES, cik_chunks, summarize, validate_tables
from finloom_core.quality.results import FailedExpectation, SuiteSummary
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


EXTERNAL_ASSET = re.compile(
    r"<script[^>]*\bsrc\s*=\s*[\"']?https?://|<link[^>]*\bhref\s*=\s*[\"']?https?://",
    re.IGNORECASE,
)


def external_assets(docs: Path) -> list[str]:
    """Scripts and stylesheets any file under ``docs`` would fetch from the network."""
    found = []
    for path in docs.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            found += [f"{path.name}: {m.group(0)}" for m in EXTERNAL_ASSET.finditer(text)]
            if path.suffix in (".html", ".css", ".js"):
                found += [f"{path.name}: {u}" for u in re.findall(r"https?://[^\s\"'<>)]+", text)]
    return found


def test_data_docs_work_offline_and_hold_the_results(clean: tuple[dict[str, Any], Path]) -> None:
    results, docs = clean
    assert external_assets(docs) == []
    index = (docs / "index.html").read_text()
    assert "<script" not in index.lower()
    for table, result in results.items():
        # each table's row: its link, verdict, expectations evaluated and failed
        row = re.search(rf'<tr[^>]*><td><a href="{table}.html">{table}</a>.*?</tr>', index)
        assert row is not None, table
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0))
        assert "passed" in cells[1] and cells[2:4] == [str(len(result["results"])), "0"]
        page = (docs / f"{table}.html").read_text()
        for check in result["results"]:
            assert check["expectation_config"]["type"] in page
    assert "every expectation of every suite holds" in index


def test_data_docs_show_the_failed_expectations_with_their_values(
    planted: dict[str, Any], tmp_path: Path
) -> None:
    from finloom_core.quality.data_docs import write_docs

    index = write_docs(planted, tmp_path / "docs")
    text = index.read_text()
    assert external_assets(tmp_path / "docs") == []
    assert text.count("FAILED") >= len(SUITES)
    assert "10-k draft" in text  # the planted form, among the unexpected values
    assert "Q5" in text  # the planted fiscal period
    assert "expect_column_pair_values_a_to_be_greater_than_b" in text


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
    assert {t: row.failed for t, row in summary.items()} == {t: () for t in SUITES}
    assert all(row.evaluated >= 10 for row in summary.values())


# --- chunked validation ------------------------------------------------------------------

# Companies with 1, 2, 1, 3 and 2 rows in each table: with CHUNK = 3 the chunks are
# {10, 20}, {30}, {40}, {50} (whole CIKs, at most 3 rows unless one company has more).
ROWS_PER_CIK = {10: 1, 20: 2, 30: 1, 40: 3, 50: 2}
CHUNK = 3
HUGE = 10**9


def fact_row(cik: int, i: int) -> dict[str, Any]:
    return dict(cik=cik, taxonomy="us-gaap", concept=f"Concept{i}", unit="USD",
                period_start="2022-01-01", period_end="2022-12-31", value=float(i),
                accession=f"{cik:010d}-23-{i:06d}", fiscal_year=2022, fiscal_period="FY",
                form="10-K", filed="2023-02-01", frame="CY2022")  # fmt: skip


def filing_row(cik: int, i: int) -> dict[str, Any]:
    return dict(accession=f"{cik:010d}-23-{i:06d}", cik=cik, form="10-K", filed="2023-02-01",
                is_xbrl=True, size=1000 + i, source="test")  # fmt: skip


def financial_row(cik: int, i: int) -> dict[str, Any]:
    return dict(cik=cik, metric=f"metric{i}", fiscal_year=2022, fiscal_period="FY",
                period_start="2022-01-01", period_end="2022-12-31", value=float(i), unit="USD",
                method="reported", is_restated=False)  # fmt: skip


def many_companies() -> dict[str, list[dict[str, Any]]]:
    make = {"facts": fact_row, "filings": filing_row, "financials": financial_row}
    return {
        table: [row(cik, i) for cik, n in ROWS_PER_CIK.items() for i in range(n)]
        for table, row in make.items()
    }


def build_loose(path: Path, tables: dict[str, list[dict[str, Any]]]) -> Path:
    """The warehouse schema without keys or NOT NULL, so that tests can plant what they break."""
    connect(path).close()
    with duckdb.connect(str(path)) as con:
        for table in SUITES:
            con.execute(f"CREATE TABLE loose AS SELECT * FROM {table} LIMIT 0")
            con.execute(f"DROP TABLE {table}")
            con.execute(f"ALTER TABLE loose RENAME TO {table}")
    return build(path, tables)


def run_chunked(db: Path, chunk_rows: int) -> dict[str, Any]:
    with duckdb.connect(str(db), read_only=True) as con:
        return validate_tables(con, EXPECTATIONS, chunk_rows=chunk_rows)


def by_expectation(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """{(type, columns): expectation result} of one table's result."""
    out = {}
    for r in result["results"]:
        kwargs = r["expectation_config"]["kwargs"]
        cols = kwargs.get("column") or kwargs.get("column_list") or [kwargs.get("column_A")]
        out[(r["expectation_config"]["type"], str(cols))] = r
    assert len(out) == len(result["results"])
    return out


def counts(result: dict[str, Any]) -> dict[tuple[str, str], tuple[Any, ...]]:
    return {
        key: (
            r["success"],
            r["result"].get("element_count"),
            r["result"].get("unexpected_count"),
            r["result"].get("missing_count"),
        )
        for key, r in by_expectation(result).items()
    }


NOT_NULL = "expect_column_values_to_not_be_null"
FACT_KEY = ("expect_compound_columns_to_be_unique", str(
    ["cik", "taxonomy", "concept", "unit", "period_start", "period_end", "accession", "frame"]
))  # fmt: skip
ACCESSION_UNIQUE = ("expect_column_values_to_be_unique", "accession")


def planted_companies() -> dict[str, list[dict[str, Any]]]:
    """many_companies() with violations in first, middle and last chunks, and across chunks."""
    tables = many_companies()
    last = fact_row(50, 7)
    last["concept"] = None  # a null key column in the last chunk of CIKs
    dup = fact_row(40, 1)  # the same fact key twice within CIK 40
    dup["value"] = -1.0
    tables["facts"] += [last, dup, {**fact_row(20, 8), "taxonomy": "made-up"}]
    # One accession filed under CIK 10 (first chunk) and CIK 50 (last chunk).
    tables["filings"].append({**filing_row(50, 9), "accession": filing_row(10, 0)["accession"]})
    tables["financials"].append({**financial_row(30, 0), "value": 2.0})  # duplicate key
    return tables


@pytest.fixture(scope="module")
def chunk_dbs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gx-chunks")
    return {
        "clean": build_loose(folder / "clean.duckdb", many_companies()),
        "planted": build_loose(folder / "planted.duckdb", planted_companies()),
    }


@pytest.fixture(scope="module")
def chunked_clean(chunk_dbs: dict[str, Path]) -> dict[str, Any]:
    return run_chunked(chunk_dbs["clean"], CHUNK)


@pytest.fixture(scope="module")
def chunked_planted(chunk_dbs: dict[str, Path]) -> dict[str, Any]:
    return run_chunked(chunk_dbs["planted"], CHUNK)


def test_chunks_are_whole_ciks_within_the_row_budget(chunk_dbs: dict[str, Path]) -> None:
    with duckdb.connect(str(chunk_dbs["clean"]), read_only=True) as con:
        assert cik_chunks(con, "facts", CHUNK) == [
            ('"cik" BETWEEN ? AND ?', [10, 20]),
            ('"cik" BETWEEN ? AND ?', [30, 30]),
            ('"cik" BETWEEN ? AND ?', [40, 40]),  # 3 rows: alone
            ('"cik" BETWEEN ? AND ?', [50, 50]),
        ]
        assert cik_chunks(con, "facts", 1) == [
            ('"cik" BETWEEN ? AND ?', [c, c]) for c in ROWS_PER_CIK
        ]  # a company larger than the budget is still one chunk
        assert cik_chunks(con, "facts", HUGE) == [('"cik" BETWEEN ? AND ?', [10, 50])]
        with pytest.raises(ValueError):
            cik_chunks(con, "facts", 0)


def test_clean_tables_pass_in_chunks_and_every_row_is_counted(
    chunked_clean: dict[str, Any],
) -> None:
    rows = sum(ROWS_PER_CIK.values())
    assert set(chunked_clean) == set(SUITES)
    for table, result in chunked_clean.items():
        assert result["success"], (table, failed_expectations(result))
        assert result["meta"]["chunks"] == 4, table
        for r in result["results"]:
            assert r["result"]["element_count"] == rows, (table, r["expectation_config"])
            assert r["result"]["unexpected_count"] == 0
        stats = result["statistics"]
        assert stats["evaluated_expectations"] == len(result["results"]) >= 10
        assert stats["successful_expectations"] == stats["evaluated_expectations"]
        assert stats["unsuccessful_expectations"] == 0
        assert stats["success_percent"] == 100.0
    assert all(row.failed == () for row in summarize(chunked_clean).values())


def test_null_key_in_the_last_chunk_is_caught(chunked_planted: dict[str, Any]) -> None:
    facts = chunked_planted["facts"]
    assert not facts["success"]
    concept = by_expectation(facts)[(NOT_NULL, "concept")]
    assert not concept["success"]
    assert concept["result"]["unexpected_count"] == 1
    assert concept["result"]["element_count"] == sum(ROWS_PER_CIK.values()) + 3
    assert concept["result"]["partial_unexpected_list"] == [None]
    assert facts["statistics"]["unsuccessful_expectations"] == len(failed_expectations(facts))


def test_duplicate_compound_key_within_one_cik_is_caught(chunked_planted: dict[str, Any]) -> None:
    key = by_expectation(chunked_planted["facts"])[FACT_KEY]
    assert not key["success"]
    assert key["result"]["unexpected_count"] == 2  # both rows of the key
    assert {row["cik"] for row in key["result"]["partial_unexpected_list"]} == {40}
    financials = summarize(chunked_planted)["financials"]
    assert [f.expectation for f in financials.failed] == ["expect_compound_columns_to_be_unique"]


def test_duplicate_accession_across_chunks_is_caught(chunked_planted: dict[str, Any]) -> None:
    filings = chunked_planted["filings"]
    assert filings["meta"]["chunks"] > 1
    unique = by_expectation(filings)[ACCESSION_UNIQUE]
    assert not unique["success"]
    assert unique["result"]["unexpected_count"] == 2
    assert unique["result"]["partial_unexpected_list"] == [filing_row(10, 0)["accession"]] * 2
    assert unique["result"]["unexpected_percent"] == pytest.approx(2 / 10 * 100)  # 9 + 1 rows
    assert not filings["success"]
    assert summarize(chunked_planted)["filings"].failed == (
        FailedExpectation(ACCESSION_UNIQUE[0], "accession", 2),
    )


@pytest.mark.parametrize("db", ["clean", "planted"])
def test_chunked_results_equal_one_chunk(
    chunk_dbs: dict[str, Path],
    chunked_clean: dict[str, Any],
    chunked_planted: dict[str, Any],
    db: str,
) -> None:
    chunked = {"clean": chunked_clean, "planted": chunked_planted}[db]
    whole = run_chunked(chunk_dbs[db], HUGE)
    for table in SUITES:
        assert whole[table]["meta"]["chunks"] == 1
        assert chunked[table]["meta"]["chunks"] >= 4
        assert chunked[table]["success"] == whole[table]["success"], table
        assert counts(chunked[table]) == counts(whole[table]), table
        assert chunked[table]["statistics"] == whole[table]["statistics"], table
    if db == "planted":
        assert not any(whole[t]["success"] for t in SUITES)


def test_null_cik_rows_are_their_own_last_chunk(tmp_path: Path) -> None:
    tables = many_companies()
    tables["facts"].append({**fact_row(30, 5), "cik": None})
    db = build_loose(tmp_path / "nullcik.duckdb", {"facts": tables["facts"]})
    with duckdb.connect(str(db), read_only=True) as con:
        assert cik_chunks(con, "facts", CHUNK)[-1] == ('"cik" IS NULL', [])
        facts = validate_tables(con, EXPECTATIONS, tables=("facts",), chunk_rows=CHUNK)["facts"]
    assert facts["meta"]["chunks"] == 5
    cik = by_expectation(facts)[(NOT_NULL, "cik")]
    assert cik["result"]["unexpected_count"] == 1
    assert cik["result"]["element_count"] == sum(ROWS_PER_CIK.values()) + 1


def test_partial_lists_are_merged_and_cut_to_20(tmp_path: Path) -> None:
    facts = [{**fact_row(cik, i), "taxonomy": "bad"} for cik in (1, 2, 3) for i in range(10)]
    db = build_loose(tmp_path / "many-bad.duckdb", {"facts": facts})
    with duckdb.connect(str(db), read_only=True) as con:
        result = validate_tables(con, EXPECTATIONS, tables=("facts",), chunk_rows=10)["facts"]
    assert result["meta"]["chunks"] == 3
    taxonomy = by_expectation(result)[("expect_column_values_to_be_in_set", "taxonomy")]["result"]
    assert taxonomy["unexpected_count"] == 30
    assert taxonomy["unexpected_percent"] == 100.0
    assert taxonomy["partial_unexpected_list"] == ["bad"] * 20
    assert taxonomy["partial_unexpected_counts"] == [{"value": "bad", "count": 30}]
    assert taxonomy["partial_unexpected_index_list"] == list(range(20))


def test_empty_and_missing_tables(tmp_path: Path) -> None:
    db = tmp_path / "empty.duckdb"
    connect(db).close()
    with duckdb.connect(str(db)) as con:
        con.execute("DROP TABLE financials")
    with duckdb.connect(str(db), read_only=True) as con:
        results = validate_tables(con, EXPECTATIONS, chunk_rows=CHUNK)
    for table in ("facts", "filings"):
        assert results[table]["success"], table
        assert results[table]["meta"]["chunks"] == 1
        suite = json.loads((EXPECTATIONS / f"{table}.json").read_text())
        assert len(results[table]["results"]) == len(suite["expectations"])
        assert all(r["result"]["element_count"] == 0 for r in results[table]["results"])
    assert results["financials"]["success"] is False
    assert "financials" in results["financials"]["error"]
    missing = summarize(results)["financials"]
    assert missing == SuiteSummary(False, 0, (), results["financials"]["error"])
    assert missing.to_dict()["error"] == results["financials"]["error"]


def test_a_scoped_run_validates_only_its_companies_chunks(chunk_dbs: dict[str, Path]) -> None:
    with duckdb.connect(str(chunk_dbs["clean"]), read_only=True) as con:
        assert cik_chunks(con, "facts", CHUNK, ciks=[40, 20]) == [
            ('"cik" BETWEEN ? AND ? AND list_contains(?, "cik")', [20, 20, [20, 40]]),
            ('"cik" BETWEEN ? AND ? AND list_contains(?, "cik")', [40, 40, [20, 40]]),
        ]
        # a company without rows: an empty chunk, never the whole table
        assert cik_chunks(con, "facts", CHUNK, ciks=[99]) == [('list_contains(?, "cik")', [[99]])]
        results = validate_tables(
            con, EXPECTATIONS, chunk_rows=CHUNK, ciks=[20, 40], scope="2 companies changed"
        )
    for table in SUITES:
        assert results[table]["success"], table
        assert results[table]["meta"]["scope"] == "2 companies changed"
        not_null = by_expectation(results[table])[(NOT_NULL, "cik")]
        assert not_null["result"]["element_count"] == ROWS_PER_CIK[20] + ROWS_PER_CIK[40]


@pytest.mark.parametrize(("ciks", "caught"), [([50], True), ([10], True), ([30, 40], False)])
def test_a_scoped_run_still_finds_a_duplicate_shared_with_another_company(
    chunk_dbs: dict[str, Path], ciks: list[int], caught: bool
) -> None:
    """The planted accession is filed under CIK 10 and CIK 50: a run over either finds it
    (the other company's row is read by the set-wise re-check); a run over others does not."""
    with duckdb.connect(str(chunk_dbs["planted"]), read_only=True) as con:
        filings = validate_tables(
            con, EXPECTATIONS, tables=("filings",), chunk_rows=CHUNK, ciks=ciks
        )["filings"]
    unique = by_expectation(filings)[ACCESSION_UNIQUE]
    assert unique["success"] is not caught
    assert unique["result"]["unexpected_count"] == (2 if caught else 0)
    if caught:
        assert unique["result"]["partial_unexpected_list"] == [filing_row(10, 0)["accession"]] * 2
