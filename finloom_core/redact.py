"""Redaction of credentials in everything FinLoom writes: logs, summaries, artifacts, health.

Two kinds of secret become ``***``:

* the userinfo of any URL: ``http://user:pass@host/x`` -> ``http://***@host/x``;
* secret values: those of secret-looking environment variables (names containing TOKEN,
  SECRET, PASSWORD or API_KEY, plus ``PREFECT_API_KEY``, ``FINLOOM_ALERT_WEBHOOK_URL`` and
  ``FINLOOM_SERVE_TOKEN``), the passwords of URLs held in any environment variable, and the
  secret settings given to :func:`refresh_secrets` (values read from a ``.env`` file), and
  every value resolved from a ``secret:NAME`` reference (:func:`resolve_reference`).

A secret-bearing setting may hold ``secret:NAME`` instead of its value: a reference (not
a secret itself) resolved at run time by the registered :class:`SecretResolver` (FinLoom's
is ``finloom_ops.secrets``: Prefect Secret blocks). The value resolved is redacted from then on.

:func:`redact` is the one function every writer calls (the log filter, outcome reasons,
the run summary and its artifact, the CLI's error line, health details, the Pushgateway
warning). Stdlib only (and ``finloom_core.errors``), so every floor can import it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

from finloom_core.errors import ConfigurationError

REDACTED = "***"
# A secret-bearing setting's value naming a secret instead of holding it: ``secret:NAME``.
SECRET_REFERENCE = "secret:"
SECRET_NAME_PARTS = ("TOKEN", "SECRET", "PASSWORD", "API_KEY")
SECRET_NAMES = frozenset(
    {
        "PREFECT_API_KEY",
        "FINLOOM_ALERT_WEBHOOK_URL",
        "FINLOOM_SERVE_TOKEN",
        "FINLOOM_SLACK_WEBHOOK_URL",
        "FINLOOM_PAGERDUTY_ROUTING_KEY",
    }
)
# Shorter values are not redacted: replacing "1" or "true" everywhere would garble every line.
MIN_SECRET_LENGTH = 4
# Settings whose values are URLs that may carry credentials (user:password@host).
URL_SETTINGS = (
    "edgar_data_url",
    "edgar_www_url",
    "pushgateway_url",
    "otlp_endpoint",
    "redis_url",
)
SECRET_SETTINGS = ("alert_webhook_url", "serve_token", "slack_webhook_url", "pagerduty_routing_key")

# scheme://userinfo@ : the userinfo runs to the last "@" before the host (a password may
# hold an unencoded "@"), never across a path, query, fragment, quote or whitespace.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/?#'\"<>\[\]]+@")

_lock = threading.Lock()
_secrets: tuple[str, ...] | None = None
_registered: set[str] = set()  # resolved secret values: kept through every refresh


class SecretResolver(Protocol):
    """Returns the value of the secret ``name`` (of ``secret:NAME``); raises a one-line
    ConfigurationError (never holding a value) when there is none."""

    def __call__(self, name: str) -> str: ...


_resolver: SecretResolver | None = None


def set_secret_resolver(resolver: SecretResolver | None) -> SecretResolver | None:
    """Register the resolver of ``secret:NAME`` references (None: none); returns the previous."""
    global _resolver
    previous, _resolver = _resolver, resolver
    return previous


def is_reference(value: object) -> bool:
    return isinstance(value, str) and value.strip().startswith(SECRET_REFERENCE)


def resolve_reference(reference: str, variable: str, resolver: SecretResolver | None = None) -> str:
    """The value ``secret:NAME`` names (through ``resolver``, else the registered one),
    registered for redaction; a one-line ConfigurationError naming ``variable`` if none."""
    name = reference.strip().removeprefix(SECRET_REFERENCE).strip()
    if not name:
        raise ConfigurationError(f"{variable}: {SECRET_REFERENCE} needs a name (secret:NAME)")
    resolver = resolver or _resolver
    if resolver is None:
        raise ConfigurationError(
            f"{variable}: secret:{name} needs the Prefect block store (Secret blocks), which "
            "the finloom command and FinLoom's flows provide; set the value itself here"
        )
    value = resolver(name)
    add_secret(value)
    return value


def resolve_references(values: Mapping[str, str | None]) -> dict[str, str]:
    """``{name: value}`` of the ``values`` (setting name -> text) holding
    ``secret:NAME``, whole or as their URL's password, with the reference resolved."""
    resolved: dict[str, str] = {}
    for name, text in values.items():
        variable = f"FINLOOM_{name.upper()}"
        if text is None:
            continue
        if is_reference(text):
            resolved[name] = resolve_reference(text, variable)
            continue
        try:
            password = urlsplit(text.strip()).password if "@" in text else None
        except ValueError:
            password = None
        if password and is_reference(password):
            value = quote(resolve_reference(password, variable), safe="")
            resolved[name] = text.replace(f":{password}@", f":{value}@", 1)
    return resolved


def url_secrets(value: str) -> set[str]:
    """The password of a URL with userinfo (as written and percent-decoded), else nothing."""
    if "@" not in value or "://" not in value:
        return set()
    try:
        password = urlsplit(value.strip()).password
    except ValueError:
        return set()
    if not password:
        return set()
    return {password, unquote(password)}


def collect_secrets(
    environ: Mapping[str, str] | None = None, extra: Iterable[str | None] = ()
) -> tuple[str, ...]:
    """Secret values of the environment (and ``extra``), longest first."""
    env = os.environ if environ is None else environ
    values: set[str] = set()
    for name, value in env.items():
        upper = name.upper()
        if upper in SECRET_NAMES or any(part in upper for part in SECRET_NAME_PARTS):
            values.add(value)
        values |= url_secrets(value)
    values.update(value for value in extra if value)
    return _longest_first(values)


def _longest_first(values: Iterable[str]) -> tuple[str, ...]:
    """Values worth redacting (not too short, not a ``secret:NAME`` reference), longest first."""
    kept = {v for v in values if len(v) >= MIN_SECRET_LENGTH and not is_reference(v)}
    return tuple(sorted(kept, key=len, reverse=True))


def add_secret(value: str) -> None:
    """Redact ``value`` from now on in this process (and its URL password, its encoded form)."""
    global _secrets
    if not value:
        return
    values = {value, quote(value, safe=""), *url_secrets(value)}
    with _lock:
        _registered.update(values)
        if _secrets is not None:
            _secrets = _longest_first({*_secrets, *values})


def settings_secrets(settings: Any) -> list[str]:
    """Secret values held by FinLoom settings: secret fields and URL passwords."""
    found: list[str] = []
    for name in SECRET_SETTINGS:
        value = getattr(settings, name, None)
        if value is not None:
            found.append(value.get_secret_value() if hasattr(value, "get_secret_value") else value)
    for name in URL_SETTINGS:
        value = getattr(settings, name, None)
        if isinstance(value, str):
            found.extend(url_secrets(value))
    return found


def refresh_secrets(settings: Any = None) -> None:
    """Re-read the secret values (the environment, and ``settings``' secrets if given)."""
    global _secrets
    extra = settings_secrets(settings) if settings is not None else []
    with _lock:
        extra.extend(_registered)
    collected = collect_secrets(extra=extra)
    with _lock:
        _secrets = collected


def secret_values() -> tuple[str, ...]:
    """The secret values :func:`redact` replaces (read from the environment on first use)."""
    if _secrets is None:
        refresh_secrets()
    return _secrets or ()


def redact(text: str) -> str:
    """``text`` without URL credentials (``scheme://***@host``) nor secret values (``***``)."""
    if "@" in text and "://" in text:
        text = _USERINFO.sub(rf"\g<scheme>{REDACTED}@", text)
    for secret in secret_values():
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_value(value: Any) -> Any:
    """``value`` with every string inside (dict values, list items) redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item) for item in value)
    return value
