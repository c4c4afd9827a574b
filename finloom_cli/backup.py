"""``finloom backup`` and ``finloom restore``: verified backups of the whole warehouse
(``finloom_core.backup``), to a local folder or ``s3://bucket/prefix``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from finloom_cli.audit import audited
from finloom_cli.common import DbOption, guarded, note, out
from finloom_core.settings import load_settings

if TYPE_CHECKING:
    from finloom_core.backup import RestoreResult


def backup(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="Backup folder or s3://bucket/prefix (S3: the AWS_* settings).",
            show_default=False,
        ),
    ],
    keep: Annotated[
        int | None,
        typer.Option(min=1, help="Then keep only the newest N backups there."),
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="List the backups there instead (oldest first).")
    ] = False,
    db: DbOption = None,
) -> None:
    """Back up every table of the warehouse (one consistent read-only snapshot, Parquet
    and a manifest of row counts, content hashes and checksums), or --list the backups."""
    if list_:
        _print_list(to)
        return
    from finloom_core.backup import BackupResult, create_backup
    from finloom_core.storage.published import read_target

    def run() -> BackupResult:
        settings = load_settings()
        source = read_target(db or settings.db_path).path  # the published copy, if any
        note(f"backing up {source} to {to} ...")
        return create_backup(source, to, keep=keep, memory_limit=settings.duckdb_memory_limit)

    def counts(done: BackupResult) -> dict[str, int]:
        info = done.backup
        return {"tables": len(info.rows), "rows": sum(info.rows.values()), "bytes": info.bytes,
                "pruned": len(done.pruned)}  # fmt: skip

    parameters = {"to": to, "keep": keep, "db": db}
    result = guarded(audited("backup", db, parameters, run, counts))
    info = result.backup
    out.print(
        f"backup {info.id} at {result.location}: {len(info.rows)} tables, "
        f"{sum(info.rows.values()):,} rows, {info.bytes / 2**20:.1f} MiB, {result.seconds:.1f} s",
        highlight=False,
    )
    if result.pruned:
        out.print(f"deleted (--keep {keep}): {', '.join(result.pruned)}", highlight=False)


def _print_list(location: str) -> None:
    from finloom_core.backup import BackupInfo, list_backups

    def read() -> list[BackupInfo]:
        return list_backups(location)

    backups = guarded(read)
    table = Table(title=f"backups at {location}")
    for column, justify in (("id", "left"), ("created (UTC)", "left"), ("schema", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_column("facts", justify="right")
    table.add_column("MiB", justify="right")
    for info in backups:
        table.add_row(
            info.id,
            info.created_at,
            f"v{info.schema_version}",
            f"{info.rows.get('facts', 0):,}",
            f"{info.bytes / 2**20:.1f}",
        )
    out.print(table)
    if not backups:
        note(f"no backup at {location}")


def restore(
    from_: Annotated[
        str,
        typer.Option(
            "--from",
            help="Backup folder or s3://bucket/prefix (S3: the AWS_* settings).",
            show_default=False,
        ),
    ],
    backup_id: Annotated[
        str | None, typer.Option("--id", help="The backup to restore (default: the latest).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Replace an existing non-empty database at --db.")
    ] = False,
    db: Annotated[
        Path | None,
        typer.Option(help="Database file to restore to (default FINLOOM_DB_PATH)."),
    ] = None,
) -> None:
    """Restore the latest (or --id) backup, verified against its manifest (checksums, row
    counts, content hashes) before it becomes the database at --db."""
    from finloom_core.backup import restore_backup
    from finloom_core.storage.published import publish

    def run() -> RestoreResult:
        settings = load_settings()
        target = db or settings.db_path
        note(f"restoring {backup_id or 'the latest backup'} from {from_} to {target} ...")
        restored = restore_backup(
            from_,
            target,
            backup_id=backup_id,
            force=force,
            memory_limit=settings.duckdb_memory_limit,
        )
        parameters = {"from": from_, "id": backup_id, "force": force, "db": target}
        _record_restore(restored, parameters, settings.duckdb_memory_limit)
        # readers get the restored warehouse, not a snapshot of the one it replaced
        publish(target, keep=settings.published_keep, memory_limit=settings.duckdb_memory_limit)
        return restored

    result = guarded(run)
    info = result.backup
    out.print(
        f"restored backup {info.id} ({info.created_at}, schema v{info.schema_version}) from "
        f"{result.location} to {result.db_path}: {len(info.rows)} tables verified, "
        f"{sum(info.rows.values()):,} rows, {result.seconds:.1f} s",
        highlight=False,
    )


def _record_restore(
    restored: RestoreResult, parameters: Mapping[str, Any], memory_limit: str
) -> None:
    """The restore's entry, in the restored warehouse's audit log: its chain head becomes
    that of the restored log (the file it belonged to was replaced), then the entry is
    appended. A failed restore is not recorded: the database at --db stays untouched."""
    from finloom_core import audit
    from finloom_core.storage.database import open_warehouse

    info = restored.backup
    counts = {"tables": len(info.rows), "rows": sum(info.rows.values())}
    try:
        with open_warehouse(restored.db_path, memory_limit=memory_limit) as con:
            head = audit.adopt_head(con, restored.db_path)
            counts["audit_entries_restored"] = head.seq
            entry = audit.record(con, "restore", {**parameters, "restored": info.id}, counts=counts)
    except Exception as exc:  # never fails the restore: an audit gap, said loudly
        note(f"warning: the restore was NOT recorded in the audit log: {exc}", style="yellow")
        return
    if entry is not None:
        note(f"audit log: entry #{entry.seq} (restore success)")
