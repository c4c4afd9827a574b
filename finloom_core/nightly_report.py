"""A nightly run's summary: which companies the backfill did not load, and the markdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from finloom_core.cik import cik10
from finloom_core.nightly import DueCompany
from finloom_core.redact import redact


def outcome_of_backfill(
    ciks: Sequence[int], backfilled: Mapping[str, Any]
) -> dict[int, tuple[str, str | None]]:
    """CIK -> (status, reason) of the companies the backfill subflow did not load: its
    failed and deferred ones, or all of them when the subflow itself failed."""
    if "error" in backfilled:
        return {cik: ("failed", str(backfilled["error"])) for cik in ciks}
    wanted = set(ciks)
    return {
        int(row["cik"]): (kind, row.get("reason"))
        for kind in ("failed", "deferred")
        for row in backfilled.get(kind) or []
        if int(row["cik"]) in wanted
    }


def company_rows(
    due: Mapping[int, DueCompany],
    backfilled: Mapping[str, Any],
    not_loaded: Mapping[int, tuple[str, str | None]],
) -> list[dict[str, Any]]:
    """One row per company of the night, with its backfill status."""
    listed = {int(r["cik"]): r for r in backfilled.get("per_company") or []}
    rows = []
    for cik, company in due.items():
        status, reason = not_loaded.get(cik, (None, None))
        row = listed.get(cik, {})
        rows.append({
            "cik": cik, "name": company.name or row.get("name"),
            "day": company.first_day.isoformat(),
            "status": status or row.get("status") or "loaded", "reason": reason,
        })  # fmt: skip
    return rows


def nightly_markdown(summary: Mapping[str, Any]) -> str:
    """The ``finloom-nightly-summary`` artifact."""
    lines = [
        f"# FinLoom night {summary['first_day']} .. {summary['last_day']}",
        "",
        f"- days read: {', '.join(summary['days']) or 'none'}",
        f"- days without an index (no filings): "
        f"{', '.join(summary['days_without_index']) or 'none'}",
        f"- watermark: {summary['watermark'] or 'not set'}",
    ]
    if summary.get("index_error"):
        lines.append(f"- index not read: {redact(summary['index_error'])}")
    if summary.get("backup"):
        lines.append(f"- backup: {summary['backup']}")
    lines += ["", "## Companies", ""]
    if summary["companies"]:
        lines += ["| CIK | company | day | status | reason |", "|---|---|---|---|---|"]
        lines += [_row(r) for r in summary["companies"]]
    else:
        lines.append("nothing new to load")
    lines += ["", "## Pending (retried next night)", ""]
    if summary["pending"]:
        lines += ["| CIK | company | day | status | reason |", "|---|---|---|---|---|"]
        lines += [_row(r) for r in summary["pending"]]
    else:
        lines.append("none")
    return "\n".join(lines) + "\n"


def _row(row: Mapping[str, Any]) -> str:
    reason = redact(str(row.get("reason") or "")).replace("|", "/")
    name = str(row.get("name") or "").replace("|", "/")
    return f"| {cik10(int(row['cik']))} | {name} | {row['day']} | {row['status']} | {reason} |"
