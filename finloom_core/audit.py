"""The audit log: one hash-chained entry per operation, in the warehouse's ``audit_log``.

Every operation (backfill, nightly, quality and backup flow runs; ``finloom export``,
``backup`` and ``restore``; setting a secret, the settings profile in force) appends one
entry: time (UTC), actor (OS user, host; the Prefect flow-run id and deployment, passed in
by the flows), action, parameters (secrets redacted), outcome (``success`` or ``failed``,
with the reason) and counts. Failed runs are recorded too.

**The chain.** Entries are numbered ``seq`` 1, 2, 3, ...; each carries ``prev_hash`` (the
previous entry's hash, 64 zeros for the first) and ``hash``, the SHA-256 of
:func:`canonical` of every other field (``at`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``).
**The head** (newest ``seq`` and ``hash``) is also kept in ``<db_path>.audit-head``,
replaced atomically after every entry, so removing the newest entries is detected too;
an entry appended after such a removal chains to the head's hash, keeping the gap visible.
Tamper-evident, not signed: whoever can write the database and the head file can
recompute every hash (the flows log each entry's hash, a copy elsewhere).

:func:`record` never raises: an entry that cannot be written is a warning (an audit gap),
never a failed run. An audit entry alone does not make the published copy stale: readers'
snapshots lag behind the audit log, which ``finloom audit`` reads from the warehouse.
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import json
import logging
import math
import os
import socket
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from finloom_core.errors import DatabaseLockedError, StorageError, first_line
from finloom_core.redact import REDACTED, SECRET_NAME_PARTS, redact, redact_value
from finloom_core.settings import DEFAULT_MEMORY_LIMIT
from finloom_core.sql import transaction

log = logging.getLogger(__name__)

TABLE = "audit_log"
HEAD_SUFFIX = ".audit-head"
GENESIS = "0" * 64
SUCCESS = "success"
FAILED = "failed"
OUTCOMES = (SUCCESS, FAILED)
MAX_REASON = 500
_COLUMNS = 'seq, "at", actor, action, parameters, outcome, reason, counts, prev_hash, hash'
_LOCKED_PAUSES = (0.5, 1.0, 2.0)  # seconds between attempts while another process writes
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Entry:
    """One row of ``audit_log``; ``at`` is UTC (timezone-aware here, naive in the table)."""

    seq: int
    at: datetime
    actor: dict[str, Any]
    action: str
    parameters: dict[str, Any]
    outcome: str
    reason: str | None
    counts: dict[str, Any]
    prev_hash: str
    hash: str

    def fields(self) -> dict[str, Any]:
        """Every field the hash covers (all but ``hash``), ``at`` as canonical text."""
        return {
            "seq": self.seq,
            "at": stamp(self.at),
            "actor": self.actor,
            "action": self.action,
            "parameters": self.parameters,
            "outcome": self.outcome,
            "reason": self.reason,
            "counts": self.counts,
            "prev_hash": self.prev_hash,
        }

    def as_dict(self) -> dict[str, Any]:
        return {**self.fields(), "hash": self.hash}


@dataclass(frozen=True, slots=True)
class Head:
    """The chain's newest entry as ``<db_path>.audit-head`` records it (0: none yet)."""

    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class Broken:
    """The first entry :func:`verify` found changed or removed, and how (one line)."""

    seq: int
    message: str


def stamp(at: datetime) -> str:
    """The canonical text of an entry's time: UTC, microseconds, ``Z``."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(fields: Mapping[str, Any]) -> str:
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def entry_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of an entry's canonical form (its fields, ``prev_hash`` included)."""
    return hashlib.sha256(canonical(fields).encode("utf-8")).hexdigest()


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: dates as ISO text, paths and other objects as text,
    tuples and sets as lists, non-finite numbers as text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(item) for item in value), key=repr)
    return str(value)


def redact_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Parameters fit to store: JSON data, the values of secret-named keys (token, secret,
    password, api_key) replaced by ``***``, URL credentials and secret values redacted."""

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: REDACTED
                if any(part in key.upper() for part in SECRET_NAME_PARTS) and item is not None
                else scrub(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [scrub(item) for item in value]
        return redact_value(value)

    return dict(scrub(jsonable(dict(parameters or {}))))


def failure_reason(exc: BaseException) -> str:
    """``Type: first line`` of an error, redacted, at most ``MAX_REASON`` characters."""
    return redact(f"{type(exc).__name__}: {first_line(exc)}")[:MAX_REASON]


def os_user() -> str:
    """The OS user running FinLoom; in a container whose uid has no name, ``uid:N``."""
    try:
        return getpass.getuser()
    except Exception:  # no LOGNAME/USER and no passwd entry for the uid
        getuid = getattr(os, "getuid", None)
        return f"uid:{getuid()}" if getuid is not None else "unknown"


def actor(
    flow_run_id: str | None = None, deployment: str | None = None, **extra: str | None
) -> dict[str, Any]:
    """Who acts: the OS user and host, plus (passed by the flows, which read Prefect's
    runtime) the flow-run id and deployment; keys without a value are left out."""
    found: dict[str, Any] = {"user": os_user(), "host": socket.gethostname()}
    for key, value in {"flow_run_id": flow_run_id, "deployment": deployment, **extra}.items():
        if value is not None:
            found[key] = str(value)
    return found


# ---------------------------------------------------------------------------- the head


def head_path(db_path: Path | str) -> Path:
    """``<db_path>.audit-head``: the newest entry's ``seq`` and ``hash``."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + HEAD_SUFFIX)


def read_head(db_path: Path | str) -> Head | None:
    """The recorded head, None when there is no head file; a file that is not a head
    (edited by hand, truncated) is a ``StorageError``."""
    path = head_path(db_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Head(int(data["seq"]), str(data["hash"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"audit chain head {path} is unreadable: {first_line(exc)}") from None


def write_head(db_path: Path | str, seq: int, digest: str) -> None:
    """Replace the head file atomically (temporary file, fsync, rename)."""
    target = head_path(db_path)
    body = {"seq": seq, "hash": digest, "written_at": stamp(datetime.now(UTC))}
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(body, out, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def adopt_head(con: duckdb.DuckDBPyConnection, db_path: Path | str) -> Head:
    """Make the head file that of the audit log in ``con``: for a database just restored
    from a backup, which replaces the one the old head belonged to. Returns the head."""
    row = con.execute(f"SELECT seq, hash FROM {TABLE} ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        head_path(db_path).unlink(missing_ok=True)
        return Head(0, GENESIS)
    head = Head(int(row[0]), str(row[1]))
    write_head(db_path, head.seq, head.hash)
    return head


# ---------------------------------------------------------------------------- writing


def append(
    con: duckdb.DuckDBPyConnection,
    db_path: Path | str,
    action: str,
    parameters: Mapping[str, Any] | None = None,
    outcome: str = SUCCESS,
    reason: str | None = None,
    counts: Mapping[str, Any] | None = None,
    who: Mapping[str, Any] | None = None,
) -> Entry:
    """Append one entry through ``con`` (read-write, idle: no transaction open) to the
    warehouse at ``db_path``, then update its head file. Raises on any failure."""
    if outcome not in OUTCOMES:
        raise ValueError(f"audit outcome {outcome!r}: expected one of {OUTCOMES}")
    with _lock:
        try:
            head = read_head(db_path)
        except StorageError as exc:
            log.warning("audit log: %s; a new head is written", exc)
            head = None
        with transaction(con):
            row = con.execute(f"SELECT seq, hash FROM {TABLE} ORDER BY seq DESC LIMIT 1").fetchone()
            last = Head(int(row[0]), str(row[1])) if row else Head(0, GENESIS)
            if head is not None and (
                head.seq > last.seq or (head.seq == last.seq and head.hash != last.hash)
            ):
                # the newest entries were removed or rewritten: chain to the head, so the
                # gap stays visible to verify
                log.warning(
                    "audit log: the chain head %s says entry #%d, the table ends at #%d:"
                    " entries were changed or removed",
                    head_path(db_path), head.seq, last.seq,
                )  # fmt: skip
                last = head
            elif head is None and last.seq > 0:
                log.warning("audit log: no chain head %s; a new one is written", head_path(db_path))
            draft = Entry(
                seq=last.seq + 1,
                at=datetime.now(UTC),
                actor=jsonable(dict(who if who is not None else actor())),
                action=action,
                parameters=redact_parameters(parameters),
                outcome=outcome,
                reason=None if reason is None else redact(reason)[:MAX_REASON],
                counts=jsonable(dict(counts or {})),
                prev_hash=last.hash,
                hash="",
            )
            entry = dataclasses.replace(draft, hash=entry_hash(draft.fields()))
            con.execute(
                f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    entry.seq, entry.at.replace(tzinfo=None), canonical(entry.actor),
                    entry.action, canonical(entry.parameters), entry.outcome, entry.reason,
                    canonical(entry.counts), entry.prev_hash, entry.hash,
                ],
            )  # fmt: skip
        write_head(db_path, entry.seq, entry.hash)
    return entry


def record(
    target: duckdb.DuckDBPyConnection | Path | str,
    action: str,
    parameters: Mapping[str, Any] | None = None,
    outcome: str = SUCCESS,
    reason: str | None = None,
    counts: Mapping[str, Any] | None = None,
    who: Mapping[str, Any] | None = None,
    *,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    existing_log_only: bool = False,
) -> Entry | None:
    """Record one operation in the audit log of the warehouse ``target`` (its path, or an
    open read-write connection to it, idle); returns the entry, or None when it could not
    be written (a one-line warning: never an error).

    ``who`` defaults to :func:`actor` (OS user and host). A path is opened read-write for
    the insert, retried for a few seconds while another process writes; a database that
    does not exist is not created. With ``existing_log_only`` (commands that only read the
    warehouse), a warehouse without the ``audit_log`` table (an older schema) is not
    migrated for the entry: nothing is recorded.
    """
    from finloom_core.storage.database import connect, open_warehouse
    from finloom_core.storage.published import current_snapshot, is_stale

    try:
        if isinstance(target, duckdb.DuckDBPyConnection):
            return append(target, _file_of(target), action, parameters, outcome, reason,
                          counts, who)  # fmt: skip
        path = Path(target)
        if not path.is_file():
            log.warning("audit log: no entry for %s: database %s does not exist", action, path)
            return None
        if existing_log_only:
            con = connect(path, read_only=True, memory_limit=memory_limit)
            try:
                if not has_log(con):
                    log.info("audit log: %s predates the audit log; %s not recorded", path, action)
                    return None
            finally:
                con.close()
        # the published snapshot, when nothing was written since it was published
        fresh = None if is_stale(path) else current_snapshot(path)
        for pause in (*_LOCKED_PAUSES, None):
            try:
                with open_warehouse(path, memory_limit=memory_limit) as con:
                    entry = append(con, path, action, parameters, outcome, reason, counts, who)
                break
            except DatabaseLockedError:
                if pause is None:
                    raise
                time.sleep(pause)
        if fresh is not None:
            _keep_fresh(path, fresh)
        return entry
    except Exception as exc:
        log.warning(
            "audit log: the %s entry (%s) was NOT recorded in %s: %s",
            action, outcome, target if isinstance(target, Path | str) else "the warehouse",
            redact(first_line(exc)),
        )  # fmt: skip
        return None


def _file_of(con: duckdb.DuckDBPyConnection) -> Path:
    row = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    if row is None or not row[0]:
        raise StorageError("an in-memory database has no audit chain head")
    return Path(row[0])


def _keep_fresh(db_path: Path, snapshot: Path) -> None:
    """An audit entry alone does not make the published copy stale: the snapshot's time
    becomes the warehouse's (``published.is_stale`` compares modification times)."""
    try:
        times = [
            p.stat().st_mtime_ns
            for p in (db_path, db_path.with_name(db_path.name + ".wal"))
            if p.exists()
        ]
        if times and max(times) > snapshot.stat().st_mtime_ns:
            os.utime(snapshot, ns=(snapshot.stat().st_atime_ns, max(times)))
    except OSError as exc:
        log.debug("published snapshot time not updated: %s", exc)


# ---------------------------------------------------------------------------- reading


def has_log(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()"
        " AND schema_name = 'main' AND table_name = ?",
        [TABLE],
    ).fetchone()
    return bool(row and row[0])


def _entry(row: tuple[Any, ...]) -> Entry:
    seq, at, who, action, parameters, outcome, reason, counts, prev_hash, digest = row
    return Entry(
        seq=int(seq),
        at=at.replace(tzinfo=UTC),
        actor=json.loads(who),
        action=action,
        parameters=json.loads(parameters),
        outcome=outcome,
        reason=reason,
        counts=json.loads(counts),
        prev_hash=prev_hash,
        hash=digest,
    )


def entries(con: duckdb.DuckDBPyConnection, since: datetime | None = None) -> list[Entry]:
    """The entries (oldest first), those at or after ``since`` (UTC) when given; none
    when the warehouse predates the audit log."""
    if not has_log(con):
        return []
    if since is not None and since.tzinfo is not None:
        since = since.astimezone(UTC).replace(tzinfo=None)
    rows = con.execute(
        f'SELECT {_COLUMNS} FROM {TABLE} WHERE ? IS NULL OR "at" >= ? ORDER BY seq',
        [since, since],
    ).fetchall()
    return [_entry(row) for row in rows]


def verify(
    con: duckdb.DuckDBPyConnection, db_path: Path | str | None = None
) -> tuple[int, Broken | None]:
    """Check the chain: (entries checked, the first entry changed or removed, or None).

    Every entry must be numbered one after the previous, hash to its ``hash`` and link to
    the previous entry's hash; with ``db_path``, the newest must be the head recorded in
    ``<db_path>.audit-head`` (a missing head with entries present is a failure: the
    newest entries could have been removed with it).
    """
    rows = con.execute(f"SELECT {_COLUMNS} FROM {TABLE} ORDER BY seq").fetchall()
    last, previous = 0, GENESIS
    for row in rows:
        seq = int(row[0])
        if seq > last + 1:
            return len(rows), Broken(last + 1, f"entry #{last + 1} was removed (or renumbered)")
        if seq <= last or not _intact(row):
            return len(rows), Broken(seq, f"entry #{seq} was changed: its hash does not match")
        if row[8] != previous:
            message = f"entry #{last} was changed: entry #{seq} chains to another hash"
            return len(rows), Broken(last, message)
        last, previous = seq, row[9]
    return len(rows), None if db_path is None else _check_head(db_path, rows, last, previous)


def _intact(row: tuple[Any, ...]) -> bool:
    try:
        entry = _entry(row)
    except (ValueError, TypeError, AttributeError):
        return False
    return entry_hash(entry.fields()) == entry.hash


def _check_head(
    db_path: Path | str, rows: list[tuple[Any, ...]], last: int, newest: str
) -> Broken | None:
    where = head_path(db_path)
    try:
        head = read_head(db_path)
    except StorageError as exc:
        return Broken(last + 1, f"entry #{last + 1} may have been removed ({exc})")
    if head is None:
        message = f"entry #{last + 1} may have been removed (no chain head {where})"
        return None if last == 0 else Broken(last + 1, message)
    if head.seq > last:
        return Broken(
            last + 1, f"entry #{last + 1} was removed (the chain head {where} is #{head.seq})"
        )
    if head.seq == last:
        changed = f"entry #{last} was changed: its hash is not the head's"
        return None if head.hash == newest else Broken(last, changed)
    if head.seq > 0 and rows[head.seq - 1][9] != head.hash:
        return Broken(head.seq, f"entry #{head.seq} was changed: its hash is not the head's")
    return Broken(
        head.seq + 1,
        f"entry #{head.seq + 1} is not in the chain head {where} (added outside FinLoom,"
        " or the head could not be written)",
    )
