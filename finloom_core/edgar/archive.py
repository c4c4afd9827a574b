"""SEC's bulk archives as a source: ``companyfacts.zip`` (+ ``submissions.zip`` beside it).

Members are read one at a time, so memory is bounded by the largest company, not the
archive. A member is refused by its declared size before any of it is read, and every read
stops at the cap (declared sizes can lie); an archive holding two members for one document
is refused whole.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from finloom_core.cik import cik10
from finloom_core.edgar.documents import check_facts_cik, submissions_with_pages
from finloom_core.edgar.tickers import TickerMap, parse_company_tickers
from finloom_core.errors import FinloomError, ResponseParseError, SourceError, first_line
from finloom_core.parse.submissions import PAGE_NAME
from finloom_core.records import CompanyDocuments
from finloom_core.staging import (
    MAX_DOCUMENT_BYTES,
    FactsDocument,
    capped_chunks,
    over_cap,
    read_document,
    stage_stream,
)

MEMBER = re.compile(r"^(?:.*/)?CIK(\d{10})\.json$", re.ASCII)
_DOCUMENT = re.compile(rf"CIK\d{{10}}\.json|{PAGE_NAME.pattern}", re.ASCII)


class ZipSource:
    """SEC's bulk archives; ``submissions.zip`` and ``company_tickers.json`` beside it are used
    when present. ``max_bytes`` caps each member read (see the module)."""

    def __init__(
        self, companyfacts_zip: Path, staging: Path, *, max_bytes: int = MAX_DOCUMENT_BYTES
    ) -> None:
        self.path = companyfacts_zip
        self._staging = staging
        self.name = str(companyfacts_zip)
        self.max_bytes = max_bytes
        self._facts = self._open(companyfacts_zip)
        self._subs: zipfile.ZipFile | None = None
        self._subs_members: dict[str, str] = {}
        try:
            self._facts_members = self._index(
                self._facts, lambda folders: "submissions" not in folders
            )
            sibling = companyfacts_zip.with_name("submissions.zip")
            if sibling.is_file():
                self._subs = self._open(sibling)
                self._subs_members = self._index(self._subs, lambda folders: True)
            else:  # one archive of a whole EDGAR folder: companyfacts/ and submissions/ inside
                self._subs_members = self._index(
                    self._facts, lambda folders: "submissions" in folders
                )
                self._subs = self._facts if self._subs_members else None
        except BaseException:
            self.close()
            raise

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
        """Base file name -> member name, for the EDGAR documents (``CIK##########.json``,
        submissions pages) whose folders are ``wanted``. Two members for one document make
        the archive unusable: FinLoom never guesses which one is the company's."""
        index: dict[str, str] = {}
        for name in archive.namelist():
            *folders, base = name.split("/")
            if not (_DOCUMENT.fullmatch(base) and wanted(folders)):
                continue
            if base in index:
                raise SourceError(
                    f"archive {archive.filename} holds two members for {base}: "
                    f"{index[base]} and {name}; refusing to guess which is the company's",
                    path=str(archive.filename),
                )
            index[base] = name
        return index

    def available_ciks(self) -> list[int]:
        names = list(self._facts_members) + list(self._subs_members)
        return sorted({int(m[1]) for n in names if (m := MEMBER.match(n))})

    def ticker_map(self) -> TickerMap:
        path = self.path.with_name("company_tickers.json")
        if not path.is_file():
            raise SourceError(
                f"no company_tickers.json beside {self.path}: pass CIKs instead of tickers",
                path=str(path),
            )
        return parse_company_tickers(read_document(path, limit=self.max_bytes), origin=str(path))

    def fetch(self, cik: int) -> CompanyDocuments:
        name = f"CIK{cik10(cik)}.json"
        subs: tuple[bytes, ...] = ()
        warnings: tuple[str, ...] = ()
        subs_origin = ""
        if self._subs is not None:
            archive = self._subs
            subs_origin = _member_origin(archive, self._subs_members.get(name, ""))
            subs, warnings = submissions_with_pages(
                self._read(archive, self._subs_members, name, cik), subs_origin,
                lambda page: self._read(archive, self._subs_members, page, cik), cik,
            )  # fmt: skip
        facts = self._stage(cik, name)  # last: nothing is left staged when the rest fails
        facts_origin = _member_origin(self._facts, self._facts_members.get(name, ""))
        return CompanyDocuments(
            cik, facts, subs, origin=self.name, warnings=warnings,
            facts_origin=facts_origin, submissions_origin=subs_origin,
        )  # fmt: skip

    def _stage(self, cik: int, name: str) -> FactsDocument | None:
        """Stream a companyfacts member to the staging folder (memory bounded by a chunk),
        refused by its declared size first, then stopped at the cap while copied."""
        member = self._facts_members.get(name)
        if member is None:
            return None
        origin = _member_origin(self._facts, member)
        self._check_declared(self._facts, member, cik)
        try:
            with self._facts.open(member) as stream:
                doc = stage_stream(self._staging, cik, stream, limit=self.max_bytes, origin=origin)
        except FinloomError:
            raise
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
            raise _damaged(self._facts, member, cik, exc) from None
        return check_facts_cik(doc, cik, origin)

    def _read(
        self, archive: zipfile.ZipFile, members: dict[str, str], name: str, cik: int
    ) -> bytes | None:
        member = members.get(name)
        if member is None:
            return None
        origin = _member_origin(archive, member)
        self._check_declared(archive, member, cik)
        try:
            with archive.open(member) as stream:
                chunks = capped_chunks(stream, limit=self.max_bytes, origin=origin, cik=cik)
                return b"".join(chunks)
        except FinloomError:
            raise
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
            raise _damaged(archive, member, cik, exc) from None

    def _check_declared(self, archive: zipfile.ZipFile, member: str, cik: int) -> None:
        """Refuse a member whose declared size passes the cap, before reading any of it."""
        size = archive.getinfo(member).file_size
        if size > self.max_bytes:
            raise over_cap(_member_origin(archive, member), self.max_bytes, cik, size)

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
