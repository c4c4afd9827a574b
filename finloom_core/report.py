"""Run summaries: per-company outcomes -> counts, a markdown report, and the failure verdict."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from finloom_core.cik import cik10
from finloom_core.errors import FinloomError
from finloom_core.records import CompanyOutcome, Status

MAX_REPORT_ROWS = 500


@dataclass(frozen=True, slots=True)
class RunSummary:
    source: str
    companies: int
    by_status: dict[str, int]
    facts: int
    filings: int
    failed: tuple[CompanyOutcome, ...]
    deferred: tuple[CompanyOutcome, ...]
    financials: int = 0  # standardized financials rows rebuilt for the changed companies

    @property
    def ok(self) -> bool:
        return not self.failed and not self.deferred

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "companies": self.companies,
            "by_status": self.by_status,
            "facts": self.facts,
            "filings": self.filings,
            "financials": self.financials,
            "failed": [_row(o) for o in self.failed],
            "deferred": [_row(o) for o in self.deferred],
        }


class IncompleteRunError(FinloomError):
    """A run finished but some companies failed or were deferred; carries the summary."""

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        self.summary = summary or {}
        super().__init__(message)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (str(self), self.summary))


def summarize(outcomes: Sequence[CompanyOutcome], *, source: str) -> RunSummary:
    counts = Counter(o.status.value for o in outcomes)
    return RunSummary(
        source=source,
        companies=len(outcomes),
        by_status={s.value: counts.get(s.value, 0) for s in Status},
        facts=sum(o.facts for o in outcomes if o.ok),
        filings=sum(o.filings for o in outcomes if o.ok),
        failed=tuple(o for o in outcomes if o.status is Status.FAILED),
        deferred=tuple(o for o in outcomes if o.status is Status.DEFERRED),
        financials=sum(o.financials for o in outcomes),
    )


def verdict(summary: RunSummary) -> IncompleteRunError | None:
    """The error a run should end with, naming the failed and deferred companies, or None."""
    if summary.ok:
        return None
    parts = []
    if summary.failed:
        parts.append(f"{len(summary.failed)} failed ({_names(summary.failed)})")
    if summary.deferred:
        parts.append(
            f"{len(summary.deferred)} deferred because the SEC circuit was open "
            f"({_names(summary.deferred)})"
        )
    return IncompleteRunError(f"backfill incomplete: {'; '.join(parts)}", summary=summary.as_dict())


def summary_markdown(summary: RunSummary, outcomes: Sequence[CompanyOutcome]) -> str:
    """The run report published as a Prefect artifact: problems first, then every company."""
    lines = [
        f"# FinLoom backfill: {'complete' if summary.ok else 'INCOMPLETE'}",
        "",
        f"Source: `{summary.source}`; companies: {summary.companies}; "
        f"facts stored: {summary.facts:,}; filings stored: {summary.filings:,}; "
        f"financials rows rebuilt (companies whose facts changed): {summary.financials:,}.",
        "",
        "| status | companies |",
        "|---|---:|",
        *(f"| {status} | {n} |" for status, n in summary.by_status.items() if n),
        "",
        "| CIK | company | status | facts | filings | financials | note |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    ordered = sorted(outcomes, key=lambda o: (o.ok, o.status.value, o.cik))
    for outcome in ordered[:MAX_REPORT_ROWS]:
        lines.append(
            f"| {cik10(outcome.cik)} | {_cell(outcome.name or '')} | {outcome.status.value} "
            f"| {outcome.facts:,} | {outcome.filings:,} | {outcome.financials:,} "
            f"| {_cell(note(outcome))} |"
        )
    if len(ordered) > MAX_REPORT_ROWS:
        lines.append(f"\n{len(ordered) - MAX_REPORT_ROWS} more companies not listed.")
    return "\n".join(lines) + "\n"


def note(outcome: CompanyOutcome) -> str:
    """One-line explanation of an outcome for reports and the CLI table."""
    if outcome.reason:
        return f"{outcome.stage}: {outcome.reason}" if outcome.stage else outcome.reason
    if outcome.status is Status.NO_XBRL:
        return "no XBRL facts at SEC (companies and filings stored)"
    if outcome.status is Status.UNCHANGED:
        return "source unchanged since last load"
    if outcome.warnings:
        return "; ".join(outcome.warnings)
    return ""


def _row(outcome: CompanyOutcome) -> dict[str, Any]:
    return {"cik": outcome.cik, "name": outcome.name, "stage": outcome.stage,
            "reason": outcome.reason}  # fmt: skip


def _names(outcomes: Sequence[CompanyOutcome], limit: int = 10) -> str:
    names = [f"CIK {o.cik}" for o in outcomes[:limit]]
    more = f" and {len(outcomes) - limit} more" if len(outcomes) > limit else ""
    return ", ".join(names) + more


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]
