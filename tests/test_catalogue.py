"""The metric catalogue: shape, validation, and its concept chains against real filings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.compute as pc
import pytest

from finloom_core.errors import ConfigurationError
from finloom_core.normalize.catalogue import load_catalogue, parse_formula
from finloom_core.parse.companyfacts import parse_companyfacts

REQUIRED = [
    "revenue",
    "cost_of_revenue",
    "gross_profit",
    "research_and_development",
    "selling_general_administrative",
    "operating_expenses",
    "operating_income",
    "interest_expense",
    "pretax_income",
    "income_tax",
    "net_income",
    "eps_basic",
    "eps_diluted",
    "weighted_shares_basic",
    "weighted_shares_diluted",
    "shares_outstanding",
    "cash_and_equivalents",
    "current_assets",
    "total_assets",
    "current_liabilities",
    "total_liabilities",
    "long_term_debt",
    "stockholders_equity",
    "liabilities_and_equity",
    "operating_cash_flow",
    "capital_expenditures",
    "free_cash_flow",
    "depreciation_amortization",
    "dividends_paid",
    "share_repurchases",
]

US_LARGE_CAPS = {320193: "AAPL", 1045810: "NVDA", 1652044: "GOOGL", 1318605: "TSLA",
                 1744489: "DIS", 1640147: "SNOW", 1835632: "MRVL"}  # fmt: skip
CORE = ["revenue", "net_income", "total_assets", "stockholders_equity",
        "operating_cash_flow", "eps_diluted"]  # fmt: skip


def test_the_catalogue_has_every_required_metric_fully_described() -> None:
    catalogue = load_catalogue()
    assert len(catalogue) >= 30
    assert set(REQUIRED) <= set(catalogue.metrics)
    for spec in catalogue.metrics.values():
        assert spec.statement in {"income", "balance", "cash_flow", "per_share", "shares"}
        assert (spec.period == "instant") == (spec.statement == "balance" or spec.name ==
                                              "shares_outstanding")  # fmt: skip
        assert spec.chain("us-gaap") or spec.chain("dei") or spec.formula, spec.name


def test_the_derivations_the_product_promises() -> None:
    catalogue = load_catalogue()
    assert catalogue["free_cash_flow"].formula == parse_formula(
        "operating_cash_flow - capital_expenditures"
    )
    assert catalogue["gross_profit"].formula == parse_formula("revenue - cost_of_revenue")
    liabilities = catalogue["total_liabilities"].formula
    assert [(t.metric, t.sign, t.optional) for t in liabilities] == [
        ("liabilities_and_equity", 1, False),
        ("stockholders_equity", -1, False),
        ("noncontrolling_interest", -1, True),
        ("temporary_equity", -1, True),
    ]
    assert catalogue["capital_expenditures"].sign == "outflow"


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "metrics.toml"
    path.write_text(body)
    return path


GOOD = """
[metrics.a]
statement = "income"
period = "duration"
unit = "currency"
sign = "natural"
description = "A"
[metrics.a.concepts]
us-gaap = ["A"]
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('\n[metrics.b]\nstatement = "income"\nperiod = "duration"\nunit = "currency"\n'
         'sign = "natural"\ndescription = "B"\nderived = "a - nope"\n', "unknown nope"),
        ('\n[metrics.c]\nstatement = "balance"\nperiod = "instant"\nunit = "currency"\n'
         'sign = "natural"\ndescription = "C"\n[metrics.c.concepts]\nus-gaap = ["A"]\n',
         "feeds both a and c"),
        ('\n[metrics.d]\nstatement = "income"\nperiod = "duration"\nunit = "currency"\n'
         'sign = "sideways"\ndescription = "D"\n', "d.sign"),
        ('\n[metrics.e]\nstatement = "balance"\nperiod = "instant"\nunit = "currency"\n'
         'sign = "natural"\ndescription = "E"\nderived = "a"\n', "mixes a's duration"),
        ('\n[metrics.f]\nstatement = "income"\nperiod = "duration"\nunit = "currency"\n'
         'sign = "natural"\ndescription = "F"\n', "f has no concepts"),
    ],
)  # fmt: skip
def test_an_invalid_catalogue_is_refused_in_one_line(
    tmp_path: Path, extra: str, message: str
) -> None:
    load_catalogue(_write(tmp_path, GOOD))  # the base is valid
    with pytest.raises(ConfigurationError) as caught:
        load_catalogue(_write(tmp_path, GOOD + extra))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def _concepts(shared_edgar: Path, cik: int) -> set[tuple[str, str]]:
    facts = parse_companyfacts(shared_edgar / f"companyfacts/CIK{cik:010d}.json", cik)
    pairs = facts.select(["taxonomy", "concept"]).group_by(["taxonomy", "concept"]).aggregate([])
    return set(zip(*pairs.to_pydict().values(), strict=True))


@pytest.mark.parametrize("cik", sorted(US_LARGE_CAPS))
def test_every_core_metric_has_a_concept_each_us_large_cap_reports(
    shared_edgar: Path, cik: int
) -> None:
    catalogue = load_catalogue()
    reported = _concepts(shared_edgar, cik)
    for name in CORE:
        assert any(("us-gaap", c) in reported for c in catalogue[name].chain("us-gaap")), name
    liabilities = any(("us-gaap", c) in reported for c in catalogue["total_liabilities"].chain(
        "us-gaap")) or {("us-gaap", "LiabilitiesAndStockholdersEquity"),
                        ("us-gaap", "StockholdersEquity")} <= reported  # fmt: skip
    assert liabilities


def test_ifrs_chains_reach_tsmc(shared_edgar: Path) -> None:
    catalogue = load_catalogue()
    reported = _concepts(shared_edgar, 1046179)
    for name in ["revenue", "net_income", "total_assets", "total_liabilities",
                 "stockholders_equity", "operating_cash_flow"]:  # fmt: skip
        assert any(("ifrs-full", c) in reported for c in catalogue[name].chain("ifrs-full")), name


def _first_in_chain(facts, chain, start, end, accession):  # type: ignore[no-untyped-def]
    for concept in chain:
        mask = pc.and_(pc.equal(facts["concept"], concept), pc.equal(facts["accession"], accession))
        rows = facts.filter(mask).filter(pc.equal(facts.filter(mask)["period_end"], end))
        if start is not None:
            rows = rows.filter(pc.equal(rows["period_start"], start))
        else:
            rows = rows.filter(pc.is_null(rows["period_start"]))
        if rows.num_rows:
            return rows["value"][0].as_py()
    return None


def test_chain_order_gives_apples_fy2023_10k_values(shared_edgar: Path) -> None:
    """DOMAIN.md's verified headline values, from the FY2023 10-K (0000320193-23-000106)."""
    catalogue = load_catalogue()
    facts = parse_companyfacts(shared_edgar / "companyfacts/CIK0000320193.json", 320193)
    start, end, accession = dt.date(2022, 9, 25), dt.date(2023, 9, 30), "0000320193-23-000106"
    expected = {
        ("revenue", start): 383_285e6,
        ("net_income", start): 96_995e6,
        ("total_assets", None): 352_583e6,
        ("total_liabilities", None): 290_437e6,
        ("stockholders_equity", None): 62_146e6,
    }
    for (name, period_start), value in expected.items():
        chain = catalogue[name].chain("us-gaap")
        assert _first_in_chain(facts, chain, period_start, end, accession) == value, name
