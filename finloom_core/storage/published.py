"""The published warehouse: a read-only copy of the warehouse that readers open while the
next load writes.

DuckDB lets one process write a database file, and while it writes no other process may
open the file, not even read-only. So every read command (``finloom financials``, ``finloom
db info``, the ticker lookup of ``finloom quality score``, ``finloom serve``'s database
check) reads a published copy instead, and the writer never opens a copy::

    <db_path>.published/
        20261129T154300123456Z.duckdb   one snapshot per publish (read-only files)
        current.duckdb -> 20261129T154300123456Z.duckdb

:func:`publish` runs at the end of every load (the ``backfill`` flow, and so the nightly
one): through the writer's connection, idle, it checkpoints (the WAL is folded into the
file), then a child process copies the file to a temporary name in the folder, fsyncs it
and renames it to its snapshot name; the symlink ``current.duckdb`` is then replaced
atomically (a new link renamed over it). The copy is made by another process on purpose:
DuckDB's lock is a POSIX ``fcntl`` lock, and closing *any* descriptor of the file drops
every such lock the closing process holds, so copying in the writer's process would free
the warehouse for other writers while the connection still holds it open.

Readers resolve ``current.duckdb`` when they open it and open that snapshot read-only; any
number of processes may hold read-only connections to one file at once. Only the newest
``keep`` snapshots are kept (``FINLOOM_PUBLISHED_KEEP``): on Linux a reader that holds an
older snapshot open keeps reading it after its file is removed, so cleanup never breaks
an open reader.

Before the first publish (a warehouse from before published copies, or built without
the flows) readers open the warehouse file itself, read-only, as they always did: that
works unless a load holds it, in which case the one-line error says that nothing is
published yet.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import duckdb

from finloom_core.errors import DatabaseLockedError, StorageError, first_line
from finloom_core.settings import DEFAULT_MEMORY_LIMIT, DEFAULT_PUBLISHED_KEEP
from finloom_core.storage.database import connect, open_warehouse
from finloom_core.storage.status import DUCKDB_MAGIC

log = logging.getLogger(__name__)
T = TypeVar("T")

PUBLISHED_SUFFIX = ".published"
CURRENT = "current.duckdb"
_SNAPSHOT = re.compile(r"^\d{8}T\d{12}Z\.duckdb$")
_STAMP = "%Y%m%dT%H%M%S%fZ"
_TEMPORARY = ".publishing-"
_COPY_TIMEOUT_SECONDS = 3600.0
# A child process copies and fsyncs the file (see the module docstring: never this one).
_COPY = (
    "import os, shutil, sys\n"
    "shutil.copyfile(sys.argv[1], sys.argv[2])\n"
    "fd = os.open(sys.argv[2], os.O_RDONLY)\n"
    "os.fsync(fd)\n"
    "os.close(fd)\n"
)


@dataclass(frozen=True, slots=True)
class Published:
    """One publish: the stable path readers open, the snapshot it now points to."""

    current: Path  # <db_path>.published/current.duckdb
    snapshot: Path
    size_bytes: int
    seconds: float
    removed: tuple[Path, ...]  # older snapshots cleaned up


def published_dir(db_path: Path | str) -> Path:
    """``<db_path>.published``: the folder of the published snapshots."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + PUBLISHED_SUFFIX)


def current_path(db_path: Path | str) -> Path:
    """``<db_path>.published/current.duckdb``: the stable path of the published warehouse
    (a symlink to the newest snapshot), whether or not anything is published yet."""
    return published_dir(db_path) / CURRENT


def current_snapshot(db_path: Path | str) -> Path | None:
    """The snapshot ``current.duckdb`` points to now, or None when nothing is published."""
    link = current_path(db_path)
    try:
        target = os.readlink(link)
    except FileNotFoundError:
        return None
    except OSError:  # not a symlink: a plain file put there by hand is the published copy
        return link if link.is_file() else None
    path = Path(target) if os.path.isabs(target) else link.parent / target
    return path if path.is_file() else None


def is_stale(db_path: Path | str) -> bool:
    """Whether the warehouse was written after its current snapshot was published (or
    nothing is published yet): the file and its WAL are compared by modification time,
    which opening and reading never change."""
    snapshot = current_snapshot(db_path)
    if snapshot is None:
        return True
    db_path = Path(db_path)
    published_at = snapshot.stat().st_mtime_ns
    for path in (db_path, db_path.with_name(db_path.name + ".wal")):
        try:
            if path.stat().st_mtime_ns > published_at:
                return True
        except FileNotFoundError:
            continue
    return False


def snapshots(db_path: Path | str) -> list[Path]:
    """Every snapshot in the folder, oldest first (names are UTC timestamps)."""
    folder = published_dir(db_path)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _SNAPSHOT.match(p.name) and p.is_file())


@dataclass(frozen=True, slots=True)
class ReadTarget:
    """What a reader opens: the published snapshot, or (nothing published yet) the
    warehouse file itself."""

    path: Path
    published: bool


def read_target(db_path: Path | str) -> ReadTarget:
    """The snapshot readers of ``db_path`` open now, else the warehouse file itself."""
    snapshot = current_snapshot(db_path)
    if snapshot is not None:
        return ReadTarget(snapshot, True)
    return ReadTarget(Path(db_path), False)


NOT_PUBLISHED = "nothing is published for readers yet (each load publishes a copy at its end)"


def read_published(db_path: Path | str, read: Callable[[Path], T]) -> tuple[T, ReadTarget]:
    """``read(path)`` of the published warehouse of ``db_path``, and what was read.

    The current snapshot is resolved now (and again if it was removed before ``read``
    opened it). With nothing published yet, ``read`` gets the warehouse file itself (a
    ``DatabaseLockedError`` saying that nothing is published while a load holds it).
    """
    for _ in range(3):
        target = read_target(db_path)
        if not target.published:
            break
        try:
            return read(target.path), target
        except StorageError:
            if target.path.exists():
                raise
    db_path = Path(db_path)
    if not db_path.exists():
        raise StorageError(
            f"database {db_path} does not exist and nothing is published at"
            f" {published_dir(db_path)}: run finloom backfill first",
            path=str(db_path),
        )
    log.info("nothing published at %s yet: reading %s itself", published_dir(db_path), db_path)
    try:
        return read(db_path), ReadTarget(db_path, False)
    except DatabaseLockedError as exc:
        raise DatabaseLockedError(f"{exc}; {NOT_PUBLISHED}", path=str(db_path)) from None


def connect_published(
    db_path: Path | str, *, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> tuple[duckdb.DuckDBPyConnection, ReadTarget]:
    """A read-only connection to the published warehouse of ``db_path`` (else, nothing
    published yet, to the warehouse file itself) and what it reads. The connection keeps
    reading its snapshot whatever is published later."""
    return read_published(
        db_path, lambda path: connect(path, read_only=True, memory_limit=memory_limit)
    )


@contextmanager
def open_published(
    db_path: Path | str, *, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> Iterator[duckdb.DuckDBPyConnection]:
    """``connect_published`` as a context manager: the read-only connection is closed on
    leaving."""
    con, _ = connect_published(db_path, memory_limit=memory_limit)
    try:
        yield con
    finally:
        con.close()


def publish(
    source: duckdb.DuckDBPyConnection | Path | str,
    db_path: Path | str | None = None,
    *,
    keep: int = DEFAULT_PUBLISHED_KEEP,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> Published:
    """Publish the warehouse for readers; returns where it went.

    ``source``: the writer's open connection (idle: no transaction open; ``db_path`` is
    its file, read from the connection when not given), or the warehouse's path, opened
    read-write here for the time of the copy (a ``DatabaseLockedError`` when another
    process writes it). Keeps the newest ``keep`` snapshots. Call it only after a load
    that completed: the snapshot is the warehouse as it is.
    """
    if keep < 1:
        raise StorageError(f"published snapshots to keep: {keep}, expected at least 1")
    if not isinstance(source, duckdb.DuckDBPyConnection):
        with open_warehouse(source, memory_limit=memory_limit) as con:
            return publish(con, source, keep=keep)
    path = Path(db_path) if db_path is not None else _file_of(source)
    started = time.perf_counter()
    try:
        source.execute("CHECKPOINT")
    except duckdb.Error as exc:
        raise StorageError(
            f"database {path} cannot be published: {first_line(exc)}", path=str(path)
        ) from None
    wal = path.with_name(path.name + ".wal")
    if wal.exists() and wal.stat().st_size > 0:  # a transaction still open elsewhere
        raise StorageError(
            f"database {path} cannot be published: its write-ahead log is not empty after"
            " CHECKPOINT (a transaction is still open)",
            path=str(path),
        )
    folder = published_dir(path)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(folder)
    snapshot = _new_name(folder)
    temporary = folder / f"{_TEMPORARY}{snapshot.name}"
    try:
        _copy(path, temporary)
        _check_header(temporary, path)
        os.chmod(temporary, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # readers only
        os.replace(temporary, snapshot)
        _point_current(folder, snapshot.name)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    removed = _clean(folder, keep, snapshot)
    size = snapshot.stat().st_size
    seconds = time.perf_counter() - started
    log.info("published %s (%d bytes) in %.2f s", snapshot, size, seconds)
    return Published(folder / CURRENT, snapshot, size, seconds, removed)


def _file_of(con: duckdb.DuckDBPyConnection) -> Path:
    row = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    if row is None or not row[0]:
        raise StorageError("an in-memory database cannot be published")
    return Path(row[0])


def _new_name(folder: Path) -> Path:
    """``<UTC time>.duckdb``, later than every snapshot there (names sort by age, also
    when the clock steps back)."""
    now = datetime.now(UTC)
    names = sorted(p.name for p in folder.iterdir() if _SNAPSHOT.match(p.name))
    if names:
        last = datetime.strptime(names[-1][:22], _STAMP).replace(tzinfo=UTC)
        now = max(now, last + timedelta(microseconds=1))
    return folder / f"{now.strftime(_STAMP)}.duckdb"


def _copy(path: Path, target: Path) -> None:
    """Copy and fsync ``path`` to ``target`` in a child process (see the module docstring)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _COPY, str(path), str(target)],
            capture_output=True,
            text=True,
            timeout=_COPY_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StorageError(
            f"database {path} cannot be published: copy failed: {first_line(exc)}", path=str(path)
        ) from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit code {done.returncode}"
        raise StorageError(
            f"database {path} cannot be published: copy failed: {reason}", path=str(path)
        )


def _check_header(copy: Path, path: Path) -> None:
    with copy.open("rb") as file:  # the copy, another file: no lock of the writer's is lost
        head = file.read(8 + len(DUCKDB_MAGIC))
    if head[8:] != DUCKDB_MAGIC:
        raise StorageError(
            f"database {path} cannot be published: the copy is not a DuckDB file", path=str(path)
        )


def _point_current(folder: Path, name: str) -> None:
    """Swap ``current.duckdb`` to ``name`` atomically (a new symlink renamed over it)."""
    link = folder / f"{_TEMPORARY}{CURRENT}"
    link.unlink(missing_ok=True)
    os.symlink(name, link)
    os.replace(link, folder / CURRENT)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible everywhere (Windows): the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_leftovers(folder: Path) -> None:
    """Temporary files of a publish that was cut off (only one publishes at a time: the
    publisher holds the warehouse's write lock)."""
    for path in folder.glob(f"{_TEMPORARY}*"):
        try:
            path.unlink()
        except OSError as exc:
            log.warning("could not remove %s: %s", path, first_line(exc))


def _clean(folder: Path, keep: int, current: Path) -> tuple[Path, ...]:
    """Remove all but the newest ``keep`` snapshots (never ``current``)."""
    old = [
        p for p in sorted(p for p in folder.iterdir() if _SNAPSHOT.match(p.name)) if p != current
    ]
    removed = []
    for path in old[: max(0, len(old) - (keep - 1))]:
        try:
            path.unlink()  # a reader holding it open keeps reading it
            removed.append(path)
        except OSError as exc:
            log.warning("could not remove the old snapshot %s: %s", path, first_line(exc))
    return tuple(removed)
