"""The typed results of a quality run: checks, filing and company scores, the report.

Frozen, slotted dataclasses: what the reconciliation engine, the scorer and the Great
Expectations summary hand back, and what the flow's tasks, the flow and the ``finloom
quality`` commands pass and read. ``to_dict()`` gives each one's JSON form (``finloom
quality full --json``); bulk rows go to DuckDB as Arrow tables (store.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("info", "warning", "error", "critical")
SAMPLE_SIZE = 20


def jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it: numbers, text, booleans and lists as they are, dates
    and anything else as text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One reconciliation check: ``detail`` holds its counts (JSON-ready), ``sample`` at most
    :data:`SAMPLE_SIZE` of the affected keys, taken from ``sampled_from`` of them."""

    check: str
    severity: str
    passed: bool
    affected_records: int
    detail: Mapping[str, Any] = field(default_factory=dict)
    sample: tuple[Mapping[str, Any], ...] = ()
    sampled_from: int = 0

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")

    @classmethod
    def of(
        cls,
        check: str,
        severity: str,
        affected_records: int,
        detail: Mapping[str, Any],
        affected: Sequence[Mapping[str, Any]],
        *,
        passed: bool | None = None,
    ) -> CheckResult:
        """A result whose sample is the first of the ``affected`` rows (passed: none is)."""
        sample = tuple({k: jsonable(v) for k, v in r.items()} for r in affected[:SAMPLE_SIZE])
        ok = not affected if passed is None else passed
        return cls(check, severity, ok, affected_records, detail, sample, len(affected))

    @property
    def critical(self) -> bool:
        return not self.passed and self.severity == "critical"

    def to_dict(self) -> dict[str, Any]:
        """The stored and JSON form: the sample and its size inside ``detail``."""
        detail = {**self.detail, "sample": [dict(r) for r in self.sample]}
        return {
            "check": self.check,
            "severity": self.severity,
            "passed": self.passed,
            "affected_records": self.affected_records,
            "detail": detail | {"sampled_from": self.sampled_from},
        }


@dataclass(frozen=True, slots=True)
class Component:
    """One component of a filing's score: 0-100, its weight in the mean, and why."""

    name: str
    score: float
    weight: float
    reason: str

    @property
    def lost(self) -> float:
        """Points of the filing's 0-100 score this component cost (weights sum to 100)."""
        return self.weight * (100.0 - self.score) / 100.0

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "weight": self.weight, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class FilingScore:
    cik: int
    accession: str
    form: str | None
    fiscal_year: int | None
    fiscal_period: str | None
    score: float
    grade: str
    components: tuple[Component, ...]

    def component(self, name: str) -> Component:
        for component in self.components:
            if component.name == name:
                return component
        raise KeyError(name)

    def costly(self) -> list[Component]:
        """The components that cost points, most costly first."""
        return sorted((c for c in self.components if c.lost > 0), key=lambda c: -c.lost)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cik": self.cik,
            "accession": self.accession,
            "form": self.form,
            "fiscal_year": self.fiscal_year,
            "fiscal_period": self.fiscal_period,
            "score": self.score,
            "grade": self.grade,
            "components": {c.name: c.to_dict() for c in self.components},
        }


@dataclass(frozen=True, slots=True)
class CompanyScore:
    """A company's mean filing score, its grade, and how many of its filings got each grade
    (``grade_distribution``: every letter A-F, in that order)."""

    cik: int
    name: str | None
    filings: int
    score: float
    grade: str
    grade_distribution: Mapping[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cik": self.cik,
            "name": self.name,
            "filings": self.filings,
            "score": self.score,
            "grade": self.grade,
            "grade_distribution": dict(self.grade_distribution),
        }


@dataclass(frozen=True, slots=True)
class FailedExpectation:
    expectation: str
    column: str | tuple[str, ...] | None
    unexpected_count: int | None

    def to_dict(self) -> dict[str, Any]:
        column = list(self.column) if isinstance(self.column, tuple) else self.column
        return {
            "expectation": self.expectation,
            "column": column,
            "unexpected_count": self.unexpected_count,
        }


@dataclass(frozen=True, slots=True)
class SuiteSummary:
    """One Great Expectations suite's outcome (``error``: the table could not be read)."""

    success: bool
    evaluated: int
    failed: tuple[FailedExpectation, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "success": self.success,
            "evaluated": self.evaluated,
            "failed": [f.to_dict() for f in self.failed],
        }
        return data if self.error is None else data | {"error": self.error}


@dataclass(frozen=True, slots=True)
class Scope:
    """The companies a quality run covers: ``ciks`` None means the whole warehouse;
    ``companies`` how many there are, ``reason`` why these (e.g. "changed by this run")."""

    ciks: tuple[int, ...] | None
    companies: int
    reason: str = "selected"

    @classmethod
    def of(cls, ciks: Sequence[int] | None, companies: int, reason: str = "selected") -> Scope:
        wanted = None if ciks is None else tuple(sorted({int(c) for c in ciks}))
        return cls(wanted, len(wanted) if wanted is not None else companies, reason)

    @property
    def whole(self) -> bool:
        return self.ciks is None

    @property
    def label(self) -> str:
        """``whole warehouse (1,017 companies)`` or ``4 companies changed by this run``."""
        noun = "company" if self.companies == 1 else "companies"
        if self.whole:
            return f"whole warehouse ({self.companies:,} {noun})"
        return f"{self.companies:,} {noun} {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "whole_warehouse": self.whole,
            "companies": self.companies,
            "ciks": None if self.ciks is None else list(self.ciks),
            "label": self.label,
        }


@dataclass(frozen=True, slots=True)
class QualityReport:
    """One quality run: its checks, scores, Great Expectations results (GX's own result
    dicts, by table) and their summary, the names of the failed critical checks, and the
    Data Docs page when one was written. ``scope`` says which companies the run covers;
    ``warehouse_grades`` is the grade distribution of the latest stored score of every
    filing of the warehouse (this run's and earlier runs'), A-F."""

    run_id: str
    checks: tuple[CheckResult, ...]
    filings: tuple[FilingScore, ...]
    companies: tuple[CompanyScore, ...]
    expectations: Mapping[str, Any] = field(default_factory=dict)
    expectations_summary: Mapping[str, SuiteSummary] = field(default_factory=dict)
    critical: tuple[str, ...] = ()
    data_docs: str | None = None
    scope: Scope | None = None
    warehouse_grades: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        run_id: str,
        checks: Sequence[CheckResult],
        filings: Sequence[FilingScore],
        companies: Sequence[CompanyScore],
        expectations: Mapping[str, Any] | None = None,
        expectations_summary: Mapping[str, SuiteSummary] | None = None,
        *,
        scope: Scope | None = None,
        warehouse_grades: Mapping[str, int] | None = None,
    ) -> QualityReport:
        """A report whose ``critical`` names every failed check of severity critical."""
        critical = tuple(c.check for c in checks if c.critical)
        return cls(
            run_id,
            tuple(checks),
            tuple(filings),
            tuple(companies),
            dict(expectations or {}),
            dict(expectations_summary or {}),
            critical,
            scope=scope,
            warehouse_grades=dict(warehouse_grades or {}),
        )

    def failing(self) -> list[CheckResult]:
        """The failed checks, most severe first."""
        failed = (c for c in self.checks if not c.passed)
        return sorted(failed, key=lambda c: -SEVERITIES.index(c.severity))

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "reconciliation": [c.to_dict() for c in self.checks],
            "scores": [f.to_dict() for f in self.filings],
            "companies": [c.to_dict() for c in self.companies],
            "expectations": dict(self.expectations),
            "expectations_summary": {t: s.to_dict() for t, s in self.expectations_summary.items()},
            "critical": list(self.critical),
            "data_docs": self.data_docs,
            "scope": None if self.scope is None else self.scope.to_dict(),
            "warehouse_grades": dict(self.warehouse_grades),
        }
