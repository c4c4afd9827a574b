"""Prefect tasks: thin adapters from Prefect to finloom_core, one ``@task`` module a stage.

The one Prefect retry policy the tasks use lives here: HTTP retries live in the EDGAR
client; a task is retried only for a whole-task transient failure, another process
holding the DuckDB write lock.
"""

from __future__ import annotations

from typing import Any

from finloom_core.errors import DatabaseLockedError


def database_locked(task, task_run, state) -> bool:  # type: ignore[no-untyped-def]
    """Prefect retry condition: retry only when the task failed on a locked database."""
    try:
        state.result()
    except DatabaseLockedError:
        return True
    except Exception:
        return False
    return False


# @task(..., **RETRY_ON_LOCKED_DATABASE)
RETRY_ON_LOCKED_DATABASE: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [5, 15, 30],
    "retry_condition_fn": database_locked,
}
