"""Prefect tasks of the normalize stage: thin wrappers around ``normalize_batch`` and
``normalize_pending`` (the companies an interrupted run left with facts newer than their
financials, rebuilt before a run's first load).

Like the load task, it retries only when another process holds the DuckDB write lock (a
whole-task, transient failure); normalizing is deterministic, so nothing else is retried.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from finloom_core.pipeline import normalize_batch, normalize_pending
from finloom_core.settings import DEFAULT_MEMORY_LIMIT
from finloom_ops import metrics
from finloom_ops.observe import stage
from tasks import RETRY_ON_LOCKED_DATABASE


@task(name="normalize", cache_policy=NO_CACHE, **RETRY_ON_LOCKED_DATABASE)
def normalize_task(
    db_path: str, ciks: Sequence[int], memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> dict[int, int]:
    """Rebuild ``financials`` for the companies whose facts changed; rows per company."""
    started = time.perf_counter()
    with stage("normalize", companies=len(ciks)) as span:
        counts = normalize_batch(db_path, list(ciks), memory_limit=memory_limit)
        span.set_attribute("finloom.rows", sum(counts.values()))
        get_run_logger().info(  # inside the span: the line carries its trace_id
            "normalized %d companies: %d financials rows", len(counts), sum(counts.values())
        )
    metrics.record_normalized(len(counts), sum(counts.values()), time.perf_counter() - started)
    return counts


@task(name="normalize-pending", cache_policy=NO_CACHE, **RETRY_ON_LOCKED_DATABASE)
def normalize_pending_task(
    db_path: str, batch_size: int, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> dict[int, int]:
    """Rebuild the financials of the companies marked as needing it; rows per company."""
    started = time.perf_counter()
    with stage("normalize", step="pending"):
        counts = normalize_pending(db_path, batch_size=batch_size, memory_limit=memory_limit)
    if counts:  # nothing pending is no normalize step: not counted
        metrics.record_normalized(len(counts), sum(counts.values()), time.perf_counter() - started)
        get_run_logger().warning(
            "rebuilt the financials of %d companies an interrupted run left behind their"
            " facts: %d rows", len(counts), sum(counts.values()),
        )  # fmt: skip
    return counts
