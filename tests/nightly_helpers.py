"""Synthetic daily master indexes for the nightly tests (built here, never copied from SEC)."""

from __future__ import annotations

from datetime import date

HEADER = (
    "Description:           Daily Index of EDGAR Dissemination Feed\n"
    "Last Data Received:    {day:%b %d, %Y}\n"
    "Comments:              webmaster@sec.gov\n"
    "Anonymous FTP:         ftp://ftp.sec.gov/edgar/\n"
    " \n"
    "CIK|Company Name|Form Type|Date Filed|File Name\n" + "-" * 80 + "\n"
)


def master_idx(day: date, rows: list[tuple[int, str, str]]) -> bytes:
    """A ``master.YYYYMMDD.idx`` body: one line per (cik, company, form)."""
    lines = [
        f"{cik}|{name}|{form}|{day:%Y%m%d}|edgar/data/{cik}/0000000000-{n:02d}-000001.txt"
        for n, (cik, name, form) in enumerate(rows)
    ]
    return (HEADER.format(day=day) + "\n".join(lines) + "\n").encode("latin-1")


def index_path(day: date) -> str:
    quarter = (day.month - 1) // 3 + 1
    return f"/Archives/edgar/daily-index/{day.year}/QTR{quarter}/master.{day:%Y%m%d}.idx"


def ciks_in(path: str) -> set[int]:
    """The CIKs a request path names (companyfacts, submissions)."""
    import re

    return {int(m) for m in re.findall(r"CIK(\d{10})", path)}
