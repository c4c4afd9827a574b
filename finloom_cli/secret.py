"""``finloom secret``: FinLoom's secrets in Prefect Secret blocks.

``finloom secret set NAME`` reads the value from standard input (a hidden prompt on a
terminal), never from the command line, which ``ps`` and shell histories show. Settings
then name it: ``FINLOOM_ALERT_WEBHOOK_URL=secret:NAME``.
"""

from __future__ import annotations

import getpass
import sys
import threading
from typing import Annotated

import typer

from finloom_cli.common import guarded, note, out
from finloom_core.errors import InputError

secret_app = typer.Typer(
    help="Secrets kept in Prefect Secret blocks, named by settings as secret:NAME.",
    no_args_is_help=True,
)

NameArgument = Annotated[
    str, typer.Argument(help="Secret block name: lowercase letters, digits and dashes.")
]


def prefect_api() -> None:
    """Before the command's first call to Prefect's API: with no PREFECT_API_URL, start its
    temporary server tied to this process (from the main thread only, see tempserver)."""
    if threading.current_thread() is not threading.main_thread():
        return
    from finloom_cli.runs import run_settings

    with run_settings():
        pass


def read_value(name: str) -> str:
    """The secret's value from standard input (without its final newline); InputError if
    there is none."""
    if sys.stdin is not None and sys.stdin.isatty():
        value = getpass.getpass(f"value of secret {name} (hidden): ")
    else:
        value = sys.stdin.read() if sys.stdin is not None else ""
    value = value.removesuffix("\n").removesuffix("\r")
    if not value.strip():
        raise InputError(
            f"no value for secret {name!r} on standard input: pipe it in, e.g. "
            f"printf '%s' \"$VALUE\" | finloom secret set {name}"
        )
    return value


@secret_app.command("set")
def set_secret(name: NameArgument) -> None:
    """Store a value read from standard input as the Prefect Secret block NAME."""
    from finloom_ops.secrets import check_name, save_secret

    def run() -> None:
        check_name(name)
        save_secret(name, read_value(name))
        # the audit log records who stored which secret, never its value
        from finloom_core import audit
        from finloom_core.settings import load_settings

        settings = load_settings(resolve_secrets=False)
        audit.record(
            settings.db_path, "secret set", {"name": name, "store": "prefect-secret-block"},
            memory_limit=settings.duckdb_memory_limit, existing_log_only=True,
        )  # fmt: skip

    guarded(run)
    note(f"secret {name} stored in a Prefect Secret block: refer to it as secret:{name}")


@secret_app.command("list")
def list_secrets() -> None:
    """The names of the Prefect Secret blocks (never their values)."""
    from finloom_ops.secrets import list_secrets as names

    for name in guarded(names):
        out.print(name, highlight=False, markup=False)
