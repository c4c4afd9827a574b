"""Prefect task of the normalize stage: a thin wrapper around ``normalize_batch``.

Like the load task, it retries only when another process holds the DuckDB write lock (a
whole-task, transient failure); normalizing is deterministic, so nothing else is retried.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from finloom_core.pipeline import normalize_batch
from finloom_core.settings import DEFAULT_MEMORY_LIMIT
from finloom_ops.observe import stage
from tasks import RETRY_ON_LOCKED_DATABASE


@task(name="normalize", cache_policy=NO_CACHE, **RETRY_ON_LOCKED_DATABASE)
def normalize_task(
    db_path: str, ciks: Sequence[int], memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> dict[int, int]:
    """Rebuild ``financials`` for the companies whose facts changed; rows per company."""
    with stage("normalize", companies=len(ciks)):
        counts = normalize_batch(db_path, list(ciks), memory_limit=memory_limit)
    get_run_logger().info(
        "normalized %d companies: %d financials rows", len(counts), sum(counts.values())
    )
    return counts
