"""Health checks for ``finloom serve``: the warehouse, disk, memory and SEC reachability.

Pure library code (no web framework, no metrics library): each check returns a
:class:`Check`, and :func:`readiness` folds a list of them into the answer of a readiness
probe. ``finloom_cli/serve.py`` puts them behind HTTP.

* :func:`check_database` checks what readers read: the published warehouse
  (``storage.published``), whose snapshots no writer ever opens, so a running load leaves
  it ``ok``. Before anything is published, readers open the warehouse file itself, and the
  check looks at that file without ever opening it: DuckDB allows one writing process, and
  then no other process may open the file at all, so a probe that opened it (even
  read-only) would make loads fail. It tests the file's lock without taking it and reads
  the status the writers publish beside it. A file held by a running load is ``busy``,
  which is healthy: the service is working, just not queryable right now.
* Reasons are generic words (no path, PID, URL or size); numbers and paths are details,
  which :func:`public_view` leaves out for callers without the serve token. Every detail
  goes through ``finloom_core.redact`` (URL credentials, secret values).
* The SEC reachability check is :class:`finloom_core.sec_probe.SecProbe`.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from finloom_core.errors import first_line
from finloom_core.redact import redact, redact_value
from finloom_core.storage.published import current_snapshot
from finloom_core.storage.status import FileLock, pid_alive, probe_file, read_status

log = logging.getLogger(__name__)

MB = 1024 * 1024
# Reasons are generic words: no path, PID, URL or size (those are details, see public_view).
BUSY_REASON = "another process holds the write lock (a load is running)"
ABSENT_REASON = "no warehouse yet (it is created by the first load)"
CORRUPT_REASON = "the warehouse file is not a DuckDB database"
UNREADABLE_REASON = "the warehouse file cannot be read"


@dataclass(frozen=True)
class Check:
    """The outcome of one health check.

    ``status`` is a short word (``ok``, ``absent``, ``busy``, ``error``, ``low``, ``high``,
    ``reachable``, ``blocked``, ``rejected``, ``unreachable``, ``unconfigured``, ``pending``);
    ``detail`` holds numbers and, when there is something to say, a one-line ``reason``.
    """

    name: str
    healthy: bool
    status: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str | None:
        reason = self.detail.get("reason")
        return None if reason is None else str(reason)

    def as_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "status": self.status, "detail": dict(self.detail)}


def failed_check(name: str, exc: BaseException) -> Check:
    """A check that raised unexpectedly, reported as that check failing: the exception's
    type as the reason, its (redacted) first line as a detail."""
    detail = {"reason": f"check failed: {type(exc).__name__}", "error": redact(first_line(exc))}
    return Check(name, False, "error", detail)


def readiness(checks: Iterable[Check]) -> tuple[bool, dict[str, Any]]:
    """Fold checks into ``(ready, body)``.

    ``body["status"]`` is ``"unavailable"`` when any check is unhealthy (``reasons`` names
    each), else ``"busy"`` when a healthy check reports ``busy`` (``reasons`` says why), else
    ``"ready"``. Healthy checks with something worth knowing (no warehouse yet, no
    User-Agent configured, a stale SEC probe) are listed under ``notes``.
    """
    checks = list(checks)
    failing = [c for c in checks if not c.healthy]
    busy = [c for c in checks if c.healthy and c.status == "busy"]
    if failing:
        status, reasons = "unavailable", [_line(c) for c in failing]
    elif busy:
        status, reasons = "busy", [_line(c) for c in busy]
    else:
        status, reasons = "ready", []
    notes = [_line(c) for c in checks if c.healthy and c.status != "busy" and c.reason]
    body: dict[str, Any] = {
        "status": status,
        "reasons": reasons,
        "notes": notes,
        "checks": {c.name: c.as_dict() for c in checks},
    }
    return not failing, redact_value(body)


PUBLIC_KEYS = ("status", "ready", "reasons", "notes")


def public_view(body: dict[str, Any]) -> dict[str, Any]:
    """What anyone may see of a health body: the status, reasons and notes (generic
    words), and each check's ``healthy``/``status``; no detail (paths, PIDs, sizes, URLs)."""
    shown = {key: body[key] for key in PUBLIC_KEYS if key in body}
    checks = body.get("checks") or {}
    shown["checks"] = {
        name: {"healthy": check.get("healthy"), "status": check.get("status")}
        for name, check in checks.items()
    }
    return shown


def _line(check: Check) -> str:
    return f"{check.name}: {check.reason or check.status}"


# ---------------------------------------------------------------------------- database


def check_database(path: Path | str) -> Check:
    """What readers of the warehouse at ``path`` read: its published snapshot, else (nothing
    published yet) the warehouse file itself, as :func:`check_warehouse_file` sees it.

    A published snapshot is ``ok`` when it starts like a DuckDB file, whatever the writer
    does (``writer_pid`` and ``writing_since`` in the details while a load runs), and
    ``error`` when it is not a DuckDB file or cannot be read. Nothing is opened.
    """
    path = Path(path)
    snapshot = current_snapshot(path)
    if snapshot is None:
        check = check_warehouse_file(path)
        check.detail["published"] = None
        return check
    detail: dict[str, Any] = {"path": str(path), "published": str(snapshot)}
    try:
        probe = probe_file(snapshot)
        stamp = snapshot.stat().st_mtime
    except OSError as exc:
        detail.update(reason=UNREADABLE_REASON, error=f"{type(exc).__name__}: {first_line(exc)}")
        return Check("database", False, "error", detail)
    detail["size_bytes"] = probe.size
    detail["published_at"] = datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")
    if not probe.duckdb_header:
        detail["reason"] = CORRUPT_REASON
        return Check("database", False, "error", detail)
    status = read_status(path) or {}
    detail.update(_published(status))
    writer = status.get("pid") if status.get("state") == "writing" else None
    if isinstance(writer, int) and pid_alive(writer):  # a load runs: readers are still served
        detail.update(writer_pid=writer, writing_since=status.get("since"))
    return Check("database", True, "ok", detail)


def check_warehouse_file(path: Path | str) -> Check:
    """The warehouse as its writers left it, never opening it (see ``storage.status``).

    The file's lock is tested without being taken (``fcntl`` ``F_GETLK``), its first bytes
    are read for DuckDB's header, and the status the writers publish beside it gives the
    schema version, row counts and last write. So a probe, however frequent, never holds
    a lock a load needs.

    absent (healthy: a fresh install has no warehouse yet), ok, busy (healthy: another
    process holds the write lock, a load is running), error (the file is not a DuckDB
    database, or cannot be read).
    """
    path = Path(path)
    detail: dict[str, Any] = {"path": str(path)}
    if not path.exists():
        detail["reason"] = ABSENT_REASON
        return Check("database", True, "absent", detail)
    try:
        probe = probe_file(path)
    except OSError as exc:
        detail.update(reason=UNREADABLE_REASON, error=f"{type(exc).__name__}: {first_line(exc)}")
        return Check("database", False, "error", detail)
    detail["size_bytes"] = probe.size
    published = read_status(path) or {}
    detail.update(_published(published))
    writer = probe.lock if probe.lock is not None and probe.lock.kind == "write" else None
    if writer is None and not probe.locks_known and published.get("state") == "writing":
        pid = published.get("pid")  # no lock to read here: trust a live writer's status
        if isinstance(pid, int) and pid_alive(pid):
            writer = FileLock("write", pid)
    if writer is not None:
        detail.update(reason=BUSY_REASON, writer_pid=writer.pid)
        if published.get("state") == "writing":
            detail["writing_since"] = published.get("since")
        return Check("database", True, "busy", detail)
    if probe.size == 0:  # created, not yet written: DuckDB starts an empty file afresh
        detail["reason"] = ABSENT_REASON
        return Check("database", True, "absent", detail)
    if not probe.duckdb_header:
        detail["reason"] = CORRUPT_REASON
        return Check("database", False, "error", detail)
    if probe.lock is not None:  # a read-only connection (a query) is open: still ready
        detail["reader_pid"] = probe.lock.pid
    return Check("database", True, "ok", detail)


def _published(status: dict[str, Any]) -> dict[str, Any]:
    """The figures of a published status worth showing."""
    shown: dict[str, Any] = {}
    tables = status.get("tables")
    if isinstance(tables, dict):
        shown["tables"] = len(tables)
        shown["rows"] = tables
    for key in ("schema_version", "last_write"):
        if status.get(key) is not None:
            shown[key] = status[key]
    return shown


# ---------------------------------------------------------------------------- host


def check_disk(path: Path | str, min_free_mb: int) -> Check:
    """Free space on the file system that holds ``path`` (or its nearest existing parent)."""
    target = Path(path).absolute()
    while not target.exists() and target != target.parent:
        target = target.parent
    usage = shutil.disk_usage(target)
    free_mb = usage.free / MB
    detail: dict[str, Any] = {
        "path": str(target),
        "free_mb": round(free_mb, 1),
        "total_mb": round(usage.total / MB, 1),
        "min_free_mb": min_free_mb,
    }
    if free_mb < min_free_mb:
        detail["reason"] = f"free disk space below the {min_free_mb} MB minimum"
        return Check("disk", False, "low", detail)
    return Check("disk", True, "ok", detail)


def check_memory(max_percent: float) -> Check:
    """System memory in use (psutil), against ``max_percent``."""
    memory = psutil.virtual_memory()
    detail: dict[str, Any] = {
        "percent": memory.percent,
        "max_percent": max_percent,
        "available_mb": round(memory.available / MB, 1),
        "total_mb": round(memory.total / MB, 1),
    }
    if memory.percent > max_percent:
        detail["reason"] = f"memory in use above {max_percent:g}%"
        return Check("memory", False, "high", detail)
    return Check("memory", True, "ok", detail)


# ---------------------------------------------------------------------------- breaker

_BREAKER_NAMES = {0: "closed", 1: "open", 2: "half-open"}


def breaker_check(value: float | None) -> Check:
    """The SEC circuit breaker state the loads recorded (``None``: none recorded yet).

    Informational (``/health`` shows it; readiness does not use it): ``open`` means a load
    was told by SEC to back off within the cool-off.
    """
    if value is None:
        return Check("breaker", True, "unknown", {})
    state = _BREAKER_NAMES.get(int(value), "unknown")
    detail: dict[str, Any] = {"value": int(value)}
    if state == "open":
        detail["reason"] = "a load's SEC circuit breaker is open (SEC signalled a block)"
    return Check("breaker", state != "open", state, detail)
