"""What is in the warehouse: tables, row counts, file size, schema version."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from finloom_core.settings import DEFAULT_MEMORY_LIMIT
from finloom_core.sql import quote_ident, table_names
from finloom_core.storage.database import open_warehouse
from finloom_core.storage.schema import current_version


@dataclass(frozen=True, slots=True)
class WarehouseInfo:
    path: Path
    size_bytes: int
    schema_version: int
    tables: dict[str, int]


def warehouse_info(path: Path | str, *, memory_limit: str = DEFAULT_MEMORY_LIMIT) -> WarehouseInfo:
    """Row counts of every table (read-only; the file must exist)."""
    path = Path(path)
    with open_warehouse(path, read_only=True, memory_limit=memory_limit) as con:
        names = table_names(con)
        counts = {}
        for name in names:  # names come from the catalog, quoted as identifiers
            table = quote_ident(name)
            counts[name] = int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
        version = current_version(con) if "schema_migrations" in counts else 0
    size = path.stat().st_size
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        size += wal.stat().st_size
    return WarehouseInfo(path, size, version, counts)
