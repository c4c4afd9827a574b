"""``finloom serve`` (finloom_cli.serve): health endpoints and /metrics, in-process through
FastAPI's TestClient against the EDGAR stand-in, and once as a real server in a subprocess."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import finloom_cli.serve as serve
from finloom_core.edgar import EdgarUrls, SecGate
from finloom_core.errors import ConfigurationError
from finloom_core.health import BUSY_REASON, Check
from finloom_core.sec_probe import SecProbe
from finloom_core.settings import FinloomSettings
from finloom_core.storage.database import open_warehouse
from finloom_ops import metrics
from tests.edgar_standin import FALLBACK_RATE_PAGE, HTML, EdgarStandIn
from tests.test_health import HOLDER

REPO = Path(__file__).resolve().parents[1]
UA = "FinLoom Tests tests@example.com"
TOKEN = "serve-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}  # unlocks the health endpoints' details
SEC_PROBE_PATH = "/submissions/CIK0000320193.json"  # what EdgarUrls.probe() asks for


@pytest.fixture
def standin(shared_edgar: Path) -> Iterator[EdgarStandIn]:
    with EdgarStandIn(shared_edgar) as server:
        yield server


def make_settings(tmp_path: Path, standin: EdgarStandIn | None, **values: Any) -> FinloomSettings:
    """Settings for one test: everything explicit, so no FINLOOM_* variable leaks in (and no
    test can reach the real SEC: without a stand-in there is no User-Agent, so no probe)."""
    values.setdefault("db_path", tmp_path / "warehouse.duckdb")
    values.setdefault("metrics_dir", tmp_path / "metrics")
    if standin is not None:
        values.setdefault("edgar_data_url", standin.data_url)
        values.setdefault("edgar_www_url", standin.www_url)
        values.setdefault("sec_user_agent", UA)
    else:
        values.setdefault("edgar_data_url", "http://127.0.0.1:9")
        values.setdefault("edgar_www_url", "http://127.0.0.1:9")
        values.setdefault("sec_user_agent", None)
    return FinloomSettings(_env_file=None, **values)  # type: ignore[call-arg]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------- in-process


def test_live_ready_and_health(tmp_path: Path, standin: EdgarStandIn) -> None:
    settings = make_settings(tmp_path, standin, serve_token=TOKEN)
    with open_warehouse(settings.db_path):
        pass
    with TestClient(serve.create_app(settings)) as client:
        live = client.get("/health/live")
        assert (live.status_code, live.json()) == (200, {"status": "alive"})

        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.json()
        body = ready.json()
        assert body["status"] == "ready" and body["reasons"] == []
        assert {name: c["status"] for name, c in body["checks"].items()} == {
            "database": "ok",
            "disk": "ok",
            "memory": "ok",
            "sec": "reachable",
        }
        for _ in range(5):
            assert client.get("/health/ready").status_code == 200

        startup = client.get("/health/startup")
        assert (startup.status_code, startup.json()) == (200, {"status": "started"})

        health = client.get("/health", headers=AUTH)
        assert health.status_code == 200
        detail = health.json()
        assert detail["ready"] is True
        assert detail["checks"]["sec"]["detail"]["http_status"] == 200
        assert "breaker" in detail["checks"]
        assert detail["sec_probes_sent"] == 1

    # One probe for the whole session, with the declared User-Agent, of the probe path.
    probes = [hit for hit in standin.hits if hit.path == SEC_PROBE_PATH]
    assert len(probes) == 1 and len(standin.hits) == 1
    assert probes[0].user_agent == UA and probes[0].status == 200


def test_ready_is_200_busy_while_a_load_holds_the_database(
    tmp_path: Path, standin: EdgarStandIn
) -> None:
    settings = make_settings(tmp_path, standin)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(settings.db_path)], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"ready"
        with TestClient(serve.create_app(settings)) as client:
            ready = client.get("/health/ready")
            health = client.get("/health")
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert ready.status_code == 200, ready.json()
    assert ready.json()["status"] == "busy"
    assert ready.json()["reasons"] == [f"database: {BUSY_REASON}"]
    assert ready.json()["checks"]["database"]["status"] == "busy"
    assert health.status_code == 200 and health.json()["status"] == "busy"


def test_health_details_need_the_serve_token(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, None, serve_token=TOKEN)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(settings.db_path)], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"ready"
        with TestClient(serve.create_app(settings)) as client:
            ready = client.get("/health/ready")  # a probe: open, without details
            wrong_ready = client.get("/health/ready", headers={"Authorization": "Bearer nope"})
            refused = [
                client.get("/health"),
                client.get("/health", headers={"Authorization": "Bearer not-the-token"}),
                client.get("/health", headers={"Authorization": TOKEN}),  # no scheme
                client.get("/health", headers={"Authorization": f"Basic {TOKEN}"}),
            ]
            full = client.get("/health", headers=AUTH)
        with TestClient(serve.create_app(make_settings(tmp_path, None))) as client:
            untokened = [  # no token configured: /health is open, and details go to nobody
                client.get("/health", headers=AUTH),
                client.get("/health/ready", headers=AUTH),
            ]
    finally:
        holder.kill()
        holder.wait(timeout=30)

    for response in refused:  # with a token configured, /health is the token's
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert set(response.json()) == {"detail"} and TOKEN not in response.text
    for response in (ready, wrong_ready, *untokened):
        assert response.status_code == 200
        body = response.json()
        assert set(body) <= {"status", "ready", "reasons", "notes", "checks"}
        assert body["status"] == "busy" and body["reasons"] == [f"database: {BUSY_REASON}"]
        assert all(set(check) == {"healthy", "status"} for check in body["checks"].values())
        text = response.text
        for secret in (str(tmp_path), str(Path.home()), f"{holder.pid}", "total_mb", "127.0.0.1:9"):
            assert secret not in text, (secret, text)
    assert untokened[0].json()["checks"]["breaker"]["status"] == "unknown"

    detail = full.json()  # with the token: every detail, as before
    assert detail["db_path"] == str(settings.db_path)
    assert detail["checks"]["database"]["detail"]["writer_pid"] == holder.pid
    assert detail["checks"]["disk"]["detail"]["total_mb"] > 0
    assert detail["checks"]["memory"]["detail"]["total_mb"] > 0
    assert detail["checks"]["sec"]["detail"]["url"].startswith("http://127.0.0.1:9/")
    assert "sec_probes_sent" in detail and "uptime_seconds" in detail


def test_ready_is_503_when_disk_is_below_the_threshold(
    tmp_path: Path, standin: EdgarStandIn
) -> None:
    settings = make_settings(tmp_path, standin, health_min_free_disk_mb=10**12)
    with TestClient(serve.create_app(settings)) as client:
        ready = client.get("/health/ready")
        health = client.get("/health")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable"
    assert len(body["reasons"]) == 1 and body["reasons"][0].startswith("disk: ")
    assert "MB minimum" in body["reasons"][0]
    # An absent warehouse is fine (fresh install), and noted.
    assert body["checks"]["database"]["status"] == "absent"
    assert health.status_code == 200 and health.json()["ready"] is False


def test_ready_is_503_when_sec_rate_limits_us(tmp_path: Path, standin: EdgarStandIn) -> None:
    standin.add_fault(SEC_PROBE_PATH, 403, FALLBACK_RATE_PAGE, {"Content-Type": HTML})
    settings = make_settings(tmp_path, standin)
    app = serve.create_app(settings)
    with TestClient(app) as client:
        ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["sec"]["status"] == "blocked"
    assert ready.json()["reasons"] == ["sec: SEC is rate-limiting this host (HTTP 403)"]
    assert app.state.sec_gate.breaker_state() == "open"  # the server's gate stops its probe


def test_the_servers_probe_goes_through_its_gate(tmp_path: Path, standin: EdgarStandIn) -> None:
    settings = make_settings(tmp_path, standin, serve_token=TOKEN)
    gate = SecGate.from_settings(settings)
    gate.trip()
    with TestClient(serve.create_app(settings, gate=gate)) as client:
        ready = client.get("/health/ready", headers=AUTH)
    assert ready.status_code == 503
    sec = ready.json()["checks"]["sec"]
    assert (sec["status"], sec["detail"]["circuit"]) == ("blocked", "open")
    assert standin.hits == [], "no request to SEC while the gate's circuit is open"


def test_unreachable_sec_makes_ready_503(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, None, edgar_data_url=f"http://127.0.0.1:{free_port()}", sec_user_agent=UA
    )
    with TestClient(serve.create_app(settings)) as client:
        ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["sec"]["status"] == "unreachable"


def test_a_check_that_raises_is_a_failing_check_not_a_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(path: object) -> Check:
        raise RuntimeError("disk controller on fire\nsecond line")

    class BrokenProbe(SecProbe):
        def check(self, *, wait: bool = True) -> Check:
            raise ValueError("probe bug")

    monkeypatch.setattr(serve, "check_database", broken)
    settings = make_settings(tmp_path, None)
    probe = BrokenProbe(
        EdgarUrls("http://127.0.0.1:9"), None, 300, gate=SecGate.from_settings(settings)
    )
    with TestClient(serve.create_app(settings, sec_probe=probe)) as client:
        ready = client.get("/health/ready")
        health = client.get("/health")
        live = client.get("/health/live")
    assert ready.status_code == 503
    assert ready.json()["reasons"] == [  # the exceptions' messages are details
        "database: check failed: RuntimeError",
        "sec: check failed: ValueError",
    ]
    assert health.status_code == 200 and health.json()["status"] == "unavailable"
    assert live.status_code == 200


def test_startup_waits_for_the_first_sec_probe(tmp_path: Path) -> None:
    gate = threading.Event()

    def respond(request: httpx.Request) -> httpx.Response:
        gate.wait(30)
        return httpx.Response(200)

    settings = make_settings(tmp_path, None)
    probe = SecProbe(
        EdgarUrls(settings.edgar_data_url),
        UA,
        300,
        gate=SecGate.from_settings(settings),
        transport=httpx.MockTransport(respond),
    )
    with TestClient(serve.create_app(settings, sec_probe=probe)) as client:
        starting = client.get("/health/startup")
        assert starting.status_code == 503
        assert starting.json()["status"] == "starting"
        assert client.get("/health/live").status_code == 200
        gate.set()
        probe.join()
        started = client.get("/health/startup")
        assert (started.status_code, started.json()) == (200, {"status": "started"})


def test_unconfigured_user_agent_is_ready_and_noted(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, None)
    with TestClient(serve.create_app(settings)) as client:
        assert client.get("/health/startup").status_code == 200
        ready = client.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["sec"]["status"] == "unconfigured"
    assert any(note.startswith("sec: FINLOOM_SEC_USER_AGENT") for note in body["notes"])


def promtool_check_metrics(text: bytes) -> subprocess.CompletedProcess[bytes]:
    exe = "/usr/bin/promtool" if Path("/usr/bin/promtool").is_file() else shutil.which("promtool")
    if exe is None:
        pytest.fail(
            "promtool is not installed; install it from the Debian package `prometheus` "
            "(apt-get install prometheus)",
            pytrace=False,
        )
    return subprocess.run(
        [exe, "check", "metrics"], input=text, capture_output=True, timeout=60, check=False
    )


def test_metrics_serves_recorded_runs_as_valid_prometheus_text(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, None)
    with open_warehouse(settings.db_path):
        pass
    metrics.activate(settings, settings.db_path)
    recorded = metrics.current()
    recorded.facts_loaded.inc(10)
    recorded.filings_downloaded.labels("downloaded").inc(3)
    recorded.download_duration.observe(0.2)
    recorded.last_success.labels("backfill").set(1_700_000_000)

    with TestClient(serve.create_app(settings)) as client:
        response = client.get("/metrics")
        health = client.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    text = response.text
    assert "finloom_facts_loaded_total 10.0" in text.splitlines()
    assert 'finloom_filings_downloaded_total{status="downloaded"} 3.0' in text
    size = settings.db_path.stat().st_size
    assert f"finloom_database_size_bytes {float(size)}" in text
    assert health.json()["checks"]["breaker"]["status"] == "closed"

    result = promtool_check_metrics(response.content)
    assert result.returncode == 0, (
        f"promtool check metrics exited {result.returncode}\n"
        f"{result.stdout.decode()}{result.stderr.decode()}\n--- body ---\n{text}"
    )


def test_port_in_use_is_a_one_line_configuration_error(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, None)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(ConfigurationError) as raised:
            serve.run_server(settings, "127.0.0.1", port)
    message = str(raised.value)
    assert "\n" not in message
    assert f"127.0.0.1:{port}" in message and "already in use" in message


# ---------------------------------------------------------------------------- guard

PROBE_PATHS = ("/health/live", "/health/ready", "/health/startup")


def test_metrics_need_the_token_and_probes_stay_open(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, None, serve_token=TOKEN)
    with TestClient(serve.create_app(settings)) as client:
        anonymous = client.get("/metrics")
        wrong = client.get("/metrics", headers={"Authorization": "Bearer serve-token-for-test"})
        scraped = client.get("/metrics", headers=AUTH)
        probes = {path: client.get(path).status_code for path in PROBE_PATHS}
    for refused in (anonymous, wrong):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Bearer realm="finloom"'
        assert "finloom_" not in refused.text
    assert scraped.status_code == 200 and "finloom_database_size_bytes" in scraped.text
    assert probes == dict.fromkeys(PROBE_PATHS, 200)

    with TestClient(serve.create_app(make_settings(tmp_path, None))) as client:
        open_scrape = client.get("/metrics")  # no token configured: open, as before
    assert open_scrape.status_code == 200 and "finloom_database_size_bytes" in open_scrape.text


def test_metrics_503_names_the_error_not_its_paths_without_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(settings: FinloomSettings) -> bytes:
        raise PermissionError(f"[Errno 13] Permission denied: '{tmp_path}/metrics/x.db'")

    monkeypatch.setattr(metrics, "exposition", broken)
    with TestClient(serve.create_app(make_settings(tmp_path, None))) as client:
        anonymous = client.get("/metrics")
    with TestClient(serve.create_app(make_settings(tmp_path, None, serve_token=TOKEN))) as client:
        holder = client.get("/metrics", headers=AUTH)
    assert anonymous.status_code == 503
    assert anonymous.text == "# metrics unavailable: PermissionError\n"
    assert holder.status_code == 503 and str(tmp_path) in holder.text


def test_rate_limit_answers_429_with_retry_after_per_client(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, None, serve_token=TOKEN, serve_rate_limit="5/hour")
    app = serve.create_app(settings)
    with TestClient(app, client=("10.0.0.1", 1000)) as client:
        burst = [client.get("/metrics", headers=AUTH) for _ in range(120)]
        guesses = [client.get("/metrics", headers={"Authorization": "Bearer guess"})]
        probes = [client.get(path) for path in PROBE_PATHS for _ in range(40)]
    with TestClient(app, client=("10.0.0.2", 1000)) as other:
        elsewhere = other.get("/metrics", headers=AUTH)

    codes = [response.status_code for response in burst]
    assert codes[:5] == [200] * 5 and codes[5:] == [429] * 115
    waits = {int(response.headers["retry-after"]) for response in burst[5:]}
    assert waits and all(1 <= wait <= 3600 for wait in waits)
    assert "rate limit" in burst[-1].json()["detail"]
    # the limit is checked before the token: guessing tokens is limited too
    assert [r.status_code for r in guesses] == [429]
    # the probes are never limited (a kubelet probing every few seconds)
    assert {r.status_code for r in probes} == {200}
    # another client address has its own window
    assert elsewhere.status_code == 200


def test_rate_limit_off_and_bad_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from finloom_core.settings import DEFAULT_SERVE_RATE_LIMIT, load_settings

    settings = make_settings(tmp_path, None, serve_rate_limit="off")
    assert settings.serve_rate_limit is None
    with TestClient(serve.create_app(settings)) as client:
        assert {client.get("/metrics").status_code for _ in range(700)} == {200}
    assert make_settings(tmp_path, None).serve_rate_limit == DEFAULT_SERVE_RATE_LIMIT
    for bad in ("lots", "0/second", "10/fortnight"):
        monkeypatch.setenv("FINLOOM_SERVE_RATE_LIMIT", bad)
        with pytest.raises(ConfigurationError) as raised:
            load_settings(_env_file=None)
        message = str(raised.value)
        assert message.startswith("FINLOOM_SERVE_RATE_LIMIT: ") and "\n" not in message


def test_request_ids_are_echoed_generated_and_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import json

    from finloom_ops import logs

    def broken(path: object) -> Check:
        raise RuntimeError("disk controller on fire")

    monkeypatch.setattr(serve, "check_database", broken)  # serve logs the failing check
    stream = io.StringIO()
    handler = logs.JsonStreamHandler(stream)
    handler.setFormatter(logs.FinloomJsonFormatter())
    handler.addFilter(logs.CorrelationFilter())
    serve.log.addHandler(handler)
    try:
        with TestClient(serve.create_app(make_settings(tmp_path, None))) as client:
            kept = client.get("/health/ready", headers={"X-Request-ID": "lb-7f3a:42"})
            fresh = client.get("/health/ready")
            insane = [
                client.get("/health/live", headers={"X-Request-ID": given})
                for given in ("a" * 129, "x y", '{"level":"ERROR"}', "")
            ]
            refused = client.get("/nowhere", headers={"X-Request-ID": "r-404"})
    finally:
        serve.log.removeHandler(handler)

    assert kept.headers["x-request-id"] == "lb-7f3a:42"
    assert refused.headers["x-request-id"] == "r-404"
    generated = [fresh.headers["x-request-id"], *(r.headers["x-request-id"] for r in insane)]
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in generated)
    assert len(set(generated)) == len(generated)
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    raised = [line for line in logged if line["message"] == "health check database raised"]
    assert [line["request_id"] for line in raised] == ["lb-7f3a:42", fresh.headers["x-request-id"]]


# ---------------------------------------------------------------------------- real server

SERVER = """
import sys
from finloom_cli.serve import run_server
from finloom_core.settings import load_settings
loaded = sorted(m for m in sys.modules if m == "prefect" or m.startswith("prefect."))
print("prefect modules:", loaded, flush=True)
run_server(load_settings(), "127.0.0.1", int(sys.argv[1]))
"""


@pytest.mark.integration
def test_run_server_in_a_subprocess(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "FINLOOM_DB_PATH": str(tmp_path / "warehouse.duckdb"),
        "FINLOOM_EDGAR_DATA_URL": "http://127.0.0.1:9",  # never probed: no User-Agent
        "LANG": "C.UTF-8",
    }
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "prefect modules: []"
        live = None
        deadline = time.monotonic() + 60  # a bound on waiting, not an assertion on speed
        while live is None and time.monotonic() < deadline and server.poll() is None:
            try:
                live = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=5)
            except httpx.TransportError:
                time.sleep(0.1)
        assert live is not None, f"server never answered; exit code {server.poll()}"
        assert (live.status_code, live.json()) == (200, {"status": "alive"})
        ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=30)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["sec"]["status"] == "unconfigured"
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
        assert scraped.status_code == 200
        assert "finloom_database_size_bytes" in scraped.text
    finally:
        server.terminate()
        try:
            _, stderr = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            _, stderr = server.communicate()
    assert "Traceback" not in stderr, stderr


# ---------------------------------------------------------------------------- probes and loads

POLLERS = 6
POLL_PAUSE_SECONDS = 0.05  # six clients: ~100 readiness requests a second in all


def start_serve(home: Path, db: Path, port: int, *args: str, **env: str) -> subprocess.Popen[str]:
    """``finloom serve`` in a subprocess, answering /health/live (or the test fails)."""
    from tests.test_cli import clean_env

    server = subprocess.Popen(
        [sys.executable, "-m", "finloom_cli.main", "serve", "--port", str(port), "--db", str(db),
         *args],
        cwd=home, env={**clean_env(home), **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60  # a bound on waiting, not an assertion on speed
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    stop_serve(server)
    pytest.fail(f"finloom serve never answered: {server.communicate()}")


def stop_serve(server: subprocess.Popen[str]) -> str:
    server.terminate()
    try:
        _, stderr = server.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        _, stderr = server.communicate()
    return stderr


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness")
def test_three_loads_succeed_while_six_clients_poll_readiness(
    shared_edgar: Path, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    from tests.test_cli import finloom

    db, port = tmp_path / "warehouse.duckdb", free_port()
    server = start_serve(tmp_path, db, port)
    stop = threading.Event()
    answers: list[tuple[int, str]] = []
    failures: list[str] = []

    def poll() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.get("/health/ready")
                    answers.append((response.status_code, response.json()["status"]))
                except Exception as exc:  # any failed poll fails the test
                    failures.append(f"{type(exc).__name__}: {exc}")
                stop.wait(POLL_PAUSE_SECONDS)

    pollers = [threading.Thread(target=poll, daemon=True) for _ in range(POLLERS)]
    for poller in pollers:
        poller.start()
    runs = []
    try:
        while not answers:  # the probes are running before the first load starts
            time.sleep(0.05)
        for _ in range(3):
            runs.append(
                finloom(
                    tmp_path, "backfill", "--source", str(shared_edgar),
                    "--ciks", "865941,1046179", "--db", str(db), "--no-quality",
                    env={"PREFECT_API_URL": str(PREFECT_API_URL.value())},
                )
            )  # fmt: skip
    finally:
        stop.set()
        for poller in pollers:
            poller.join(timeout=60)
        stderr = stop_serve(server)
    for number, run in enumerate(runs, start=1):
        assert run.code == 0, f"load {number} exited {run.code}:\n{run.stderr}"
    assert "facts stored: 13,521" in runs[0].stdout  # 7,542 (Celadon) + 5,979 (TSM)
    assert failures == []
    assert len(answers) > 100
    assert (200, "busy") in answers  # the probes saw the loads running
    # the documented answers only: ready, or busy (200) while a load holds the lock
    assert {status for _, status in answers} <= {"ready", "busy"}
    assert {code for code, _ in answers} == {200}
    assert "Traceback" not in stderr, stderr


# ---------------------------------------------------------------------------- metrics folder

# Records FinLoom's metrics as N processes that have ended: prometheus-client's multiprocess
# files under fake PIDs above the system's pid_max (no such process can exist).
DEAD_WRITERS = """
import os, sys
from pathlib import Path
from prometheus_client import values
directory, first, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
from finloom_ops import metrics
for i in range(count):
    values.ValueClass = values.MultiProcessValue(lambda pid=first + i: pid)
    m = metrics._build(directory)
    m.facts_loaded.inc(1000 + i)
    m.filings_downloaded.labels("downloaded").inc(i % 3 + 1)
    m.filings_downloaded.labels("failed").inc(i % 2)
    m.download_duration.observe(0.25 * (i % 7))
    m.circuit_breaker_state.labels("sec").set(2 - i % 3)  # mostrecent: the last one wins
    m.last_success.labels("backfill").set(1_700_000_000 + (i * 37) % 101)  # max
"""


def write_dead_processes(directory: Path, first: int, count: int) -> None:
    subprocess.run(
        [sys.executable, "-c", DEAD_WRITERS, str(directory), str(first), str(count)],
        check=True, timeout=120, cwd=REPO,
    )  # fmt: skip


def dead_pid_base() -> int:
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1000


def exposed(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def raw_exposition(directory: Path) -> str:
    """What the folder says, read as prometheus-client reads it (no compaction)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics._FinloomOnly(directory))
    return generate_latest(registry).decode()


def test_metrics_folder_compaction_keeps_every_value(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, None)
    directory = settings.resolved_metrics_dir()
    metrics.activate_reader(settings).database_size.set(0)  # this process's own files
    write_dead_processes(directory, dead_pid_base(), 50)  # 4 files each: 200 files
    assert len(list(directory.glob("*.db"))) >= 200
    before = exposed(raw_exposition(directory))
    assert before[("finloom_facts_loaded_total", ())] == sum(1000 + i for i in range(50))
    assert before[("finloom_circuit_breaker_state", (("name", "sec"),))] == 1  # 2 - 49 % 3
    assert before[("finloom_last_success_timestamp_seconds", (("flow", "backfill"),))] == (
        1_700_000_100
    )

    with TestClient(serve.create_app(settings)) as client:
        scraped = client.get("/metrics")  # past the threshold: compacted first
    assert scraped.status_code == 200
    assert exposed(scraped.text) == before
    files = sorted(p.name for p in directory.glob("*.db"))
    assert len(files) <= 10, files
    assert {f"{kind}_archive.db" for kind in ("counter", "histogram")} <= set(files)
    assert exposed(raw_exposition(directory)) == before

    # Later runs add to the archive: counters keep adding up, a gauge's most recent value
    # still wins over the archived one, and a flow run's start compacts (metrics.activate).
    write_dead_processes(directory, dead_pid_base() + 100, 6)
    later = exposed(raw_exposition(directory))
    facts = ("finloom_facts_loaded_total", ())
    assert later[facts] == before[facts] + sum(1000 + i for i in range(6))
    assert later[("finloom_circuit_breaker_state", (("name", "sec"),))] == 0  # 2 - 5 % 3
    metrics.activate(settings)
    assert len(list(directory.glob("*.db"))) <= 10
    assert exposed(raw_exposition(directory)) == later
    promtool_ok = promtool_check_metrics(metrics.exposition(settings))
    assert promtool_ok.returncode == 0, promtool_ok.stdout + promtool_ok.stderr


def test_compaction_leaves_live_processes_and_waits_its_turn(tmp_path: Path) -> None:
    from finloom_ops import metrics_compaction

    directory = tmp_path / "metrics"
    directory.mkdir()
    live = subprocess.Popen(
        [sys.executable, "-c", LIVE_WRITER, str(directory)], stdout=subprocess.PIPE, cwd=REPO
    )
    try:
        assert live.stdout is not None and live.stdout.readline().strip() == b"recorded"
        write_dead_processes(directory, dead_pid_base(), 3)
        with open(directory / metrics_compaction.LOCK_NAME, "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # another process is compacting: skip
            assert metrics_compaction.compact(directory) == 0
            fcntl.flock(held, fcntl.LOCK_UN)
        assert metrics_compaction.compact(directory) == 12
        names = {p.name for p in directory.glob("*.db")}
        assert {f"counter_{live.pid}.db", f"gauge_mostrecent_{live.pid}.db"} <= names
        assert not [n for n in names if str(dead_pid_base()) in n]
    finally:
        live.kill()
        live.wait(timeout=30)
    assert metrics_compaction.compact(directory) >= 2  # now it has ended: merged too
    assert all("archive" in p.name for p in directory.glob("*.db"))
    assert not list(directory.glob("live_*.lock"))


# A process that records into the folder and stays alive (holding its liveness marker).
LIVE_WRITER = """
import sys, time
from pathlib import Path
from finloom_core.settings import FinloomSettings
from finloom_ops import metrics
directory = Path(sys.argv[1])
settings = FinloomSettings(_env_file=None, db_path=directory / "w.duckdb", metrics_dir=directory)
metrics.activate_reader(settings).facts_loaded.inc(5)
metrics.current().database_size.set(1)
print("recorded", flush=True)
time.sleep(300)
"""


@pytest.mark.integration
def test_a_guarded_server_with_json_access_logs(tmp_path: Path) -> None:
    import json

    port = free_port()
    server = start_serve(
        tmp_path, tmp_path / "warehouse.duckdb", port, "--access-log",
        FINLOOM_SERVE_TOKEN=TOKEN, FINLOOM_SERVE_RATE_LIMIT="20/hour", FINLOOM_LOG_FORMAT="json",
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            anonymous = client.get("/metrics", headers={"X-Request-ID": "scrape-1"})
            scraped = client.get("/metrics", headers={**AUTH, "X-Request-ID": "scrape-2"})
            live = client.get("/health/live")
            burst = [client.get("/metrics", headers=AUTH) for _ in range(120)]
            probes = [client.get("/health/live") for _ in range(30)]
    finally:
        server.terminate()
        try:
            stdout, stderr = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            stdout, stderr = server.communicate()
    assert anonymous.status_code == 401 and anonymous.headers["x-request-id"] == "scrape-1"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert scraped.status_code == 200 and "finloom_database_size_bytes" in scraped.text
    assert live.status_code == 200
    codes = [response.status_code for response in burst]  # 2 of the 20 went to /metrics above
    assert codes.count(200) == 18 and codes.count(429) == 102 and codes[18:] == [429] * 102
    assert all(int(r.headers["retry-after"]) >= 1 for r in burst[18:])
    assert {r.status_code for r in probes} == {200}

    # uvicorn writes its access lines to stdout, everything else to stderr
    output = stdout + stderr
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access_lines = [line for line in lines if line["logger"] == "uvicorn.access"]
    access = {line.get("request_id"): line["message"] for line in access_lines}
    assert "401" in access["scrape-1"] and "200" in access["scrape-2"]
    assert len(access) == len(access_lines) >= 2 + 120 + 30  # one id for each request
    assert None not in access
    assert TOKEN not in output and "Traceback" not in output


@pytest.mark.integration
def test_cli_reads_are_timed_into_an_existing_metrics_folder_only(
    shared_edgar: Path, tmp_path: Path
) -> None:
    from finloom_core.edgar.sources import FolderSource
    from finloom_core.pipeline import run_pipeline
    from tests.test_cli import finloom

    db = tmp_path / "warehouse.duckdb"
    run_pipeline(FolderSource(shared_edgar), [320193], db)
    folder = tmp_path / "warehouse.duckdb.metrics"
    assert not folder.exists()
    first = finloom(tmp_path, "financials", "AAPL", "--db", str(db))
    assert first.code == 0, first
    assert not folder.exists()  # a read creates no metrics folder beside the database

    settings = make_settings(tmp_path, None, db_path=db, metrics_dir=None)
    metrics.activate_reader(settings)  # what a flow run or `finloom serve` does
    for _ in range(2):
        assert finloom(tmp_path, "financials", "AAPL", "--db", str(db)).code == 0
    lookup = finloom(tmp_path, "quality", "score", "--ticker", "NOSUCH", "--db", str(db))
    assert lookup.code == 2  # an unknown ticker: refused, not timed
    text = metrics.exposition(settings).decode()
    samples = exposed(text)
    assert samples[("finloom_query_duration_seconds_count", (("query", "financials"),))] == 2
    assert samples[("finloom_query_duration_seconds_count", (("query", "quality_score"),))] == 0
    assert samples[("finloom_query_duration_seconds_sum", (("query", "financials"),))] > 0
