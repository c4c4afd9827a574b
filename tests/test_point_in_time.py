"""Point-in-time financials: each filing's own value, first reported without look-ahead,
and the warehouse as known at the end of any date (``financials_as_of``, ``--as-of``).

Rules on facts built in code first, then Under Armour's filings in ../shared/edgar.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from finloom_core.edgar.sources import FolderSource
from finloom_core.normalize.coverage import financials_query
from finloom_core.normalize.financials import normalize
from finloom_core.pipeline import run_pipeline
from finloom_core.storage.database import connect, open_warehouse
from finloom_core.storage.schema import MIGRATIONS, migrate
from tests.test_cli import finloom
from tests.test_normalize import FY22, FY23, K22, M9_23, Q10_3, F, insert, rows

UNDER_ARMOUR = 1336917
UA_2016_10K = "0001336917-17-000017"  # filed 2017-02-23: FY2016 first reported
UA_2017_10K = "0001336917-18-000009"  # filed 2018-02-28
UA_2018_10K = "0001336917-19-000011"  # filed 2019-02-25: FY2016 restated, as `Revenues`
UA_2012_10K = "0001336917-13-000011"  # filed 2013-02-25
UA_2014_Q2 = "0001336917-14-000035"  # a 10-Q tagging a year-long 926,149,000


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(tmp_path / "warehouse.duckdb")
    yield connection
    connection.close()


def as_of(con: duckdb.DuckDBPyConnection, date: str, metric: str, cik: int = 1111) -> dict:
    cursor = con.execute(
        "SELECT * FROM financials_as_of(?) WHERE cik = ? AND metric = ?",
        [dt.date.fromisoformat(date), cik, metric],
    )
    names = [d[0] for d in cursor.description]
    return {(r[2], r[3]): dict(zip(names, r, strict=True)) for r in cursor.fetchall()}


# --- rules on facts built in code ---------------------------------------------------------


def test_each_filing_keeps_its_own_concept_so_first_reported_is_the_earliest_filing(
    con,
) -> None:
    insert(con, [
        # the FY2022 10-K tags revenue with a lower concept of the chain...
        F("SalesRevenueNet", 90, *FY22, **K22),
        # ...a later 10-K restates it under the chain's first concept
        F("Revenues", 92, *FY22),
        F("Revenues", 100, *FY23),
    ])  # fmt: skip
    normalize(con)
    fy22 = rows(con, "revenue")[(2022, "FY")]
    assert (fy22["first_reported_value"], fy22["first_reported_accession"]) == (90, "K2022")
    assert (fy22["value"], fy22["accession"], fy22["source_concept"]) == (92, "K2023", "Revenues")
    assert fy22["is_restated"] is True  # restated across concepts


def test_a_year_long_fact_in_a_10q_never_beats_the_annual_report(con) -> None:
    insert(con, [
        F("Revenues", 100, *FY23),
        # a later 10-Q tags a year-long span with a different figure
        F("Revenues", 55, "2022-09-24", FY23[1], accession="Q2024-2", filed="2024-05-03",
          form="10-Q", fiscal_year=2024),
        # a year no annual report covers: the 10-Q's year-long figure is all there is
        F("Revenues", 80, *FY22, accession="Q2023-1", filed="2023-02-03", form="10-Q"),
    ])  # fmt: skip
    normalize(con)
    revenue = rows(con, "revenue")
    assert (revenue[(2023, "FY")]["value"], revenue[(2023, "FY")]["accession"]) == (100, "K2023")
    assert revenue[(2023, "FY")]["is_restated"] is False
    assert revenue[(2022, "FY")]["value"] == 80
    history = con.execute(
        "SELECT accession FROM financials_history WHERE metric = 'revenue'"
        " AND fiscal_year = 2023 AND fiscal_period = 'FY'"
    ).fetchall()
    assert history == [("K2023",)]


def test_disagreeing_concepts_in_one_filing_the_statement_identity_decides(con) -> None:
    insert(con, [
        # the filing tags its goods sales as SalesRevenueNet and total revenue as
        # SalesRevenueGoodsNet; gross profit + cost of revenue = the total
        F("SalesRevenueNet", 96, *FY23),
        F("SalesRevenueGoodsNet", 100, *FY23),
        F("CostOfGoodsSold", 60, *FY23),
        F("GrossProfit", 40, *FY23),
        # without the identity the chain's order decides
        F("SalesRevenueNet", 70, *FY22, **K22),
        F("SalesRevenueGoodsNet", 75, *FY22, **K22),
    ])  # fmt: skip
    normalize(con)
    revenue = rows(con, "revenue")
    assert revenue[(2023, "FY")]["value"] == 100
    assert revenue[(2023, "FY")]["source_concept"] == "SalesRevenueGoodsNet"
    assert revenue[(2023, "FY")]["formula"] == (
        "SalesRevenueGoodsNet over SalesRevenueNet: agrees with gross_profit + cost_of_revenue"
    )
    # FY2022: restated K2023 has no FY2022 revenue; K2022 alone, no identity -> chain order
    assert (revenue[(2022, "FY")]["value"], revenue[(2022, "FY")]["formula"]) == (70, None)


def test_depreciation_takes_the_whole_not_a_part(con) -> None:
    insert(con, [
        F("DepreciationDepletionAndAmortization", 30, *FY23),  # a sub-total
        F("DepreciationAndAmortization", 45, *FY23),  # the cash-flow add-back
        F("Depreciation", 12, *FY22, **K22),  # the only one that year
    ])  # fmt: skip
    normalize(con)
    da = rows(con, "depreciation_amortization")
    assert (da[(2023, "FY")]["value"], da[(2023, "FY")]["source_concept"]) == (
        45, "DepreciationAndAmortization",
    )  # fmt: skip
    assert "the largest reported" in da[(2023, "FY")]["formula"]
    assert da[(2022, "FY")]["value"] == 12


def test_as_of_takes_the_latest_filing_filed_by_that_date(con) -> None:
    insert(con, [
        F("Revenues", 90, *FY22, **K22),
        F("Revenues", 95, *FY22),  # restated in K2023, filed 2023-11-03
        F("Revenues", 100, *FY23),
    ])  # fmt: skip
    normalize(con)
    assert as_of(con, "2022-10-27", "revenue") == {}  # before any filing: nothing
    on_filing_day = as_of(con, "2022-10-28", "revenue")
    assert list(on_filing_day) == [(2022, "FY")]
    assert on_filing_day[(2022, "FY")]["value"] == 90
    assert on_filing_day[(2022, "FY")]["is_restated"] is False
    later = as_of(con, "2023-11-03", "revenue")
    assert (later[(2022, "FY")]["value"], later[(2022, "FY")]["accession"]) == (95, "K2023")
    assert later[(2022, "FY")]["first_reported_value"] == 90
    assert later[(2022, "FY")]["is_restated"] is True
    assert later[(2023, "FY")]["value"] == 100


def test_a_derived_value_is_known_only_once_every_input_is(con) -> None:
    insert(con, [
        F("Revenues", 75, *M9_23, **Q10_3),  # nine months, filed 2023-08-04
        F("Revenues", 100, *FY23),  # the year, filed 2023-11-03
        F("Revenues", 110, *FY23, accession="K2024", filed="2024-11-01", fiscal_year=2024),
    ])  # fmt: skip
    normalize(con)
    assert (2023, "Q4") not in as_of(con, "2023-11-02", "revenue")
    q4 = as_of(con, "2023-11-03", "revenue")[(2023, "Q4")]
    assert (q4["value"], q4["accession"], q4["method"]) == (25, "K2023", "derived")
    q4 = as_of(con, "2024-11-01", "revenue")[(2023, "Q4")]
    assert (q4["value"], q4["accession"], q4["first_reported_value"]) == (35, "K2024", 25)
    latest = rows(con, "revenue")[(2023, "Q4")]
    assert (latest["value"], latest["first_reported_value"], latest["is_restated"]) == (
        35, 25, True,
    )  # fmt: skip


def test_as_of_the_far_future_is_the_financials_table(shared_edgar: Path, tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    run_pipeline(FolderSource(shared_edgar), [UNDER_ARMOUR, 320193], db)
    with open_warehouse(db, read_only=True) as connection:
        columns = (
            "cik, metric, fiscal_year, fiscal_period, period_start, period_end, value, unit,"
            " method, source_concept, accession, filed, formula, is_restated,"
            " first_reported_value, first_reported_filed, first_reported_accession"
        )
        table = set(connection.execute(f"SELECT {columns} FROM financials").fetchall())
        macro = set(
            connection.execute(
                f"SELECT {columns} FROM financials_as_of(DATE '9999-12-31')"
            ).fetchall()
        )
    assert len(table) > 1000
    assert macro == table


def test_migration_upgrades_an_older_warehouse_and_marks_it_for_rebuild(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    with duckdb.connect(str(db)) as old:
        old.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
            " description VARCHAR NOT NULL, applied_at TIMESTAMP DEFAULT current_timestamp)"
        )
        for migration in (m for m in MIGRATIONS if m.version < 8):
            for statement in migration.statements:
                old.execute(statement)
            old.execute(
                "INSERT INTO schema_migrations (version, description) VALUES (?, ?)",
                [migration.version, migration.description],
            )
        old.execute(
            "INSERT INTO company_loads (cik, fact_count, filing_count, source, loaded_at,"
            " needs_normalize) VALUES (1111, 3, 1, 'test', now(), false)"
        )
    with duckdb.connect(str(db)) as con:
        assert migrate(con) >= 8
        columns = {r[0]: r[1] for r in con.execute(
            "SELECT column_name, is_nullable FROM information_schema.columns"
            " WHERE table_name = 'financials_history'"
        ).fetchall()}  # fmt: skip
        assert {"method", "formula"} <= set(columns)
        assert columns["source_concept"] == "YES"
        marked = con.execute("SELECT needs_normalize FROM company_loads WHERE cik = 1111")
        assert marked.fetchall() == [(True,)]
        assert con.execute("SELECT count(*) FROM financials_as_of(current_date)").fetchall() == [
            (0,)
        ]


# --- Under Armour's filings (../shared/edgar) ---------------------------------------------


@pytest.fixture(scope="module")
def ua(shared_edgar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("pit") / "warehouse.duckdb"
    run_pipeline(FolderSource(shared_edgar), [UNDER_ARMOUR], db)
    return db


@pytest.fixture
def ua_con(ua: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with open_warehouse(ua, read_only=True) as connection:
        yield connection


def ua_revenue(con: duckdb.DuckDBPyConnection, year: int, **kwargs: object) -> dict | None:
    table = financials_query(con, UNDER_ARMOUR, ["revenue"], "FY", (year, year), **kwargs)
    records = table.to_pylist()
    assert len(records) <= 1
    return records[0] if records else None


def test_ua_fy2016_revenue_first_reported_in_its_own_10k(ua_con) -> None:
    first = ua_revenue(ua_con, 2016, as_first_reported=True)
    assert first is not None
    assert (first["accession"], first["filed"]) == (UA_2016_10K, dt.date(2017, 2, 23))
    assert first["value"] == 4_825_335_000  # tagged SalesRevenueGoodsNet in that filing
    latest = ua_revenue(ua_con, 2016)
    assert latest is not None
    assert (latest["accession"], latest["value"]) == (UA_2018_10K, 4_833_338_000)
    assert latest["source_concept"] == "Revenues"
    assert latest["is_restated"] is True


@pytest.mark.parametrize(
    ("date", "accession", "value"),
    [
        ("2017-02-22", None, None),  # the day before the FY2016 10-K
        ("2017-02-23", UA_2016_10K, 4_825_335_000),
        ("2018-01-01", UA_2016_10K, 4_825_335_000),
        ("2018-02-28", UA_2017_10K, 4_825_335_000),
        ("2019-03-01", UA_2018_10K, 4_833_338_000),
    ],
)
def test_ua_fy2016_revenue_as_of(ua_con, date: str, accession: str | None, value) -> None:
    row = ua_revenue(ua_con, 2016, as_of=dt.date.fromisoformat(date))
    if accession is None:
        assert row is None
        return
    assert row is not None
    assert (row["accession"], row["value"]) == (accession, value)
    assert row["filed"] <= dt.date.fromisoformat(date)


def test_ua_fy2012_revenue_comes_from_the_10k_not_a_10q_year_long_fact(ua_con) -> None:
    latest = ua_revenue(ua_con, 2012)
    assert latest is not None
    assert latest["value"] == 1_834_921_000
    assert latest["value"] != 926_149_000  # UA_2014_Q2's year-long SalesRevenueGoodsNet
    first = ua_revenue(ua_con, 2012, as_first_reported=True)
    assert first is not None
    assert (first["accession"], first["value"]) == (UA_2012_10K, 1_834_921_000)
    in_2015 = ua_revenue(ua_con, 2012, as_of=dt.date(2014, 12, 31))
    assert in_2015 is not None and in_2015["value"] == 1_834_921_000
    held = ua_con.execute(
        "SELECT count(*) FROM financials_history WHERE cik = ? AND accession = ?"
        " AND metric = 'revenue' AND fiscal_period = 'FY'",
        [UNDER_ARMOUR, UA_2014_Q2],
    ).fetchall()
    assert held == [(0,)]


def test_as_of_answers_only_from_filings_filed_by_then(ua_con) -> None:
    for date in ("2012-06-30", "2016-01-01", "2020-06-30"):
        late = ua_con.execute(
            "SELECT count(*) FROM financials_as_of(?) WHERE filed > ? OR first_reported_filed > ?",
            [dt.date.fromisoformat(date)] * 3,
        ).fetchall()
        assert late == [(0,)]
    before = ua_con.execute("SELECT count(*) FROM financials_as_of(DATE '2005-01-01')")
    assert before.fetchall() == [(0,)]


def test_cli_as_of_and_its_errors(ua: Path, tmp_path: Path) -> None:
    args = ("financials", str(UNDER_ARMOUR), "--period", "FY", "--metrics", "revenue",
            "--years", "2016", "--format", "json", "--db", str(ua))  # fmt: skip
    result = finloom(tmp_path, *args, "--as-of", "2018-01-01")
    assert result.code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert (row["accession"], row["value"]) == (UA_2016_10K, 4_825_335_000)
    result = finloom(tmp_path, *args, "--as-first-reported")
    assert json.loads(result.stdout)[0]["accession"] == UA_2016_10K
    result = finloom(tmp_path, *args, "--as-of", "2016-01-01")
    assert (result.code, json.loads(result.stdout)) == (0, [])
    bad = finloom(tmp_path, *args, "--as-of", "2019-13-01")
    assert bad.code == 2 and "Traceback" not in bad.output
    assert bad.error_lines() == ["error: --as-of must be a date like 2019-03-01, not '2019-13-01'"]


def test_cli_coverage_of_every_metric(ua: Path, tmp_path: Path) -> None:
    from finloom_core.normalize.catalogue import load_catalogue

    result = finloom(tmp_path, "financials", "--coverage", "--metrics", "all", "--format",
                     "json", "--db", str(ua))  # fmt: skip
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["per_metric"]) == set(load_catalogue().metrics)
    assert len(report["per_metric"]) == 42
    assert report["per_metric"]["revenue"] > 0.9
    assert report["assessable"] > 0
