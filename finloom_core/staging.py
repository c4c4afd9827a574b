"""Companyfacts documents on disk, where DuckDB's JSON reader parses them.

A folder source's files are used where they lie; documents from the API or a bulk archive
are written (streamed, for archive members) to a staging folder first and removed once
loaded. Each document's SHA-256 is taken on the way, for change detection.

No document FinLoom reads may pass ``MAX_DOCUMENT_BYTES``: a local file is refused by its
size before it is opened (and only a regular file is opened: never a FIFO or a device),
and every copy stops at the cap, its partial file deleted. Staging folders are named after
the process that owns them (``finloom-staging-<pid>-...``): a new run removes those of
processes no longer alive (a run killed mid-copy), never a live one's.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from finloom_core.cik import cik10
from finloom_core.errors import DocumentLimitError, ResponseParseError

MAX_DOCUMENT_BYTES = 256 << 20
"""The largest EDGAR document FinLoom reads (companyfacts, submissions and their pages, from
a file, an archive member or an HTTP body): several times SEC's largest companyfacts."""

_CHUNK = 1 << 20
_PREFIX = "finloom-staging-"
_OWNER = re.compile(rf"^{_PREFIX}(\d+)(?:-|$)")


@dataclass(frozen=True, slots=True)
class FactsDocument:
    """A companyfacts JSON file; ``staged`` files are temporary copies FinLoom may delete.

    ``parquet``: the file holds the document's facts already parsed (FACT_SCHEMA rows in
    Parquet, written by a Dask worker; see finloom_core.parquet_stage); ``sha256`` is still
    the JSON document's, for change detection.
    """

    path: Path
    sha256: str
    staged: bool = False
    parquet: bool = False

    def discard(self) -> None:
        if self.staged:
            self.path.unlink(missing_ok=True)


def over_cap(
    origin: str, limit: int, cik: int | None = None, size: int | None = None
) -> DocumentLimitError:
    """The error refusing a document over ``limit`` bytes (``size``: its declared size)."""
    what = f"{size:,} bytes" if size is not None else f"more than {limit:,} bytes"
    return DocumentLimitError(
        f"{origin}: {what}, over the {limit:,}-byte document cap: not read",
        source=origin,
        cik=cik,
    )


def capped_chunks(
    stream: IO[bytes], *, limit: int, origin: str, cik: int | None = None
) -> Iterator[bytes]:
    """The stream's bytes, chunk by chunk; DocumentLimitError once they pass ``limit``
    (whatever size the stream's source declared)."""
    total = 0
    while chunk := stream.read(_CHUNK):
        total += len(chunk)
        if total > limit:
            raise over_cap(origin, limit, cik)
        yield chunk


@contextmanager
def open_regular(
    path: Path, *, limit: int = MAX_DOCUMENT_BYTES, cik: int | None = None
) -> Iterator[IO[bytes]]:
    """Open a local document: a regular file of at most ``limit`` bytes, checked before it
    is opened (a FIFO, a device or a folder is refused, never opened). FileNotFoundError
    when there is none."""
    origin = str(path)
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ResponseParseError(f"{origin}: not a regular file: not read", source=origin, cik=cik)
    if info.st_size > limit:
        raise over_cap(origin, limit, cik, info.st_size)
    # non-blocking: should the file be swapped for a FIFO since, opening it cannot hang
    handle = os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb")
    with handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ResponseParseError(
                f"{origin}: not a regular file: not read", source=origin, cik=cik
            )
        yield handle


def read_document(path: Path, *, limit: int = MAX_DOCUMENT_BYTES, cik: int | None = None) -> bytes:
    """A local document's bytes (see open_regular)."""
    with open_regular(path, limit=limit, cik=cik) as handle:
        return b"".join(capped_chunks(handle, limit=limit, origin=str(path), cik=cik))


def reference_file(
    path: Path, *, limit: int = MAX_DOCUMENT_BYTES, cik: int | None = None
) -> FactsDocument:
    """A document used in place (a local EDGAR folder): hashed, never modified."""
    digest = hashlib.sha256()
    with open_regular(path, limit=limit, cik=cik) as handle:
        for chunk in capped_chunks(handle, limit=limit, origin=str(path), cik=cik):
            digest.update(chunk)
    return FactsDocument(path, digest.hexdigest())


def stage_bytes(
    staging: Path,
    cik: int,
    data: bytes,
    *,
    limit: int = MAX_DOCUMENT_BYTES,
    origin: str | None = None,
) -> FactsDocument:
    """Write a downloaded document to the staging folder."""
    if len(data) > limit:
        raise over_cap(origin or f"CIK{cik10(cik)}.json", limit, cik, len(data))
    path = _staged_path(staging, cik)
    path.write_bytes(data)
    return FactsDocument(path, hashlib.sha256(data).hexdigest(), staged=True)


def stage_stream(
    staging: Path,
    cik: int,
    stream: IO[bytes],
    *,
    limit: int = MAX_DOCUMENT_BYTES,
    origin: str | None = None,
) -> FactsDocument:
    """Copy a stream (an archive member) to the staging folder with bounded memory, at most
    ``limit`` bytes of it: past that the copy stops and its partial file is deleted."""
    path = _staged_path(staging, cik)
    digest = hashlib.sha256()
    chunks = capped_chunks(stream, limit=limit, origin=origin or str(path), cik=cik)
    try:
        with path.open("wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)  # never leave a partial document behind
        raise
    return FactsDocument(path, digest.hexdigest(), staged=True)


def _staged_path(staging: Path, cik: int) -> Path:
    staging.mkdir(parents=True, exist_ok=True)
    return staging / f"CIK{cik10(cik)}.json"


def new_staging(root: Path | None = None) -> Path:
    """A fresh staging folder for one run, named after this process, under ``root`` (the
    system's temporary directory by default); the caller removes it with remove_staging.
    Stale folders of dead processes there are removed first (remove_stale_staging)."""
    base = Path(root) if root is not None else Path(tempfile.gettempdir())
    remove_stale_staging(base)
    return Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=base))


def remove_stale_staging(root: Path | None = None) -> list[Path]:
    """Remove the staging folders under ``root`` whose owner process is no longer alive
    (left by a run that was killed); folders of live processes, of other users, and
    anything not named ``finloom-staging-<pid>...`` are left alone. Returns those removed."""
    base = Path(root) if root is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        match = _OWNER.match(entry.name)
        if match is None or _alive(int(match[1])):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (another user's counts as alive)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return True  # not a process of its own: never a reason to delete
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OverflowError:
        return False  # no process can have that number
    except OSError:
        return True  # permission denied (another user's process), or cannot tell: keep it
    return True


def remove_staging(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
