"""Run summaries: per-company outcomes -> counts, a markdown report, and the failure verdict.

Everything a summary says goes through ``finloom_core.redact`` (URL credentials, secret
values): the summary is printed on stdout and published as a Prefect artifact.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finloom_core.cik import cik10
from finloom_core.errors import IncompleteRunError
from finloom_core.records import CompanyOutcome, Status
from finloom_core.redact import redact, redact_value

if TYPE_CHECKING:
    from finloom_core.quality.results import QualityReport

MAX_REPORT_ROWS = 500
LIST_EVERY_COMPANY = 25  # up to this many companies, the summary lists each one
GRADES = ("A", "B", "C", "D", "F")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunSummary:
    source: str
    companies: int
    by_status: dict[str, int]
    facts: int
    filings: int
    failed: tuple[CompanyOutcome, ...]
    deferred: tuple[CompanyOutcome, ...]
    financials: int = 0  # financials rows rebuilt: changed companies and any left behind
    facts_written: int = 0  # facts of the companies this run loaded (unchanged ones write none)
    noted: tuple[CompanyOutcome, ...] = ()  # loaded or unchanged, with a note (warnings)
    outcomes: tuple[CompanyOutcome, ...] = ()  # every company, when at most LIST_EVERY_COMPANY
    quality: dict[str, Any] | None = None  # the quality subflow's digest (quality_digest)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.deferred

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": redact(self.source),
            "companies": self.companies,
            "by_status": self.by_status,
            "facts": self.facts,
            "facts_written": self.facts_written,
            "filings": self.filings,
            "financials": self.financials,
            "failed": [_row(o) for o in self.failed],
            "deferred": [_row(o) for o in self.deferred],
            "noted": [_row(o) for o in self.noted],
            "per_company": [_row(o) for o in self.outcomes],
            "quality": redact_value(self.quality),
        }


def summarize(
    outcomes: Sequence[CompanyOutcome], *, source: str, filings: int | None = None
) -> RunSummary:
    """Counts of a run. ``facts`` are the facts its companies hold in the warehouse;
    ``facts_written`` only those of the companies it loaded (an unchanged company writes
    nothing). ``filings`` is the number of distinct filings its companies list, as
    :func:`stored_filings` counts it; without it, the per-company counts are added up (a
    filing listed by two companies, e.g. an insider's Form 4, then counts twice)."""
    counts = Counter(o.status.value for o in outcomes)
    return RunSummary(
        source=source,
        companies=len(outcomes),
        by_status={s.value: counts.get(s.value, 0) for s in Status},
        facts=sum(o.facts for o in outcomes if o.ok),
        filings=sum(o.filings for o in outcomes if o.ok) if filings is None else filings,
        failed=tuple(o for o in outcomes if o.status is Status.FAILED),
        deferred=tuple(o for o in outcomes if o.status is Status.DEFERRED),
        financials=sum(o.financials for o in outcomes),
        facts_written=sum(o.facts for o in outcomes if o.status is Status.LOADED),
        noted=tuple(o for o in outcomes if o.ok and o.warnings),
        outcomes=tuple(outcomes) if len(outcomes) <= LIST_EVERY_COMPANY else (),
    )


def stored_filings(db_path: str, outcomes: Sequence[CompanyOutcome]) -> int | None:
    """Distinct filings (accessions of ``filings``) listed by the run's loaded or unchanged
    companies; None when the warehouse cannot be read (the caller falls back to the sum)."""
    from finloom_core.storage.database import open_warehouse

    ciks = [o.cik for o in outcomes if o.ok]
    if not ciks:
        return 0
    try:
        with open_warehouse(db_path, read_only=True) as con:
            row = con.execute(
                "SELECT count(DISTINCT accession) FROM filing_companies"
                " WHERE list_contains(?, cik)",
                [ciks],
            ).fetchone()
    except Exception as exc:  # a count for the summary never fails the run
        log.warning("could not count the stored filings: %s", str(exc).splitlines()[0])
        return None
    return int(row[0]) if row else 0


def quality_digest(report: QualityReport) -> dict[str, Any]:
    """What a backfill tells of its quality subflow: filings scored by grade, the critical
    findings, the Great Expectations tables that failed, where the Data Docs are, the
    scope (e.g. "2 companies changed by this run") and the warehouse-wide grades (the latest
    stored score of every filing)."""
    grades = Counter(f.grade for f in report.filings if f.grade)
    return {
        "filings_scored": sum(grades.values()),
        "grades": {g: grades.get(g, 0) for g in GRADES},
        "critical": list(report.critical),
        "expectations_failed": sorted(
            table for table, suite in report.expectations_summary.items() if not suite.success
        ),
        "data_docs": report.data_docs,
        "scope": report.scope.label if report.scope is not None else None,
        "warehouse_grades": dict(report.warehouse_grades),
    }


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
        f"facts stored: {summary.facts:,} (written by this run: {summary.facts_written:,}); "
        f"filings stored: {summary.filings:,}; "
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
    return redact("\n".join(lines) + "\n")


def note(outcome: CompanyOutcome) -> str:
    """One-line explanation of an outcome for reports and the CLI table (redacted)."""
    if outcome.reason:
        return redact(f"{outcome.stage}: {outcome.reason}" if outcome.stage else outcome.reason)
    parts: list[str] = []
    if outcome.status is Status.NO_XBRL:
        parts.append("no XBRL facts at SEC (companies and filings stored)")
    elif outcome.status is Status.UNCHANGED:
        parts.append("source unchanged since last load")
    return redact("; ".join([*parts, *outcome.warnings]))


def _row(outcome: CompanyOutcome) -> dict[str, Any]:
    reason = None if outcome.reason is None else redact(outcome.reason)
    return {"cik": outcome.cik, "name": outcome.name, "stage": outcome.stage,
            "reason": reason, "status": outcome.status.value, "facts": outcome.facts,
            "filings": outcome.filings, "note": note(outcome)}  # fmt: skip


def _names(outcomes: Sequence[CompanyOutcome], limit: int = 10) -> str:
    names = [f"CIK {o.cik}" for o in outcomes[:limit]]
    more = f" and {len(outcomes) - limit} more" if len(outcomes) > limit else ""
    return ", ".join(names) + more


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]
