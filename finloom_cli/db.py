"""``finloom db``: inspect the DuckDB warehouse (its published copy, which readers read)."""

from __future__ import annotations

import json
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
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of the table.")
    ] = False,
) -> None:
    """List tables, row counts, schema version and file size of the published warehouse
    (the copy readers open; before the first publish, the warehouse file itself)."""
    from finloom_core.storage.info import WarehouseInfo, warehouse_info
    from finloom_core.storage.published import ReadTarget, current_path, read_published

    def read() -> tuple[Path, WarehouseInfo, ReadTarget]:
        settings = load_settings()
        path, limit = db or settings.db_path, settings.duckdb_memory_limit
        info, target = read_published(path, lambda p: warehouse_info(p, memory_limit=limit))
        return path, info, target

    db_path, info, target = guarded(read)
    published = current_path(db_path) if target.published else None
    if as_json:
        payload = {
            "path": str(db_path),
            "published": None if published is None else str(published),
            "snapshot": str(target.path) if target.published else None,
            "schema_version": info.schema_version,
            "size_bytes": info.size_bytes,
            "tables": info.tables,
        }
        print(json.dumps(payload, indent=1))
        return
    table = Table(title=f"{db_path} (schema v{info.schema_version})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in info.tables.items():
        table.add_row(name, f"{count:,}")
    out.print(table)
    if published is not None:
        out.print(f"published: {published} -> {target.path.name}", highlight=False, soft_wrap=True)
    else:
        out.print(
            "published: nothing yet (read the warehouse file itself; each load publishes"
            " a copy for readers at its end)",
            highlight=False,
            soft_wrap=True,
        )
    out.print(f"file size: {info.size_bytes:,} bytes ({info.size_bytes / 2**20:.1f} MiB)")
