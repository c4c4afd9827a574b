"""The nightly run's state in the warehouse: the watermark and the pending companies.

* ``nightly_watermark`` (one row): the last day whose filers all loaded. A night processes
  the days after it; a bulk load may start it at its archive's date (``set_watermark``).
* ``nightly_pending``: companies that failed or were deferred, retried every night until
  they load; ``first_day`` is the first day they were due (the watermark stays before it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import duckdb

from finloom_core.sql import transaction


@dataclass(frozen=True, slots=True)
class PendingCompany:
    cik: int
    name: str | None
    first_day: date
    status: str  # failed | deferred
    reason: str | None
    attempts: int


def get_watermark(con: duckdb.DuckDBPyConnection) -> date | None:
    """The last day a nightly run (or a bulk load) fully processed, or None."""
    rows = con.execute("SELECT last_day FROM nightly_watermark WHERE id = 1").fetchall()
    return rows[0][0] if rows else None


def set_watermark(con: duckdb.DuckDBPyConnection, day: date) -> None:
    """Record ``day`` as the last day processed (the next night starts the day after)."""
    con.execute(
        "INSERT OR REPLACE INTO nightly_watermark (id, last_day, updated_at)"
        " VALUES (1, $day, now())",
        {"day": day},
    )


def pending_companies(con: duckdb.DuckDBPyConnection) -> list[PendingCompany]:
    rows = con.execute(
        "SELECT cik, name, first_day, status, reason, attempts FROM nightly_pending ORDER BY cik"
    ).fetchall()
    return [PendingCompany(int(r[0]), r[1], r[2], r[3], r[4], int(r[5])) for r in rows]


def record_night(
    con: duckdb.DuckDBPyConnection,
    *,
    pending: Sequence[PendingCompany],
    settled: Iterable[int],
    watermark: date | None,
) -> None:
    """One transaction: store ``pending`` (replacing earlier rows of those companies), drop
    the ``settled`` companies (loaded, unchanged or without XBRL facts) from the list, and
    move the watermark to ``watermark`` when it is given."""
    settled_ciks = sorted(set(settled) - {p.cik for p in pending})
    with transaction(con):
        if settled_ciks:
            con.execute(
                "DELETE FROM nightly_pending WHERE list_contains($ciks, cik)",
                {"ciks": settled_ciks},
            )
        if pending:
            con.execute(
                "INSERT OR REPLACE INTO nightly_pending"
                " (cik, name, first_day, status, reason, attempts, updated_at)"
                " SELECT unnest($ciks), unnest($names), unnest($days), unnest($statuses),"
                " unnest($reasons), unnest($attempts), now()",
                {
                    "ciks": [p.cik for p in pending],
                    "names": [p.name for p in pending],
                    "days": [p.first_day for p in pending],
                    "statuses": [p.status for p in pending],
                    "reasons": [p.reason for p in pending],
                    "attempts": [p.attempts for p in pending],
                },
            )
        if watermark is not None:
            set_watermark(con, watermark)


def ciks_of_tickers(con: duckdb.DuckDBPyConnection, tickers: Sequence[str]) -> dict[str, int]:
    """Ticker (upper case) -> CIK for the tickers the ``companies`` table knows."""
    rows = con.execute(
        "SELECT t.ticker, min(c.cik) FROM (SELECT unnest($tickers) AS ticker) t"
        " JOIN companies c ON list_contains(c.tickers, t.ticker) GROUP BY t.ticker",
        {"tickers": [t.strip().upper() for t in tickers]},
    ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}
