"""Filing quality scores: 0-100 per 10-K/10-Q/20-F (and amendment) with facts, and a grade.

A filing's score is the weighted mean of its components' scores (each 0-100); every
component keeps its score, weight and a reason, so a user sees why a filing got a D.

==============  ======  ================================================================
component       weight  score
==============  ======  ================================================================
coverage        15      share of the required metrics (REQUIRED_METRICS; any concept of
                        the metric's catalogue chain counts) the filing reports
balance_sheet   20      at every balance date of the filing, within 0.5 % of assets:
                        assets = liabilities_and_equity where both are reported, and
                        assets = liabilities + equity (+ noncontrolling interest,
                        + temporary equity) where those are: 100 if every date holds,
                        0 if any date is broken, 50 if no date has the inputs
identities      25      the IDENTITIES below, for every period of the filing, in its
                        reporting currency: gross profit and operating income, EPS x
                        weighted shares = net income (5 %), diluted <= basic EPS,
                        diluted >= basic shares, and parts <= totals; any failing
                        identity costs 100 (100 when none can be checked: missing inputs
                        already cost coverage). The reason names the failing identities.
duplicates      15      conflicting duplicate facts (one key, two values) in the filing:
                        100 with none, each conflicting key costs 25
consistency     10      values contradicted by the rest of the record: a fact whose period
                        at least two other filings report with one agreeing value that
                        differs from it (a later-corrected value or a typo); each costs 10
missing_values  5       share of the filing's facts that carry a value
depth           10      stands in for dimensional complexity, which companyfacts
                        cannot show (it carries no dimensions and no company extension
                        concepts): the filing's count of distinct concepts against the
                        median of the company's filings of the same kind (annual or
                        quarterly); 100 at or above 80 % of that median, falling linearly
                        to 0, so a truncated or cover-page-only filing scores low
==============  ======  ================================================================

An amendment that carries no financial statements (no required metric at all: a Part III
or cover-page 10-K/A) is scored on the other components only; coverage, balance_sheet and
depth keep their score and reason with weight 0, marked not applicable.

A filing's own figures contradicting each other is the strongest sign of a bad value
(cross-filing differences are common in real data: reclassifications and restatements),
so identities weigh most: one broken identity takes an otherwise clean filing to about 75.

Grades: A >= 90, B >= 80, C >= 70, D >= 60, else F. A company's score is the mean of its
filings' scores, graded the same way, with the distribution of its filings' grades.

The statistics come from filing_stats.py (one SQL pass), the identities from identities.py;
a score is a :class:`~finloom_core.quality.results.FilingScore` whose components keep the
order of :data:`COMPONENTS`. Stored (store.py), the components are a DuckDB list of structs,
``STRUCT(name VARCHAR, score DOUBLE, weight DOUBLE, reason VARCHAR)[]``, one per component.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import duckdb

from finloom_core.quality.filing_stats import REQUIRED_METRICS, FilingStats, filing_stats
from finloom_core.quality.results import CompanyScore, Component, FilingScore

log = logging.getLogger(__name__)

DUPLICATE_PENALTY = 25.0
INCONSISTENT_PENALTY = 10.0
IDENTITY_PENALTY = 100.0
DEPTH_NORM = 0.8  # share of the company's median concept count that scores 100

# component -> (weight, what it measures); weights sum to 100
COMPONENTS: dict[str, tuple[float, str]] = {
    "coverage": (15.0, "required metrics reported"),
    "balance_sheet": (20.0, "assets = liabilities + equity within 0.5%"),
    "identities": (25.0, "income statement, EPS and part <= total identities"),
    "duplicates": (15.0, "no conflicting duplicate facts"),
    "consistency": (10.0, "values not contradicted by other filings"),
    "missing_values": (5.0, "facts carry values"),
    "depth": (10.0, "concept count vs the company's usual filing"),
}
GRADES = ((90.0, "A"), (80.0, "B"), (70.0, "C"), (60.0, "D"), (0.0, "F"))


def grade(score: float) -> str:
    return next(letter for floor, letter in GRADES if score >= floor)


Scored = tuple[float, str]  # a component's score (0-100) and its reason


def _coverage(s: FilingStats) -> Scored:
    missing = [m for m in REQUIRED_METRICS if m not in s.present]
    score = 100.0 * (len(REQUIRED_METRICS) - len(missing)) / len(REQUIRED_METRICS)
    return score, f"missing {', '.join(missing)}" if missing else "all required metrics"


def _balance_sheet(s: FilingStats) -> Scored:
    if s.balance_dates == 0:
        return 50.0, "no balance date with assets and liabilities + equity"
    if s.balance_broken:
        return 0.0, (
            f"assets != liabilities + equity at {s.balance_broken} of "
            f"{s.balance_dates} dates (first {s.broken_date})"
        )
    return 100.0, f"holds at {s.balance_dates} dates"


def _identities(s: FilingStats) -> Scored:
    checks, failed = s.identity_checks, s.failed_identities
    if checks == 0:
        return 100.0, "no identity checkable"
    score = max(0.0, 100.0 - IDENTITY_PENALTY * len(failed))
    if not failed:
        return score, f"all {checks} identity checks hold"
    return score, f"fails: {', '.join(failed)} ({len(failed)} of {checks} checks)"


def _duplicates(s: FilingStats) -> Scored:
    n = s.conflicts
    return max(0.0, 100.0 - DUPLICATE_PENALTY * n), f"{n} conflicting duplicate keys"


def _consistency(s: FilingStats) -> Scored:
    n = s.inconsistent
    score = max(0.0, 100.0 - INCONSISTENT_PENALTY * n)
    return score, f"{n} values contradicted by two or more agreeing filings"


def _missing_values(s: FilingStats) -> Scored:
    share = s.null_values / s.facts if s.facts else 1.0
    return 100.0 * (1.0 - share), f"{s.null_values} of {s.facts} facts without value"


def _depth(s: FilingStats) -> Scored:
    usual = float(s.usual_concepts or 0)
    ratio = s.concepts / (DEPTH_NORM * usual) if usual else 1.0
    return min(100.0, 100.0 * ratio), f"{s.concepts} concepts, company median {usual:g}"


SCORERS: dict[str, Callable[[FilingStats], Scored]] = {
    "coverage": _coverage,
    "balance_sheet": _balance_sheet,
    "identities": _identities,
    "duplicates": _duplicates,
    "consistency": _consistency,
    "missing_values": _missing_values,
    "depth": _depth,
}


# Components that say nothing about an amendment carrying no financial statements (a
# Part III or cover-page 10-K/A): they are reported with weight 0 and the reason.
STATEMENT_COMPONENTS = ("coverage", "balance_sheet", "depth")


def _statementless_amendment(stats: FilingStats) -> bool:
    return (stats.form or "").endswith("/A") and not stats.present


def score_filing(
    stats: FilingStats, shared: dict[Component, Component] | None = None
) -> FilingScore:
    """One filing's weighted score, its grade and its components.

    With ``shared``, a component equal to one already in it is that one (components are
    immutable): most filings of an archive share most of their components (``all required
    metrics``, ``0 conflicting duplicate keys``, ...), so a whole archive's scores take a
    fraction of the memory.
    """
    components: list[Component] = []
    total = 0.0
    skip = STATEMENT_COMPONENTS if _statementless_amendment(stats) else ()
    for name, (weight, _) in COMPONENTS.items():
        value, reason = SCORERS[name](stats)
        if name in skip:
            weight = 0.0
            reason = f"not applicable: amendment without financial statements ({reason})"
        component = Component(name, round(value, 2), weight, reason)
        components.append(component if shared is None else shared.setdefault(component, component))
        total += weight * value
    score = round(total / sum(c.weight for c in components), 2)
    return FilingScore(
        stats.cik, stats.accession, stats.form, stats.fiscal_year, stats.fiscal_period,
        score, grade(score), tuple(components),
    )  # fmt: skip


def score_filings(
    con: duckdb.DuckDBPyConnection, ciks: Sequence[int] | None = None
) -> list[FilingScore]:
    """A score for every periodic filing with facts of ``ciks`` (all companies: None)."""
    shared: dict[Component, Component] = {}
    scores = [score_filing(s, shared) for s in filing_stats(con, ciks)]
    log.info("scored %d filings", len(scores))
    return scores


def score_companies(
    con: duckdb.DuckDBPyConnection, scores: Sequence[FilingScore] | None = None
) -> list[CompanyScore]:
    """One score per company with scored filings, by CIK; ``scores`` defaults to scoring
    every filing now."""
    by_cik: dict[int, list[FilingScore]] = {}
    for filing in score_filings(con) if scores is None else scores:
        by_cik.setdefault(filing.cik, []).append(filing)
    names = dict(
        con.execute(
            "SELECT cik, name FROM companies WHERE list_contains(?, cik)", [sorted(by_cik)]
        ).fetchall()
    )
    companies = []
    for cik, filings in sorted(by_cik.items()):
        mean = round(sum(f.score for f in filings) / len(filings), 2)
        distribution = {letter: sum(f.grade == letter for f in filings) for _, letter in GRADES}
        companies.append(
            CompanyScore(cik, names.get(cik), len(filings), mean, grade(mean), distribution)
        )
    return companies
