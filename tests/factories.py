"""Builders of small synthetic EDGAR payloads (companyfacts, submissions, ticker map).

They produce the same JSON shapes SEC serves (see /work/shared/DOMAIN.md), so tests can
state exactly the facts and filings they need.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from finloom_core.edgar.tickers import TickerMap
from finloom_core.errors import SourceError
from finloom_core.records import CompanyDocuments
from finloom_core.staging import FactsDocument, reference_file, stage_bytes


def accession(cik: int, year: int, seq: int) -> str:
    """An accession number in EDGAR's layout: 10-digit filer, 2-digit year, 6-digit sequence."""
    return f"{cik:010d}-{year % 100:02d}-{seq:06d}"


@dataclass(frozen=True)
class Fact:
    """One companyfacts data point and where it sits (taxonomy, concept, unit)."""

    concept: str
    val: float | int
    accn: str
    end: str
    start: str | None = None
    taxonomy: str = "us-gaap"
    unit: str = "USD"
    fy: int | None = 2023
    fp: str | None = "FY"
    form: str = "10-K"
    filed: str = "2023-11-03"
    frame: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The JSON object SEC puts in ``units[unit]``; optional keys are left out when None."""
        row: dict[str, Any] = {}
        if self.start is not None:
            row["start"] = self.start
        row |= {"end": self.end, "val": self.val, "accn": self.accn, "fy": self.fy}
        row |= {"fp": self.fp, "form": self.form, "filed": self.filed}
        if self.frame is not None:
            row["frame"] = self.frame
        return row | self.extra


def companyfacts_doc(
    cik: int | str, facts: Iterable[Fact] = (), *, entity_name: str = "Test Co"
) -> dict[str, Any]:
    """``{"cik", "entityName", "facts": {taxonomy: {concept: {"units": {unit: [...]}}}}}``."""
    tree: dict[str, Any] = {}
    for f in facts:
        concept = tree.setdefault(f.taxonomy, {}).setdefault(
            f.concept, {"label": f.concept, "description": None, "units": {}}
        )
        concept["units"].setdefault(f.unit, []).append(f.row())
    return {"cik": cik, "entityName": entity_name, "facts": tree}


@dataclass(frozen=True)
class Filing:
    """One filing as a row of submissions' column arrays."""

    accn: str
    form: str = "10-K"
    filed: str = "2023-11-03"
    report_date: str = "2023-09-30"
    acceptance: str = "2023-11-02T18:08:27.000Z"
    is_xbrl: int = 1
    is_inline_xbrl: int = 1
    primary_document: str = "doc.htm"
    description: str = "10-K"
    file_number: str = "001-00001"
    size: int = 1000


_FILING_COLUMNS = (
    ("accessionNumber", "accn"),
    ("filingDate", "filed"),
    ("reportDate", "report_date"),
    ("acceptanceDateTime", "acceptance"),
    ("form", "form"),
    ("fileNumber", "file_number"),
    ("size", "size"),
    ("isXBRL", "is_xbrl"),
    ("isInlineXBRL", "is_inline_xbrl"),
    ("primaryDocument", "primary_document"),
    ("primaryDocDescription", "description"),
)


def filing_columns(filings: Sequence[Filing]) -> dict[str, list[Any]]:
    """Column arrays as in ``filings.recent`` and in the bare ``-submissions-NNN.json`` pages."""
    return {key: [getattr(f, attr) for f in filings] for key, attr in _FILING_COLUMNS}


def submissions_doc(
    cik: int,
    filings: Sequence[Filing] = (),
    *,
    name: str = "Test Co",
    tickers: Sequence[str] = ("TST",),
    exchanges: Sequence[str] = ("Nasdaq",),
    sic: str = "3571",
    sic_description: str = "Electronic Computers",
    fiscal_year_end: str = "0930",
    pages: Sequence[str] = (),
    **extra: Any,
) -> dict[str, Any]:
    """A main submissions document; ``pages`` are the file names listed in ``filings.files``."""
    return {
        "cik": f"{cik:010d}",
        "entityType": "operating",
        "sic": sic,
        "sicDescription": sic_description,
        "name": name,
        "tickers": list(tickers),
        "exchanges": list(exchanges),
        "ein": "942404110",
        "category": "Large Accelerated Filer",
        "fiscalYearEnd": fiscal_year_end,
        "stateOfIncorporation": "CA",
        "formerNames": [],
        "filings": {
            "recent": filing_columns(filings),
            "files": [{"name": p, "filingCount": 0} for p in pages],
        },
        **extra,
    }


def company_tickers_doc(rows: Iterable[tuple[int, str, str]]) -> dict[str, Any]:
    """SEC's company_tickers.json: ``{"0": {"cik_str", "ticker", "title"}, ...}``."""
    return {
        str(i): {"cik_str": cik, "ticker": ticker, "title": title}
        for i, (cik, ticker, title) in enumerate(rows)
    }


def to_bytes(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _test_dir() -> Path:
    """A fresh temporary folder, removed when the test session ends."""
    path = Path(tempfile.mkdtemp(prefix="finloom-test-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def facts_document(
    cik: int,
    doc: dict[str, Any] | bytes,
    directory: Path | None = None,
    *,
    staged: bool = False,
) -> FactsDocument:
    """A companyfacts document (a dict, or raw bytes) written to ``CIK##########.json``.

    The file goes to ``directory`` or, by default, to a fresh temporary folder (so two
    documents never share a file). ``staged=True`` makes it a staged copy, as the API and
    zip sources hand over (deleted once loaded); by default it is referenced in place, as a
    folder source's file, and survives loads (a MemorySource serves it again).
    """
    data = doc if isinstance(doc, bytes) else to_bytes(doc)
    folder = _test_dir() if directory is None else directory
    staged_doc = stage_bytes(folder, cik, data)
    return staged_doc if staged else reference_file(staged_doc.path)


def company_documents(
    cik: int,
    facts: dict[str, Any] | bytes | None = None,
    submissions: Sequence[dict[str, Any]] = (),
    *,
    origin: str = "test",
    directory: Path | None = None,
    staged: bool = False,
) -> CompanyDocuments:
    """What a source would hand over for ``cik``: the companyfacts document written to a file
    (see facts_document) and the submissions documents as bytes."""
    document = None if facts is None else facts_document(cik, facts, directory, staged=staged)
    return CompanyDocuments(
        cik=cik,
        companyfacts=document,
        submissions=tuple(to_bytes(doc) for doc in submissions),
        origin=origin,
    )


class MemorySource:
    """A Source serving prepared CompanyDocuments (no network; companyfacts are the files
    company_documents wrote, so a rerun over the same source reads them again)."""

    name = "memory"

    def __init__(self, docs: Iterable[CompanyDocuments]) -> None:
        self.docs = {d.cik: d for d in docs}

    def available_ciks(self) -> list[int]:
        return sorted(self.docs)

    def ticker_map(self) -> TickerMap:
        raise SourceError("no ticker map in memory")

    def fetch(self, cik: int) -> CompanyDocuments:
        return self.docs.get(cik) or CompanyDocuments(cik, None)

    def close(self) -> None:
        return None


def count_facts_in_json(path: Path) -> int:
    """Facts in a companyfacts file, counted independently of FinLoom's parser."""
    doc = json.loads(path.read_bytes())
    return sum(
        len(rows)
        for concepts in doc["facts"].values()
        for body in concepts.values()
        for rows in body["units"].values()
    )


COMMIT_FAILURE = 'IO Error: Cannot open file "w.duckdb.wal": Read-only file system'


class FailingCommit:
    """A DuckDB connection whose ``COMMIT`` fails, as when the write-ahead log cannot be
    created in a read-only folder; every other statement goes to the real connection.

    ``ends_transaction``: the failed COMMIT has ended the transaction, as DuckDB's does, so
    a ROLLBACK then fails too ("no transaction is active"); otherwise the transaction stays
    open until someone rolls it back. ``statements`` records the transaction verbs seen.
    """

    def __init__(self, con: Any, *, ends_transaction: bool) -> None:
        self._con = con
        self.ends_transaction = ends_transaction
        self.statements: list[str] = []

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        verb = sql.strip().split()[0].upper()
        if verb in ("BEGIN", "COMMIT", "ROLLBACK"):
            self.statements.append(verb)
        if verb == "COMMIT":
            if self.ends_transaction:
                self._con.execute("ROLLBACK")
            raise duckdb.IOException(COMMIT_FAILURE)
        return self._con.execute(sql, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


class StepClock:
    """A monotonic clock for a limiter under test: it only moves when someone sleeps, and
    every sleep must be positive (a limiter never waits for nothing)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds
