"""Data quality: reconciliation checks, filing quality scores, their storage and rendering.

``run_checks`` (reconcile.py) and ``score_filings`` / ``score_companies`` (scoring.py) read
the warehouse set-wise and return the typed results of results.py; ``store_results``
(store.py) appends one run's results; render.py turns them into the report and the tables.
"""

from finloom_core.quality.reconcile import run_checks
from finloom_core.quality.results import (
    CheckResult,
    CompanyScore,
    Component,
    FilingScore,
    QualityReport,
    SuiteSummary,
)
from finloom_core.quality.scoring import COMPONENTS, grade, score_companies, score_filings
from finloom_core.quality.store import store_results

__all__ = [
    "COMPONENTS",
    "CheckResult",
    "CompanyScore",
    "Component",
    "FilingScore",
    "QualityReport",
    "SuiteSummary",
    "grade",
    "run_checks",
    "score_companies",
    "score_filings",
    "store_results",
]
