"""FinLoom's exception tree (stdlib only).

::

    FinloomError
    ├── ConfigurationError (ValueError)       a setting is missing or invalid
    ├── InputError (ValueError)               bad user input
    │   ├── InvalidCikError                   a CIK that is not 1-10 digits
    │   └── UnknownTickerError                a ticker absent from SEC's ticker map
    ├── EdgarError                            talking to SEC EDGAR (fields: url, status)
    │   ├── TransientHttpError                5xx, timeout, connection error: retried
    │   ├── RateLimitedError                  429 or SEC's "Request Rate Threshold Exceeded"
    │   ├── CircuitOpenError                  the breaker is open: no request leaves the process
    │   ├── NotFoundError (LookupError)       404
    │   ├── HttpStatusError                   any other unexpected status
    │   │   └── AccessDeniedError (LookupError)  403 AccessDenied XML: no such Archives file
    │   │                                     (a day without a daily index)
    │   └── ResponseParseError (ValueError)   HTML, a truncated or damaged document where
    │       │                                 JSON was expected (fields: source, cik)
    │       └── DocumentLimitError            a document over the size cap, or an HTTP body
    │                                         not received within the request's deadline
    ├── SourceError                           a local folder or archive is unusable
    ├── StorageError                          the DuckDB warehouse
    │   ├── DatabaseLockedError               another process holds the write lock
    │   └── DatabaseCorruptError              the file is not a readable DuckDB database
    ├── BackupError                           a lake or backup location is unusable, or a
    │                                         backup fails verification
    ├── IncompleteRunError                    a run ended with companies failed or deferred
    │                                         (field: summary)
    └── QualityCriticalError                  a quality run found a critical problem
                                              (field: report)

Every error has a one-line ``str()`` fit for a CLI message. The two run verdicts
(``IncompleteRunError``, ``QualityCriticalError``) keep their fields through pickling, so
they survive the trip back from a Prefect flow run.
"""

from __future__ import annotations

import functools
from typing import Any


class FinloomError(Exception):
    """Base of every error FinLoom raises on purpose."""


class ConfigurationError(FinloomError, ValueError):
    """A required setting is missing or invalid."""


class InputError(FinloomError, ValueError):
    """User input FinLoom cannot act on."""


class InvalidCikError(InputError):
    def __init__(self, value: object) -> None:
        self.value = value
        super().__init__(f"malformed CIK {value!r}: expected 1 to 10 digits")


class UnknownTickerError(InputError):
    def __init__(self, tickers: list[str]) -> None:
        self.tickers = tickers
        names = ", ".join(tickers)
        super().__init__(f"unknown ticker(s): {names} (not in SEC's company_tickers.json)")


class EdgarError(FinloomError):
    """A request to EDGAR (or a stand-in) did not yield usable data."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        self.url = url
        self.status = status
        super().__init__(message)


class _RetryAfterError(EdgarError):
    """An EdgarError that may carry the server's Retry-After, in seconds."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, url=url, status=status)


class TransientHttpError(_RetryAfterError):
    """A failure worth retrying: 5xx, timeout, connection error."""


class RateLimitedError(_RetryAfterError):
    """SEC says we went over its fair-access limit (429, or its 403 threshold page)."""


class CircuitOpenError(EdgarError):
    """The circuit breaker is open: requests are refused locally until the cool-off ends."""

    def __init__(self, message: str, *, url: str | None = None, remaining: float | None = None):
        self.remaining = remaining
        super().__init__(message, url=url)


class NotFoundError(EdgarError, LookupError):
    """404: the document does not exist (for companyfacts: the company has no XBRL facts)."""


class HttpStatusError(EdgarError):
    """An unexpected, non-retryable HTTP status (401, 403 without the rate page, 410, ...)."""


class AccessDeniedError(HttpStatusError, LookupError):
    """403 with SEC's ``AccessDenied`` XML: how its Archives answer a file that does not
    exist (e.g. the daily index of a weekend). Not a block, not a breaker failure."""


class ResponseParseError(EdgarError, ValueError):
    """A document is not the JSON expected: an HTML error page, a truncated or damaged body.

    ``source`` is where the bytes came from: a URL, a file path or ``archive.zip:member``
    (without it, ``url``). ``url`` is set for HTTP(S) sources only. ``cik`` is the company
    the document belongs to, when known; the message then names it (``CIK 0000320193``
    unless its 10 digits are already there, as in a file name). The message is one line.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        cik: int | None = None,
        url: str | None = None,
        status: int | None = None,
    ) -> None:
        if url is None and source is not None and source.startswith(("http://", "https://")):
            url = source
        self.source = source if source is not None else url
        self.cik = cik
        text = " ".join(line.strip() for line in message.splitlines() if line.strip())
        if cik is not None and f"{cik:010d}" not in text:
            text = f"CIK {cik:010d}: {text}"
        super().__init__(text, url=url, status=status)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        rebuild = functools.partial(
            type(self), source=self.source, cik=self.cik, url=self.url, status=self.status
        )
        return (rebuild, (str(self),))


class DocumentLimitError(ResponseParseError):
    """A document FinLoom refuses to read whole: over the document size cap (a file, an
    archive member or an HTTP body, by its declared or its counted size), or an HTTP body
    still arriving at the request's overall deadline. Not retried."""


class SourceError(FinloomError):
    """A local EDGAR folder or bulk archive cannot be read."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class StorageError(FinloomError):
    """The DuckDB warehouse cannot be used."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class DatabaseLockedError(StorageError):
    """Another process holds the DuckDB file (DuckDB allows one writer process)."""


class DatabaseCorruptError(StorageError):
    """The file exists but is not a DuckDB database FinLoom can open."""


class IncompleteRunError(FinloomError):
    """A run finished but some companies failed or were deferred; carries the summary."""

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        self.summary = summary or {}
        super().__init__(message)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (str(self), self.summary))


class QualityCriticalError(FinloomError):
    """A quality run found a critical problem; raised after its artifacts are published.
    ``report`` is the run's published ``QualityReport`` (``finloom_core.quality.results``,
    a floor above this module, hence not imported here)."""

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (str(self), self.report))


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): the
    one-line form FinLoom reports third-party errors (DuckDB's run to several lines) in."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class BackupError(FinloomError):
    """A lake export, backup or restore failed: an unusable location (missing bucket, bad
    credentials, unreachable endpoint, a folder that is not FinLoom's), or a backup that is
    incomplete or fails verification (checksum, row count, content hash)."""
