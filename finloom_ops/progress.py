"""Progress of a running backfill, for a display in the same process.

The ``backfill`` flow reports here as it goes (companies resolved, each batch loaded, the
quality subflow starting); ``finloom backfill`` listens and draws a progress bar on a
terminal. A run with no listener (a worker, a deployment run, a test) pays one attribute
check per report. A listener that raises is logged and dropped, never failing the run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from finloom_core.records import CompanyOutcome

log = logging.getLogger(__name__)


class ProgressListener(Protocol):
    def started(self, companies: int, batches: int) -> None:
        """The companies are resolved and split into ``batches``."""

    def batch_done(self, number: int, batches: int, outcomes: Sequence[CompanyOutcome]) -> None:
        """Batch ``number`` (1-based) is loaded (and normalized); its companies' outcomes."""

    def phase(self, name: str) -> None:
        """A step after the batches begins (``quality``: the quality subflow)."""


_listener: ProgressListener | None = None


@contextmanager
def listening(listener: ProgressListener) -> Iterator[None]:
    """Send this process's progress reports to ``listener`` while the block runs."""
    global _listener
    previous, _listener = _listener, listener
    try:
        yield
    finally:
        _listener = previous


def started(companies: int, batches: int) -> None:
    _report("started", companies, batches)


def batch_done(number: int, batches: int, outcomes: Sequence[CompanyOutcome]) -> None:
    _report("batch_done", number, batches, outcomes)


def phase(name: str) -> None:
    _report("phase", name)


def _report(event: str, *args: object) -> None:
    global _listener
    listener = _listener
    if listener is None:
        return
    try:
        getattr(listener, event)(*args)
    except Exception:
        log.warning("progress display failed; continuing without it", exc_info=True)
        _listener = None
