"""Coverage of the core metrics per annual filing, and the financials query helper."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from finloom_core.edgar.sources import FolderSource
from finloom_core.errors import InputError
from finloom_core.normalize import normalize
from finloom_core.normalize.coverage import CORE_METRICS, coverage, financials_query
from finloom_core.parse.companyfacts import FACT_SCHEMA
from finloom_core.pipeline import run_pipeline
from finloom_core.storage.database import connect, open_warehouse

ACME = 1111
FY22 = ("2021-10-01", "2022-09-30")
FY23 = ("2022-10-01", "2023-09-30")
# us-gaap concepts of the seven core metrics, each with its period type
CONCEPTS = {
    "Revenues": "duration",
    "NetIncomeLoss": "duration",
    "Assets": "instant",
    "Liabilities": "instant",
    "StockholdersEquity": "instant",
    "NetCashProvidedByUsedInOperatingActivities": "duration",
    "EarningsPerShareDiluted": "duration",
}
US_LARGE_CAPS = {  # the US large caps of ../shared/edgar
    320193: "AAPL",
    1045810: "NVDA",
    1652044: "GOOGL",
    1318605: "TSLA",
    1744489: "DIS",
    1640147: "SNOW",
    1835632: "MRVL",
}


def fact_rows(accession: str, filed: str, year: tuple[str, str], skip: str = "") -> list[dict]:
    rows = []
    for concept, period in CONCEPTS.items():
        if concept == skip:
            continue
        rows.append({
            "cik": ACME, "taxonomy": "us-gaap", "concept": concept,
            "unit": "USD/shares" if concept.startswith("EarningsPerShare") else "USD",
            "period_start": dt.date.fromisoformat(year[0]) if period == "duration" else None,
            "period_end": dt.date.fromisoformat(year[1]), "value": 10.0,
            "accession": accession, "fiscal_year": int(year[1][:4]), "fiscal_period": "FY",
            "form": "10-K", "filed": dt.date.fromisoformat(filed), "frame": None,
        })  # fmt: skip
    return rows


def insert_facts(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(rows, schema=FACT_SCHEMA)
    con.register("_test_facts", table)
    con.execute("INSERT INTO facts BY NAME SELECT * FROM _test_facts")
    con.unregister("_test_facts")


def insert_filing(con: duckdb.DuckDBPyConnection, accession: str, form: str, filed: str) -> None:
    con.execute(
        "INSERT INTO filings (accession, cik, form, filed, source) VALUES (?, ?, ?, ?, ?)",
        [accession, ACME, form, dt.date.fromisoformat(filed), "submissions"],
    )


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(tmp_path / "warehouse.duckdb")
    yield connection
    connection.close()


def test_a_filing_missing_a_metric_is_reported_missing(con: duckdb.DuckDBPyConnection) -> None:
    insert_facts(con, fact_rows("K2022", "2022-11-01", FY22))
    insert_facts(con, fact_rows("K2023", "2023-11-01", FY23, skip="EarningsPerShareDiluted"))
    # a cover-page-only amendment (no annual period of its own) and a filing whose facts
    # are not in the warehouse: listed, never counted as covered
    cover = fact_rows("K2023A", "2024-01-20", FY23)[2]  # Assets, an instant
    insert_facts(con, [cover | {"concept": "EntityPublicFloat", "taxonomy": "dei"}])
    insert_filing(con, "K2023A", "10-K/A", "2024-01-20")
    insert_filing(con, "K2024", "10-K", "2024-11-01")
    normalize(con, [ACME])

    report = coverage(con)

    rows = {r["accession"]: r for r in report.rows.to_pylist()}
    assert set(rows) == {"K2022", "K2023", "K2023A", "K2024"}
    assert rows["K2022"]["missing"] == [] and rows["K2022"]["fiscal_year"] == 2022
    assert sorted(rows["K2022"]["present"]) == sorted(CORE_METRICS)
    assert rows["K2023"]["missing"] == ["eps_diluted"]
    assert rows["K2023"]["period_end"] == dt.date(2023, 9, 30)
    assert not rows["K2023A"]["assessable"] and not rows["K2024"]["assessable"]
    summary = report.summary
    assert (summary.filings, summary.assessable, summary.complete) == (4, 2, 1)
    assert summary.share_complete == 0.5
    assert summary.per_metric["eps_diluted"] == 0.5 and summary.per_metric["revenue"] == 1.0
    (company,) = report.companies.to_pylist()
    assert (company["filings"], company["assessable"], company["complete"]) == (4, 2, 1)
    assert company["missing_metrics"] == "eps_diluted"


def test_financials_query_filters_and_first_reported(con: duckdb.DuckDBPyConnection) -> None:
    insert_facts(con, fact_rows("K2022", "2022-11-01", FY22))
    restated = [
        r | {"value": 12.0} for r in fact_rows("K2023", "2023-11-01", FY22)
    ]  # FY2022 values repeated, restated, by the next 10-K
    insert_facts(con, restated + fact_rows("K2023", "2023-11-01", FY23))
    normalize(con, [ACME])

    latest = financials_query(con, ACME, ["net_income", "revenue"], "FY", (2022, 2022))
    first = financials_query(
        con, ACME, ["net_income", "revenue"], "FY", (2022, 2022), as_first_reported=True
    )

    assert latest["metric"].to_pylist() == ["net_income", "revenue"]
    assert latest["value"].to_pylist() == [12.0, 12.0]
    assert latest["accession"].to_pylist() == ["K2023", "K2023"]
    assert first["value"].to_pylist() == [10.0, 10.0]
    assert first["accession"].to_pylist() == ["K2022", "K2022"]
    assert financials_query(con, ACME, ["revenue"], "FY", (2023, 2030))[
        "fiscal_year"
    ].to_pylist() == [2023]
    assert financials_query(con, ACME, ["revenue"], "Q").num_rows == 0
    with pytest.raises(InputError):
        financials_query(con, ACME, ["revenue"], "H1")


# ------------------------------------------------------------------ real data


@pytest.fixture(scope="module")
def real(shared_edgar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = FolderSource(shared_edgar)
    db = tmp_path_factory.mktemp("coverage") / "warehouse.duckdb"
    run_pipeline(source, source.available_ciks(), db)
    return db


def test_core_metric_coverage_of_us_large_cap_10ks(real: Path) -> None:
    with open_warehouse(real, read_only=True) as con:
        report = coverage(con, list(US_LARGE_CAPS), forms=["10-K"])
    summary = report.summary
    # Measured on ../shared/edgar: 72 of 73 assessable 10-Ks carry all seven (98.6%); the
    # gap is diluted EPS of Alphabet FY2015 (by share class only). Five Tesla 10-Ks are
    # not assessable: FY2010 predates XBRL, FY2022-2025 postdate its companyfacts snapshot.
    assert summary.filings == 78
    assert summary.assessable == 73
    assert summary.complete == 72 and summary.share_complete >= 0.98, summary
    assert min(summary.per_metric.values()) >= 0.97, summary.per_metric
    by_cik = {r["cik"]: r for r in report.companies.to_pylist()}
    assert set(by_cik) == set(US_LARGE_CAPS)
    assert by_cik[320193]["complete"] == by_cik[320193]["filings"] == 17  # every Apple 10-K


def test_coverage_lists_every_annual_filing_of_the_warehouse(real: Path) -> None:
    with open_warehouse(real, read_only=True) as con:
        report = coverage(con)
        annual = con.execute(
            "SELECT count(DISTINCT accession) FROM facts"
            " WHERE form IN ('10-K', '10-K/A', '20-F', '20-F/A')"
        ).fetchall()[0][0]
    accessions = report.rows["accession"].to_pylist()
    assert len(accessions) == len(set(accessions))
    assessable = report.rows.filter(report.rows["assessable"]).num_rows
    assert 0 < assessable <= annual <= report.summary.filings
    assert report.summary.share_complete >= 0.95, report.summary
