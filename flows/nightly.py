"""The ``nightly`` flow: SEC's daily master indexes -> the companies that filed -> backfill.

A night reads the daily master index of each day after the watermark (or from
``from_date``) through ``to_date`` (default yesterday in New York); a day without an index
(weekend, holiday: SEC answers 403 AccessDenied or 404) has no filings. The companies that
filed an XBRL form those days, plus the pending ones (only the watch-list's when tickers or
CIKs are given), are loaded by the ``backfill`` flow as a subflow, which downloads, parses,
loads, normalizes and scores them. Companies that failed or were deferred stay pending
(retried the next night) and hold the watermark before their day; a company without XBRL
facts at SEC is settled. With nothing to load no subflow runs.

The backfill subflow publishes the warehouse for readers at its end
(``finloom_core.storage.published``); a night without a subflow publishes it only when
nothing is published yet (a warehouse from before published copies).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.logging import get_run_logger

from finloom_core.cik import parse_cik
from finloom_core.edgar import SecGate
from finloom_core.edgar.daily_index import IndexScan, days
from finloom_core.errors import IncompleteRunError, QualityCriticalError
from finloom_core.nightly import day_range, due_companies, next_watermark, still_pending
from finloom_core.nightly_report import company_rows, nightly_markdown, outcome_of_backfill
from finloom_core.settings import load_settings
from finloom_core.storage.published import current_snapshot
from finloom_ops.alerting import FAILURE_HOOKS
from finloom_ops.observe import observed_flow
from flows.backfill import backfill
from flows.backup import backup
from tasks.nightly import (
    fetch_indexes_task,
    publish_nightly_summary,
    read_state_task,
    record_night_task,
    resolve_watch_task,
)
from tasks.publish import publish_warehouse_task


@flow(name="nightly", log_prints=False, validate_parameters=True, **FAILURE_HOOKS)
def nightly(
    from_date: date | None = None,
    to_date: date | None = None,
    tickers: list[str] | None = None,
    ciks: list[str | int] | None = None,
    db_path: str | None = None,
    quality: bool = True,
    backup_to: str | None = None,
    backup_keep: int | None = None,
) -> dict[str, Any]:
    """Load the companies that filed XBRL financial data since the last night.

    Args:
        from_date: first day (default: the day after the watermark; without one, to_date).
        to_date: last day (default: yesterday in America/New_York).
        tickers: watch-list tickers (with ciks: only these companies are loaded).
        ciks: watch-list CIKs.
        db_path: DuckDB file; defaults to FINLOOM_DB_PATH.
        quality: run the quality flow at the end of the backfill when anything was loaded.
        backup_to: after a successful night, back the warehouse up there (a folder or
            s3://bucket/prefix; the ``backup`` flow, as a subflow); none when unset.
        backup_keep: backups kept at ``backup_to`` (all when unset).
    """
    settings = load_settings()
    settings.require_user_agent()
    db = db_path or str(settings.db_path)
    memory = settings.duckdb_memory_limit
    gate = SecGate.from_settings(settings)  # one rate limit and one circuit for the run
    with observed_flow("nightly", settings, db, gate) as run:
        logger = get_run_logger()
        watermark, pending = read_state_task(db, memory)
        first, last = day_range(watermark, from_date, to_date)
        scan = (
            fetch_indexes_task(settings, gate, days(first, last))
            if first <= last else IndexScan({}, (), None)
        )  # fmt: skip
        watch: set[int] | None = None
        if tickers or ciks:
            watch = {parse_cik(c) for c in ciks or []}
            if tickers and (any(scan.filers.values()) or pending):
                watch |= set(resolve_watch_task(db, settings, gate, tickers, memory).values())
        due = due_companies(scan.filers, pending, watch)
        logger.info("nightly %s..%s: %d companies to load", first, last, len(due))
        backfilled: dict[str, Any] = {}
        error: QualityCriticalError | None = None
        if due:
            state = backfill(
                ciks=list(due), db_path=db, quality=quality, return_state=True
            )  # a subflow: download, parse, load, normalize, quality
            result = state.result(raise_on_failure=False)
            if isinstance(result, IncompleteRunError):
                backfilled = result.summary
            elif isinstance(result, QualityCriticalError):
                backfilled, error = {"quality_error": str(result)}, result
            elif isinstance(result, dict):
                backfilled = result
            else:  # the subflow crashed: every company stays pending
                backfilled = {"error": str(result)}
        not_loaded = outcome_of_backfill(list(due), backfilled)
        retry = still_pending(due, not_loaded)
        kept = [p for p in pending if p.cik not in due]  # pending outside the watch-list
        moved = next_watermark(watermark, scan.last_fetched, [*retry, *kept])
        if due or moved is not None:
            record_night_task(db, retry, [c for c in due if c not in not_loaded], moved, memory)
            # readers (and backups) get the night's watermark and pending list too
            publish_warehouse_task(db, settings.published_keep, memory)
        elif current_snapshot(db) is None and Path(db).exists():
            publish_warehouse_task(db, settings.published_keep, memory, only_if_stale=False)
        summary = {
            "days": [d.isoformat() for d in sorted(scan.filers)],
            "first_day": first.isoformat(),
            "last_day": last.isoformat(),
            "days_without_index": [d.isoformat() for d in scan.without_index],
            "index_error": scan.error,
            "companies": company_rows(due, backfilled, not_loaded),
            "pending": [
                {"cik": p.cik, "name": p.name, "day": p.first_day.isoformat(),
                 "status": p.status, "reason": p.reason, "attempts": p.attempts}
                for p in [*retry, *kept]
            ],
            "watermark": (moved or watermark).isoformat() if (moved or watermark) else None,
            "backfill": backfilled,
            "quality": backfilled.get("quality"),
        }  # fmt: skip
        # the audit log's counts (facts removed: in the backfill subflow's own entry)
        run.counts.update(
            companies_due=len(due), companies_pending=len(summary["pending"]),
            companies_loaded=(backfilled.get("by_status") or {}).get("loaded", 0),
            facts_added=backfilled.get("facts_written", 0),
        )  # fmt: skip
        if backup_to and error is None and not scan.error and not retry:
            summary["backup"] = backup(to=backup_to, keep=backup_keep, db_path=db).backup.id
        publish_nightly_summary(nightly_markdown(summary), f"FinLoom night {first}..{last}")
        if error is not None:
            raise error
        if scan.error or retry:
            raise IncompleteRunError(_failure_line(summary), summary)
        return summary


def _failure_line(summary: dict[str, Any]) -> str:
    parts = []
    if summary["index_error"]:
        parts.append(summary["index_error"])
    if summary["pending"]:
        parts.append(f"{len(summary['pending'])} companies pending")
    return "nightly incomplete: " + "; ".join(parts)
