"""SEC's bulk archives (``companyfacts.zip``, ``submissions.zip``) fetched to a local folder.

One archive is one large document, so it has its own streaming path, not the client's
per-document one (whose size cap is meant for JSON documents):

* through the run's ``SecGate``: the rate limiter is acquired once per request, an open
  circuit stops the download, and a 429 or SEC's rate page opens it;
* streamed to ``<name>.part`` beside the archive, at most ``BULK_MAX_BYTES`` and within
  ``BULK_DEADLINE_SECONDS`` per request; a broken connection is resumed with
  ``Range: bytes=N-`` (``If-Range`` with the part's ETag: a changed archive starts over),
  retried as the retry policy says;
* conditional on the validators of the last complete download (``<name>.validators.json``):
  an unchanged archive is answered 304 and not downloaded again;
* checked before it replaces the previous archive: the zip's central directory must read
  and every member's CRC must match; a truncated or corrupt archive is removed and fails
  with a one-line ``SourceError``, the previous archive and the warehouse untouched.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx

from finloom_core.edgar.gate import RequestEvent, SecGate
from finloom_core.edgar.retry import RetryPolicy, parse_retry_after
from finloom_core.edgar.urls import EdgarUrls
from finloom_core.errors import (
    CircuitOpenError,
    DocumentLimitError,
    HttpStatusError,
    NotFoundError,
    RateLimitedError,
    SourceError,
    TransientHttpError,
)
from finloom_core.settings import FinloomSettings
from finloom_core.validators import Validators

log = logging.getLogger(__name__)

BULK_MAX_BYTES = 16 << 30  # SEC's companyfacts.zip is ~1.4 GB
BULK_DEADLINE_SECONDS = 6 * 3600.0  # one request, body included
CHUNK = 64 << 10


@dataclass(frozen=True, slots=True)
class BulkArchive:
    """An archive on disk; ``downloaded`` is False when SEC answered 304 (kept as it was)."""

    path: Path
    downloaded: bool
    validators: Validators
    bytes_received: int = 0

    @property
    def day(self) -> date | None:
        """The archive's date (its Last-Modified), or None when SEC did not say."""
        if not self.validators.last_modified:
            return None
        try:
            return email.utils.parsedate_to_datetime(self.validators.last_modified).date()
        except (TypeError, ValueError):
            return None


class BulkDownloader:
    """Fetches bulk archives into ``folder`` through ``gate`` (see the module)."""

    def __init__(
        self,
        settings: FinloomSettings,
        gate: SecGate,
        folder: Path,
        *,
        http: httpx.Client | None = None,
        max_bytes: int = BULK_MAX_BYTES,
        deadline_seconds: float = BULK_DEADLINE_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.gate = gate
        self.folder = folder
        self.max_bytes = max_bytes
        self.deadline_seconds = deadline_seconds
        self.policy = RetryPolicy.from_settings(settings)
        self.urls = EdgarUrls(settings.edgar_data_url, settings.edgar_www_url)
        # identity: Range offsets count the archive's own bytes
        self._headers = {"User-Agent": settings.require_user_agent(), "Accept-Encoding": "identity"}
        self._owns_http = http is None
        self._http = http or httpx.Client(
            timeout=httpx.Timeout(settings.http_timeout_seconds), follow_redirects=True
        )
        self._sleep = sleep

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def companyfacts(self) -> BulkArchive:
        return self.fetch(self.urls.companyfacts_zip(), "companyfacts.zip")

    def submissions(self) -> BulkArchive | None:
        """``submissions.zip``, or None when SEC has none (404)."""
        try:
            return self.fetch(self.urls.submissions_zip(), "submissions.zip")
        except NotFoundError:
            return None

    def fetch(self, url: str, name: str) -> BulkArchive:
        """The archive at ``url`` as ``folder/name``: downloaded, resumed or kept (304)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / name
        part = target.with_name(name + ".part")
        last = _read_validators(target) if target.is_file() else Validators()
        for attempt in range(self.policy.max_retries + 1):
            try:
                done = self._attempt(url, part, last)
            except TransientHttpError as exc:
                if attempt >= self.policy.max_retries:
                    raise
                delay = self.policy.delay(attempt, exc.retry_after, random.random())
                have = part.stat().st_size if part.exists() else 0
                log.warning(
                    "bulk download of %s interrupted at %s bytes (%s): resuming in %.1f s",
                    url, f"{have:,}", exc, delay,
                )  # fmt: skip
                self._sleep(delay)
                continue
            if done is None:
                log.info("%s not modified since the last download: kept %s", url, target)
                return BulkArchive(target, False, last)
            validators, received = done
            check_archive(part, origin=url)
            os.replace(part, target)
            _part_validators_file(part).unlink(missing_ok=True)
            _validators_file(target).write_text(
                json.dumps({"etag": validators.etag, "last_modified": validators.last_modified})
            )
            return BulkArchive(target, True, validators, received)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, url: str, part: Path, last: Validators) -> tuple[Validators, int] | None:
        """One request: None on 304, else the archive's validators once ``part`` is whole."""
        if self.gate.is_open():
            raise CircuitOpenError(
                f"circuit open after SEC errors: no request to {url}",
                url=url, remaining=self.gate.cooloff_remaining(),
            )  # fmt: skip
        headers = dict(self._headers)
        have = part.stat().st_size if part.exists() else 0
        part_validators = _read_part_validators(part) if have else Validators()
        if have and part_validators.etag:
            headers |= {"Range": f"bytes={have}-", "If-Range": part_validators.etag}
        else:
            have = 0
            headers |= last.request_headers()
        self.gate.limiter.acquire()
        started = time.perf_counter()
        status: int | None = None
        try:
            with self._http.stream("GET", url, headers=headers) as response:
                status = response.status_code
                html = "html" in response.headers.get("content-type", "").lower()
                blocked = False
                if html or status not in (200, 206):  # an error answer or page: small
                    response.read()
                    blocked = self.policy.is_block(response)
                self._report(url, status, started, blocked)
                if blocked:
                    self.gate.trip()
                    raise RateLimitedError(
                        f"SEC rate limit (HTTP {status}) at {url}",
                        url=url, status=status,
                        retry_after=parse_retry_after(response.headers.get("retry-after")),
                    )  # fmt: skip
                if status == 304 and not have:
                    return None
                if status == 416:  # the part no longer fits the archive: start over
                    part.unlink(missing_ok=True)
                    raise TransientHttpError(f"HTTP 416 from {url}", url=url, status=status)
                self._check_status(response, url)
                validators = Validators.from_headers(response.headers)
                offset = have if status == 206 else 0
                self._check_range(response, url, offset)
                _part_validators_file(part).write_text(
                    json.dumps({"etag": validators.etag, "last_modified": validators.last_modified})
                )
                received = self._stream(response, url, part, offset, started)
                return validators, received
        except httpx.HTTPError as exc:
            if status is None:
                self._report(url, None, started, False)
            if self.policy.retries_exception(exc):
                raise TransientHttpError(f"{type(exc).__name__}: {exc}", url=url) from None
            raise HttpStatusError(f"{type(exc).__name__} for {url}: {exc}", url=url) from None

    def _report(self, url: str, status: int | None, started: float, blocked: bool) -> None:
        elapsed = time.perf_counter() - started
        self.gate.report(RequestEvent(url, status, elapsed, rate_limited=blocked))

    def _check_status(self, response: httpx.Response, url: str) -> None:
        status = response.status_code
        if status in (200, 206):
            if "html" in response.headers.get("content-type", "").lower():
                raise SourceError(f"HTML page instead of a zip archive from {url}", path=url)
            return
        if status == 404:
            raise NotFoundError(f"404 Not Found: {url}", url=url, status=status)
        if self.policy.retries_status(status):
            raise TransientHttpError(
                f"HTTP {status} from {url}", url=url, status=status,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )  # fmt: skip
        raise HttpStatusError(f"HTTP {status} from {url}", url=url, status=status)

    def _check_range(self, response: httpx.Response, url: str, offset: int) -> None:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and offset + int(declared) > self.max_bytes:
            raise DocumentLimitError(
                f"{url} declares {offset + int(declared):,} bytes, over the"
                f" {self.max_bytes:,}-byte archive cap: not downloaded",
                url=url, status=response.status_code,
            )  # fmt: skip
        if offset:
            ranged = response.headers.get("content-range", "")
            if not ranged.startswith(f"bytes {offset}-"):
                raise HttpStatusError(
                    f"{url} answered range {ranged or '(none)'} for bytes {offset}-", url=url
                )

    def _stream(
        self, response: httpx.Response, url: str, part: Path, offset: int, started: float
    ) -> int:
        """Write the body to ``part`` from ``offset``; the archive's size once complete."""
        deadline = started + self.deadline_seconds
        size = offset
        with part.open("r+b" if offset else "wb") as out:
            out.seek(offset)
            out.truncate()
            for chunk in response.iter_raw(CHUNK):
                out.write(chunk)
                size += len(chunk)
                if size > self.max_bytes:
                    raise DocumentLimitError(
                        f"{url} passed the {self.max_bytes:,}-byte archive cap: not downloaded",
                        url=url, status=response.status_code,
                    )  # fmt: skip
                if time.perf_counter() > deadline:
                    raise DocumentLimitError(
                        f"{url} not received within {self.deadline_seconds:g} s"
                        f" ({size:,} bytes so far)",
                        url=url, status=response.status_code,
                    )  # fmt: skip
        return size


def check_archive(path: Path, *, origin: str) -> None:
    """The zip's central directory reads and every member's CRC matches, or a one-line
    SourceError (the file is removed: a corrupt archive is never kept)."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        path.unlink(missing_ok=True)
        raise SourceError(
            f"archive from {origin} is truncated or corrupt ({exc}): not loaded", path=origin
        ) from None
    if bad is not None:
        path.unlink(missing_ok=True)
        raise SourceError(
            f"archive from {origin} is corrupt (CRC mismatch in member {bad}): not loaded",
            path=origin,
        )


def _validators_file(target: Path) -> Path:
    return target.with_name(target.name + ".validators.json")


def _part_validators_file(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _read_validators(target: Path) -> Validators:
    return _load(_validators_file(target))


def _read_part_validators(part: Path) -> Validators:
    return _load(_part_validators_file(part))


def _load(path: Path) -> Validators:
    try:
        data = json.loads(path.read_text())
        return Validators(data.get("etag"), data.get("last_modified"))
    except (OSError, ValueError, AttributeError):
        return Validators()
