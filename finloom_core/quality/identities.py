"""Accounting identities: what a filing's own figures must satisfy, and their tolerances.

Each identity is (name, SQL over one period's metrics, by name) that is NULL when its inputs
are missing, else true when the identity FAILS. The filing statistics (filing_stats.py)
evaluate them for every period of a filing, in its reporting currency; the filing score
(scoring.py, component ``identities``) and the ``accounting_identities`` check of the
reconciliation (reconcile.py) read the failures (``FilingStats.failed_identities``). The
balance sheet equation is checked apart, at every balance date (filing_stats.py), within
:data:`BALANCE_TOLERANCE`.

Every identity held in the real sample's filings but for a handful of reporting errors,
except eps (about 9 % of filings, mostly share counts tagged in thousands and EPS of
continuing operations; both are worth a look).
"""

from __future__ import annotations

BALANCE_TOLERANCE = 0.005  # relative to total assets
BALANCE_PARTS_TOLERANCE = 0.05  # liabilities + equity, when liabilities_and_equity holds
IDENTITY_TOLERANCE = 0.005  # relative to revenue (or to the larger side of an inequality)
EPS_TOLERANCE = 0.05  # EPS x weighted shares vs net income, plus half a cent a share

# $it: IDENTITY_TOLERANCE, $et: EPS_TOLERANCE
IDENTITIES: tuple[tuple[str, str], ...] = (
    ("gross_profit", "abs(gross_profit - (revenue - cost_of_revenue)) > $it * abs(revenue)"),
    (
        "operating_income",
        "abs(operating_income - (gross_profit - operating_expenses)) > $it * abs(revenue)"
        " AND abs(operating_income - (revenue - operating_expenses)) > $it * abs(revenue)",
    ),
    (
        "eps",
        "abs(eps_basic * weighted_shares_basic - net_income)"
        " > $et * abs(net_income) + 0.006 * weighted_shares_basic",
    ),
    ("gross_profit_le_revenue", "gross_profit > revenue * (1 + $it)"),
    (
        "opex_parts_le_opex",
        "research_and_development + selling_general_administrative"
        " > operating_expenses * (1 + $it)",
    ),
    ("diluted_eps_le_basic", "net_income > 0 AND eps_diluted > eps_basic + 0.005"),
    ("diluted_shares_ge_basic", "weighted_shares_diluted < weighted_shares_basic * 0.999"),
    ("current_assets_le_total", "current_assets > total_assets * (1 + $it)"),
    ("current_liabilities_le_total", "current_liabilities > total_liabilities * (1 + $it)"),
    ("cash_le_current_assets", "cash_and_equivalents > current_assets * (1 + $it)"),
    ("receivables_le_current_assets", "accounts_receivable > current_assets * (1 + $it)"),
    ("inventory_le_current_assets", "inventory > current_assets * (1 + $it)"),
    ("ppe_le_total_assets", "property_plant_equipment_net > total_assets * (1 + $it)"),
    ("payables_le_current_liabilities", "accounts_payable > current_liabilities * (1 + $it)"),
    ("long_term_debt_le_liabilities", "long_term_debt > total_liabilities * (1 + $it)"),
)
