"""Opening the DuckDB warehouse with one-line errors for locked and corrupt files.

The memory limit is an argument, not read here: the edges (flows, the CLI, benchmarks)
read ``FINLOOM_DUCKDB_MEMORY_LIMIT`` once and pass it down; without it a connection gets
the setting's default.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from finloom_core.errors import (
    ConfigurationError,
    DatabaseCorruptError,
    DatabaseLockedError,
    StorageError,
    first_line,
)
from finloom_core.settings import DEFAULT_MEMORY_LIMIT, MEMORY_LIMIT_PATTERN
from finloom_core.storage import status
from finloom_core.storage.schema import migrate

log = logging.getLogger(__name__)

_LOCK_HOLDER = re.compile(r"held in (?P<prog>.+?) \(PID (?P<pid>\d+)\)")
_MEMORY_LIMIT = re.compile(MEMORY_LIMIT_PATTERN)
# What DuckDB opens as something other than a local file: ``:memory:``, and a relative path
# starting with a prefix such as ``md:``, ``s3:``, ``http:`` (a remote database, for which
# it downloads and installs an extension first).
_NOT_A_FILE = re.compile(r"^(?::memory:|[A-Za-z][A-Za-z0-9+.\-]*:)")


def check_local_path(path: Path | str) -> Path:
    """``path`` when DuckDB would open it as a local file, else a one-line
    ConfigurationError (a local file of such a name: give its absolute path)."""
    path = Path(path)
    if not path.is_absolute() and _NOT_A_FILE.match(str(path)):
        raise ConfigurationError(
            f"database {str(path)!r} is not a local file path: DuckDB would open it as a "
            "remote or in-memory database (for a local file of that name, give its "
            "absolute path)"
        )
    return path


def connect(
    path: Path | str, *, read_only: bool = False, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse (creating and migrating it unless ``read_only``).

    ``memory_limit`` (e.g. ``2GB``, ``1GB``): what DuckDB may use before it spills large
    joins and sorts to disk; the caller passes ``FINLOOM_DUCKDB_MEMORY_LIMIT``.
    """
    path = check_local_path(path)
    if not _MEMORY_LIMIT.fullmatch(memory_limit):
        raise ConfigurationError(
            f"DuckDB memory limit {memory_limit!r}: expected a size such as 2GB or 1GB"
        )
    if read_only and not path.exists():
        raise StorageError(f"database {path} does not exist", path=str(path))
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        raise _translate(exc, path) from None
    # checked above against the settings' pattern (digits and a unit), so safe to inline
    con.execute(f"SET memory_limit = '{memory_limit}'")
    if not read_only:
        try:
            migrate(con)
        except duckdb.Error as exc:
            con.close()
            raise DatabaseCorruptError(
                f"database {path} cannot be migrated: {first_line(exc)}", path=str(path)
            ) from None
    return con


@contextmanager
def open_warehouse(
    path: Path | str, *, read_only: bool = False, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> Iterator[duckdb.DuckDBPyConnection]:
    """``connect`` as a context manager: the connection is closed on leaving.

    A read-write connection publishes the warehouse's status beside it (``storage.status``:
    ``writing`` while open, then ``idle`` with the tables' row counts), so health probes
    never need to open the database.
    """
    con = connect(path, read_only=read_only, memory_limit=memory_limit)
    if not read_only:
        status.publish_writing(path)
    try:
        yield con
    finally:
        try:
            if not read_only:
                status.publish_idle(path, con)
        finally:
            con.close()


def _translate(exc: duckdb.Error, path: Path) -> StorageError:
    message = first_line(exc)
    if "Could not set lock" in message or "Conflicting lock" in message:
        holder = _LOCK_HOLDER.search(message)
        who = f" (PID {holder['pid']})" if holder else ""
        return DatabaseLockedError(
            f"database {path} is locked by another process{who}: wait for it to finish",
            path=str(path),
        )
    if isinstance(
        exc, duckdb.IOException | duckdb.SerializationException | duckdb.InternalException
    ):
        return DatabaseCorruptError(
            f"database {path} is not a readable DuckDB file: {message}", path=str(path)
        )
    return StorageError(f"database {path}: {message}", path=str(path))
