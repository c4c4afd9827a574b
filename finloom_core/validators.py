"""HTTP validators of a stored document (``ETag``, ``Last-Modified``).

Kept per URL in the warehouse's ``http_validators`` table, written only in the
transaction that stores the document's content (or confirms it is stored unchanged), and
sent back as ``If-None-Match`` / ``If-Modified-Since``: a 304 answer means the stored
content is current, and nothing is downloaded or loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Validators:
    etag: str | None = None
    last_modified: str | None = None

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Validators:
        """The validators of an HTTP answer (case-insensitive ``headers``, e.g. httpx's)."""
        return cls(headers.get("etag") or None, headers.get("last-modified") or None)

    def request_headers(self) -> dict[str, str]:
        """The conditional request headers these validators call for."""
        headers: dict[str, str] = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers
