"""The ``backup`` flow: one verified-restorable backup of the whole warehouse.

Runs on its own (deployment ``backup``, daily after the nightly) and as a subflow:
``backup(to=..., keep=..., db_path=...)``. What is read, in one read-only transaction, is
the published copy of the warehouse at ``db_path`` (``finloom_core.storage.published``),
so a backup never waits for a load; before the first publish, the warehouse itself (a
read-only open of a file another process writes is retried as a locked database). The
backup's summary is published as the ``finloom-backup`` artifact.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from finloom_core.backup import BackupResult
from finloom_core.settings import load_settings
from finloom_ops.alerting import FAILURE_HOOKS
from finloom_ops.observe import observed_flow
from tasks.backup import backup_task, list_backups_task

ARTIFACT_KEY = "finloom-backup"


@flow(name="backup", log_prints=False, validate_parameters=True, **FAILURE_HOOKS)
def backup(to: str, keep: int | None = None, db_path: str | None = None) -> BackupResult:
    """Back up every table of the warehouse to ``to`` and keep the newest ``keep``.

    Args:
        to: a folder or ``s3://bucket/prefix`` (S3 through the AWS_* environment settings).
        keep: backups to keep there after this one (all when None).
        db_path: the warehouse whose published copy is backed up; defaults to
            FINLOOM_DB_PATH.
    """
    settings = load_settings()
    db = db_path or str(settings.db_path)
    with observed_flow("backup", settings, db) as run:
        result = backup_task(db, to, keep, settings.duckdb_memory_limit)
        kept = list_backups_task(to)
        info = result.backup
        run.counts.update(tables=len(info.rows), rows=sum(info.rows.values()), bytes=info.bytes)
        rows = "\n".join(f"| `{name}` | {count:,} |" for name, count in info.rows.items())
        create_markdown_artifact(
            key=ARTIFACT_KEY,
            markdown=(
                f"## Backup {info.id}\n\n{result.location}, schema v{info.schema_version}, "
                f"{info.bytes / 2**20:.1f} MiB, {result.seconds:.1f} s\n\n"
                f"| table | rows |\n|---|---:|\n{rows}\n\n"
                f"Backups kept there: {len(kept)} (oldest {kept[0] if kept else '-'})."
            ),
            description=f"FinLoom backup {info.id}",
        )
        return result
