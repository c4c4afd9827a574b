"""Companyfacts documents on disk, where DuckDB's JSON reader parses them.

A folder source's files are used where they lie; documents from the API or a bulk archive
are written (streamed, for archive members) to a staging folder first and removed once
loaded. Each document's SHA-256 is taken on the way, for change detection.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from finloom_core.cik import cik10

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class FactsDocument:
    """A companyfacts JSON file; ``staged`` files are temporary copies FinLoom may delete."""

    path: Path
    sha256: str
    staged: bool = False

    def discard(self) -> None:
        if self.staged:
            self.path.unlink(missing_ok=True)


def reference_file(path: Path) -> FactsDocument:
    """A document used in place (a local EDGAR folder): hashed, never modified."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return FactsDocument(path, digest.hexdigest())


def stage_bytes(staging: Path, cik: int, data: bytes) -> FactsDocument:
    """Write a downloaded document to the staging folder."""
    path = _staged_path(staging, cik)
    path.write_bytes(data)
    return FactsDocument(path, hashlib.sha256(data).hexdigest(), staged=True)


def stage_stream(staging: Path, cik: int, stream: IO[bytes]) -> FactsDocument:
    """Copy a stream (an archive member) to the staging folder with bounded memory."""
    path = _staged_path(staging, cik)
    digest = hashlib.sha256()
    try:
        with path.open("wb") as out:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)  # never leave a partial document behind
        raise
    return FactsDocument(path, digest.hexdigest(), staged=True)


def _staged_path(staging: Path, cik: int) -> Path:
    staging.mkdir(parents=True, exist_ok=True)
    return staging / f"CIK{cik10(cik)}.json"


def new_staging() -> Path:
    """A fresh staging folder for one run (the caller removes it with remove_staging)."""
    return Path(tempfile.mkdtemp(prefix="finloom-staging-"))


def remove_staging(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
