"""Typed records passed between the pipeline stages (download -> parse -> load)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa

from finloom_core.parse.submissions import CompanyRecord


@dataclass(frozen=True, slots=True)
class CompanyDocuments:
    """What a source holds for one company, still undecoded where possible.

    ``companyfacts`` is None when the company has no XBRL facts (404 / no file);
    ``submissions`` is the main document followed by its older-filings pages (JSON bytes),
    or empty.
    """

    cik: int
    companyfacts: bytes | None
    submissions: tuple[bytes, ...] = ()
    origin: str = ""
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedCompany:
    cik: int
    company: CompanyRecord
    facts: pa.Table | None
    filings: pa.Table
    has_submissions: bool
    facts_sha256: str | None
    submissions_sha256: str | None
    warnings: tuple[str, ...] = ()


class Status(StrEnum):
    LOADED = "loaded"
    UNCHANGED = "unchanged"
    NO_XBRL = "no_xbrl_facts"
    FAILED = "failed"
    DEFERRED = "deferred"


@dataclass(frozen=True, slots=True)
class CompanyOutcome:
    """How one company fared in a run; ``reason`` says why it failed or was deferred."""

    cik: int
    status: Status
    name: str | None = None
    facts: int = 0
    filings: int = 0
    reason: str | None = None
    stage: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.status not in (Status.FAILED, Status.DEFERRED)
