"""FinLoom's secrets in Prefect Secret blocks: the resolver of ``secret:NAME`` settings.

``finloom secret set NAME`` stores a value as the Secret block ``NAME`` (on the Prefect API
of ``PREFECT_API_URL``, else in the temporary server's database under ``PREFECT_HOME``); a
secret-bearing setting holding ``secret:NAME`` (``FINLOOM_ALERT_WEBHOOK_URL=secret:alert-webhook``,
or a URL's password: ``redis://:secret:redis-password@host:6379/0``) is then resolved when
settings are loaded, by :func:`read_secret` once :func:`install` registered it with
``finloom_core.redact``. Every value read or written is redacted from then on, in this
process: it never reaches a log line, an alert, an error message or ``finloom config show``.

``AWS_SECRET_ACCESS_KEY=secret:NAME`` is resolved by :func:`resolve_environment` into the
process environment, where boto3 reads it.

Prefect is imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable

from finloom_core.errors import ConfigurationError, InputError, first_line
from finloom_core.redact import (
    add_secret,
    is_reference,
    redact,
    resolve_reference,
    set_secret_resolver,
)

# Prefect's rule for block names: lowercase letters, digits and dashes.
BLOCK_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
BLOCK_TYPE = "secret"
# Process environment variables that may hold ``secret:NAME`` (read by libraries, not by
# FinLoom's settings): S3 credentials for boto3.
ENVIRONMENT_SECRETS = ("AWS_SECRET_ACCESS_KEY",)

_lock = threading.Lock()
_cache: dict[str, str] = {}
_prepare: Callable[[], None] | None = None


def check_name(name: str) -> str:
    """``name`` if Prefect accepts it as a block name, else a one-line InputError."""
    if not BLOCK_NAME.fullmatch(name):
        raise InputError(
            f"secret name {name!r}: use lowercase letters, digits and dashes (e.g. alert-webhook)"
        )
    return name


def _block_store_error(name: str, exc: BaseException) -> ConfigurationError:
    return ConfigurationError(
        f"secret {name!r}: the Prefect block store failed: {redact(first_line(exc))}"
    )


def _ready(name: str) -> None:
    """Run the installed ``prepare`` (e.g. start the temporary Prefect server)."""
    if _prepare is None:
        return
    try:
        _prepare()
    except Exception as exc:
        raise _block_store_error(name, exc) from None


def read_secret(name: str) -> str:
    """The value of the Secret block ``name`` (cached for this process, registered for
    redaction); a one-line ConfigurationError when there is none or the API fails."""
    with _lock:
        if name in _cache:
            return _cache[name]
    check_name(name)
    _ready(name)
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(name, _sync=True)
    except ValueError as exc:
        if "Unable to find block document" not in str(exc):
            raise _block_store_error(name, exc) from None
        raise ConfigurationError(
            f"no Prefect secret block {name!r}: store it with `finloom secret set {name}`"
        ) from None
    except Exception as exc:
        raise _block_store_error(name, exc) from None
    raw = block.value.get_secret_value()
    value = raw if isinstance(raw, str) else str(raw)
    if not value:
        raise ConfigurationError(f"the Prefect secret block {name!r} is empty")
    add_secret(value)
    with _lock:
        _cache[name] = value
    return value


def save_secret(name: str, value: str) -> None:
    """Store ``value`` as the Secret block ``name`` (replacing any)."""
    check_name(name)
    if not value:
        raise InputError(f"secret {name!r}: the value is empty")
    add_secret(value)  # redacted before anything could print it
    _ready(name)
    from prefect.blocks.system import Secret

    try:
        Secret(value=value).save(name, overwrite=True, _sync=True)
    except Exception as exc:
        raise _block_store_error(name, exc) from None
    with _lock:
        _cache[name] = value


def list_secrets() -> list[str]:
    """The names of the Secret blocks (never their values)."""
    _ready("*")
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            documents = client.read_block_documents_by_type(BLOCK_TYPE, include_secrets=False)
    except Exception as exc:
        raise _block_store_error("*", exc) from None
    return sorted(str(document.name) for document in documents if document.name)


def resolve_environment() -> None:
    """Replace ``secret:NAME`` in :data:`ENVIRONMENT_SECRETS` by the secret's value."""
    for variable in ENVIRONMENT_SECRETS:
        value = os.environ.get(variable, "")
        if is_reference(value):
            os.environ[variable] = resolve_reference(value, variable, read_secret)


def install(prepare: Callable[[], None] | None = None) -> None:
    """Make Prefect Secret blocks the resolver of ``secret:NAME`` settings in this process.

    ``prepare`` runs before each call to the Prefect API that is not cached (the command
    line starts its temporary Prefect server there); None keeps the one given before, so a
    module installing the resolver at import never undoes the command line's."""
    global _prepare
    if prepare is not None:
        _prepare = prepare
    set_secret_resolver(read_secret)


def clear_cache() -> None:
    """Forget the values read so far (they stay redacted)."""
    with _lock:
        _cache.clear()
