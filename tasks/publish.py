"""Publishing a run's results: the summary as a Prefect artifact, and the warehouse itself
as a read-only copy for readers (``finloom_core.storage.published``)."""

from __future__ import annotations

from collections.abc import Sequence

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from finloom_core.records import CompanyOutcome
from finloom_core.report import RunSummary, summary_markdown
from finloom_core.settings import DEFAULT_MEMORY_LIMIT, DEFAULT_PUBLISHED_KEEP
from finloom_core.storage.published import is_stale, publish
from finloom_ops.observe import stage
from tasks import RETRY_ON_LOCKED_DATABASE

BACKFILL_ARTIFACT_KEY = "finloom-backfill-summary"


@task(name="publish-summary", cache_policy=NO_CACHE)
def publish_backfill_summary(summary: RunSummary, outcomes: Sequence[CompanyOutcome]) -> str:
    """Publish the per-company markdown summary; returns the artifact key."""
    create_markdown_artifact(
        markdown=summary_markdown(summary, outcomes),
        key=BACKFILL_ARTIFACT_KEY,
        description=f"FinLoom backfill of {summary.companies} companies from {summary.source}",
    )
    return BACKFILL_ARTIFACT_KEY


@task(name="publish-warehouse", cache_policy=NO_CACHE, **RETRY_ON_LOCKED_DATABASE)
def publish_warehouse_task(
    db_path: str,
    keep: int = DEFAULT_PUBLISHED_KEEP,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    only_if_stale: bool = True,
) -> str | None:
    """Publish the warehouse's read-only copy for readers after a completed load; returns
    the new snapshot's path. With ``only_if_stale``, a warehouse not written since its last
    publish is not published again (returns None)."""
    logger = get_run_logger()
    if only_if_stale and not is_stale(db_path):
        logger.info("the published warehouse is current: nothing written since it was published")
        return None
    with stage("publish-warehouse"):
        done = publish(db_path, keep=keep, memory_limit=memory_limit)
    logger.info(
        "published the warehouse for readers: %s (%.1f MiB in %.2f s; %d older snapshot(s)"
        " removed)", done.snapshot, done.size_bytes / 2**20, done.seconds, len(done.removed),
    )  # fmt: skip
    return str(done.snapshot)
