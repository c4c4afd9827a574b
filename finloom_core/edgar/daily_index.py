"""SEC's daily master index (``master.YYYYMMDD.idx``): which companies filed what on a day.

The file is a few header lines, a ``CIK|Company Name|Form Type|Date Filed|File Name``
column line, a line of dashes, then one pipe-separated line per filing. Only the forms in
:data:`XBRL_FORMS` carry XBRL financial data; every other form (4, 8-K, S-8, ...) triggers
nothing in a nightly run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from finloom_core.errors import FinloomError, ResponseParseError

# The forms whose filing changes a company's XBRL financial facts: the one place they are named.
_XBRL_BASE_FORMS = ("10-K", "10-Q", "20-F", "40-F", "10-KT", "10-QT")
XBRL_FORMS: frozenset[str] = frozenset(
    (*_XBRL_BASE_FORMS, *(f"{form}/A" for form in _XBRL_BASE_FORMS))
)

_COLUMNS = "CIK|Company Name|Form Type|Date Filed|File Name"


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One filing of a daily master index."""

    cik: int
    company: str
    form: str
    filed: date
    file_name: str

    @property
    def carries_xbrl(self) -> bool:
        return is_xbrl_form(self.form)


def is_xbrl_form(form: str) -> bool:
    """True for a form that carries XBRL financial data (10-K, 10-Q, 20-F, ... and /A)."""
    return form.strip().upper() in XBRL_FORMS


def parse_master_index(body: bytes, *, source: str = "master index") -> list[IndexEntry]:
    """The filings of a ``master.YYYYMMDD.idx`` body; a body without the column line (an
    error page, a truncated file) is a ``ResponseParseError``."""
    text = body.decode("latin-1")
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == _COLUMNS)
    except StopIteration:
        raise ResponseParseError(f"{source}: no '{_COLUMNS}' header line") from None
    entries: list[IndexEntry] = []
    for number, line in enumerate(lines[start + 1 :], start=start + 2):
        if not line.strip() or set(line.strip()) == {"-"}:
            continue
        parts = line.split("|")
        if len(parts) != 5:
            raise ResponseParseError(f"{source}: line {number} has {len(parts)} fields, not 5")
        cik, company, form, filed, file_name = (p.strip() for p in parts)
        try:
            entries.append(IndexEntry(int(cik), company, form, _index_date(filed), file_name))
        except ValueError:
            raise ResponseParseError(f"{source}: line {number} is malformed: {line!r}") from None
    return entries


def _index_date(text: str) -> date:
    """``20200103`` (master indexes) or ``2020-01-03``."""
    if "-" in text:
        return date.fromisoformat(text)
    return datetime.strptime(text, "%Y%m%d").date()


def xbrl_filers(entries: Iterable[IndexEntry]) -> dict[int, str]:
    """CIK -> company name of the entries that filed an XBRL form."""
    return {e.cik: e.company for e in entries if e.carries_xbrl}


def days(first: date, last: date) -> list[date]:
    """Every day from ``first`` through ``last``, both inclusive (empty when first > last)."""
    return [first + timedelta(n) for n in range((last - first).days + 1)]


@dataclass(frozen=True, slots=True)
class IndexScan:
    """What the daily indexes of a day range said, day by day, in order.

    ``filers``: day -> XBRL filers (CIK -> name) of every day fetched (a day without an
    index maps to none); ``without_index``: those days; ``last_fetched``: the last day of
    the unbroken run of days fetched from the first; ``error``: why the next day could not
    be fetched (the days after it were not tried)."""

    filers: dict[date, dict[int, str]]
    without_index: tuple[date, ...]
    last_fetched: date | None
    error: str | None = None


def scan_days(fetch: Callable[[date], bytes | None], wanted: Sequence[date]) -> IndexScan:
    """Fetch and parse the master index of each day in ``wanted`` with ``fetch`` (e.g.
    ``EdgarClient.daily_index``); stops at the first day that fails."""
    filers: dict[date, dict[int, str]] = {}
    missing: list[date] = []
    last: date | None = None
    for day in wanted:
        try:
            body = fetch(day)
            filers[day] = (
                {}
                if body is None
                else xbrl_filers(parse_master_index(body, source=f"daily index of {day}"))
            )
        except FinloomError as exc:
            return IndexScan(filers, tuple(missing), last, f"daily index of {day}: {exc}")
        if body is None:
            missing.append(day)
        last = day
    return IndexScan(filers, tuple(missing), last)
