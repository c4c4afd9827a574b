"""Decoding of EDGAR JSON documents, with errors that carry where the bytes came from."""

from __future__ import annotations

from typing import Any

import orjson

from finloom_core.errors import ResponseParseError


def load_json_object(
    data: bytes | str | dict[str, Any], *, origin: str, cik: int | None = None
) -> dict[str, Any]:
    """Decode ``data`` into a JSON object or raise a ResponseParseError whose source is
    ``origin`` (a URL, a file path or ``archive.zip:member``) and whose CIK is ``cik``."""
    if isinstance(data, dict):
        return data
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        head = bytes(data[:64]) if isinstance(data, bytes | bytearray) else data[:64].encode()
        kind = (
            "an HTML page"
            if head.lstrip().lower().startswith((b"<!doc", b"<html"))
            else ("not valid JSON (truncated or corrupt)")
        )
        raise ResponseParseError(
            f"{origin}: body is {kind}: {exc}", source=origin, cik=cik
        ) from None
    if not isinstance(doc, dict):
        raise ResponseParseError(f"{origin}: expected a JSON object", source=origin, cik=cik)
    return doc
