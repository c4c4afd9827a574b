"""Decoding of EDGAR JSON documents, with errors that carry where the bytes came from."""

from __future__ import annotations

import re
from typing import Any

import orjson

from finloom_core.cik import parse_cik
from finloom_core.errors import InvalidCikError, ResponseParseError


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


HEAD_BYTES = 64 << 10
"""How much of a document's start ``declared_cik`` is given: SEC puts ``cik`` first."""

_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\],:]')
_VALUE = re.compile(rb'\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)')


def declared_cik(head: bytes) -> object:
    """The value of the top-level ``cik`` member found in ``head`` (the first bytes of a
    JSON object), or None when there is none there."""
    depth, expect_key, end = 0, False, 0
    for token in _TOKEN.finditer(head):
        if b'"' in head[end : token.start()]:
            break  # an unterminated string: the head was cut inside it
        end = token.end()
        text = token.group()
        if text in (b"{", b"["):
            depth += 1
            expect_key = text == b"{" and depth == 1
        elif text in (b"}", b"]"):
            depth -= 1
            if depth <= 0:
                break
        elif text == b",":
            expect_key = depth == 1
        elif text != b":" and expect_key:
            expect_key = False
            if _decoded(text) == "cik":
                value = _VALUE.match(head, end)
                if value is not None:
                    return _decoded(value.group(1))
                rest = head[end:].lstrip(b" \t\r\n:")  # an object or array: not a CIK
                return rest[:40].decode("utf-8", "replace") if rest[:1] in (b"{", b"[") else None
    return None


def _decoded(text: bytes) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text.decode("utf-8", "replace")


def check_document_cik(declared: object, cik: int, *, origin: str) -> None:
    """Refuse a document whose own ``cik`` (``declared``; None: it states none) is not the
    company it was read for, with a ResponseParseError naming ``origin`` and both CIKs."""
    if declared is None:
        return
    try:
        found: int | None = parse_cik(declared)
    except InvalidCikError:
        found = None
    if found == cik:
        return
    shown = f"CIK {found:010d}" if found is not None else f"cik {str(declared)[:40]!r}"
    raise ResponseParseError(
        f"{origin}: document states {shown} but was read for CIK {cik:010d}: refused",
        source=origin,
        cik=cik,
    )
