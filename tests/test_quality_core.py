"""Reconciliation checks and filing scores: each defect planted in data built in code and
caught, a clean case that passes, then the real sample with one value altered."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from finloom_core.edgar.sources import FolderSource
from finloom_core.normalize.financials import normalize
from finloom_core.parse.companyfacts import FACT_SCHEMA
from finloom_core.pipeline import run_pipeline
from finloom_core.quality.reconcile import CheckResult, run_checks
from finloom_core.quality.results import FilingScore
from finloom_core.quality.scoring import grade, score_companies, score_filings
from finloom_core.quality.store import store_results
from finloom_core.storage.database import connect, open_warehouse

ACME = 1111
K23, K24, K22 = "0000001111-23-000001", "0000001111-24-000001", "0000001111-22-000001"
APPLE, APPLE_FY2023_10K = 320193, "0000320193-23-000106"

FY23 = ("2022-10-01", "2023-09-30")
CLEAN_FY23: dict[str, float] = {  # concept -> value; durations over FY23, instants at its end
    "Revenues": 1000.0,
    "CostOfRevenue": 600.0,
    "GrossProfit": 400.0,
    "NetIncomeLoss": 100.0,
    "NetCashProvidedByUsedInOperatingActivities": 150.0,
    "PaymentsToAcquirePropertyPlantAndEquipment": 40.0,
    "Assets": 2000.0,
    "AssetsCurrent": 800.0,
    "Liabilities": 1200.0,
    "LiabilitiesCurrent": 500.0,
    "StockholdersEquity": 800.0,
    "LiabilitiesAndStockholdersEquity": 2000.0,
    "CashAndCashEquivalentsAtCarryingValue": 300.0,
}
INSTANTS = {
    "Assets",
    "AssetsCurrent",
    "Liabilities",
    "LiabilitiesCurrent",
    "StockholdersEquity",
    "LiabilitiesAndStockholdersEquity",
    "CashAndCashEquivalentsAtCarryingValue",
    "MinorityInterest",
}


def _d(text: str | None) -> dt.date | None:
    return None if text is None else dt.date.fromisoformat(text)


def fact(concept: str, value: float | None, accession: str = K23, **kw: Any) -> dict[str, Any]:
    instant = concept in INSTANTS
    start, end = kw.get("period", FY23)
    unit = "USD/shares" if concept == "EarningsPerShareBasic" else "USD"
    if concept.startswith("WeightedAverageNumberOf"):
        unit = "shares"
    return {
        "cik": kw.get("cik", ACME),
        "taxonomy": "us-gaap",
        "concept": concept,
        "unit": unit,
        "period_start": None if instant else _d(start),
        "period_end": _d(end),
        "value": value,
        "accession": accession,
        "fiscal_year": kw.get("fy", 2023),
        "fiscal_period": "FY",
        "form": kw.get("form", "10-K"),
        "filed": _d(kw.get("filed", "2023-11-03")),
        "frame": None,
    }


def clean_facts(accession: str = K23, **kw: Any) -> list[dict[str, Any]]:
    rows = [fact(c, v, accession, **kw) for c, v in CLEAN_FY23.items()]
    return [*rows, fact("EarningsPerShareBasic", 1.5, accession, **kw)]


def insert_facts(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(rows, schema=FACT_SCHEMA)
    con.register("_t_facts", table)
    con.execute("INSERT INTO facts BY NAME SELECT * FROM _t_facts")
    con.unregister("_t_facts")


def add_company(con: duckdb.DuckDBPyConnection, cik: int = ACME) -> None:
    con.execute(
        "INSERT INTO companies (cik, name, updated_at) VALUES (?, 'Acme', current_timestamp)",
        [cik],
    )


def add_filing(
    con: duckdb.DuckDBPyConnection, accession: str, form: str = "10-K", cik: int = ACME
) -> None:
    con.execute(
        "INSERT INTO filings (accession, cik, form, filed, is_xbrl, source)"
        " VALUES (?, ?, ?, DATE '2023-11-03', true, 'test')",
        [accession, cik, form],
    )


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(tmp_path / "warehouse.duckdb")
    add_company(connection)
    add_filing(connection, K23)
    yield connection
    connection.close()


def checks(con: duckdb.DuckDBPyConnection) -> dict[str, CheckResult]:
    normalize(con)
    return {r.check: r for r in run_checks(con)}


def scores(con: duckdb.DuckDBPyConnection) -> dict[str, FilingScore]:
    return {s.accession: s for s in score_filings(con)}


# -- reconciliation ------------------------------------------------------------------------


def test_clean_company_passes_every_check(con: duckdb.DuckDBPyConnection) -> None:
    insert_facts(con, clean_facts())
    results = checks(con)
    assert set(results) == {
        "filing_count",
        "facts_to_filings",
        "normalized_to_raw",
        "duplicates",
        "restatements",
        "completeness",
        "referential_integrity",
        "accounting_identities",
        "stale_financials",
        "non_finite_values",
    }
    assert all(r.passed and r.affected_records == 0 for r in results.values()), results


def test_conflicting_duplicate_fact_is_an_error(con: duckdb.DuckDBPyConnection) -> None:
    insert_facts(con, [*clean_facts(), fact("NetIncomeLoss", 120.0)])
    result = checks(con)["duplicates"]
    assert (result.passed, result.severity, result.affected_records) == (False, "error", 2)
    assert result.sample[0]["concept"] == "NetIncomeLoss"


def test_orphan_fact_is_caught(con: duckdb.DuckDBPyConnection) -> None:
    insert_facts(con, [*clean_facts(), fact("Revenues", 900.0, "ORPHAN", period=FY23)])
    result = checks(con)["facts_to_filings"]
    assert not result.passed and result.affected_records == 1
    assert result.sample[0]["accession"] == "ORPHAN"


def test_xbrl_filing_without_facts_is_named(con: duckdb.DuckDBPyConnection) -> None:
    insert_facts(con, clean_facts())
    add_filing(con, K24)
    result = checks(con)["filing_count"]
    assert (result.passed, result.severity, result.affected_records) == (False, "warning", 1)
    assert result.sample[0]["accession"] == K24


def test_financials_row_differing_from_its_fact_is_caught(
    con: duckdb.DuckDBPyConnection,
) -> None:
    insert_facts(con, clean_facts())
    normalize(con)
    con.execute("UPDATE financials SET value = 999 WHERE metric = 'revenue'")
    result = {r.check: r for r in run_checks(con)}["normalized_to_raw"]
    assert not result.passed and result.detail["reported_mismatches"] == 1
    assert result.sample[0]["metric"] == "revenue"


def test_derived_row_that_does_not_recompute_is_caught(con: duckdb.DuckDBPyConnection) -> None:
    insert_facts(con, clean_facts())
    normalize(con)
    fcf = con.execute(
        "SELECT value, formula FROM financials WHERE metric = 'free_cash_flow'"
    ).fetchall()
    assert fcf == [(110.0, "operating_cash_flow - capital_expenditures")]
    con.execute("UPDATE financials SET value = 111 WHERE metric = 'free_cash_flow'")
    result = {r.check: r for r in run_checks(con)}["normalized_to_raw"]
    assert not result.passed and result.detail["derived_mismatches"] == 1


def test_q4_is_checked_against_fy_less_nine_months(con: duckdb.DuckDBPyConnection) -> None:
    nine = ("2022-10-01", "2023-07-01")
    q10 = "0000001111-23-000009"
    add_filing(con, q10, "10-Q")
    insert_facts(con, [*clean_facts(), fact("Revenues", 700.0, q10, period=nine, form="10-Q")])
    normalize(con)
    q4 = con.execute(
        "SELECT value FROM financials WHERE metric = 'revenue' AND fiscal_period = 'Q4'"
    ).fetchall()
    assert q4 == [(300.0,)]
    assert {r.check: r for r in run_checks(con)}["normalized_to_raw"].passed
    con.execute(
        "UPDATE financials SET value = 301 WHERE metric = 'revenue' AND fiscal_period = 'Q4'"
    )
    result = {r.check: r for r in run_checks(con)}["normalized_to_raw"]
    assert not result.passed and result.sample[0]["formula"] == "FY - 9M YTD"


def test_restatement_is_listed_at_info_level(con: duckdb.DuckDBPyConnection) -> None:
    add_filing(con, K24)
    later = [r for r in clean_facts(K24, filed="2024-11-01", fy=2024) if r["concept"] != "Revenues"]
    restated = fact("Revenues", 1010.0, K24, filed="2024-11-01", fy=2024)
    insert_facts(con, [*clean_facts(), *later, restated])
    results = checks(con)
    info = results["restatements"]
    assert (info.passed, info.severity, info.affected_records) == (True, "info", 1)
    assert info.sample[0]["concept"] == "Revenues"
    assert results["duplicates"].passed


def test_filing_without_core_metric_is_incomplete(con: duckdb.DuckDBPyConnection) -> None:
    insert_facts(con, [r for r in clean_facts() if r["concept"] != "Revenues"])
    result = checks(con)["completeness"]
    assert not result.passed and result.sample[0]["missing"] == ["revenue"]


def test_rows_of_unknown_company_are_critical(con: duckdb.DuckDBPyConnection) -> None:
    add_filing(con, "0000002222-23-000001", cik=2222)
    insert_facts(con, [*clean_facts(), *clean_facts("0000002222-23-000001", cik=2222)])
    result = checks(con)["referential_integrity"]
    assert (result.passed, result.severity) == (False, "critical")
    assert result.detail["rows_without_company"] > 0


def test_facts_newer_than_their_financials_are_an_error(con: duckdb.DuckDBPyConnection) -> None:
    insert_facts(con, clean_facts())  # loaded, never normalized
    stale = {r.check: r for r in run_checks(con)}["stale_financials"]
    assert (stale.passed, stale.severity, stale.affected_records) == (False, "error", 1)
    assert stale.sample[0] == {"cik": ACME, "financials": 0, "reason": "facts but no financials"}

    normalize(con)
    assert {r.check: r for r in run_checks(con)}["stale_financials"].passed
    # a load replaces the facts (and marks the company); its normalize never runs
    con.execute(
        "INSERT INTO company_loads (cik, facts_sha256, fact_count, filing_count, source,"
        " loaded_at, needs_normalize) VALUES (?, 'x', 14, 1, 'test', current_timestamp, true)",
        [ACME],
    )
    stale = {r.check: r for r in run_checks(con)}["stale_financials"]
    assert (stale.passed, stale.affected_records, stale.detail["marked"]) == (False, 1, 1)
    assert stale.sample[0]["reason"] == "facts changed after its financials were built"
    assert stale.sample[0]["financials"] > 0

    normalize(con, [ACME])  # rebuilds the financials and clears the mark, in one transaction
    assert {r.check: r for r in run_checks(con)}["stale_financials"].passed
    assert con.execute("SELECT needs_normalize FROM company_loads").fetchall() == [(False,)]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_value_that_is_not_a_finite_number_is_critical(
    con: duckdb.DuckDBPyConnection, bad: float
) -> None:
    """Stored before the parser refused such values (or written by other means)."""
    insert_facts(con, [*clean_facts(), fact("MinorityInterest", bad)])
    normalize(con)  # the normalizer never takes it as a candidate
    assert con.execute("SELECT count(*) FROM financials WHERE NOT isfinite(value)").fetchall() == [
        (0,)
    ]
    con.execute("UPDATE financials SET value = ? WHERE metric = 'revenue'", [bad])
    results = {r.check: r for r in run_checks(con)}
    found = results["non_finite_values"]
    assert (found.passed, found.severity, found.critical) == (False, "critical", True)
    assert found.affected_records == 2
    assert found.detail == {"facts": 1, "financials": 1, "financials_history": 0}
    assert {(r["table"], r["name"], r["value"]) for r in found.sample} == {
        ("facts", "us-gaap:MinorityInterest", str(bad)),
        ("financials", "revenue", str(bad)),
    }
    store_results(con, "run-1", list(results.values()), [])  # the sample stores as JSON
    stored = con.execute(
        "SELECT detail ->> '$.sample[0].value' FROM reconciliation_results"
        " WHERE \"check\" = 'non_finite_values'"
    ).fetchall()
    assert stored == [(str(bad),)]


# -- scores --------------------------------------------------------------------------------


def components(con: duckdb.DuckDBPyConnection, accession: str = K23) -> dict[str, float]:
    return {c.name: c.score for c in scores(con)[accession].components}


def test_clean_filing_scores_100_with_grade_a(con: duckdb.DuckDBPyConnection) -> None:
    insert_facts(con, clean_facts())
    row = scores(con)[K23]
    assert (row.score, row.grade, row.form, row.fiscal_year) == (
        100.0,
        "A",
        "10-K",
        2023,
    )
    assert set(row.component("coverage").to_dict()) == {"score", "weight", "reason"}
    assert sum(c.weight for c in row.components) == 100


@pytest.mark.parametrize(
    ("planted", "component", "expected"),
    [
        ({"Assets": 2500.0}, "balance_sheet", 0.0),
        ({"GrossProfit": 450.0}, "identities", 0.0),
        ({"AssetsCurrent": 2100.0}, "identities", 0.0),
        # liabilities_and_equity still matches assets; liabilities + equity no longer does
        ({"Liabilities": 1500.0}, "balance_sheet", 0.0),
        ({"Revenues": None}, "missing_values", 100.0 * 13 / 14),
    ],
)
def test_planted_defect_lowers_its_component(
    con: duckdb.DuckDBPyConnection,
    planted: dict[str, float | None],
    component: str,
    expected: float,
) -> None:
    rows = [
        fact(r["concept"], planted.get(r["concept"], r["value"])) if r["concept"] in planted else r
        for r in clean_facts()
    ]
    insert_facts(con, rows)
    got = components(con)
    assert got[component] == pytest.approx(expected, abs=0.01)
    assert scores(con)[K23].score < 100


EXTRA_FY23 = {  # operating expenses and income, shares: more identities become checkable
    "OperatingExpenses": 250.0,
    "OperatingIncomeLoss": 150.0,
    "WeightedAverageNumberOfSharesOutstandingBasic": 66.0,  # 1.5 x 66 = 99 ~ 100
}


@pytest.mark.parametrize(
    ("planted", "identity"),
    [
        ({"OperatingIncomeLoss": 300.0}, "operating_income"),
        ({"NetIncomeLoss": 137.0}, "eps"),
        ({"WeightedAverageNumberOfSharesOutstandingBasic": 90.0}, "eps"),
    ],
)
def test_planted_defect_breaks_a_named_identity_and_shows_in_reconciliation(
    con: duckdb.DuckDBPyConnection, planted: dict[str, float], identity: str
) -> None:
    clean = [*clean_facts(), *(fact(c, v) for c, v in EXTRA_FY23.items())]
    insert_facts(con, clean)
    assert components(con)["identities"] == 100.0
    assert checks(con)["accounting_identities"].passed
    con.execute("DELETE FROM facts")
    insert_facts(con, [fact(r["concept"], planted[r["concept"]]) if r["concept"] in planted
                       else r for r in clean])  # fmt: skip

    row = scores(con)[K23]
    assert row.component("identities").score == 0.0
    assert identity in row.component("identities").reason
    assert row.score <= 75.0 and row.grade in {"C", "D", "F"}
    found = checks(con)["accounting_identities"]
    assert (found.passed, found.severity, found.affected_records) == (False, "warning", 1)
    assert found.sample[0]["accession"] == K23
    assert identity in found.sample[0]["failed_identities"]


def test_amendment_without_statements_is_scored_on_what_applies(
    con: duckdb.DuckDBPyConnection,
) -> None:
    amendment = "0000001111-24-000009"
    add_filing(con, amendment, form="10-K/A")
    cover = [fact("EntityPublicFloat", 5e9, amendment, form="10-K/A", filed="2024-01-20")]
    insert_facts(con, [*clean_facts(), *cover])
    row = scores(con)[amendment]
    for name in ("coverage", "balance_sheet", "depth"):
        assert row.component(name).weight == 0.0
        assert row.component(name).reason.startswith("not applicable")
    assert (row.score, row.grade) == (100.0, "A")
    # a 10-K/A that restates the statements is scored on everything
    restated = [
        fact(c, v, amendment, form="10-K/A", filed="2024-01-20") for c, v in CLEAN_FY23.items()
    ]
    insert_facts(con, restated)
    assert scores(con)[amendment].component("coverage").weight == 15.0


def test_balance_sheet_with_noncontrolling_interest_holds(con: duckdb.DuckDBPyConnection) -> None:
    rows = [r for r in clean_facts() if r["concept"] != "LiabilitiesAndStockholdersEquity"]
    rows += [fact("MinorityInterest", 100.0)]
    rows = [fact("Assets", 2100.0) if r["concept"] == "Assets" else r for r in rows]
    insert_facts(con, rows)
    assert components(con)["balance_sheet"] == 100.0


def test_conflicting_duplicate_and_missing_metrics_lower_the_score(
    con: duckdb.DuckDBPyConnection,
) -> None:
    rows = [r for r in clean_facts() if r["concept"] != "NetIncomeLoss"]
    insert_facts(con, [*rows, fact("Assets", 2001.0)])
    got = components(con)
    assert got["duplicates"] == 75.0
    assert got["coverage"] == 87.5


def test_value_contradicted_by_later_filings_lowers_consistency(
    con: duckdb.DuckDBPyConnection,
) -> None:
    for accession in (K24, "0000001111-25-000001"):
        add_filing(con, accession)
    later = [*clean_facts(K24), *clean_facts("0000001111-25-000001")]
    typo = [fact("Revenues", 1e6) if r["concept"] == "Revenues" else r for r in clean_facts()]
    insert_facts(con, [*typo, *later])
    assert components(con)["consistency"] == 90.0
    assert components(con, K24)["consistency"] == 100.0


def test_truncated_filing_lowers_depth(con: duckdb.DuckDBPyConnection) -> None:
    for accession in (K24, K22):
        add_filing(con, accession)
    insert_facts(con, [*clean_facts(), *clean_facts(K24), fact("Revenues", 1.0, K22)])
    assert components(con, K22)["depth"] < 20
    assert components(con)["depth"] == 100.0


def test_grades_and_company_scores(con: duckdb.DuckDBPyConnection) -> None:
    assert [grade(s) for s in (95, 90, 85, 72, 60, 59.9)] == ["A", "A", "B", "C", "D", "F"]
    add_filing(con, K24)
    insert_facts(con, [*clean_facts(), *clean_facts(K24, fy=2024)])
    company = score_companies(con)
    assert len(company) == 1 and company[0].filings == 2
    assert company[0].grade_distribution["A"] == 2


def test_equal_components_of_different_filings_are_one_object(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """An archive's scores share their equal components, so 200k filings stay small."""
    add_filing(con, K24)
    insert_facts(con, [*clean_facts(), *clean_facts(K24, fy=2024)])
    scored = score_filings(con)
    assert len(scored) == 2
    first, second = (s.components for s in scored)
    assert first == second  # two clean filings: the same seven components
    assert all(a is b for a, b in zip(first, second, strict=True))


def test_results_are_stored_in_one_run(con: duckdb.DuckDBPyConnection) -> None:
    insert_facts(con, clean_facts())
    results = checks(con)
    store_results(con, "run-1", list(results.values()), score_filings(con))
    stored = con.execute(
        "SELECT count(*), count(DISTINCT run_id) FROM reconciliation_results"
    ).fetchall()
    assert stored == [(len(results), 1)]
    row = con.execute(
        "SELECT accession, grade,"
        " list_filter(components, lambda c: c.name = 'coverage')[1].weight FROM quality_scores"
    ).fetchall()
    assert row == [(K23, "A", 15.0)]


# -- the real sample -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_db(shared_edgar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = FolderSource(shared_edgar)
    db = tmp_path_factory.mktemp("quality") / "warehouse.duckdb"
    run_pipeline(source, source.available_ciks(), db)
    return db


def test_every_periodic_filing_of_the_sample_is_scored(real_db: Path) -> None:
    with open_warehouse(real_db, read_only=True) as db:
        results = run_checks(db)
        table = score_filings(db)
        expected = db.execute(
            "SELECT count(DISTINCT accession) FROM facts WHERE form IN"
            " ('10-K', '10-K/A', '10-Q', '10-Q/A', '20-F', '20-F/A')"
        ).fetchall()[0][0]
    assert len(table) == expected > 600
    assert len({s.accession for s in table}) == expected
    # real filings do fail some identities (share counts tagged in thousands, EPS of
    # continuing operations...): warnings, never errors
    failed = {r.check for r in results if not r.passed}
    assert failed <= {"filing_count", "completeness", "accounting_identities"}


@pytest.mark.parametrize(
    ("concept", "period_start", "factor", "component"),
    [
        ("Assets", None, 10.0, "balance_sheet"),  # total assets x10
        ("NetIncomeLoss", "2022-09-25", 1.37, "identities"),  # EPS x shares no longer fits
        ("GrossProfit", "2022-09-25", 1.2, "identities"),  # revenue - cost of sales
    ],
)
def test_altered_value_in_real_filing_is_caught(
    shared_edgar: Path,
    real_db: Path,
    tmp_path: Path,
    concept: str,
    period_start: str | None,
    factor: float,
    component: str,
) -> None:
    for sub in ("companyfacts", "submissions"):
        (tmp_path / sub).mkdir()
        name = f"CIK{APPLE:010d}.json"
        shutil.copy(shared_edgar / sub / name, tmp_path / sub / name)
    path = tmp_path / "companyfacts" / f"CIK{APPLE:010d}.json"
    doc = json.loads(path.read_text())
    altered_rows = 0
    for row in doc["facts"]["us-gaap"][concept]["units"]["USD"]:
        if (
            row["accn"] == APPLE_FY2023_10K
            and row["end"] == "2023-09-30"
            and row.get("start") == period_start
        ):
            row["val"] = round(row["val"] * factor)
            altered_rows += 1
    assert altered_rows == 1
    path.write_text(json.dumps(doc))
    db = tmp_path / "planted.duckdb"
    run_pipeline(FolderSource(tmp_path), [APPLE], db)
    with open_warehouse(db, read_only=True) as planted:
        altered = {s.accession: s for s in score_filings(planted)}
        found = {r.check: r for r in run_checks(planted)}
    with open_warehouse(real_db, read_only=True) as clean_con:
        clean = {s.accession: s for s in score_filings(clean_con, [APPLE])}
        clean_found = {r.check: r for r in run_checks(clean_con, [APPLE])}
    target = altered[APPLE_FY2023_10K]
    assert target.score < clean[APPLE_FY2023_10K].score
    others = [r.score for a, r in clean.items() if a != APPLE_FY2023_10K]
    assert target.score < min(others)
    assert target.component(component).score == 0.0
    # the findings name the filing: its identities fail, and later filings contradict it
    identities = found["accounting_identities"]
    assert identities.affected_records == clean_found["accounting_identities"].affected_records + 1
    assert APPLE_FY2023_10K in {s["accession"] for s in identities.sample}
    restated = found["restatements"]
    assert restated.affected_records == clean_found["restatements"].affected_records + 1


# -- scoped runs ---------------------------------------------------------------------------

OTHER = 2222


def shared_accession_warehouse(con: duckdb.DuckDBPyConnection, form: str) -> None:
    """ACME's 10-K, and OTHER (listing the same accession) with facts of it as ``form``."""
    add_company(con, OTHER)
    insert_facts(con, clean_facts())
    insert_facts(con, [fact("NetIncomeLoss", 100.0, cik=OTHER, form=form)])
    con.execute("INSERT INTO filing_companies VALUES (?, ?, 'test'), (?, ?, 'test')",
                [K23, ACME, K23, OTHER])  # fmt: skip
    normalize(con)


@pytest.mark.parametrize("scope", [[ACME], [OTHER], None])
def test_a_shared_accession_in_conflict_is_caught_from_either_company(
    con: duckdb.DuckDBPyConnection, scope: list[int] | None
) -> None:
    """One accession, two companies, two forms: a run over either company (or all) finds it."""
    shared_accession_warehouse(con, form="10-Q")
    dup = {r.check: r for r in run_checks(con, ciks=scope)}["duplicates"]
    assert (dup.passed, dup.affected_records) == (False, 1)
    assert dup.detail["conflicting_shared_accessions"] == 1
    assert dup.sample[0]["accession"] == K23 and dup.sample[0]["ciks"] == [ACME, OTHER]


def test_a_shared_accession_that_agrees_is_no_conflict(con: duckdb.DuckDBPyConnection) -> None:
    """Co-registrants filing one 10-K each carry its facts: the same form and date agree."""
    shared_accession_warehouse(con, form="10-K")
    dup = {r.check: r for r in run_checks(con, ciks=[ACME])}["duplicates"]
    assert dup.passed and dup.detail["conflicting_shared_accessions"] == 0


def test_a_scoped_run_checks_only_its_companies_but_finds_unknown_companies(
    con: duckdb.DuckDBPyConnection,
) -> None:
    add_company(con, OTHER)
    insert_facts(con, clean_facts())
    insert_facts(con, [fact("NetIncomeLoss", 1.0, K22, cik=OTHER)])  # OTHER: no filings row
    insert_facts(con, [fact("NetIncomeLoss", 1.0, K24, cik=424242)])  # no such company
    normalize(con)
    results = {r.check: r for r in run_checks(con, ciks=[ACME])}
    assert results["facts_to_filings"].passed  # OTHER's orphan is out of scope
    dangling = results["referential_integrity"]
    assert (dangling.passed, dangling.severity) == (False, "critical")
    assert {r["cik"] for r in dangling.sample} == {424242}
    whole = {r.check: r for r in run_checks(con)}
    assert not whole["facts_to_filings"].passed
