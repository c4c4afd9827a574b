"""Data quality: reconciliation checks, filing quality scores and their storage.

``run_checks`` (reconcile.py) and ``score_filings`` / ``score_companies`` (scoring.py) read
the warehouse set-wise; ``store_results`` (store.py) appends one run's results.
"""

from finloom_core.quality.reconcile import CheckResult, run_checks
from finloom_core.quality.scoring import COMPONENTS, grade, score_companies, score_filings
from finloom_core.quality.store import store_results

__all__ = [
    "COMPONENTS",
    "CheckResult",
    "grade",
    "run_checks",
    "score_companies",
    "score_filings",
    "store_results",
]
