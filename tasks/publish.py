"""Publishing run results as Prefect artifacts."""

from __future__ import annotations

from collections.abc import Sequence

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from finloom_core.records import CompanyOutcome
from finloom_core.report import RunSummary, summary_markdown

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
