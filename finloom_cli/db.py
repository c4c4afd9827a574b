"""``finloom db``: inspect the DuckDB warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from finloom_cli.common import (
    guarded,
    out,
)
from finloom_core.settings import load_settings

db_app = typer.Typer(help="Inspect the DuckDB warehouse.", no_args_is_help=True)


@db_app.command("info")
def db_info(
    db: Annotated[Path | None, typer.Option(help="DuckDB file (default FINLOOM_DB_PATH).")] = None,
) -> None:
    """List tables, row counts, schema version and file size."""
    from finloom_core.storage.info import WarehouseInfo, warehouse_info

    def read() -> WarehouseInfo:
        settings = load_settings()
        return warehouse_info(db or settings.db_path, memory_limit=settings.duckdb_memory_limit)

    info = guarded(read)
    table = Table(title=f"{info.path} (schema v{info.schema_version})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in info.tables.items():
        table.add_row(name, f"{count:,}")
    out.print(table)
    out.print(f"file size: {info.size_bytes:,} bytes ({info.size_bytes / 2**20:.1f} MiB)")
