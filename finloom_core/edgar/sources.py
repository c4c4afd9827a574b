"""Where EDGAR documents come from: the live API, a local EDGAR folder, or SEC's bulk zips.

All three hand the same CompanyDocuments to the one downstream path (parse -> load).

- ``ApiSource``: data.sec.gov / www.sec.gov through the fair-access EdgarClient; with the
  validators of the stored documents (``known``) its requests are conditional, and a
  company whose documents all answer 304 Not Modified comes back ``not_modified``.
- ``FolderSource``: ``companyfacts/CIK##########.json``, ``submissions/CIK##########.json``
  (+ ``-submissions-NNN.json`` pages) and ``reference/company_tickers.json``.
- ``ZipSource`` (``archive.py``): ``companyfacts.zip`` (+ ``submissions.zip`` beside it,
  optional), read one member at a time so memory is bounded by the largest company.

Hostile input is refused, never read: a page name in ``filings.files`` that is not one of
the company's ``CIK##########-submissions-NNN.json`` (noted, its filings missing; see
``documents.py``); a local file that is not a regular one (FIFO, device), a page resolving
outside ``submissions/``, a document over ``MAX_DOCUMENT_BYTES`` or one stating another
company's ``cik`` fails its company; an archive with two members for one document is
unusable (SourceError).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from finloom_core.cik import cik10
from finloom_core.edgar.archive import MEMBER, ZipSource
from finloom_core.edgar.documents import check_facts_cik, submissions_with_pages
from finloom_core.edgar.tickers import TickerMap, parse_company_tickers
from finloom_core.errors import NotFoundError, ResponseParseError, SourceError
from finloom_core.parse.json_doc import HEAD_BYTES, check_document_cik, declared_cik
from finloom_core.records import CompanyDocuments
from finloom_core.staging import MAX_DOCUMENT_BYTES, read_document, reference_file, stage_bytes
from finloom_core.validators import Validators

__all__ = ("ApiSource", "FolderSource", "Source", "SourceSpec", "ZipSource", "open_source")

log = logging.getLogger(__name__)


class Source(Protocol):
    name: str

    def available_ciks(self) -> list[int]: ...

    def ticker_map(self) -> TickerMap: ...

    def fetch(self, cik: int) -> CompanyDocuments: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A picklable description of a source: ``None`` path means the live SEC API."""

    path: str | None = None

    @property
    def label(self) -> str:
        return self.path or "sec-api"


def open_source(
    spec: SourceSpec,
    client_factory: Callable[[], Any] | None = None,
    staging: Path | None = None,
    known: Mapping[str, Validators] | None = None,
) -> Source:
    """Build the source a spec names.

    ``client_factory`` makes the EdgarClient for the API (built on the run's ``SecGate``);
    ``staging`` is the folder where downloaded and archived companyfacts documents are
    written for parsing (by default a folder of this process under the temporary
    directory; the caller removes it); ``known`` holds the validators of the documents the
    warehouse stores, by URL (the API's requests for them are conditional).
    """
    if staging is None:  # created on first use only
        staging = Path(tempfile.gettempdir()) / f"finloom-staging-{os.getpid()}"
    if spec.path is None:
        if client_factory is None:
            raise SourceError("the live SEC API needs an EDGAR client")
        return ApiSource(client_factory(), staging, known)
    path = Path(spec.path).expanduser()
    if path.is_dir() and ((path / "companyfacts").is_dir() or (path / "submissions").is_dir()):
        return FolderSource(path)
    if path.is_dir() and (path / "companyfacts.zip").is_file():
        return ZipSource(path / "companyfacts.zip", staging)
    if path.is_file() and path.suffix.lower() == ".zip":
        return ZipSource(path, staging)
    if not path.exists():
        raise SourceError(f"source {path} does not exist", path=str(path))
    raise SourceError(
        f"source {path} is neither an EDGAR folder (companyfacts/, submissions/) "
        "nor a companyfacts.zip",
        path=str(path),
    )


_NOT_MODIFIED = b""  # a 304 answer (a real document is never empty)


class ApiSource:
    name = "sec-api"
    # fetch() only waits on the client (thread-safe, one gate) and stages one file per
    # company: download_batch may run several companies at once
    fetch_concurrently = True

    def __init__(
        self, client: Any, staging: Path, known: Mapping[str, Validators] | None = None
    ) -> None:
        self._client = client
        self._staging = staging
        self.known: Mapping[str, Validators] = known or {}

    def available_ciks(self) -> list[int]:
        raise SourceError("the live SEC API needs tickers or CIKs: it cannot list every company")

    def ticker_map(self) -> TickerMap:
        return parse_company_tickers(
            self._client.company_tickers(), origin=self._client.urls.company_tickers()
        )

    def fetch(self, cik: int) -> CompanyDocuments:
        facts_url = self._client.urls.companyfacts(cik)
        subs_url = self._client.urls.submissions(cik)
        body = self._conditional(facts_url, lambda: self._client.companyfacts(cik))
        main = self._conditional(subs_url, lambda: self._get_or_none(self._client.submissions, cik))
        facts_absent = body is None and facts_url not in self.known
        if main is _NOT_MODIFIED and (body is _NOT_MODIFIED or facts_absent):
            return CompanyDocuments(
                cik, None, origin=self.name, facts_origin=facts_url,
                submissions_origin=subs_url, not_modified=True,
            )  # fmt: skip
        if body is _NOT_MODIFIED:  # the other document changed: both are loaded
            body = self._client.companyfacts(cik)
        if main is _NOT_MODIFIED:
            main = self._get_or_none(self._client.submissions, cik)
        answered = getattr(self._client, "answered", {})
        validators = tuple(
            (url, answered.pop(url)) for url in (facts_url, subs_url) if url in answered
        )
        if body is not None:
            check_document_cik(declared_cik(body[:HEAD_BYTES]), cik, origin=facts_url)
        subs, warnings = submissions_with_pages(
            main, subs_url, lambda name: self._get_or_none(self._client.submissions_page, name),
            cik,
        )  # fmt: skip
        facts = None
        if body is not None:
            facts = stage_bytes(self._staging, cik, body, origin=facts_url)
        return CompanyDocuments(
            cik, facts, subs, origin=self.name, warnings=warnings,
            facts_origin=facts_url, submissions_origin=subs_url, validators=validators,
        )  # fmt: skip

    def _conditional(self, url: str, get: Callable[[], bytes | None]) -> bytes | None:
        """A document (None on 404), or ``_NOT_MODIFIED`` when the stored copy is current.

        Only a URL with known validators is asked conditionally; ``get`` fetches the others.
        """
        known = self.known.get(url)
        if not known:
            return get()
        try:
            body, _ = self._client.get_conditional(url, known)
        except NotFoundError:
            return None
        return _NOT_MODIFIED if body is None else body

    @staticmethod
    def _get_or_none(get: Callable[[Any], bytes], arg: Any) -> bytes | None:
        try:
            return get(arg)
        except NotFoundError:
            return None

    def close(self) -> None:
        self._client.close()


class FolderSource:
    """A local EDGAR folder; ``max_bytes`` caps each document read (see the module)."""

    def __init__(self, root: Path, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> None:
        self.root = root
        self.name = str(root)
        self.max_bytes = max_bytes

    def available_ciks(self) -> list[int]:
        ciks: set[int] = set()
        for sub in ("companyfacts", "submissions"):
            folder = self.root / sub
            if folder.is_dir():
                ciks.update(int(m[1]) for p in folder.iterdir() if (m := MEMBER.match(p.name)))
        return sorted(ciks)

    def ticker_map(self) -> TickerMap:
        path = self.root / "reference" / "company_tickers.json"
        if not path.is_file():
            raise SourceError(f"{path} not found: pass CIKs instead of tickers", path=str(path))
        return parse_company_tickers(read_document(path, limit=self.max_bytes), origin=str(path))

    def fetch(self, cik: int) -> CompanyDocuments:
        facts_path = self.root / "companyfacts" / f"CIK{cik10(cik)}.json"
        facts = self._local(
            facts_path, lambda: reference_file(facts_path, limit=self.max_bytes, cik=cik)
        )
        if facts is not None:
            check_facts_cik(facts, cik, str(facts_path))
        main_path = self.root / "submissions" / f"CIK{cik10(cik)}.json"
        subs, warnings = submissions_with_pages(
            self._read(main_path, cik), str(main_path), lambda name: self._page(name, cik), cik
        )
        return CompanyDocuments(
            cik, facts, subs, origin=str(self.root), warnings=warnings,
            facts_origin=str(facts_path), submissions_origin=str(main_path),
        )  # fmt: skip

    def _page(self, name: str, cik: int) -> bytes | None:
        """A page (its name already checked): read only if it lies inside ``submissions/``
        once symbolic links are resolved."""
        folder = self.root / "submissions"
        path = folder / name
        try:
            inside = path.resolve().is_relative_to(folder.resolve())
        except (OSError, RuntimeError):  # a symbolic link loop
            inside = False
        if not inside:
            raise ResponseParseError(
                f"{path}: resolves outside {folder}: not read", source=str(path), cik=cik
            )
        return self._read(path, cik)

    def _read(self, path: Path, cik: int) -> bytes | None:
        return self._local(path, lambda: read_document(path, limit=self.max_bytes, cik=cik))

    @staticmethod
    def _local(path: Path, read: Callable[[], Any]) -> Any:
        """``read()`` of a local document: None when there is none, a SourceError when the
        system refuses it."""
        try:
            return read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror}", path=str(path)) from None

    def close(self) -> None:
        return None
