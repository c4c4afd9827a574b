"""The HTTP cache of EDGAR's JSON documents shared by FinLoom workers (in Redis).

The ticker map, submissions and companyfacts a worker downloaded are kept with their
validators (``ETag``, ``Last-Modified``), so the next worker asking for one sends a
conditional request instead of downloading it again: a 304 Not Modified serves the cached
body, a 200 replaces it. The cache never answers by itself: every use is revalidated with
SEC, through the gate's limiter and circuit, so a cached body is never served past its
validators, and a response without validators is never cached.

:class:`ResponseCache` is what the client needs (``EdgarClient`` consults its gate's
cache); :class:`RedisResponseCache` keeps one Redis hash per URL::

    finloom:http:<sha256 of the URL>  ->  {etag, modified, body (zlib)}

with a TTL (``FINLOOM_CACHE_TTL_SECONDS``). A body over ``FINLOOM_CACHE_MAX_ENTRY_MB`` once
compressed is not cached (companyfacts can be tens of MB). A Redis error is a miss, or a
store skipped, never a failed request (see :class:`~finloom_core.edgar.redis_shared.
RedisLink`). ``finloom cache flush`` removes every entry (:func:`flush`).
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from dataclasses import dataclass
from typing import Protocol

import redis
from redis.exceptions import RedisError

from finloom_core.edgar.redis_shared import KEY_PREFIX, RedisLink
from finloom_core.staging import MAX_DOCUMENT_BYTES
from finloom_core.validators import Validators

log = logging.getLogger(__name__)

CACHE_PREFIX = KEY_PREFIX + "http:"
COMPRESS_LEVEL = 3  # JSON shrinks ~10x already; higher levels cost time on tens of MB
_FLUSH_BATCH = 500


@dataclass(frozen=True, slots=True)
class CachedResponse:
    body: bytes
    validators: Validators


class ResponseCache(Protocol):
    """A cache of response bodies by URL, each with the validators it was served with."""

    def get(self, url: str) -> CachedResponse | None: ...

    def put(self, url: str, body: bytes, validators: Validators) -> None: ...


def cache_key(url: str) -> str:
    """The Redis key of ``url``'s entry (hashed: a URL never appears in Redis)."""
    return CACHE_PREFIX + hashlib.sha256(url.encode()).hexdigest()


class RedisResponseCache:
    """:class:`ResponseCache` in Redis: zlib bodies, ``ttl_seconds``, at most
    ``max_entry_bytes`` compressed per entry."""

    def __init__(
        self,
        link: RedisLink,
        *,
        ttl_seconds: int,
        max_entry_bytes: int,
        max_body_bytes: int = MAX_DOCUMENT_BYTES,
    ) -> None:
        self.link = link
        self.ttl_seconds = ttl_seconds
        self.max_entry_bytes = max_entry_bytes
        self.max_body_bytes = max_body_bytes

    def get(self, url: str) -> CachedResponse | None:
        """``url``'s entry, or None (none, unusable, or Redis unreachable)."""
        if not self.link.usable():
            return None
        try:
            found: list[object] = self.link.client.hmget(  # type: ignore[assignment]
                cache_key(url), ["etag", "modified", "body"]
            )
        except RedisError as exc:
            self.link.failed(exc)
            return None
        self.link.succeeded()
        etag, modified, packed = found
        validators = Validators(_text(etag), _text(modified))
        if not isinstance(packed, bytes) or not validators:
            return None
        inflate = zlib.decompressobj()
        try:
            body = inflate.decompress(packed, self.max_body_bytes + 1)
        except zlib.error:
            log.warning("cached response of %s is damaged: downloaded again", url)
            return None
        if len(body) > self.max_body_bytes or inflate.unconsumed_tail or not body:
            return None
        return CachedResponse(body, validators)

    def put(self, url: str, body: bytes, validators: Validators) -> None:
        """Keep ``body`` for ``url`` (skipped without validators or over the size cap)."""
        if not validators or not body or not self.link.usable():
            return
        packed = zlib.compress(body, COMPRESS_LEVEL)
        if len(packed) > self.max_entry_bytes:
            log.debug("response of %s not cached: %d bytes compressed", url, len(packed))
            return
        key = cache_key(url)
        fields = {
            "etag": validators.etag or "",
            "modified": validators.last_modified or "",
            "body": packed,
        }
        try:
            with self.link.client.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
                pipe.expire(key, self.ttl_seconds)
                pipe.execute()
        except RedisError as exc:
            self.link.failed(exc)
            return
        self.link.succeeded()

    def __repr__(self) -> str:
        return f"RedisResponseCache({self.link.label!r}, ttl={self.ttl_seconds})"


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str) or not value:
        return None
    return value


def flush(client: redis.Redis) -> int:
    """Remove every cached response from ``client``'s Redis; return how many there were."""
    removed = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=CACHE_PREFIX + "*", count=_FLUSH_BATCH):
        batch.append(key)
        if len(batch) >= _FLUSH_BATCH:
            removed += int(client.unlink(*batch))  # type: ignore[arg-type]
            batch = []
    if batch:
        removed += int(client.unlink(*batch))  # type: ignore[arg-type]
    return removed
