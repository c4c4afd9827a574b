"""Prefect tasks of the ``backup`` flow: back up the warehouse, then prune old backups.

Thin adapters around ``finloom_core.backup``; each opens (read-only) and closes its own
DuckDB connection, so nothing holding the database crosses a task boundary.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from finloom_core.backup import BackupResult, create_backup, list_backups
from finloom_core.storage.published import read_target
from tasks import RETRY_ON_LOCKED_DATABASE


@task(name="backup", cache_policy=NO_CACHE, **RETRY_ON_LOCKED_DATABASE)
def backup_task(db_path: str, to: str, keep: int | None, memory_limit: str) -> BackupResult:
    """One consistent backup of ``db_path``'s published copy (the warehouse itself before
    the first publish, retried while a writer holds it) to ``to``; the newest ``keep``
    backups are kept."""
    source = read_target(db_path).path  # the published copy: never waits for a load
    result = create_backup(source, to, keep=keep, memory_limit=memory_limit)
    info = result.backup
    get_run_logger().info(
        "backup %s at %s: %d tables, %d rows, %.1f MiB in %.1f s%s",
        info.id,
        result.location,
        len(info.rows),
        sum(info.rows.values()),
        info.bytes / 2**20,
        result.seconds,
        f"; deleted {', '.join(result.pruned)}" if result.pruned else "",
    )
    return result


@task(name="backup-list", cache_policy=NO_CACHE)
def list_backups_task(to: str) -> list[str]:
    """The ids of the complete backups at ``to``, oldest first."""
    return [info.id for info in list_backups(to)]
