"""Rendering a quality run as text: pure functions of the typed results (results.py).

The flow's artifacts (the ``finloom-quality-report`` markdown and the rows of the
``finloom-quality-scores`` table) and the ``finloom quality`` tables are built from these,
so the two always say the same. CIKs are shown as 10-digit text, scores with one decimal.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from finloom_core.cik import cik10
from finloom_core.quality.results import (
    CheckResult,
    CompanyScore,
    Component,
    FilingScore,
    QualityReport,
)
from finloom_core.quality.scoring import GRADES

WORST_FILINGS = 10
REASON_WIDTH = 160  # one component's reason in the reasons line
ELLIPSIS = "…"
# the fields that name an affected record in a check's sample, in the order shown
SAMPLE_KEYS = ("cik", "accession", "metric", "concept", "fiscal_year", "fiscal_period", "source",
               "target")  # fmt: skip


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one an ellipsis when it was longer."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + ELLIPSIS


def reasons(filing: FilingScore, limit: int = 3) -> str:
    """The components that cost the most points, as one line (``-``: none cost any)."""
    parts = [f"{c.name}: {c.reason}" for c in filing.costly()[:limit]]
    return "; ".join(clip(p, REASON_WIDTH) for p in parts) or "-"


def short_reason(component: Component) -> str:
    """A component's reason without the detail in its closing parentheses."""
    return re.sub(r"\s*\([^()]*\)$", "", component.reason)


def worst_reason(filing: FilingScore, width: int = 60) -> str:
    """The costliest component and its short reason, cut to ``width`` (``-``: none cost
    points), e.g. ``identities: fails: eps``."""
    costly = filing.costly()
    return clip(f"{costly[0].name}: {short_reason(costly[0])}", width) if costly else "-"


def score_row(filing: FilingScore) -> dict[str, Any]:
    """One row of the scores table artifact."""
    return {
        "cik": cik10(filing.cik),
        "accession": filing.accession,
        "form": filing.form,
        "fiscal_year": filing.fiscal_year,
        "fiscal_period": filing.fiscal_period,
        "score": round(filing.score, 1),
        "grade": filing.grade,
        "reasons": reasons(filing),
    }


def worst_first(filings: Iterable[FilingScore]) -> list[FilingScore]:
    """Lowest score first (then by CIK and accession, so equal scores keep one order)."""
    return sorted(filings, key=lambda f: (f.score, f.cik, f.accession))


def score_rows(filings: Iterable[FilingScore], limit: int | None = None) -> list[dict[str, Any]]:
    """The scores table artifact: one row per filing, worst first; with ``limit``, only
    the ``limit`` worst."""
    ordered = worst_first(filings)
    return [score_row(f) for f in (ordered if limit is None else ordered[:limit])]


def grade_counts(filings: Iterable[FilingScore]) -> list[tuple[str, int]]:
    """(grade, filings) for every grade A-F."""
    counts = Counter(f.grade for f in filings)
    return [(letter, counts[letter]) for _, letter in GRADES]


def company_grade_counts(companies: Iterable[CompanyScore]) -> list[tuple[str, int]]:
    """(grade, filings) for every grade A-F, over the companies' filings."""
    totals: Counter[str] = Counter()
    for company in companies:
        totals.update(company.grade_distribution)
    return [(letter, totals[letter]) for _, letter in GRADES]


def _sample_field(key: str, value: Any) -> str:
    if key == "cik" and isinstance(value, int):
        return f"cik {cik10(value)}"
    return f"{key.replace('_', ' ')} {value}"


def sample_text(check: CheckResult, width: int = 120) -> str:
    """The first affected record of a check as text, and how many more there are:
    ``cik 0000320193 accession 0000320193-23-000106 (+12 more)`` (``-``: none)."""
    if not check.sample:
        return "-"
    first: Mapping[str, Any] = check.sample[0]
    keys = [k for k in SAMPLE_KEYS if first.get(k) is not None] or list(first)[:3]
    text = " ".join(_sample_field(k, first[k]) for k in keys)
    more = check.sampled_from - 1
    suffix = f" (+{more} more)" if more > 0 else ""
    return clip(text, width - len(suffix)) + suffix


def _cell(value: Any) -> str:
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], align: str, rows: Iterable[Sequence[Any]]) -> list[str]:
    """A markdown table; ``align`` has one letter per column, ``l`` or ``r``."""
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def _summary(report: QualityReport) -> list[str]:
    failing = report.failing()
    scored = [f.score for f in report.filings]
    mean = f", mean score {sum(scored) / len(scored):.1f}" if scored else ""
    status = "CRITICAL" if report.critical else ("findings" if failing else "clean")
    critical = f"; critical: {', '.join(report.critical)}" if report.critical else ""
    lines = [
        f"# FinLoom data quality: {status}",
        "",
        f"- scope: {scope_label(report)}",
        f"- run: `{report.run_id}`",
        f"- reconciliation: {len(report.checks) - len(failing)} of {len(report.checks)} "
        f"checks passed{critical}",
        f"- filings scored: {len(report.filings)}{mean}",
    ]
    if report.expectations_summary:
        parts = [
            f"{table} {'passed' if s.success else 'FAILED'}"
            + (f" ({len(s.failed)} failed)" if s.failed else "")
            for table, s in report.expectations_summary.items()
        ]
        lines.append(f"- Great Expectations: {', '.join(parts)}")
    return lines


def scope_label(report: QualityReport) -> str:
    """``4 companies changed by this run``, ``whole warehouse (1,017 companies)``, or
    ``not recorded`` for a report built without a scope."""
    return report.scope.label if report.scope is not None else "not recorded"


def _grades(report: QualityReport) -> list[str]:
    """This run's grades, and beside them the warehouse's (latest stored score per filing)."""
    run = grade_counts(report.filings)
    if not report.warehouse_grades:
        return _table(("grade", "filings"), "lr", run)
    rows = [(letter, n, report.warehouse_grades.get(letter, 0)) for letter, n in run]
    stored = sum(report.warehouse_grades.values())
    note = [f"Warehouse: the latest stored score of each of its {stored:,} scored filings.", ""]
    return note + _table(("grade", "filings (this run)", "filings (warehouse)"), "lrr", rows)


def _failing_checks(report: QualityReport) -> list[str]:
    failing = report.failing()
    if not failing:
        return ["none"]
    rows = [(c.check, c.severity, f"{c.affected_records:,}", sample_text(c)) for c in failing]
    return _table(("check", "severity", "affected records", "sample"), "llrl", rows)


def _worst_filings(report: QualityReport) -> list[str]:
    worst = worst_first(report.filings)[:WORST_FILINGS]
    if not worst:
        return ["no filings scored"]
    rows = [
        (cik10(f.cik), f.accession, f.form, f"{f.fiscal_year} {f.fiscal_period}",
         f"{f.score:.1f}", f.grade, reasons(f))
        for f in worst
    ]  # fmt: skip
    return _table(("CIK", "accession", "form", "period", "score", "grade", "why"), "llllrll", rows)


def _companies(report: QualityReport) -> list[str]:
    letters = [letter for _, letter in GRADES]
    rows = [
        (cik10(c.cik), c.name, c.filings, f"{c.score:.1f}", c.grade,
         *(c.grade_distribution.get(letter, 0) for letter in letters))
        for c in report.companies
    ]  # fmt: skip
    header = ("CIK", "name", "filings", "score", "grade", *letters)
    return _table(header, "llrrl" + "r" * len(letters), rows)


def report_markdown(report: QualityReport) -> str:
    """The ``finloom-quality-report`` artifact: summary, failing checks (with a sample),
    the worst filings and why, the grade distribution and the companies."""
    lines = _summary(report)
    lines += ["", "## Failing checks", "", *_failing_checks(report)]
    lines += ["", f"## Worst {WORST_FILINGS} filings", "", *_worst_filings(report)]
    lines += ["", "## Grade distribution", ""]
    if report.filings or report.warehouse_grades:
        lines += _grades(report)
    else:
        lines.append("no filings scored")
    if report.companies:
        lines += ["", "## Companies", "", *_companies(report)]
    return "\n".join(lines) + "\n"
