"""The SEC circuit's open-until is machine-wide: a gate that trips records it in
FINLOOM_STATE_DIR, and every gate built from settings (in this process or another) refuses
requests until it has passed. An unusable state file is treated as closed, never a crash."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pybreaker
import pytest

from finloom_core.edgar import EdgarClient, SecGate
from finloom_core.edgar.circuitfile import CIRCUIT_FILE, CircuitFileStorage
from finloom_core.errors import CircuitOpenError
from finloom_core.settings import FinloomSettings, default_state_dir
from tests.edgar_standin import EdgarStandIn

REPO = Path(__file__).resolve().parents[1]
UA = "FinLoom tests tests@example.com"
URL = "https://data.sec.gov/submissions/CIK0000320193.json"


def settings_for(state_dir: Path, **values: Any) -> FinloomSettings:
    values.setdefault("breaker_cooloff_seconds", 600.0)
    return FinloomSettings(  # type: ignore[call-arg]
        _env_file=None, sec_user_agent=UA, state_dir=state_dir, **values
    )


class Sec:
    """A MockTransport that answers 200 JSON and counts the requests that reached it."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return httpx.Response(200, json={"cik": "0000320193"})


def client_of(settings: FinloomSettings, gate: SecGate, sec: Sec) -> EdgarClient:
    http = httpx.Client(transport=httpx.MockTransport(sec))
    return EdgarClient(settings, gate, http=http, sleep=lambda seconds: None)


def test_a_new_gate_refuses_until_the_open_until_another_gate_recorded(tmp_path: Path) -> None:
    cooloff = 1.5
    settings = settings_for(tmp_path, breaker_cooloff_seconds=cooloff)
    tripped = SecGate.from_settings(settings)
    tripped.trip()
    record = orjson.loads((tmp_path / CIRCUIT_FILE).read_bytes())
    until = datetime.fromisoformat(record["open_until"])
    assert until.tzinfo is not None and until.utcoffset() == UTC.utcoffset(None)
    assert 0 < (until - datetime.now(UTC)).total_seconds() <= cooloff
    assert sorted(p.name for p in tmp_path.iterdir()) == [CIRCUIT_FILE], "no temporary left"

    later = SecGate.from_settings(settings)  # e.g. the next run, started during the cool-off
    assert later.breaker_state() == "open" and later.is_open()
    sec = Sec()
    with client_of(settings, later, sec) as client:
        with pytest.raises(CircuitOpenError) as info:
            client.submissions(320193)
        remaining = info.value.remaining
        assert remaining is not None and 0 < remaining <= cooloff
        assert sec.calls == 0, "no request while another gate's cool-off runs"
        while later.cooloff_remaining() > 0:
            time.sleep(0.05)
        assert datetime.now(UTC) >= until
        client.submissions(320193)  # the trial request, then closed
    assert sec.calls == 1
    assert later.breaker_state() == "closed"


def test_a_gate_built_before_the_trip_stops_before_its_next_request(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    running = SecGate.from_settings(settings)
    changes: list[str] = []

    class Listener(pybreaker.CircuitBreakerListener):  # type: ignore[misc]
        def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
            changes.append(new_state.name)

    running.add_breaker_listener(Listener())
    sec = Sec()
    with client_of(settings, running, sec) as client:
        client.submissions(320193)
        SecGate.from_settings(settings).trip()  # another run of the machine is blocked
        with pytest.raises(CircuitOpenError):
            client.submissions(320193)
    assert sec.calls == 1
    assert changes == ["open"], "the gate's listeners (metrics) see the circuit open"
    assert 590 < running.cooloff_remaining() <= 600


def test_another_process_that_tripped_stops_this_one(tmp_path: Path, shared_edgar: Path) -> None:
    script = (
        "from finloom_core.edgar import SecGate\n"
        "from finloom_core.settings import load_settings\n"
        "SecGate.from_settings(load_settings()).trip()\n"
    )
    env = {**os.environ, "FINLOOM_STATE_DIR": str(tmp_path), "FINLOOM_SEC_USER_AGENT": UA}
    subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True, timeout=120)
    assert (tmp_path / CIRCUIT_FILE).is_file()

    with EdgarStandIn(shared_edgar) as server:
        settings = settings_for(
            tmp_path, edgar_data_url=server.data_url, edgar_www_url=server.www_url
        )
        with EdgarClient(settings, SecGate.from_settings(settings)) as client:
            for _ in range(3):
                with pytest.raises(CircuitOpenError):
                    client.submissions(320193)
        assert server.count() == 0, "no request left this process during the cool-off"


def test_a_longer_recorded_block_is_never_shortened(tmp_path: Path) -> None:
    SecGate.from_settings(settings_for(tmp_path, breaker_cooloff_seconds=600)).trip()
    first = orjson.loads((tmp_path / CIRCUIT_FILE).read_bytes())
    short = SecGate.from_settings(settings_for(tmp_path, breaker_cooloff_seconds=1))
    short.trip()
    assert orjson.loads((tmp_path / CIRCUIT_FILE).read_bytes()) == first
    assert short.cooloff_remaining() > 590, "the short gate waits for the recorded block"


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b'["open_until"]',
        b'{"opened_at": "2030-01-01T00:00:00+00:00"}',
        b'{"open_until": "tomorrow"}',
        b'{"open_until": "2999-01-01T00:00:00"}',  # no time zone
        None,  # a folder where the file should be: unreadable
    ],
)
def test_an_unusable_state_file_is_closed_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes | None
) -> None:
    path = tmp_path / CIRCUIT_FILE
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    settings = settings_for(tmp_path)
    sec = Sec()
    with caplog.at_level(logging.WARNING, logger="finloom_core.edgar.circuitfile"):
        gate = SecGate.from_settings(settings)
        with client_of(settings, gate, sec) as client:
            for _ in range(3):
                client.submissions(320193)
        assert SecGate.from_settings(settings).breaker_state() == "closed"
    assert sec.calls == 3
    warnings = [r for r in caplog.records if r.name == "finloom_core.edgar.circuitfile"]
    assert len(warnings) == 2, "one warning per gate that met the file"
    assert "treated as closed" in warnings[0].getMessage()
    assert str(path) in warnings[0].getMessage()


def test_a_state_folder_that_cannot_be_written_still_opens_this_circuit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = settings_for(blocker / "state")
    gate = SecGate.from_settings(settings)
    sec = Sec()
    with caplog.at_level(logging.WARNING, logger="finloom_core.edgar.circuitfile"):
        gate.trip()
    assert "could not record the open SEC circuit" in caplog.text
    with client_of(settings, gate, sec) as client, pytest.raises(CircuitOpenError):
        client.submissions(320193)
    assert sec.calls == 0


def test_storage_reads_the_file_only_when_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / CIRCUIT_FILE
    reads: list[Path] = []
    read_bytes = Path.read_bytes

    def counted(self: Path) -> bytes:
        reads.append(self)
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", counted)
    storage = CircuitFileStorage(path, 600)
    assert storage.state == "closed" and storage.open_until() is None
    SecGate.from_settings(settings_for(tmp_path, breaker_cooloff_seconds=60)).trip()
    reads.clear()
    for _ in range(100):  # before each request: a stat, no read
        assert storage.state == "open"
    assert len(reads) == 1
    until = storage.open_until()
    assert until is not None and storage.opened_at is not None
    assert (until - storage.opened_at).total_seconds() == pytest.approx(600)
    SecGate.from_settings(settings_for(tmp_path, breaker_cooloff_seconds=900)).trip()
    reads.clear()
    assert storage.state == "open" and len(reads) == 1, "a changed file is read again"
    assert storage.open_until() is not None and storage.open_until() > until  # type: ignore[operator]


def test_the_default_state_folder_is_per_user_not_per_warehouse(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FINLOOM_STATE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    settings = FinloomSettings(_env_file=None, db_path=tmp_path / "a" / "w.duckdb")  # type: ignore[call-arg]
    assert settings.resolved_state_dir() == tmp_path / ".local" / "state" / "finloom"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "xdg" / "finloom"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/path")  # ignored, as the XDG spec says
    assert default_state_dir() == tmp_path / ".local" / "state" / "finloom"
    monkeypatch.setenv("FINLOOM_STATE_DIR", str(tmp_path / "mine"))
    assert FinloomSettings(_env_file=None).resolved_state_dir() == tmp_path / "mine"  # type: ignore[call-arg]
