"""finloom_core.health: database, disk and memory checks, the cached SEC probe, readiness."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from finloom_core.edgar import (
    EdgarClient,
    EdgarUrls,
    Limiter,
    RateLimiter,
    RequestEvent,
    SecGate,
)
from finloom_core.errors import CircuitOpenError
from finloom_core.health import (
    BUSY_REASON,
    CORRUPT_REASON,
    Check,
    breaker_check,
    check_database,
    check_disk,
    check_memory,
    public_view,
    readiness,
)
from finloom_core.sec_probe import SecProbe
from finloom_core.settings import FinloomSettings
from finloom_core.storage.database import open_warehouse
from finloom_core.storage.schema import SCHEMA_VERSION
from finloom_core.storage.status import read_status, status_path

UA = "FinLoom Tests tests@example.com"
BASE = "https://sec.test"
PROBE_PATH = "/submissions/CIK0000320193.json"  # Apple's submissions index

# Holds the file with DuckDB's write lock until killed (prints "ready" once it does).
HOLDER = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS mine AS SELECT 42 AS answer")
con.execute("CHECKPOINT")
print("ready", flush=True)
time.sleep(300)
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process holding ``tmp_path/held.duckdb`` open read-write (as a running load does)."""
    db = tmp_path / "held.duckdb"
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        yield process
    finally:
        process.kill()
        process.wait(timeout=30)


@pytest.fixture
def held_database(tmp_path: Path, holder: subprocess.Popen[bytes]) -> Path:
    return tmp_path / "held.duckdb"


# ---------------------------------------------------------------------------- database


def test_database_absent_is_healthy(tmp_path: Path) -> None:
    db = tmp_path / "none.duckdb"
    check = check_database(db)
    assert (check.name, check.healthy, check.status) == ("database", True, "absent")
    assert not db.exists()
    assert list(tmp_path.iterdir()) == []


def test_database_ok_reports_tables_and_leaves_the_file_alone(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with open_warehouse(db):
        pass
    before = sha256(db)
    # the writer published the warehouse's status beside it; the check writes nothing
    listing = sorted(p.name for p in tmp_path.iterdir())
    assert listing == ["w.duckdb", "w.duckdb.status.json"]
    check = check_database(db)
    assert (check.healthy, check.status) == (True, "ok"), check
    assert check.detail["schema_version"] == SCHEMA_VERSION
    assert check.detail["tables"] >= 2
    assert check.detail["rows"]["schema_migrations"] >= 1
    assert sha256(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing
    # The connection was closed: this process can now open the file read-write.
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE after_check (x INTEGER)")


def test_database_corrupt_is_an_error_and_untouched(tmp_path: Path) -> None:
    db = tmp_path / "corrupt.duckdb"
    db.write_bytes(b"\x00FINLOOM-NOT-A-DATABASE\xff" * 500)
    before = sha256(db)
    check = check_database(db)
    assert (check.healthy, check.status) == (False, "error"), check
    # the reason is generic words (the path is a detail, for token holders)
    assert check.detail["reason"] == CORRUPT_REASON
    assert check.detail["path"] == str(db)
    assert sha256(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.duckdb"]


def test_database_held_by_a_load_is_busy_and_healthy(held_database: Path) -> None:
    before = sha256(held_database)
    check = check_database(held_database)
    assert (check.healthy, check.status) == (True, "busy"), check
    assert check.detail["reason"] == BUSY_REASON
    again = check_database(held_database)
    assert again.status == "busy"
    assert sha256(held_database) == before

    ok, body = readiness([check, Check("disk", True, "ok")])
    assert ok
    assert body["status"] == "busy"
    assert body["reasons"] == [f"database: {BUSY_REASON}"]


# Opens the warehouse read-write again and again, as back-to-back loads do, without retrying:
# prints how many of its opens failed because another process held the file.
REOPENER = """
import duckdb, sys
failed = 0
for number in range(int(sys.argv[2])):
    try:
        con = duckdb.connect(sys.argv[1])
    except duckdb.Error:
        failed += 1
        continue
    con.execute("CREATE TABLE IF NOT EXISTS runs (n INTEGER)")
    con.execute("INSERT INTO runs VALUES (?)", [number])
    con.close()
print(failed, flush=True)
"""


def test_the_database_check_never_takes_a_lock_a_writer_needs(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with open_warehouse(db):
        pass
    stop = threading.Event()
    seen: list[str] = []

    def poll() -> None:
        while not stop.is_set():
            seen.append(check_database(db).status)

    pollers = [threading.Thread(target=poll) for _ in range(3)]
    for poller in pollers:
        poller.start()
    try:
        writer = subprocess.run(
            [sys.executable, "-c", REOPENER, str(db), "60"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
    finally:
        stop.set()
        for poller in pollers:
            poller.join()
    assert writer.stdout.strip() == "0", f"the writer was locked out: {writer.stdout}"
    assert len(seen) > 100 and set(seen) <= {"ok", "busy"}, set(seen)


def test_busy_names_the_writer_in_details_only(
    held_database: Path, holder: subprocess.Popen[bytes]
) -> None:
    check = check_database(held_database)
    assert (check.status, check.detail["writer_pid"]) == ("busy", holder.pid)
    _, body = readiness([check])
    assert body["checks"]["database"]["detail"]["writer_pid"] == holder.pid
    shown = public_view(body)
    assert shown == {
        "status": "busy",
        "reasons": [f"database: {BUSY_REASON}"],
        "notes": [],
        "checks": {"database": {"healthy": True, "status": "busy"}},
    }
    text = repr(shown)
    assert str(holder.pid) not in text and str(held_database.parent) not in text


def test_writers_publish_the_warehouse_status(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    assert read_status(db) is None
    with open_warehouse(db) as con:
        writing = read_status(db)
        assert writing is not None
        assert (writing["state"], writing["pid"]) == ("writing", os.getpid())
        con.execute("CREATE TABLE extra AS SELECT range AS n FROM range(7)")
    idle = read_status(db)
    assert idle is not None and idle["state"] == "idle" and idle["pid"] is None
    assert idle["tables"]["extra"] == 7
    assert idle["schema_version"] == SCHEMA_VERSION
    assert idle["last_write"].endswith("Z")
    assert status_path(db).name == "w.duckdb.status.json"
    # a read-only connection publishes nothing
    before = status_path(db).read_bytes()
    with open_warehouse(db, read_only=True):
        pass
    assert status_path(db).read_bytes() == before


def test_reasons_are_generic_words(tmp_path: Path) -> None:
    low = check_disk(tmp_path / "w.duckdb", 10**12)
    assert str(tmp_path) not in (low.reason or "") and low.detail["path"] == str(tmp_path)
    high = check_memory(1e-9)
    assert high.reason == "memory in use above 1e-09%"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {request.url}", request=request)

    recorder = Recorder(refuse)
    probe = SecProbe(
        EdgarUrls("http://ops:s3cret@sec.test"), UA, 300, gate=probe_gate(),
        transport=recorder.transport, clock=FakeClock(),
    )  # fmt: skip
    check = probe.check()
    assert check.reason == "cannot reach SEC (ConnectError)"
    assert check.detail["url"] == "http://***@sec.test" + PROBE_PATH
    assert "s3cret" not in repr(check.detail)
    assert str(recorder.requests[0].url).startswith("http://ops:s3cret@sec.test")  # sent as is


# ---------------------------------------------------------------------------- host


def test_disk_and_memory_thresholds(tmp_path: Path) -> None:
    fine = check_disk(tmp_path / "sub" / "w.duckdb", 0)
    assert (fine.healthy, fine.status) == (True, "ok")
    assert fine.detail["path"] == str(tmp_path)  # nearest existing parent
    assert fine.detail["free_mb"] > 0
    low = check_disk(tmp_path / "w.duckdb", 10**12)
    assert (low.healthy, low.status) == (False, "low")
    assert "below the 1000000000000 MB minimum" in low.detail["reason"]

    assert check_memory(100.0).healthy
    high = check_memory(1e-9)
    assert (high.healthy, high.status) == (False, "high")
    assert high.detail["percent"] > 0


# ---------------------------------------------------------------------------- readiness


def test_readiness_folds_checks() -> None:
    ok, body = readiness([Check("a", True, "ok"), Check("b", True, "absent", {"reason": "new"})])
    assert ok and body["status"] == "ready" and body["reasons"] == []
    assert body["notes"] == ["b: new"]
    assert body["checks"]["a"] == {"healthy": True, "status": "ok", "detail": {}}

    ok, body = readiness(
        [
            Check("database", True, "busy", {"reason": BUSY_REASON}),
            Check("sec", False, "blocked", {"reason": "429"}),
            Check("disk", False, "low"),
        ]
    )
    assert not ok
    assert body["status"] == "unavailable"
    assert body["reasons"] == ["sec: 429", "disk: low"]


def test_breaker_check() -> None:
    check = breaker_check(1.0)
    assert (check.healthy, check.status) == (False, "open")
    assert breaker_check(0.0).status == "closed"
    assert breaker_check(2.0).status == "half-open"
    assert breaker_check(None).status == "unknown"


# ---------------------------------------------------------------------------- SEC probe


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """An httpx handler that counts requests and answers with ``respond``."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response]) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
        return self.respond(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def probe_gate(limiter: Limiter | None = None) -> SecGate:
    return SecGate(limiter or RateLimiter(1000), cooloff_seconds=600.0, fail_max=5)


def make_probe(
    respond: Callable[[httpx.Request], httpx.Response],
    *,
    user_agent: str | None = UA,
    ttl: float = 300.0,
    gate: SecGate | None = None,
) -> tuple[SecProbe, Recorder, FakeClock]:
    recorder, clock = Recorder(respond), FakeClock()
    probe = SecProbe(
        EdgarUrls(BASE),
        user_agent,
        ttl,
        gate=gate or probe_gate(),
        transport=recorder.transport,
        clock=clock,
    )
    return probe, recorder, clock


def test_probe_is_cached_for_its_ttl_then_refreshed_in_the_background() -> None:
    probe, recorder, clock = make_probe(lambda r: httpx.Response(200, json={"cik": "320193"}))
    assert not probe.completed
    first = probe.check()
    assert (first.healthy, first.status) == (True, "reachable")
    assert first.detail["http_status"] == 200
    assert probe.completed

    request = recorder.requests[0]
    assert str(request.url) == BASE + PROBE_PATH == EdgarUrls(BASE).probe()
    assert request.headers["User-Agent"] == UA

    # Many readiness calls, from many threads, within the TTL: still one probe.
    clock.now += 299.0
    results: list[Check] = []
    threads = [threading.Thread(target=lambda: results.append(probe.check())) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _ in range(50):
        results.append(probe.check())
    assert len(recorder.requests) == 1
    assert {r.status for r in results} == {"reachable"}
    assert not any(r.detail.get("stale") for r in results)

    # Past the TTL: the stale result is served while ONE refresh runs in the background.
    clock.now += 2.0
    stale = [probe.check() for _ in range(10)]
    assert stale[0].status == "reachable" and stale[0].detail["stale"] is True
    probe.join()
    assert len(recorder.requests) == 2
    fresh = probe.check()
    assert "stale" not in fresh.detail
    assert len(recorder.requests) == 2
    assert probe.probes == 2


def test_stale_result_is_served_while_the_refresh_hangs() -> None:
    release = threading.Event()
    calls = 0

    def respond(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls > 1:
            release.wait(30)
            return httpx.Response(429)
        return httpx.Response(200)

    probe, recorder, clock = make_probe(respond)
    assert probe.check().status == "reachable"
    clock.now += 301.0
    for _ in range(25):  # the refresh is stuck in the transport: nobody waits, nobody re-probes
        assert probe.check().status == "reachable"
    release.set()
    probe.join()
    assert len(recorder.requests) == 2
    assert probe.check().status == "blocked"


def test_probe_429_is_blocked() -> None:
    probe, _, _ = make_probe(lambda r: httpx.Response(429, headers={"Retry-After": "600"}))
    check = probe.check()
    assert (check.healthy, check.status) == (False, "blocked")
    assert check.detail["retry_after"] == "600"


def test_probe_403_rate_page_is_blocked_but_other_403_pages_are_not() -> None:
    rate_page = b"<html><title>SEC.gov | Request Rate Threshold Exceeded</title></html>"
    probe, _, _ = make_probe(lambda r: httpx.Response(403, content=rate_page))
    assert probe.check().status == "blocked"

    undeclared = b"<h1>Your Request Originates from an Undeclared Automated Tool</h1>"
    probe, _, _ = make_probe(lambda r: httpx.Response(403, content=undeclared))
    check = probe.check()
    assert (check.healthy, check.status) == (False, "rejected")

    def answer(status: int) -> Callable[[httpx.Request], httpx.Response]:
        return lambda request: httpx.Response(status, content=b"nope")

    for status in (404, 403, 503):
        probe, _, _ = make_probe(answer(status))
        check = probe.check()
        assert (check.healthy, check.status) == (True, "reachable"), status
        assert check.detail["http_status"] == status


def test_probe_connection_error_and_timeout_are_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    for respond, needle in ((refuse, "ConnectError"), (hang, "did not answer")):
        probe, recorder, _ = make_probe(respond)
        check = probe.check()
        assert (check.healthy, check.status) == (False, "unreachable")
        assert needle in check.detail["reason"]
        assert len(recorder.requests) == 1


def test_probe_without_user_agent_sends_nothing() -> None:
    probe, recorder, clock = make_probe(lambda r: httpx.Response(200), user_agent=None)
    check = probe.check()
    assert (check.healthy, check.status) == (True, "unconfigured")
    assert "FINLOOM_SEC_USER_AGENT" in check.detail["reason"]
    clock.now += 10_000
    probe.check()
    probe.join()
    assert recorder.requests == []
    assert probe.probes == 0


def test_probe_start_runs_the_first_probe_in_the_background() -> None:
    gate = threading.Event()

    def respond(request: httpx.Request) -> httpx.Response:
        gate.wait(30)
        return httpx.Response(200)

    probe, recorder, _ = make_probe(respond)
    probe.start()
    probe.start()
    assert not probe.completed
    pending = probe.check(wait=False)
    assert (pending.healthy, pending.status) == (False, "pending")
    gate.set()
    probe.join()
    assert probe.completed
    assert probe.check().status == "reachable"
    assert len(recorder.requests) == 1


def test_probe_bug_is_a_failed_check_not_a_hang() -> None:
    def explode(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("boom")

    probe, _, _ = make_probe(explode)
    check = probe.check()
    assert (check.healthy, check.status) == (False, "error")
    assert check.detail["reason"] == "check failed: RuntimeError"  # no message in a reason
    assert check.detail["error"] == "boom"


# ---------------------------------------------------------------------------- SEC probe, gate


class HeldLimiter:
    """A limiter that holds every caller until released (and counts them)."""

    def __init__(self, *, released: bool = False) -> None:
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        if released:
            self.release.set()

    def acquire(self) -> None:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(30)


def test_probe_waits_for_the_gates_rate_limiter_before_its_request() -> None:
    limiter = HeldLimiter()
    probe, recorder, _ = make_probe(lambda r: httpx.Response(200), gate=probe_gate(limiter))
    probe.start()
    assert limiter.entered.wait(10)
    assert recorder.requests == [] and probe.probes == 0, "no request before the limiter"
    assert probe.check(wait=False).status == "pending"
    limiter.release.set()
    probe.join()
    assert (limiter.calls, len(recorder.requests), probe.probes) == (1, 1, 1)
    assert probe.check().status == "reachable"


def test_probe_sends_nothing_while_the_gates_circuit_is_open() -> None:
    limiter = HeldLimiter(released=True)
    gate = probe_gate(limiter)
    gate.trip()  # e.g. a load of this process was told by SEC to back off
    probe, recorder, _ = make_probe(lambda r: httpx.Response(200), gate=gate)
    check = probe.check()
    assert (check.healthy, check.status) == (False, "blocked")
    assert check.detail["circuit"] == "open"
    assert 590 < check.detail["cooloff_remaining"] <= 600
    assert "circuit open" in (check.reason or "")
    assert recorder.requests == [] and probe.probes == 0 and limiter.calls == 0


def test_a_block_seen_by_the_probe_opens_the_gate_for_every_client() -> None:
    gate = probe_gate()
    seen: list[RequestEvent] = []
    gate.add_request_observer(seen.append)
    probe, recorder, clock = make_probe(
        lambda r: httpx.Response(429, headers={"Retry-After": "600"}), gate=gate
    )
    assert probe.check().status == "blocked"
    assert gate.breaker_state() == "open"
    assert [(e.url, e.status, e.rate_limited) for e in seen] == [(BASE + PROBE_PATH, 429, True)]

    settings = FinloomSettings(  # type: ignore[call-arg]
        _env_file=None, sec_user_agent=UA, edgar_data_url=BASE
    )
    http = httpx.Client(transport=recorder.transport)
    with EdgarClient(settings, gate, http=http) as client, pytest.raises(CircuitOpenError):
        client.submissions(320193)
    clock.now += 301.0  # the next probe: the circuit is still open, nothing is sent
    probe.check()
    probe.join()
    again = probe.check()
    assert (again.status, again.detail["circuit"]) == ("blocked", "open")
    assert len(recorder.requests) == 1 and probe.probes == 1


def test_probe_reports_its_requests_to_the_gates_observers() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    for respond, status in ((lambda r: httpx.Response(200), 200), (refuse, None)):
        gate = probe_gate()
        seen: list[RequestEvent] = []
        gate.add_request_observer(seen.append)
        probe, _, _ = make_probe(respond, gate=gate)
        probe.check()
        assert [(e.url, e.status, e.rate_limited) for e in seen] == [
            (BASE + PROBE_PATH, status, False)
        ]
        assert gate.breaker_state() == "closed"
