"""``finloom audit``: the warehouse's audit log (``finloom_core.audit``), listed or verified;
and :func:`audited`, which records a command's run (``export``, ``backup``) in it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from finloom_cli.common import EXIT_INCOMPLETE, DbOption, fail, guarded, note, out
from finloom_core.settings import load_settings

T = TypeVar("T")

audit_app = typer.Typer(
    help="The audit log: one hash-chained entry per operation (list; verify).",
    invoke_without_command=True,
)


def parse_since(text: str) -> datetime:
    """``--since``: a date (``2026-11-29``) or a time (``2026-11-29T16:00``, UTC unless it
    has an offset or ``Z``)."""
    from finloom_core.errors import InputError

    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"--since {text!r}: expected a date or a time, e.g. 2026-11-29 or 2026-11-29T16:00Z"
        ) from None


def _read(db: Path | None, read: Callable[[Any, Path], T]) -> T:
    """``read(con, path)`` on the warehouse itself, read-only (the audit log as it is now);
    while a load holds it, on its published copy, with a note."""
    from finloom_core.errors import DatabaseLockedError
    from finloom_core.storage.database import open_warehouse
    from finloom_core.storage.published import current_snapshot

    settings = load_settings()
    path, limit = Path(db or settings.db_path), settings.duckdb_memory_limit
    try:
        with open_warehouse(path, read_only=True, memory_limit=limit) as con:
            return read(con, path)
    except DatabaseLockedError:
        if current_snapshot(path) is None:
            raise
    snapshot = current_snapshot(path) or path
    note(f"{path} is locked by a running load: the audit log as published ({snapshot})")
    with open_warehouse(snapshot, read_only=True, memory_limit=limit) as con:
        return read(con, path)


@audit_app.callback()
def audit_list(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list of entries instead of a table.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            help="Only entries at or after this date or time (UTC unless it has an offset).",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """List the audit log of the warehouse, oldest first (`finloom audit verify` checks its
    hash chain)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = db  # `finloom audit --db X verify`
        return
    from finloom_core import audit

    def read() -> list[audit.Entry]:
        start = None if since is None else parse_since(since)
        return _read(db, lambda con, _: audit.entries(con, start))

    entries = guarded(read)
    if as_json:
        print(json.dumps([e.as_dict() for e in entries], indent=1))
        return
    for e in entries:  # one line per entry, then its reason and counts, indented
        who = f"{e.actor.get('user', '?')}@{e.actor.get('host', '?')}"
        run = e.actor.get("deployment") or e.actor.get("flow_run_name")
        at = audit.stamp(e.at)[:19].replace("T", " ")
        lines = [f"#{e.seq}  {at}  {e.action}  {e.outcome}  {who}" + (f" ({run})" if run else "")
                 + f"  {e.hash[:12]}"]  # fmt: skip
        if e.reason:
            lines.append(f"    reason: {e.reason}")
        if e.counts:
            lines.append("    " + " ".join(f"{k}={v}" for k, v in e.counts.items()))
        out.print("\n".join(lines), highlight=False, soft_wrap=True, markup=False)
    if not entries:
        note("no audit entry" + ("" if since is None else f" since {since}"))


@audit_app.command("verify")
def audit_verify(ctx: typer.Context, db: DbOption = None) -> None:
    """Check the audit log's hash chain and its head (`<db>.audit-head`): exit 0 when
    intact, 1 naming the first entry that was changed or removed."""
    from finloom_core import audit

    path_given = db or (ctx.obj if isinstance(ctx.obj, Path) else None)

    def check(con: Any, path: Path) -> tuple[Path, int, audit.Broken | None, str | None]:
        if not audit.has_log(con):
            return path, -1, None, None
        count, broken = audit.verify(con, path)
        rows = con.execute("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchall()
        return path, count, broken, rows[0][0] if rows else None

    path, count, broken, newest = guarded(lambda: _verify_target(path_given, check))
    if broken is not None:
        raise fail(f"audit log of {path} is broken: {broken.message}", EXIT_INCOMPLETE)
    if count < 0:
        out.print(
            f"{path}: no audit log yet (an older schema: the next run adds it)", highlight=False
        )
    elif newest is None:
        out.print(f"audit log of {path}: no entry yet", highlight=False)
    else:
        out.print(
            f"audit log of {path}: {count} entries, chain intact (head #{count} {newest})",
            highlight=False,
            soft_wrap=True,
        )


def _verify_target(db: Path | None, check: Callable[[Any, Path], T]) -> T:
    """``check(con, path)`` on the warehouse itself only: a published copy lags behind the
    head, so verify waits for no load and reads no copy (locked: a one-line error)."""
    from finloom_core.storage.database import open_warehouse

    settings = load_settings()
    path = Path(db or settings.db_path)
    with open_warehouse(path, read_only=True, memory_limit=settings.duckdb_memory_limit) as con:
        return check(con, path)


def audited(
    action: str,
    db: Path | None,
    parameters: Mapping[str, Any],
    run: Callable[[], T],
    counts: Callable[[T], Mapping[str, Any]] | None = None,
) -> Callable[[], T]:
    """``run`` recording its outcome in the audit log of the warehouse (``db``, default
    FINLOOM_DB_PATH): success with ``counts(result)``, or failed with the error's first
    line. For commands that only read the warehouse: a warehouse without an audit log
    (an older schema) is not migrated for it. Never fails the command."""

    def wrapped() -> T:
        try:
            result = run()
        except BaseException as exc:
            _record(action, db, parameters, "failed", exc, {})
            raise
        _record(action, db, parameters, "success", None, counts(result) if counts else {})
        return result

    return wrapped


def _record(
    action: str,
    db: Path | None,
    parameters: Mapping[str, Any],
    outcome: str,
    error: BaseException | None,
    counts: Mapping[str, Any],
) -> None:
    from finloom_core import audit
    from finloom_core.errors import FinloomError

    try:
        settings = load_settings()
    except FinloomError:  # no settings, no warehouse to record in (the command says why)
        return
    reason = None if error is None else audit.failure_reason(error)
    entry = audit.record(
        db or settings.db_path, action, parameters, outcome, reason, counts, audit.actor(),
        memory_limit=settings.duckdb_memory_limit, existing_log_only=True,
    )  # fmt: skip
    if entry is not None:
        note(f"audit log: entry #{entry.seq} ({action} {outcome})")
