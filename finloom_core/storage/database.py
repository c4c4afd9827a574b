"""Opening the DuckDB warehouse with one-line errors for locked and corrupt files."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from finloom_core.errors import (
    DatabaseCorruptError,
    DatabaseLockedError,
    StorageError,
    first_line,
)
from finloom_core.storage.schema import migrate

log = logging.getLogger(__name__)

_LOCK_HOLDER = re.compile(r"held in (?P<prog>.+?) \(PID (?P<pid>\d+)\)")


def connect(path: Path | str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse (creating and migrating it unless ``read_only``)."""
    path = Path(path)
    if read_only and not path.exists():
        raise StorageError(f"database {path} does not exist", path=str(path))
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        raise _translate(exc, path) from None
    # validated by the settings' pattern (digits and a unit), so safe to inline
    con.execute(f"SET memory_limit = '{_memory_limit()}'")
    if not read_only:
        try:
            migrate(con)
        except duckdb.Error as exc:
            con.close()
            raise DatabaseCorruptError(
                f"database {path} cannot be migrated: {first_line(exc)}", path=str(path)
            ) from None
    return con


def _memory_limit() -> str:
    """FINLOOM_DUCKDB_MEMORY_LIMIT (read per connection, so a test or a run can change it)."""
    from finloom_core.settings import load_settings

    return load_settings().duckdb_memory_limit


@contextmanager
def open_warehouse(
    path: Path | str, *, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(path, read_only=read_only)
    try:
        yield con
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
