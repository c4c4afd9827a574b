"""Shared fixtures: the real SEC sample data in /work/shared/edgar (read in place, never copied).

The Prefect environment is set here, at import time, before any test module imports
prefect: a per-session PREFECT_HOME (never the developer's ~/.prefect), a generous
temporary-server start-up timeout for loaded CI machines, and no telemetry.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_PREFECT_HOME = tempfile.mkdtemp(prefix="finloom-tests-prefect-")
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# FinLoom's machine-wide state (the SEC circuit's open-until) never in the user's home; each
# test gets a folder of its own below (finloom_state_dir), so no block outlives a test.
_STATE_DIR = tempfile.mkdtemp(prefix="finloom-tests-state-")
atexit.register(shutil.rmtree, _STATE_DIR, ignore_errors=True)
os.environ["FINLOOM_STATE_DIR"] = _STATE_DIR

import zipfile  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.edgar_standin import EdgarStandIn  # noqa: E402

# <repo>/tests/conftest.py -> <repo>/.. /shared/edgar
SHARED_EDGAR = Path(__file__).resolve().parents[1].parent / "shared" / "edgar"

PREFECT_SERVER_STARTUP_TIMEOUT = 90


@pytest.fixture(scope="session")
def shared_edgar() -> Path:
    """Root of the real EDGAR sample folder (see its MANIFEST.md).

    Missing data is a failure, not a skip: CI must never pass by silently skipping the
    real-data tests.
    """
    if not (SHARED_EDGAR / "companyfacts").is_dir():
        pytest.fail(f"shared EDGAR data not found at {SHARED_EDGAR}", pytrace=False)
    return SHARED_EDGAR


@pytest.fixture(scope="session")
def companyfacts_zip(shared_edgar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A companyfacts.zip built at test time (in a temp dir) from every shared companyfacts file.

    Stored, not deflated: the archive format is what is under test, and this keeps it fast.
    """
    path = tmp_path_factory.mktemp("bulk") / "companyfacts.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for file in sorted((shared_edgar / "companyfacts").glob("CIK*.json")):
            archive.write(file, file.name)
    return path


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API (SQLite) for the whole session; for integration tests that
    run flows through the engine. Costs ~12 s once, then ~1 s per flow run."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=PREFECT_SERVER_STARTUP_TIMEOUT):
        yield


STANDIN_USER_AGENT = "FinLoom flow tests flow-tests@example.com"


@pytest.fixture(autouse=True)
def finloom_state_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A FINLOOM_STATE_DIR of this test's own: the SEC circuit one test opens (recorded there
    for every FinLoom process) never stops another test, nor touches the user's state."""
    path = tmp_path_factory.mktemp("finloom-state")
    monkeypatch.setenv("FINLOOM_STATE_DIR", str(path))
    return path


@pytest.fixture
def clean_finloom_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, finloom_state_dir: Path
) -> Iterator[None]:
    """No FINLOOM_* setting from the developer's shell or a .env leaks into a run. (No
    limiter window outlives a run either: each flow run builds its own SecGate; the circuit's
    open-until is kept in this test's own FINLOOM_STATE_DIR.)"""
    for name in list(os.environ):
        if name.startswith("FINLOOM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FINLOOM_STATE_DIR", str(finloom_state_dir))
    monkeypatch.chdir(tmp_path)  # load_settings() reads ./.env
    yield


@pytest.fixture
def standin(shared_edgar: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EdgarStandIn]:
    """The EDGAR stand-in serving ../shared/edgar, with the FINLOOM_* settings pointing at it."""
    with EdgarStandIn(shared_edgar) as server:
        monkeypatch.setenv("FINLOOM_EDGAR_DATA_URL", server.data_url)
        monkeypatch.setenv("FINLOOM_EDGAR_WWW_URL", server.www_url)
        monkeypatch.setenv("FINLOOM_SEC_USER_AGENT", STANDIN_USER_AGENT)
        monkeypatch.setenv("FINLOOM_BREAKER_COOLOFF_SECONDS", "600")
        yield server
