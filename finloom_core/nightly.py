"""What a nightly run loads and how far its watermark moves (no I/O here).

A night covers the days after the watermark (or from ``--from``) through ``to`` (default
yesterday in New York), both inclusive. Its companies are those that filed an XBRL form
(``finloom_core.edgar.daily_index.XBRL_FORMS``) on those days, plus the pending ones; a
watch-list keeps only its own. The watermark advances over the days fetched, but never
onto the first day of a company that is still pending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from finloom_core.errors import InputError
from finloom_core.storage.nightly import PendingCompany

NEW_YORK = ZoneInfo("America/New_York")


def yesterday_in_new_york(now: datetime | None = None) -> date:
    return (now or datetime.now(NEW_YORK)).astimezone(NEW_YORK).date() - timedelta(days=1)


def day_range(
    watermark: date | None, from_date: date | None, to_date: date | None
) -> tuple[date, date]:
    """(first, last) day of a night; first > last means no day to fetch. Without a
    watermark and without ``from_date`` the night starts at ``to`` (yesterday by default)."""
    last = to_date or yesterday_in_new_york()
    if from_date is not None:
        if from_date > last:
            raise InputError(f"--from {from_date} is after --to {last}")
        return from_date, last
    if watermark is None:
        return last, last
    return watermark + timedelta(days=1), last


@dataclass(frozen=True, slots=True)
class DueCompany:
    cik: int
    name: str | None
    first_day: date  # the first day it was due (a filing day, or when it became pending)
    attempts: int = 0  # earlier nights that failed to load it


def due_companies(
    filers: Mapping[date, Mapping[int, str]],
    pending: Sequence[PendingCompany],
    watch: set[int] | None,
) -> dict[int, DueCompany]:
    """CIK -> company to load: the day's XBRL filers and the pending list (only the
    watch-list's when there is one), keyed by the first day each was due."""
    due: dict[int, DueCompany] = {
        p.cik: DueCompany(p.cik, p.name, p.first_day, p.attempts) for p in pending
    }
    for day in sorted(filers):
        for cik, name in filers[day].items():
            known = due.get(cik)
            if known is None:
                due[cik] = DueCompany(cik, name, day)
            elif day < known.first_day:
                due[cik] = DueCompany(cik, known.name or name, day, known.attempts)
    if watch is not None:
        due = {cik: company for cik, company in due.items() if cik in watch}
    return dict(sorted(due.items()))


def still_pending(
    due: Mapping[int, DueCompany], not_loaded: Mapping[int, tuple[str, str | None]]
) -> list[PendingCompany]:
    """The due companies the night did not load (CIK -> (status, reason)), to retry."""
    return [
        PendingCompany(cik, due[cik].name, due[cik].first_day, status, reason,
                       due[cik].attempts + 1)
        for cik, (status, reason) in sorted(not_loaded.items())
        if cik in due
    ]  # fmt: skip


def next_watermark(
    watermark: date | None, last_fetched: date | None, pending: Sequence[PendingCompany]
) -> date | None:
    """The watermark after a night that fetched the indexes through ``last_fetched``: that
    day, or the day before the earliest day of a pending company; None: it does not move."""
    if last_fetched is None:
        return None
    target = last_fetched
    if pending:
        target = min(target, min(p.first_day for p in pending) - timedelta(days=1))
    if watermark is not None and target <= watermark:
        return None
    return target
