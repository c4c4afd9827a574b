"""Keeping the metrics folder small: finished processes' files merged into one archive.

prometheus-client's multiprocess mode gives every process its own files in the folder
(``counter_<pid>.db``, ``histogram_<pid>.db``, ``gauge_<mode>_<pid>.db``) and keeps them
forever, so each run adds a few and every ``/metrics`` scrape reads them all. Its own
``mark_process_dead`` only deletes the files of ``live*`` gauges. :func:`compact` merges the
files of processes that have ended into one archive file per kind, written with
prometheus-client's own ``MmapedDict`` under the stable name ``<kind>_archive.db``, and
deletes them:

* counters, histograms (raw, per-bucket values) and summaries: added up, so totals stay;
* gauges by their multiprocess mode: ``sum`` added, ``min``/``max`` kept, ``mostrecent``
  the value with the latest timestamp (kept with it, so later runs still win);
* ``live*`` and ``all`` gauges of an ended process are dropped (per-process values of a
  process that no longer exists; no FinLoom metric uses these modes).

A process is alive while it holds the shared lock on its marker ``live_<pid>.lock`` (an
open-file-description lock taken by :func:`hold_marker` when it starts recording; the lock
is visible across PID namespaces, e.g. containers sharing the folder) or while its PID
exists. Compaction runs under an exclusive ``flock`` on ``compact.lock`` (two processes
never compact at once; one that finds it taken skips); readers (:func:`reading`) take it
shared, so a scrape never sees the archive and the files it replaced together.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.mmap_dict import MmapedDict

try:
    import fcntl
except ImportError:  # no flock (Windows): the folder is left as it is
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

ARCHIVE = "archive"  # the stable fake PID of the archive files
LOCK_NAME = "compact.lock"
MARKER_PREFIX = "live_"
MARKER_SUFFIX = ".lock"
COMPACT_ABOVE_FILES = 40  # serve compacts before a scrape past this many files
_ADDED = ("counter", "histogram", "summary", "gauge_sum")
_FLOCK = "hhqqi4x"  # struct flock on 64-bit Linux

_markers: dict[Path, int] = {}  # folder -> this process's marker descriptor


def hold_marker(directory: Path) -> None:
    """Mark this process alive in ``directory`` for as long as it runs (once per folder)."""
    if directory in _markers or fcntl is None or not hasattr(fcntl, "F_OFD_SETLK"):
        return
    path = directory / f"{MARKER_PREFIX}{os.getpid()}{MARKER_SUFFIX}"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack(_FLOCK, fcntl.F_RDLCK, 0, 0, 0, 0))
    except OSError as exc:
        log.debug("no liveness marker in %s: %s", directory, exc)
        return
    _markers[directory] = fd


def _marker_held(directory: Path, pid: str) -> bool:
    if fcntl is None or not hasattr(fcntl, "F_OFD_GETLK"):
        return False
    try:
        fd = os.open(directory / f"{MARKER_PREFIX}{pid}{MARKER_SUFFIX}", os.O_RDONLY)
    except OSError:
        return False
    try:
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, 0, 0, 0, 0)
        kind = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_OFD_GETLK, query))[0]
    except OSError:
        return True  # cannot tell: keep its files
    finally:
        os.close(fd)
    return bool(kind != fcntl.F_UNLCK)


def _pid_exists(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    return True


def alive(directory: Path, pid: str) -> bool:
    """Whether the process that writes ``pid``'s files may still be recording."""
    if pid == str(os.getpid()):
        return True
    return _marker_held(directory, pid) or _pid_exists(pid)


def _kind_and_pid(path: Path) -> tuple[str, str] | None:
    """(``counter`` / ``histogram`` / ``gauge_<mode>`` ..., pid) of a metrics file name."""
    parts = path.name[: -len(".db")].split("_")
    if parts[0] == "gauge" and len(parts) == 3:
        kind, pid = f"gauge_{parts[1]}", parts[2]
    elif len(parts) == 2:
        kind, pid = parts
    else:
        return None
    return (kind, pid) if pid == ARCHIVE or pid.isdigit() else None


@contextmanager
def _locked(directory: Path, *, shared: bool) -> Iterator[bool]:
    """The folder's compaction lock (``flock``): shared, waiting for it; or exclusive, not
    waiting (yields False when another process holds it)."""
    flags = getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | flags, 0o644)
    except OSError:
        yield shared  # a folder this process may not write: read without the lock
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def reading(directory: Path | None) -> Iterator[None]:
    """Hold the folder's lock shared while reading its files (no compaction midway)."""
    if directory is None or fcntl is None:
        yield
        return
    with _locked(directory, shared=True):
        yield


def file_count(directory: Path) -> int:
    return sum(1 for _ in directory.glob("*.db"))


def compact(directory: Path | None) -> int:
    """Merge the files of ended processes into the archive; returns how many were removed.

    Never raises: a folder that cannot be compacted is logged and left as it is.
    """
    if directory is None or fcntl is None or not directory.is_dir():
        return 0
    try:
        with _locked(directory, shared=False) as locked:
            return _compact(directory) if locked else 0
    except Exception as exc:
        log.warning("metrics folder not compacted: %s: %s", type(exc).__name__, exc)
        return 0


def _compact(directory: Path) -> int:
    by_kind: dict[str, list[Path]] = {}
    dead: list[Path] = []
    verdicts: dict[str, bool] = {}
    for path in sorted(directory.glob("*.db")):
        parsed = _kind_and_pid(path)
        if parsed is None:
            continue
        kind, pid = parsed
        if pid != ARCHIVE:
            if pid not in verdicts:
                verdicts[pid] = alive(directory, pid)
            if verdicts[pid]:
                continue
            dead.append(path)
        by_kind.setdefault(kind, []).append(path)
    for marker in directory.glob(f"{MARKER_PREFIX}*{MARKER_SUFFIX}"):
        pid = marker.name[len(MARKER_PREFIX) : -len(MARKER_SUFFIX)]
        if pid not in verdicts and pid.isdigit() and not alive(directory, pid):
            marker.unlink(missing_ok=True)
    if not dead:
        return 0
    dead_set = set(dead)
    for kind, paths in by_kind.items():
        if dead_set.intersection(paths):
            _write_archive(directory, kind, paths)
    for path in dead:
        path.unlink(missing_ok=True)
    for pid, living in verdicts.items():
        if not living:
            (directory / f"{MARKER_PREFIX}{pid}{MARKER_SUFFIX}").unlink(missing_ok=True)
    log.debug("metrics folder compacted: %d files of ended processes merged", len(dead))
    return len(dead)


def _write_archive(directory: Path, kind: str, paths: list[Path]) -> None:
    """Merge ``paths`` (the kind's archive and ended processes' files) into the archive."""
    merged: dict[str, tuple[float, float]] = {}
    mode = kind.partition("_")[2]
    if kind.startswith("gauge_") and (mode == "all" or mode.startswith("live")):
        merged = {}  # per-process values of ended processes: dropped
    else:
        for path in paths:
            for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(str(path)):
                merged[key] = _merge(kind, merged.get(key), value, timestamp)
    archive = directory / f"{kind}_{ARCHIVE}.db"
    if not merged:
        archive.unlink(missing_ok=True)
        return
    temporary = directory / f"{kind}_{ARCHIVE}.db.tmp"
    temporary.unlink(missing_ok=True)
    store = MmapedDict(str(temporary))
    try:
        for key, (value, timestamp) in merged.items():
            store.write_value(key, value, timestamp)
    finally:
        store.close()
    os.replace(temporary, archive)


def _merge(
    kind: str, current: tuple[float, float] | None, value: float, timestamp: float
) -> tuple[float, float]:
    if current is None:
        return value, timestamp
    old, old_timestamp = current
    if kind in _ADDED:
        return old + value, max(old_timestamp, timestamp)
    if kind == "gauge_min":
        return (value, timestamp) if value < old else current
    if kind == "gauge_max":
        return (value, timestamp) if value > old else current
    # gauge_mostrecent: the latest timestamp wins
    return (value, timestamp) if timestamp > old_timestamp else current
