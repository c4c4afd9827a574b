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
    │   └── ResponseParseError (ValueError)   HTML or a truncated body where JSON was expected
    ├── SourceError                           a local folder or archive is unusable
    └── StorageError                          the DuckDB warehouse
        ├── DatabaseLockedError               another process holds the write lock
        └── DatabaseCorruptError              the file is not a readable DuckDB database

Every error has a one-line ``str()`` fit for a CLI message.
"""

from __future__ import annotations


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


class ResponseParseError(EdgarError, ValueError):
    """The body is not the JSON we asked for: an HTML error page, or a truncated document."""


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


class QualityCriticalError(FinloomError):
    """A quality run found a critical problem; raised after its artifacts are published."""

    def __init__(self, message: str, report: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): the
    one-line form FinLoom reports third-party errors (DuckDB's run to several lines) in."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
