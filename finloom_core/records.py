"""Typed records passed between the pipeline stages (download -> parse -> load).

A bottom-floor module: the parsers and the loader import these records, never the
other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa

from finloom_core.staging import FactsDocument
from finloom_core.validators import Validators

# (url, validators) of each downloaded document, stored with its content
DocumentValidators = tuple[tuple[str, Validators], ...]


@dataclass(frozen=True, slots=True)
class CompanyRecord:
    """One company's row of the ``companies`` table, from its submissions document (or,
    without one, its companyfacts entity name)."""

    cik: int
    name: str | None
    tickers: tuple[str, ...] = ()
    exchanges: tuple[str, ...] = ()
    sic: str | None = None
    sic_description: str | None = None
    fiscal_year_end: str | None = None
    entity_type: str | None = None
    category: str | None = None
    state_of_incorporation: str | None = None
    ein: str | None = None
    former_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CompanyDocuments:
    """What a source holds for one company, still undecoded.

    ``companyfacts`` is the document on disk, None when the company has no XBRL facts
    (404 / no file);
    ``submissions`` is the main document followed by its older-filings pages (JSON bytes),
    or empty;
    ``origin`` names the source (a folder, an archive, ``sec-api``); ``facts_origin`` and
    ``submissions_origin`` say where each document came from (a URL, a file path or
    ``archive.zip:member``), for the errors that refuse them;
    ``validators`` are the HTTP validators of the downloaded documents (stored with them);
    ``not_modified``: SEC answered 304 for every document, the stored copy is current
    (nothing else is set).
    """

    cik: int
    companyfacts: FactsDocument | None
    submissions: tuple[bytes, ...] = ()
    origin: str = ""
    warnings: tuple[str, ...] = ()
    facts_origin: str = ""
    submissions_origin: str = ""
    validators: DocumentValidators = ()
    not_modified: bool = False


@dataclass(frozen=True, slots=True)
class ParsedCompany:
    """A company ready to load: records parsed, companyfacts validated and left on disk for
    DuckDB's JSON reader (``facts`` is None when the company has no XBRL facts)."""

    cik: int
    company: CompanyRecord
    facts: FactsDocument | None
    filings: pa.Table
    has_submissions: bool
    submissions_sha256: str | None
    warnings: tuple[str, ...] = ()
    validators: DocumentValidators = ()  # stored in the transaction that loads the company
    not_modified: bool = False  # 304 for every document: unchanged, nothing to load

    @property
    def facts_sha256(self) -> str | None:
        return None if self.facts is None else self.facts.sha256


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
    financials: int = 0  # standardized financials rows rebuilt for it (0: not normalized)

    @property
    def ok(self) -> bool:
        return self.status not in (Status.FAILED, Status.DEFERRED)
