"""What a reader may know of the warehouse without opening it: its status file and its lock.

DuckDB lets one process write a database file, and then no other process may open it at
all; a reader holding it open (even read-only) makes a writer fail. So whoever watches the
warehouse (``finloom serve``'s readiness probe) must never open it. Instead:

* Every writer publishes the warehouse's state in a small JSON file beside it,
  ``<db_path>.status.json``, written atomically (a temporary file renamed over it):
  ``"state": "writing"`` with the writer's ``pid`` and ``since`` while a read-write
  connection is open (see ``storage.database.open_warehouse``), then ``"state": "idle"``
  with ``last_write`` (UTC), ``schema_version`` and ``tables`` (rows per table) when it
  closes. A status that cannot be written is logged and never fails the writer.
* :func:`lock_holder` tells whether another process holds DuckDB's lock on the file
  without taking it: DuckDB locks the whole file with an ``fcntl`` advisory lock (a write
  lock for a read-write connection, a read lock for a read-only one), and ``F_GETLK``
  reports a conflicting lock and its holder's PID without placing one.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from finloom_core.sql import quote_ident, table_names
from finloom_core.storage.schema import current_version

try:
    import fcntl
except ImportError:  # no POSIX locks to read (Windows): the status file alone answers
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

STATUS_SUFFIX = ".status.json"
DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file
_MAGIC_OFFSET = 8
# struct flock on 64-bit Linux: l_type, l_whence, (pad), l_start, l_len, l_pid, (pad)
_FLOCK = "hhqqi4x"
_LOCKS_READABLE = (
    fcntl is not None and sys.platform.startswith("linux") and struct.calcsize("P") == 8
)


def status_path(db_path: Path | str) -> Path:
    """``<db_path>.status.json``: the warehouse's published status."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + STATUS_SUFFIX)


def read_status(db_path: Path | str) -> dict[str, Any] | None:
    """The published status, or None when there is none (or it cannot be read)."""
    try:
        data = json.loads(status_path(db_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _write(db_path: Path, status: dict[str, Any]) -> None:
    """Replace the status file atomically; never raises (a status is not worth a load)."""
    target = status_path(db_path)
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(status, out, sort_keys=True)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except Exception as exc:
        log.warning("could not write the warehouse status file: %s", type(exc).__name__)


def publish_writing(db_path: Path | str) -> None:
    """A read-write connection is open: ``state: writing`` with this process's PID."""
    db_path = Path(db_path)
    previous = read_status(db_path) or {}
    previous.update(state="writing", pid=os.getpid(), since=_now())
    _write(db_path, previous)


def publish_idle(db_path: Path | str, con: duckdb.DuckDBPyConnection) -> None:
    """The writer is done: ``state: idle`` with the schema version and rows per table
    (read through the writer's own connection, just before it closes)."""
    db_path = Path(db_path)
    status = read_status(db_path) or {}
    try:
        names = table_names(con)
        tables = {}
        for name in names:
            row = con.execute(f"SELECT count(*) FROM main.{quote_ident(name)}").fetchone()
            tables[name] = int(row[0]) if row else 0
        status["tables"] = tables
        if "schema_migrations" in tables:
            status["schema_version"] = current_version(con)
    except duckdb.Error as exc:  # e.g. an aborted transaction: keep the last known figures
        log.debug("warehouse status without figures: %s", exc)
    status.update(state="idle", pid=None, since=None, last_write=_now(), last_writer=os.getpid())
    _write(db_path, status)


@dataclass(frozen=True)
class FileLock:
    """A lock another process holds on the warehouse file."""

    kind: str  # "write" (a read-write connection: a load) or "read" (a read-only one)
    pid: int | None  # None when the holder is not visible (another PID namespace)


@dataclass(frozen=True)
class FileProbe:
    """What can be learnt from the file without opening it as a database."""

    size: int
    duckdb_header: bool  # the file starts like a DuckDB database
    lock: FileLock | None  # None: no other process holds it
    locks_known: bool  # False where locks cannot be read (not 64-bit Linux)


def probe_file(db_path: Path | str) -> FileProbe:
    """Size, header and lock of the warehouse file, read through a plain file descriptor.

    No lock is taken. Note that closing any descriptor of a file drops the POSIX locks the
    closing process holds on it: call this from a process that does not itself hold the
    warehouse open (``finloom serve`` never does). Raises OSError when the file cannot be
    read.
    """
    fd = os.open(db_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, _MAGIC_OFFSET + len(DUCKDB_MAGIC), 0)
        lock = _lock_of(fd) if _LOCKS_READABLE else None
    finally:
        os.close(fd)
    header = head[_MAGIC_OFFSET:] == DUCKDB_MAGIC
    return FileProbe(size=size, duckdb_header=header, lock=lock, locks_known=_LOCKS_READABLE)


def _lock_of(fd: int) -> FileLock | None:
    query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    kind, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))
    if kind == fcntl.F_UNLCK:
        return None
    return FileLock("write" if kind == fcntl.F_WRLCK else "read", pid if pid > 0 else None)


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists (as far as this process can see)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
