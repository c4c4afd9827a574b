"""The normalizer: one test per rule on facts built in code, then real filings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from finloom_core.edgar.sources import FolderSource
from finloom_core.normalize.financials import normalize
from finloom_core.parse.companyfacts import FACT_SCHEMA
from finloom_core.pipeline import run_pipeline
from finloom_core.storage.database import connect, open_warehouse

ACME, OTHER = 1111, 2222
APPLE, NVIDIA = 320193, 1045810
TSMC, TESLA, UNDER_ARMOUR, HERC = 1046179, 1318605, 1336917, 1364479


@dataclass(frozen=True)
class F:
    """One fact row as the loader stores it (dates as ISO strings; start None = instant)."""

    concept: str
    value: float
    start: str | None
    end: str
    accession: str = "K2023"
    filed: str = "2023-11-03"
    form: str = "10-K"
    fiscal_year: int | None = 2023
    unit: str = "USD"
    taxonomy: str = "us-gaap"
    cik: int = ACME


def insert(con: duckdb.DuckDBPyConnection, facts: list[F]) -> None:
    rows = [asdict(f) for f in facts]
    table = pa.table(
        {
            "cik": [r["cik"] for r in rows],
            "taxonomy": [r["taxonomy"] for r in rows],
            "concept": [r["concept"] for r in rows],
            "unit": [r["unit"] for r in rows],
            "period_start": [_date(r["start"]) for r in rows],
            "period_end": [_date(r["end"]) for r in rows],
            "value": [float(r["value"]) for r in rows],
            "accession": [r["accession"] for r in rows],
            "fiscal_year": [r["fiscal_year"] for r in rows],
            "fiscal_period": [None] * len(rows),  # never read: periods come from dates
            "form": [r["form"] for r in rows],
            "filed": [_date(r["filed"]) for r in rows],
            "frame": [None] * len(rows),
        },
        schema=FACT_SCHEMA,
    )
    con.register("_test_facts", table)
    con.execute("INSERT INTO facts BY NAME SELECT * FROM _test_facts")
    con.unregister("_test_facts")


def _date(text: str | None) -> dt.date | None:
    return None if text is None else dt.date.fromisoformat(text)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(tmp_path / "warehouse.duckdb")
    yield connection
    connection.close()


def rows(con: duckdb.DuckDBPyConnection, metric: str, cik: int = ACME) -> dict:
    """(fiscal_year, fiscal_period) -> the financials row as a dict."""
    cursor = con.execute("SELECT * FROM financials WHERE cik = ? AND metric = ?", [cik, metric])
    names = [d[0] for d in cursor.description]
    return {(r[2], r[3]): dict(zip(names, r, strict=True)) for r in cursor.fetchall()}


def values(con: duckdb.DuckDBPyConnection, metric: str, cik: int = ACME) -> dict:
    return {key: row["value"] for key, row in rows(con, metric, cik).items()}


# A company with a September year end: FY2022 = 2021-09-26..2022-09-24,
# FY2023 = 2022-09-25..2023-09-30 (53 weeks), quarters of 13/14 weeks.
FY22 = ("2021-09-26", "2022-09-24")
FY23 = ("2022-09-25", "2023-09-30")
Q1_23 = ("2022-09-25", "2022-12-31")
Q2_23 = ("2023-01-01", "2023-04-01")
Q3_23 = ("2023-04-02", "2023-07-01")
H1_23 = ("2022-09-25", "2023-04-01")
M9_23 = ("2022-09-25", "2023-07-01")
K22 = {"accession": "K2022", "filed": "2022-10-28", "fiscal_year": 2022}
Q10_1 = {"accession": "Q2023-1", "filed": "2023-02-03", "form": "10-Q"}
Q10_2 = {"accession": "Q2023-2", "filed": "2023-05-05", "form": "10-Q"}
Q10_3 = {"accession": "Q2023-3", "filed": "2023-08-04", "form": "10-Q"}


def test_rule1_chain_is_chosen_per_period_and_periods_by_length(con) -> None:
    insert(con, [
        # FY2022: only the old tag; FY2023: Revenues (first in the chain) beats the newer tag
        F("SalesRevenueNet", 90, *FY22, **K22),
        F("SalesRevenueNet", 90, *FY22),
        F("RevenueFromContractWithCustomerExcludingAssessedTax", 101, *FY23),
        F("Revenues", 100, *FY23),
        F("Revenues", 20, *Q1_23, **Q10_1),
        F("Revenues", 45, *H1_23, **Q10_2),  # 6-month YTD: not a period of its own
        F("Assets", 500, None, FY23[1]),
        F("Assets", 400, None, Q1_23[1], **Q10_1),
        F("Assets", 999, None, Q1_23[1], form="8-K"),  # later, but not a periodic report
    ])  # fmt: skip
    normalize(con)
    revenue = rows(con, "revenue")
    assert revenue[(2022, "FY")]["value"] == 90
    assert revenue[(2022, "FY")]["source_concept"] == "SalesRevenueNet"
    assert revenue[(2023, "FY")]["value"] == 100
    assert revenue[(2023, "FY")]["source_concept"] == "Revenues"
    assert revenue[(2023, "Q1")]["value"] == 20
    assert (2023, "6M") not in revenue  # only used to derive Q2 = 6M - Q1
    assert (revenue[(2023, "Q2")]["value"], revenue[(2023, "Q2")]["method"]) == (25, "derived")
    assert values(con, "total_assets") == {(2023, "FY"): 500, (2023, "Q1"): 400}


def test_rule2_fiscal_year_and_quarter_come_from_dates_not_fy_fp(con) -> None:
    insert(con, [
        # the FY2023 10-K repeats FY2022 as a comparative, tagged fy=2023
        F("NetIncomeLoss", 10, *FY22, **K22),
        F("NetIncomeLoss", 10, *FY22),
        F("NetIncomeLoss", 12, *FY23),
        # 10-Qs tag their quarters with the filing's fy as well
        F("NetIncomeLoss", 3, *Q2_23, **Q10_2),
        F("NetIncomeLoss", 2, "2022-01-02", "2022-04-02", **Q10_2),  # prior-year comparative
        # NVIDIA-like: year ends late January and is labelled by the year it ends in
        F("NetIncomeLoss", 7, "2023-01-30", "2024-01-28", fiscal_year=2024, cik=OTHER,
          accession="O2024", filed="2024-02-21"),
        F("NetIncomeLoss", 6, "2022-01-31", "2023-01-29", fiscal_year=2024, cik=OTHER,
          accession="O2024", filed="2024-02-21"),
        F("NetIncomeLoss", 1, "2023-01-30", "2023-04-30", fiscal_year=2024, cik=OTHER,
          accession="OQ1", filed="2023-05-24", form="10-Q"),
    ])  # fmt: skip
    normalize(con)
    assert values(con, "net_income") == {
        (2022, "FY"): 10, (2023, "FY"): 12, (2023, "Q2"): 3, (2022, "Q2"): 2,
    }  # fmt: skip
    # no 10-K of its own for the year ended 2023-01-29: extrapolated from FY2024
    assert values(con, "net_income", OTHER) == {
        (2024, "FY"): 7, (2023, "FY"): 6, (2024, "Q1"): 1,
    }  # fmt: skip


def test_rule2_a_few_mislabelled_filings_do_not_shift_the_years(con) -> None:
    years = [("2019-01-28", "2020-01-26"), ("2020-01-27", "2021-01-31"),
             ("2021-02-01", "2022-01-30")]  # fmt: skip
    insert(con, [
        F("NetIncomeLoss", i, start, end, accession=f"K{i}", filed=f"{end[:4]}-03-01",
          fiscal_year=int(end[:4]) - (1 if i == 0 else 0))  # the first 10-K says fy=2019
        for i, (start, end) in enumerate(years)
    ])  # fmt: skip
    # a retailer that labels its year by the year it starts in (Target's fiscal 2023 ended
    # 2024-02-03): the rule learnt from its filings carries to a year with no 10-K of its own
    insert(con, [
        F("NetIncomeLoss", 5, "2023-01-29", "2024-02-03", fiscal_year=2023, cik=OTHER),
        F("NetIncomeLoss", 4, "2022-01-30", "2023-01-28", fiscal_year=2023, cik=OTHER),
    ])  # fmt: skip
    normalize(con)
    assert values(con, "net_income") == {(2020, "FY"): 0, (2021, "FY"): 1, (2022, "FY"): 2}
    assert values(con, "net_income", OTHER) == {(2023, "FY"): 5, (2022, "FY"): 4}


def test_rule2_fiscal_year_end_change_is_a_flagged_transition_period(con) -> None:
    # December year ends until 2021, a 10-QT for Jan-Mar 2022, March year ends from then on
    # (Under Armour's change), labelled by the year they end in
    k21 = {"accession": "K21", "filed": "2022-02-23", "fiscal_year": 2021}
    qt = {"accession": "QT22", "filed": "2022-05-09", "fiscal_year": 2022, "form": "10-QT"}
    k23 = {"accession": "K23", "filed": "2023-05-24", "fiscal_year": 2023}
    insert(con, [
        F("Revenues", 100, "2021-01-01", "2021-12-31", **k21),
        F("Revenues", 30, "2021-10-01", "2021-12-31", **k21),
        F("Revenues", 25, "2022-01-01", "2022-03-31", **qt),
        F("Revenues", 24, "2021-01-01", "2021-03-31", **qt),  # comparative: Q1 of FY2021
        F("Assets", 500, None, "2022-03-31", **qt),
        F("Revenues", 25, "2022-01-01", "2022-03-31", **k23),  # the 10-K repeats it
        F("Revenues", 110, "2022-04-01", "2023-03-31", **k23),
        F("Revenues", 26, "2022-04-01", "2022-06-30", accession="Q23-1", filed="2022-08-04",
          form="10-Q", fiscal_year=2023),
    ])  # fmt: skip
    normalize(con)
    revenue = rows(con, "revenue")
    assert {k: r["value"] for k, r in revenue.items()} == {
        (2021, "FY"): 100, (2021, "Q4"): 30, (2021, "Q1"): 24,
        (2022, "T"): 25,  # not forced into Q1 of either calendar
        (2023, "FY"): 110, (2023, "Q1"): 26,
    }  # fmt: skip
    transition = revenue[(2022, "T")]
    assert (transition["period_start"], transition["period_end"]) == (
        dt.date(2022, 1, 1), dt.date(2022, 3, 31),
    )  # fmt: skip
    assert values(con, "total_assets") == {(2022, "T"): 500}


def test_rule2_a_10kt_period_is_a_transition_even_without_a_gap(con) -> None:
    insert(con, [
        F("Revenues", 100, "2020-07-01", "2021-06-30", accession="K21", filed="2021-08-20",
          fiscal_year=2021),
        F("Revenues", 55, "2021-07-01", "2021-12-31", accession="KT21", filed="2022-03-01",
          form="10-KT", fiscal_year=2021),
    ])  # fmt: skip
    normalize(con)
    assert values(con, "revenue") == {(2021, "FY"): 100, (2021, "T"): 55}


def test_rule2_without_annual_filings_the_declared_fiscal_year_end_sets_the_calendar(
    con,
) -> None:
    con.execute(
        "INSERT INTO companies (cik, name, fiscal_year_end, updated_at)"
        " VALUES (?, 'Quarterly Only', '0630', now())",
        [ACME],
    )
    q10 = {"form": "10-Q", "fiscal_year": None}
    insert(con, [
        F("Revenues", 10, "2023-07-01", "2023-09-30", accession="Q1", filed="2023-11-01", **q10),
        F("Revenues", 11, "2023-10-01", "2023-12-31", accession="Q2", filed="2024-02-01", **q10),
        F("Revenues", 21, "2023-07-01", "2023-12-31", accession="Q2", filed="2024-02-01", **q10),
        F("Revenues", 12, "2024-01-01", "2024-03-31", accession="Q3", filed="2024-05-01", **q10),
        F("Assets", 90, None, "2024-03-31", accession="Q3", filed="2024-05-01", **q10),
    ])  # fmt: skip
    normalize(con)
    # the year ending 2024-06-30 is FY2024; without a 10-K there is no FY and no Q4
    assert values(con, "revenue") == {(2024, "Q1"): 10, (2024, "Q2"): 11, (2024, "Q3"): 12}
    assert values(con, "total_assets") == {(2024, "Q3"): 90}


def test_rule3_quarters_from_year_to_date_and_q4_for_flows_only(con) -> None:
    insert(con, [
        F("Revenues", 100, *FY23),
        F("Revenues", 20, *Q1_23, **Q10_1),
        F("Revenues", 25, *Q2_23, **Q10_2),
        F("Revenues", 30, *Q3_23, **Q10_3),
        F("Revenues", 75, *M9_23, **Q10_3),
        # cash flows only as year-to-date figures in 10-Qs
        F("NetCashProvidedByUsedInOperatingActivities", 50, *FY23),
        F("NetCashProvidedByUsedInOperatingActivities", 8, *Q1_23, **Q10_1),
        F("NetCashProvidedByUsedInOperatingActivities", 20, *H1_23, **Q10_2),
        F("NetCashProvidedByUsedInOperatingActivities", 35, *M9_23, **Q10_3),
        # never subtracted: per-share values, share counts, balances
        F("EarningsPerShareBasic", 6.0, *FY23, unit="USD/shares"),
        F("EarningsPerShareBasic", 4.5, *M9_23, unit="USD/shares", **Q10_3),
        F("WeightedAverageNumberOfSharesOutstandingBasic", 1000, *FY23, unit="shares"),
        F("WeightedAverageNumberOfSharesOutstandingBasic", 1010, *M9_23, unit="shares",
          **Q10_3),
        F("Assets", 500, None, FY23[1]),
        F("Assets", 450, None, Q3_23[1], **Q10_3),
    ])  # fmt: skip
    normalize(con)
    revenue = rows(con, "revenue")
    q4 = revenue[(2023, "Q4")]
    assert (q4["value"], q4["method"], q4["formula"]) == (25, "derived", "FY - 9M YTD")
    assert (q4["period_start"], q4["period_end"]) == (dt.date(2023, 7, 2), dt.date(2023, 9, 30))
    assert revenue[(2023, "Q3")]["method"] == "reported"
    cash = rows(con, "operating_cash_flow")
    assert {k: (r["value"], r["method"], r["formula"]) for k, r in cash.items()} == {
        (2023, "FY"): (50, "reported", None),
        (2023, "Q1"): (8, "reported", None),
        (2023, "Q2"): (12, "derived", "6M YTD - Q1"),
        (2023, "Q3"): (15, "derived", "9M YTD - 6M YTD"),
        (2023, "Q4"): (15, "derived", "FY - 9M YTD"),
    }
    assert set(values(con, "eps_basic")) == {(2023, "FY")}
    assert set(values(con, "weighted_shares_basic")) == {(2023, "FY")}
    assert set(values(con, "total_assets")) == {(2023, "FY"), (2023, "Q3")}


def test_rule3_q4_from_three_quarters_when_there_is_no_nine_month_figure(con) -> None:
    insert(con, [
        F("Revenues", 100, *FY23),
        F("Revenues", 20, *Q1_23, **Q10_1),
        F("Revenues", 25, *Q2_23, **Q10_2),
        F("Revenues", 30, *Q3_23, **Q10_3),
    ])  # fmt: skip
    normalize(con)
    q4 = rows(con, "revenue")[(2023, "Q4")]
    assert (q4["value"], q4["formula"]) == (25, "FY - Q1 - Q2 - Q3")


def test_rule3_q4_of_a_restated_year_takes_the_nine_months_of_the_same_vintage(con) -> None:
    """The rule (derive.py): Q4 = FY - 9M where the 9M is the one reported in the filing of
    the latest FY value when that filing carries it, else the latest-filed 9M (the latest
    10-Q whose 9M span ends within the year); first-reported Q4 = first FY - first 9M."""
    insert(con, [
        F("Revenues", 100, *FY23),
        F("Revenues", 75, *M9_23, **Q10_3),
        F("Revenues", 30, *Q3_23, **Q10_3),
        # FY2024 10-K restates FY2023 and, unusually, restates its nine months too
        F("Revenues", 110, *FY23, accession="K2024", filed="2024-11-01", fiscal_year=2024),
        F("Revenues", 82, *M9_23, accession="K2024", filed="2024-11-01", fiscal_year=2024),
        # a later 10-Q repeats the unrestated nine months: not of the FY's vintage
        F("Revenues", 75, *M9_23, accession="Q2024-3", filed="2024-12-01", form="10-Q",
          fiscal_year=2025),
        # another year: restated FY, 9M only in 10-Qs -> the latest 10-Q's 9M
        F("Revenues", 90, *FY22, **K22),
        F("Revenues", 95, *FY22),  # restated in the FY2023 10-K
        F("Revenues", 60, "2021-09-26", "2022-06-25", accession="Q2022-3", filed="2022-08-01",
          form="10-Q", fiscal_year=2022),
        F("Revenues", 63, "2021-09-26", "2022-06-25", **Q10_3),  # recast comparative
    ])  # fmt: skip
    normalize(con)
    revenue = rows(con, "revenue")
    q4 = revenue[(2023, "Q4")]
    assert (q4["value"], q4["first_reported_value"], q4["is_restated"]) == (28, 25, True)
    q4 = revenue[(2022, "Q4")]
    assert (q4["value"], q4["first_reported_value"]) == (32, 30)


def test_rule4_latest_filed_wins_and_history_keeps_every_value(con) -> None:
    insert(con, [
        F("Revenues", 90, *FY22, **K22),
        F("Revenues", 95, *FY22),  # restated in the FY2023 10-K
        F("Revenues", 100, *FY23),
        F("Revenues", 100, *FY23, accession="K2024", filed="2024-11-01", fiscal_year=2024),
    ])  # fmt: skip
    normalize(con)
    revenue = rows(con, "revenue")
    restated = revenue[(2022, "FY")]
    assert (restated["value"], restated["filed"]) == (95, dt.date(2023, 11, 3))
    assert (restated["first_reported_value"], restated["first_reported_filed"]) == (
        90, dt.date(2022, 10, 28),
    )  # fmt: skip
    assert restated["is_restated"] is True
    repeated = revenue[(2023, "FY")]
    assert (repeated["value"], repeated["accession"], repeated["is_restated"]) == (
        100, "K2024", False,
    )  # fmt: skip
    history = con.execute(
        "SELECT fiscal_year, value, filed, accession FROM financials_history"
        " WHERE metric = 'revenue' ORDER BY fiscal_year, filed"
    ).fetchall()
    assert history == [
        (2022, 90, dt.date(2022, 10, 28), "K2022"),
        (2022, 95, dt.date(2023, 11, 3), "K2023"),
        (2023, 100, dt.date(2023, 11, 3), "K2023"),
        (2023, 100, dt.date(2024, 11, 1), "K2024"),
    ]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_value_that_is_not_a_finite_number_is_never_a_candidate(con, bad: float) -> None:
    """Stored before the parser refused such values: the last finite value is used."""
    insert(con, [
        F("Revenues", 95, *FY22, **K22),
        F("Revenues", bad, *FY22),  # a later filing's NaN or infinity
        F("Revenues", 100, *FY23),
    ])  # fmt: skip
    normalize(con)
    assert values(con, "revenue") == {(2022, "FY"): 95, (2023, "FY"): 100}
    history = con.execute("SELECT count(*) FROM financials_history WHERE NOT isfinite(value)")
    assert history.fetchall() == [(0,)]


def test_rule5_derivations_only_where_not_reported(con) -> None:
    insert(con, [
        F("Revenues", 100, *FY22, **K22),
        F("CostOfRevenue", 60, *FY22, **K22),
        F("Revenues", 120, *FY23),
        F("CostOfRevenue", 70, *FY23),
        F("GrossProfit", 51, *FY23),  # reported: wins over 120 - 70
        F("NetCashProvidedByUsedInOperatingActivities", 40, *FY23),
        F("PaymentsToAcquirePropertyPlantAndEquipment", 15, *FY23),
        F("LiabilitiesAndStockholdersEquity", 1000, None, FY23[1]),
        F("StockholdersEquity", 600, None, FY23[1]),
        F("MinorityInterest", 50, None, FY23[1]),  # temporary equity absent: counts as 0
        F("LiabilitiesAndStockholdersEquity", 900, None, FY22[1], **K22),
        F("StockholdersEquity", 500, None, FY22[1], **K22),
        F("Liabilities", 400, None, FY22[1], **K22),
    ])  # fmt: skip
    normalize(con)
    gross = rows(con, "gross_profit")
    assert (gross[(2022, "FY")]["value"], gross[(2022, "FY")]["method"]) == (40, "derived")
    assert gross[(2022, "FY")]["formula"] == "revenue - cost_of_revenue"
    assert (gross[(2023, "FY")]["value"], gross[(2023, "FY")]["method"]) == (51, "reported")
    fcf = rows(con, "free_cash_flow")[(2023, "FY")]
    assert (fcf["value"], fcf["formula"]) == (25, "operating_cash_flow - capital_expenditures")
    liabilities = rows(con, "total_liabilities")
    assert (liabilities[(2023, "FY")]["value"], liabilities[(2023, "FY")]["method"]) == (
        350, "derived",
    )  # fmt: skip
    assert (liabilities[(2022, "FY")]["value"], liabilities[(2022, "FY")]["method"]) == (
        400, "reported",
    )  # fmt: skip


def test_rule6_reporting_currency_beats_convenience_translation(con) -> None:
    common = {"taxonomy": "ifrs-full", "form": "20-F", "cik": OTHER}
    insert(con, [
        F("Revenue", 2161735841000, "2023-01-01", "2023-12-31", unit="TWD", **common),
        F("Revenue", 70406000000, "2023-01-01", "2023-12-31", unit="USD", **common),
        F("ProfitLoss", 838497664000, "2023-01-01", "2023-12-31", unit="TWD", **common),
        F("Assets", 5532371215000, None, "2023-12-31", unit="TWD", **common),
        F("BasicEarningsLossPerShare", 32.34, "2023-01-01", "2023-12-31",
          unit="TWD/shares", **common),
        F("BasicEarningsLossPerShare", 1.05, "2023-01-01", "2023-12-31",
          unit="USD/shares", **common),
    ])  # fmt: skip
    normalize(con)
    revenue = rows(con, "revenue", OTHER)[(2023, "FY")]
    assert (revenue["value"], revenue["unit"]) == (2161735841000, "TWD")
    eps = rows(con, "eps_basic", OTHER)[(2023, "FY")]
    assert (eps["value"], eps["unit"]) == (32.34, "TWD/shares")


def test_normalize_replaces_only_the_given_companies(con) -> None:
    insert(con, [F("Revenues", 100, *FY23), F("Revenues", 7, *FY23, cik=OTHER)])
    assert normalize(con) == {ACME: 1, OTHER: 1}
    con.execute("DELETE FROM facts WHERE cik = ?", [OTHER])
    insert(con, [F("Revenues", 8, *FY23, cik=OTHER, accession="K2", filed="2024-01-05")])
    con.execute("UPDATE facts SET value = 101 WHERE cik = ?", [ACME])
    assert normalize(con, [OTHER, 3333]) == {OTHER: 1, 3333: 0}
    assert values(con, "revenue") == {(2023, "FY"): 100}  # ACME not renormalized
    assert values(con, "revenue", OTHER) == {(2023, "FY"): 8}
    assert con.execute("SELECT count(*) FROM financials_history").fetchall() == [(2,)]


# --- real filings (../shared/edgar) ---------------------------------------------------


@pytest.fixture(scope="module")
def real(shared_edgar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("normalize") / "warehouse.duckdb"
    run_pipeline(FolderSource(shared_edgar), [APPLE, NVIDIA, TSMC, TESLA, UNDER_ARMOUR, HERC], db)
    with open_warehouse(db) as connection:
        normalize(connection)
    return db


@pytest.fixture
def real_con(real: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with open_warehouse(real, read_only=True) as connection:
        yield connection


def test_apple_fy2023_matches_its_10k(real_con) -> None:  # figures: DOMAIN.md
    expected = {
        ("revenue", "FY"): 383_285_000_000,
        ("net_income", "FY"): 96_995_000_000,
        ("total_assets", "FY"): 352_583_000_000,
        ("total_liabilities", "FY"): 290_437_000_000,
        ("stockholders_equity", "FY"): 62_146_000_000,
        ("revenue", "Q4"): 89_498_000_000,
        ("net_income", "Q4"): 22_956_000_000,
    }
    for (metric, period), value in expected.items():
        row = rows(real_con, metric, APPLE)[(2023, period)]
        assert (row["value"], row["unit"]) == (value, "USD"), (metric, period)
        assert row["method"] == ("derived" if period == "Q4" else "reported")
    assert rows(real_con, "revenue", APPLE)[(2023, "FY")]["period_end"] == dt.date(2023, 9, 30)


def test_nvidia_year_ended_january_2024_is_fy2024(real_con) -> None:
    years = {
        key[0]: row["period_end"]
        for key, row in rows(real_con, "revenue", NVIDIA).items()
        if key[1] == "FY"
    }
    assert years[2024] == dt.date(2024, 1, 28)
    assert years[2011] == dt.date(2011, 1, 30)  # its 10-K says fy=2010: outvoted
    assert rows(real_con, "revenue", NVIDIA)[(2024, "FY")]["value"] == 60_922_000_000


def test_nvidia_fy2024_matches_its_10k(real_con) -> None:
    """NVIDIA 10-K 0001045810-24-000029 (filed 2024-02-21), year ended 2024-01-28:
    Revenues 60,922 $M, NetIncomeLoss 29,760 $M."""
    revenue = rows(real_con, "revenue", NVIDIA)[(2024, "FY")]
    net_income = rows(real_con, "net_income", NVIDIA)[(2024, "FY")]
    for row, value in ((revenue, 60_922_000_000), (net_income, 29_760_000_000)):
        assert (row["value"], row["unit"], row["period_end"]) == (
            value, "USD", dt.date(2024, 1, 28),
        )  # fmt: skip
        assert row["first_reported_accession"] == "0001045810-24-000029"


def test_tsmc_fy2023_is_in_twd_as_in_its_20f(real_con) -> None:
    """TSMC 20-F 0001193125-24-099840 (filed 2024-04-18), year 2023, in NT$: ifrs-full
    Revenue 2,161,735.8 M, ProfitLossAttributableToOwnersOfParent 851,740.0 M, Assets
    5,532,196.6 M (the same filing's USD convenience figures, e.g. Revenue 70,598.8 M USD,
    must lose)."""
    expected = {
        "revenue": 2_161_735_800_000,
        "net_income": 851_740_000_000,
        "total_assets": 5_532_196_600_000,
    }
    for metric, value in expected.items():
        row = rows(real_con, metric, TSMC)[(2023, "FY")]
        assert (row["value"], row["unit"]) == (value, "TWD"), metric
        assert row["first_reported_accession"] == "0001193125-24-099840", metric


def test_tesla_fy2021_matches_its_10k(real_con) -> None:
    """Tesla 10-K 0000950170-22-000796 (filed 2022-02-07), year 2021: Revenues 53,823 $M,
    NetIncomeLoss 5,519 $M, Assets 62,131 $M."""
    expected = {
        "revenue": 53_823_000_000,
        "net_income": 5_519_000_000,
        "total_assets": 62_131_000_000,
    }
    for metric, value in expected.items():
        row = rows(real_con, metric, TESLA)[(2021, "FY")]
        assert (row["value"], row["unit"]) == (value, "USD"), metric
        assert row["first_reported_accession"] == "0000950170-22-000796", metric


def test_under_armour_transition_period_is_flagged(real_con) -> None:
    """Under Armour moved its year end from Dec 31 to Mar 31. Its 10-K 0001336917-23-000021
    (filed 2023-05-24, fy=2023) reports: fiscal 2023 (2022-04-01..2023-03-31) Revenues
    5,903,636 $K and NetIncomeLoss 386,769 $K; the transition period 2022-01-01..2022-03-31
    (first reported by 10-QT 0001336917-22-000017) Revenues 1,300,945 $K and NetIncomeLoss
    -59,610 $K; year ended 2021-12-31 (its 10-K 0001336917-22-000010, fy=2021) Revenues
    5,683,466 $K. Later 10-Ks revised some of these, so the figures as first reported are
    checked."""
    revenue = rows(real_con, "revenue", UNDER_ARMOUR)
    net_income = rows(real_con, "net_income", UNDER_ARMOUR)
    transition = revenue[(2022, "T")]
    assert (transition["period_start"], transition["period_end"]) == (
        dt.date(2022, 1, 1), dt.date(2022, 3, 31),
    )  # fmt: skip
    assert transition["first_reported_value"] == 1_300_945_000
    assert transition["first_reported_accession"] == "0001336917-22-000017"
    assert net_income[(2022, "T")]["first_reported_value"] == -59_610_000
    assert not any(
        row["period_start"] == dt.date(2022, 1, 1) and row["period_end"] == dt.date(2022, 3, 31)
        for key, row in revenue.items()
        if key[1] != "T"
    )
    fy2023 = revenue[(2023, "FY")]
    assert (fy2023["period_start"], fy2023["period_end"]) == (
        dt.date(2022, 4, 1), dt.date(2023, 3, 31),
    )  # fmt: skip
    assert (fy2023["first_reported_value"], fy2023["first_reported_accession"]) == (
        5_903_636_000, "0001336917-23-000021",
    )  # fmt: skip
    assert net_income[(2023, "FY")]["first_reported_value"] == 386_769_000
    fy2021 = revenue[(2021, "FY")]
    assert fy2021["period_end"] == dt.date(2021, 12, 31)
    assert (fy2021["first_reported_value"], fy2021["first_reported_accession"]) == (
        5_683_466_000, "0001336917-22-000010",
    )  # fmt: skip


def test_herc_restated_cash_flow_keeps_both_values(real_con) -> None:
    """Herc's 10-K 0001364479-18-000005 (filed 2018-02-28) reported 2017 net cash provided
    by operating activities of 341.7 $M; its next 10-K 0001364479-19-000004 (filed
    2019-02-28) restated the same year to 349.1 $M (repeated by 0001364479-20-000005)."""
    row = rows(real_con, "operating_cash_flow", HERC)[(2017, "FY")]
    assert row["value"] == 349_100_000
    assert row["is_restated"] is True
    assert (row["first_reported_value"], row["first_reported_accession"]) == (
        341_700_000, "0001364479-18-000005",
    )  # fmt: skip
    history = real_con.execute(
        "SELECT value, accession FROM financials_history WHERE cik = ?"
        " AND metric = 'operating_cash_flow' AND fiscal_year = 2017 AND fiscal_period = 'FY'"
        " ORDER BY filed",
        [HERC],
    ).fetchall()
    assert history == [
        (341_700_000, "0001364479-18-000005"),
        (349_100_000, "0001364479-19-000004"),
        (349_100_000, "0001364479-20-000005"),
    ]
