"""The SEC circuit's open-until, shared by every FinLoom process of the machine.

SEC blocks an IP address, not a process: a run started while another one cools off must
not send a request either (each one extends the block). :class:`CircuitFileStorage` is the
pybreaker state storage of every gate FinLoom builds from its settings without
``FINLOOM_REDIS_URL`` (with it, the open-until is kept in Redis by
:class:`~finloom_core.edgar.redis_shared.RedisCircuitStorage`, over the same
:class:`SharedCircuitStorage`, and reaches every machine using that Redis). It keeps
pybreaker's counters in memory, as ``pybreaker.CircuitMemoryStorage`` does, and the one fact
that must outlive the process in a small JSON file in ``FINLOOM_STATE_DIR``::

    {"open_until": "2025-01-06T12:10:00.123456+00:00", "opened_at": "...", "pid": 4242,
     "host": "..."}

* When the circuit opens, the file is replaced atomically (a temporary file renamed over
  it) by the later of its open-until and this circuit's. The time is wall-clock UTC, so
  every process reads the same instant.
* Whenever the state is read (when a gate is built, before each request), the file is
  stat'ed, and read again only when it changed. An open-until still ahead opens this
  circuit until then (pybreaker's ``opened_at`` is set so that its cool-off ends then).
* No file means closed. An unreadable or corrupt file is treated as closed, with one warning
  per version of the file; failing to write it is a warning too (this process's circuit
  still opens). Nothing here raises.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pybreaker

log = logging.getLogger(__name__)

CIRCUIT_FILE = "sec-circuit.json"


class SharedCircuitStorage(pybreaker.CircuitMemoryStorage):
    """pybreaker storage whose open-until is shared with other processes through a store.

    pybreaker's counters stay in memory; a subclass reads the store's open-until
    (``_read``) and records this circuit's (``_publish``), both called with the lock held
    and never raising. ``cooloff_seconds`` is this circuit's cool-off (the breaker's
    ``reset_timeout``): an open-until read becomes ``opened_at = open_until - cooloff``.
    """

    def __init__(self, cooloff_seconds: float) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self._cooloff = timedelta(seconds=cooloff_seconds)
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        """The circuit's state, after honouring an open-until another process recorded."""
        self._sync()
        return str(self._state)

    @state.setter
    def state(self, state: str) -> None:
        with self._lock:
            self._state = state
            if state == pybreaker.STATE_OPEN:
                self._publish()

    def open_until(self) -> datetime | None:
        """The open-until recorded in the store (None: none, or an unusable one)."""
        with self._lock:
            return self._read()

    def _sync(self) -> None:
        """Open this circuit until the store's open-until when that outlasts its own."""
        with self._lock:
            until = self._read()
            if until is None or until <= datetime.now(UTC):
                return
            opened = self._opened_at
            open_as_long = opened is not None and opened + self._cooloff >= until
            if self._state == pybreaker.STATE_OPEN and open_as_long:
                return
            self._opened_at = until - self._cooloff
            self._state = pybreaker.STATE_OPEN

    def _read(self) -> datetime | None:  # pragma: no cover - every storage overrides it
        raise NotImplementedError

    def _publish(self) -> None:  # pragma: no cover - every storage overrides it
        raise NotImplementedError


class CircuitFileStorage(SharedCircuitStorage):
    """pybreaker storage whose open-until is shared through the file ``path``."""

    def __init__(self, path: Path | str, cooloff_seconds: float) -> None:
        self.path = Path(path)
        self._seen: tuple[int, int, int] | None = None  # (inode, size, mtime) last read
        self._seen_until: datetime | None = None
        self._warned: object = None
        super().__init__(cooloff_seconds)
        self._name = "file"
        self._sync()

    # -- the file (the lock held)

    def _read(self) -> datetime | None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            self._seen = self._seen_until = None
            return None
        except OSError as exc:
            self._warn_once(str(exc), exc)
            return None
        key = (info.st_ino, info.st_size, info.st_mtime_ns)
        if key == self._seen:
            return self._seen_until
        self._seen, self._seen_until = key, None
        try:
            record = orjson.loads(self.path.read_bytes())
            until = datetime.fromisoformat(record["open_until"])
            if until.tzinfo is None:
                raise ValueError(f"open_until {record['open_until']!r} has no time zone")
        except FileNotFoundError:  # removed since the stat
            self._seen = None
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._warn_once(key, exc)
            return None
        self._seen_until = until
        return until

    def _warn_once(self, version: object, exc: BaseException) -> None:
        if self._warned == version:
            return
        self._warned = version
        log.warning(
            "SEC circuit state %s is unreadable or corrupt (%s: %s): treated as closed",
            self.path,
            type(exc).__name__,
            exc,
        )

    def _publish(self) -> None:
        """Record this circuit's open-until, unless the file already holds a later one."""
        opened = self._opened_at or datetime.now(UTC)
        until = opened + self._cooloff
        recorded = self._read()
        if recorded is not None and recorded >= until:
            return
        payload = orjson.dumps(
            {
                "open_until": until.isoformat(),
                "opened_at": opened.isoformat(),
                "pid": os.getpid(),
                "host": socket.gethostname(),
            }
        )
        temporary: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
            )
            with os.fdopen(handle, "wb") as out:
                out.write(payload)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)  # other accounts sharing the folder may read it
            os.replace(temporary, self.path)
            temporary = None
        except OSError as exc:
            log.warning(
                "could not record the open SEC circuit in %s (%s): other FinLoom processes "
                "will not see it",
                self.path,
                exc,
            )
        finally:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
