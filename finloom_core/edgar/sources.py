"""Where EDGAR documents come from: the live API, a local EDGAR folder, or SEC's bulk zips.

All three hand the same CompanyDocuments to the one downstream path (parse -> load).

- ``ApiSource``: data.sec.gov / www.sec.gov through the fair-access EdgarClient.
- ``FolderSource``: ``companyfacts/CIK##########.json``, ``submissions/CIK##########.json``
  (+ ``-submissions-NNN.json`` pages) and ``reference/company_tickers.json``.
- ``ZipSource``: ``companyfacts.zip`` (+ ``submissions.zip`` beside it, optional), read one
  member at a time so memory is bounded by the largest company, not the archive.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from finloom_core.cik import cik10
from finloom_core.edgar.tickers import TickerMap, parse_company_tickers
from finloom_core.errors import NotFoundError, ResponseParseError, SourceError, first_line
from finloom_core.parse.json_doc import load_json_object
from finloom_core.parse.submissions import submissions_pages
from finloom_core.records import CompanyDocuments
from finloom_core.staging import FactsDocument, reference_file, stage_bytes, stage_stream

log = logging.getLogger(__name__)

_MEMBER = re.compile(r"^(?:.*/)?CIK(\d{10})\.json$")


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
) -> Source:
    """Build the source a spec names.

    ``client_factory`` makes the EdgarClient for the API (built on the run's ``SecGate``);
    ``staging`` is the folder where downloaded and archived companyfacts documents are
    written for parsing (by default a folder of this process under the temporary
    directory; the caller removes it).
    """
    if staging is None:  # created on first use only
        staging = Path(tempfile.gettempdir()) / f"finloom-staging-{os.getpid()}"
    if spec.path is None:
        if client_factory is None:
            raise SourceError("the live SEC API needs an EDGAR client")
        return ApiSource(client_factory(), staging)
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


def _submissions_with_pages(
    main_bytes: bytes | None,
    origin: str,
    read_page: Callable[[str], bytes | None],
    cik: int | None = None,
) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
    """The main submissions document followed by every page it lists that can be read.

    Documents stay bytes (decoded again by the parser): nested JSON passed between Prefect
    tasks would be walked element by element by the engine.
    """
    if main_bytes is None:
        return (), ()
    main = load_json_object(main_bytes, origin=origin, cik=cik)
    docs, missing = [main_bytes], []
    for name in submissions_pages(main):
        page = read_page(name)
        if page is None:
            missing.append(name)
        else:
            docs.append(page)
    warnings: tuple[str, ...] = ()
    if missing:
        warnings = (
            f"{len(missing)} submissions page(s) not found, older filings incomplete: "
            + ", ".join(missing[:3])
            + (" ..." if len(missing) > 3 else ""),
        )
    return tuple(docs), warnings


class ApiSource:
    name = "sec-api"

    def __init__(self, client: Any, staging: Path) -> None:
        self._client = client
        self._staging = staging

    def available_ciks(self) -> list[int]:
        raise SourceError("the live SEC API needs tickers or CIKs: it cannot list every company")

    def ticker_map(self) -> TickerMap:
        return parse_company_tickers(
            self._client.company_tickers(), origin=self._client.urls.company_tickers()
        )

    def fetch(self, cik: int) -> CompanyDocuments:
        body = self._client.companyfacts(cik)
        main = self._get_or_none(self._client.submissions, cik)
        subs_url = self._client.urls.submissions(cik)
        subs, warnings = _submissions_with_pages(
            main, subs_url, lambda name: self._get_or_none(self._client.submissions_page, name),
            cik,
        )  # fmt: skip
        facts = None if body is None else stage_bytes(self._staging, cik, body)
        return CompanyDocuments(
            cik, facts, subs, origin=self.name, warnings=warnings,
            facts_origin=self._client.urls.companyfacts(cik), submissions_origin=subs_url,
        )  # fmt: skip

    @staticmethod
    def _get_or_none(get: Callable[[Any], bytes], arg: Any) -> bytes | None:
        try:
            return get(arg)
        except NotFoundError:
            return None

    def close(self) -> None:
        self._client.close()


class FolderSource:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = str(root)

    def available_ciks(self) -> list[int]:
        ciks: set[int] = set()
        for sub in ("companyfacts", "submissions"):
            folder = self.root / sub
            if folder.is_dir():
                ciks.update(int(m[1]) for p in folder.iterdir() if (m := _MEMBER.match(p.name)))
        return sorted(ciks)

    def ticker_map(self) -> TickerMap:
        path = self.root / "reference" / "company_tickers.json"
        if not path.is_file():
            raise SourceError(f"{path} not found: pass CIKs instead of tickers", path=str(path))
        return parse_company_tickers(path.read_bytes(), origin=str(path))

    def fetch(self, cik: int) -> CompanyDocuments:
        facts_path = self.root / "companyfacts" / f"CIK{cik10(cik)}.json"
        try:
            facts = reference_file(facts_path) if facts_path.is_file() else None
        except OSError as exc:
            raise SourceError(
                f"cannot read {facts_path}: {exc.strerror}", path=str(facts_path)
            ) from None
        main_path = self.root / "submissions" / f"CIK{cik10(cik)}.json"
        subs, warnings = _submissions_with_pages(
            self._read(main_path), str(main_path),
            lambda name: self._read(self.root / "submissions" / name), cik,
        )  # fmt: skip
        return CompanyDocuments(
            cik, facts, subs, origin=str(self.root), warnings=warnings,
            facts_origin=str(facts_path), submissions_origin=str(main_path),
        )  # fmt: skip

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror}", path=str(path)) from None

    def close(self) -> None:
        return None


class ZipSource:
    """SEC's bulk archives; ``submissions.zip`` and ``company_tickers.json`` beside it are used
    when present."""

    def __init__(self, companyfacts_zip: Path, staging: Path) -> None:
        self.path = companyfacts_zip
        self._staging = staging
        self.name = str(companyfacts_zip)
        self._facts = self._open(companyfacts_zip)
        self._facts_members = self._index(self._facts, lambda folders: "submissions" not in folders)
        sibling = companyfacts_zip.with_name("submissions.zip")
        self._subs: zipfile.ZipFile | None = None
        self._subs_members: dict[str, str] = {}
        if sibling.is_file():
            self._subs = self._open(sibling)
            self._subs_members = self._index(self._subs, lambda folders: True)
        else:  # one archive of a whole EDGAR folder: companyfacts/ and submissions/ inside
            self._subs_members = self._index(self._facts, lambda folders: "submissions" in folders)
            self._subs = self._facts if self._subs_members else None

    @staticmethod
    def _open(path: Path) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(path)
        except FileNotFoundError:
            raise SourceError(f"archive {path} does not exist", path=str(path)) from None
        except (zipfile.BadZipFile, OSError) as exc:
            raise SourceError(
                f"archive {path} is not a readable zip: {exc}", path=str(path)
            ) from None

    @staticmethod
    def _index(archive: zipfile.ZipFile, wanted: Callable[[list[str]], bool]) -> dict[str, str]:
        """Base file name -> member name, for JSON members whose folders are ``wanted``."""
        index = {}
        for name in archive.namelist():
            *folders, base = name.split("/")
            if base.endswith(".json") and wanted(folders):
                index[base] = name
        return index

    def available_ciks(self) -> list[int]:
        names = list(self._facts_members) + list(self._subs_members)
        return sorted({int(m[1]) for n in names if (m := _MEMBER.match(n))})

    def ticker_map(self) -> TickerMap:
        path = self.path.with_name("company_tickers.json")
        if not path.is_file():
            raise SourceError(
                f"no company_tickers.json beside {self.path}: pass CIKs instead of tickers",
                path=str(path),
            )
        return parse_company_tickers(path.read_bytes(), origin=str(path))

    def fetch(self, cik: int) -> CompanyDocuments:
        name = f"CIK{cik10(cik)}.json"
        facts = self._stage(cik, name)
        subs: tuple[bytes, ...] = ()
        warnings: tuple[str, ...] = ()
        subs_origin = ""
        if self._subs is not None:
            archive = self._subs
            subs_origin = _member_origin(archive, self._subs_members.get(name, ""))
            subs, warnings = _submissions_with_pages(
                self._read(archive, self._subs_members, name, cik), subs_origin,
                lambda page: self._read(archive, self._subs_members, page, cik), cik,
            )  # fmt: skip
        facts_origin = _member_origin(self._facts, self._facts_members.get(name, ""))
        return CompanyDocuments(
            cik, facts, subs, origin=self.name, warnings=warnings,
            facts_origin=facts_origin, submissions_origin=subs_origin,
        )  # fmt: skip

    def _stage(self, cik: int, name: str) -> FactsDocument | None:
        """Stream a companyfacts member to the staging folder (memory bounded by a chunk)."""
        member = self._facts_members.get(name)
        if member is None:
            return None
        try:
            with self._facts.open(member) as stream:
                return stage_stream(self._staging, cik, stream)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
            raise _damaged(self._facts, member, cik, exc) from None

    def _read(
        self, archive: zipfile.ZipFile, members: dict[str, str], name: str, cik: int
    ) -> bytes | None:
        member = members.get(name)
        if member is None:
            return None
        try:
            return archive.read(member)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
            raise _damaged(archive, member, cik, exc) from None

    def close(self) -> None:
        self._facts.close()
        if self._subs is not None and self._subs is not self._facts:
            self._subs.close()


def _member_origin(archive: zipfile.ZipFile, member: str) -> str:
    """``archive.zip:member``: where an archived document came from ("" for no member)."""
    return f"{archive.filename}:{member}" if member else ""


def _damaged(
    archive: zipfile.ZipFile, member: str, cik: int, exc: BaseException
) -> ResponseParseError:
    origin = _member_origin(archive, member)
    reason = first_line(exc)
    return ResponseParseError(f"{origin}: damaged archive member: {reason}", source=origin, cik=cik)
