"""What every ``finloom`` command shares: the consoles, one-line errors and exit codes,
the ``--db`` option and company lookup."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from finloom_core.cik import cik10, parse_cik
from finloom_core.errors import (
    ConfigurationError,
    FinloomError,
    InputError,
    SourceError,
    StorageError,
)
from finloom_core.redact import redact
from finloom_core.settings import DEFAULT_MEMORY_LIMIT, load_settings

out = Console()
err = Console(stderr=True)
T = TypeVar("T")

EXIT_INCOMPLETE = 1
EXIT_USAGE = 2


def json_logs() -> bool:
    """FINLOOM_LOG_FORMAT=json (environment or .env): every stderr line is a JSON object."""
    try:
        return load_settings().log_format == "json"
    except FinloomError:
        return os.environ.get("FINLOOM_LOG_FORMAT", "").strip().lower() == "json"


def note(message: str, level: int = logging.INFO, style: str = "dim") -> None:
    """A status line on stderr: rich text, or a JSON log record with FINLOOM_LOG_FORMAT=json
    (redacted: URL credentials and secret values never reach the terminal)."""
    message = redact(message)
    if not json_logs():
        err.print(f"[{style}]{message}[/]", highlight=False, soft_wrap=True)
        return
    from finloom_ops.logs import emit_line

    emit_line(level, message)


def fail(message: str, code: int) -> typer.Exit:
    """The one-line error of a command (redacted), and the exit to raise."""
    message = redact(message)
    if json_logs():
        note(f"error: {message}", logging.ERROR)
    else:
        err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def guarded(action: Callable[[], T]) -> T:
    """Run ``action``; turn any error into one line on stderr and an exit code."""
    try:
        return action()
    except typer.Exit:
        raise
    except (InputError, ConfigurationError, SourceError, StorageError) as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except FinloomError as exc:
        raise fail(str(exc), EXIT_INCOMPLETE) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None
    except Exception as exc:
        if os.environ.get("FINLOOM_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise fail(f"{type(exc).__name__}: {first}", EXIT_INCOMPLETE) from None


def split_values(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


DbOption = Annotated[Path | None, typer.Option(help="DuckDB file (default FINLOOM_DB_PATH).")]


def check_database(db_path: Path, memory_limit: str = DEFAULT_MEMORY_LIMIT) -> None:
    """Fail in one line, before Prefect starts, if the database is locked or corrupt
    (``memory_limit``: FINLOOM_DUCKDB_MEMORY_LIMIT, as the caller read it)."""
    from finloom_core.storage.database import open_warehouse

    with open_warehouse(db_path, memory_limit=memory_limit):
        pass


def resolve_company(con: Any, company: str) -> tuple[int, str | None]:
    """A ticker (from the companies table) or a CIK -> (cik, name); unknown -> InputError."""
    text = company.strip()
    if text.isdigit() or text.upper().startswith("CIK"):
        cik = parse_cik(text)
        rows = con.execute(
            "SELECT cik, (SELECT name FROM companies WHERE cik = $cik) FROM financials"
            " WHERE cik = $cik LIMIT 1",
            {"cik": cik},
        ).fetchall()
        if not rows:
            raise InputError(f"CIK {cik10(cik)} has no financials in the database")
        return int(rows[0][0]), rows[0][1]
    rows = con.execute(
        "SELECT cik, name FROM companies WHERE list_contains(tickers, $ticker) ORDER BY cik",
        {"ticker": text.upper()},
    ).fetchall()
    if not rows:
        raise InputError(f"unknown ticker {text.upper()!r} (not in the companies table)")
    return int(rows[0][0]), rows[0][1]
