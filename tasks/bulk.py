"""Prefect tasks of ``finloom backfill --bulk``: SEC's bulk archives, fetched through the
flow run's ``SecGate`` into the bulk folder, and the nightly watermark set after the load."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from finloom_core.edgar import SecGate
from finloom_core.edgar.bulk import BulkArchive, BulkDownloader
from finloom_core.settings import DEFAULT_MEMORY_LIMIT, FinloomSettings
from finloom_core.sql import transaction
from finloom_core.storage.database import open_warehouse
from finloom_core.storage.nightly import set_watermark
from finloom_ops.observe import stage


@task(name="bulk-download", cache_policy=NO_CACHE, retries=0)
def bulk_download_task(settings: FinloomSettings, gate: SecGate, folder: str) -> BulkArchive:
    """companyfacts.zip and submissions.zip into ``folder`` (each resumed, or kept on 304);
    returns the companyfacts archive (submissions.zip lies beside it)."""
    logger = get_run_logger()
    with stage("bulk-download", folder=folder):
        downloader = BulkDownloader(settings, gate, Path(folder))
        try:
            facts = downloader.companyfacts()
            subs = downloader.submissions()
        finally:
            downloader.close()
    for archive in (facts, subs):
        if archive is not None:
            what = f"downloaded ({archive.bytes_received:,} bytes)" if archive.downloaded else (
                "not modified since the last download"
            )  # fmt: skip
            logger.info("%s: %s", archive.path, what)
    return facts


@task(name="bulk-watermark", cache_policy=NO_CACHE, retries=0)
def bulk_watermark_task(db_path: str, day: date, memory_limit: str = DEFAULT_MEMORY_LIMIT) -> None:
    """The nightly runs start after ``day``, the date of the bulk archive just loaded."""
    with open_warehouse(db_path, memory_limit=memory_limit) as con, transaction(con):
        set_watermark(con, day)
    get_run_logger().info("nightly watermark set to %s (the bulk archive's date)", day)
