"""Metrics, Pushgateway and failure webhook, seen from real flow runs.

A real ``prometheus-pushgateway`` (Debian package ``prometheus-pushgateway``) is started on
127.0.0.1 for this module; ``promtool`` (package ``prometheus``) lints what FinLoom exposes.
Both are installed by ``.ci/run``; a missing binary fails these tests rather than skipping.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from finloom_core.edgar import EdgarClient, RateLimiter, SecGate
from finloom_core.errors import RateLimitedError
from finloom_core.settings import load_settings
from finloom_ops import metrics
from flows.backfill import backfill
from tests.conftest import STANDIN_USER_AGENT as UA
from tests.edgar_standin import EdgarStandIn

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("prefect_harness", "clean_finloom_env"),
]

CELADON = 865941  # 7,542 facts: a small real company
CELADON_FACTS = 7_542

SEED_METRICS = (
    "finloom_filings_downloaded_total",
    "finloom_facts_loaded_total",
    "finloom_download_duration_seconds_count",
    "finloom_parse_duration_seconds_count",
    "finloom_edgar_requests_total",
    "finloom_database_size_bytes",
    "finloom_last_success_timestamp_seconds",
    "finloom_filing_quality_grade_total",
)


def _binary(name: str, package: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} not found: install Debian package {package} (.ci/run does)"
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = _binary("prometheus-pushgateway", "prometheus-pushgateway")
    port = _free_port()
    log = tmp_path_factory.mktemp("pushgateway") / "pushgateway.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, f"--web.listen-address=127.0.0.1:{port}"], stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "pushgateway did not become ready"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value of every sample line of a Prometheus text exposition."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found


def value_of(text: str, metric: str, **labels: str) -> float:
    """The sample ``metric`` whose labels include ``labels`` (exactly one must match)."""
    matches = [
        v
        for key, v in samples(text).items()
        if key.split("{")[0] == metric and all(f'{k}="{val}"' in key for k, val in labels.items())
    ]
    assert len(matches) == 1, (metric, labels, matches)
    return matches[0]


def promtool_check(text: str) -> None:
    result = subprocess.run(
        [_binary("promtool", "prometheus"), "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


# ------------------------------------------------------------------ recording


def test_client_requests_rate_limits_and_breaker_state_are_recorded(tmp_path: Path) -> None:
    settings = load_settings(sec_user_agent=UA, db_path=tmp_path / "w.duckdb", http_max_retries=0)
    gate = SecGate(RateLimiter(1000), cooloff_seconds=600, fail_max=5)
    m = metrics.activate(settings, gate=gate)
    answers = iter([httpx.Response(200, json={"ok": 1}), httpx.Response(404), httpx.Response(429)])
    transport = httpx.MockTransport(lambda request: next(answers))
    with EdgarClient(
        settings, gate, http=httpx.Client(transport=transport), sleep=lambda s: None
    ) as client:
        client.get_bytes("https://data.example/a.json")
        assert client.companyfacts(1) is None  # 404
        with pytest.raises(RateLimitedError):
            client.get_bytes("https://data.example/c.json")

    text = metrics.exposition(settings).decode()
    assert value_of(text, "finloom_edgar_requests_total", status="200") == 1
    assert value_of(text, "finloom_edgar_requests_total", status="404") == 1
    assert value_of(text, "finloom_edgar_requests_total", status="429") == 1
    assert value_of(text, "finloom_edgar_rate_limited_total") == 1
    assert value_of(text, "finloom_circuit_breaker_state", name="sec") == 1  # open
    assert metrics.gauge_value(settings, "finloom_circuit_breaker_state", name="sec") == 1
    assert m.directory is not None and any(m.directory.iterdir())
    promtool_check(text)


def test_metrics_record_only_the_gate_they_were_activated_with(tmp_path: Path) -> None:
    settings = load_settings(sec_user_agent=UA, db_path=tmp_path / "w.duckdb", http_max_retries=0)
    ours = SecGate(RateLimiter(1000), cooloff_seconds=600, fail_max=5)
    other = SecGate(RateLimiter(1000), cooloff_seconds=600, fail_max=5)
    metrics.activate(settings, gate=ours)
    text = metrics.exposition(settings).decode()
    assert value_of(text, "finloom_circuit_breaker_state", name="sec") == 0  # closed at start

    def client(gate: SecGate) -> EdgarClient:
        transport = httpx.MockTransport(lambda request: httpx.Response(429))
        return EdgarClient(settings, gate, http=httpx.Client(transport=transport))

    with client(other) as theirs, pytest.raises(RateLimitedError):
        theirs.get_bytes("https://data.example/other.json")
    text = metrics.exposition(settings).decode()
    assert "finloom_edgar_requests_total{" not in text  # another gate's request: not ours
    assert value_of(text, "finloom_circuit_breaker_state", name="sec") == 0

    with client(ours) as mine, pytest.raises(RateLimitedError):
        mine.get_bytes("https://data.example/ours.json")
    text = metrics.exposition(settings).decode()
    assert value_of(text, "finloom_edgar_requests_total", status="429") == 1
    assert value_of(text, "finloom_edgar_rate_limited_total") == 1
    assert value_of(text, "finloom_circuit_breaker_state", name="sec") == 1


# ------------------------------------------------------------------ flow runs


def test_backfill_metrics_reach_the_pushgateway_and_the_metrics_folder(
    standin: EdgarStandIn, pushgateway: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINLOOM_PUSHGATEWAY_URL", pushgateway)
    db = tmp_path / "warehouse.duckdb"
    started = time.time()

    summary = backfill(ciks=[CELADON], db_path=str(db))

    assert summary["facts"] == CELADON_FACTS
    pushed = httpx.get(f"{pushgateway}/metrics", timeout=5).text
    group = {"job": "finloom", "flow": "backfill"}
    assert value_of(pushed, "finloom_facts_loaded_total", **group) == CELADON_FACTS
    assert value_of(pushed, "finloom_last_success_timestamp_seconds", **group) >= started
    assert value_of(pushed, "finloom_filings_downloaded_total", status="downloaded", **group) == 1
    # the quality subflow pushed its own group: its grades, nothing the backfill counts
    quality = {"job": "finloom", "flow": "quality"}
    assert value_of(pushed, "finloom_last_success_timestamp_seconds", **quality) >= started
    grades = [
        v
        for k, v in samples(pushed).items()
        if k.startswith("finloom_filing_quality_grade_total{") and 'flow="quality"' in k
    ]
    assert sum(grades) > 0
    assert not [k for k in samples(pushed) if "grade_total" in k and 'flow="backfill"' in k]
    assert not [k for k in samples(pushed) if "facts_loaded" in k and 'flow="quality"' in k]

    # What `finloom serve` exposes: the same run, read from the metrics folder.
    assert metrics.current().directory == Path(f"{db}.metrics").resolve()
    text = metrics.exposition(load_settings(db_path=db)).decode()
    for name in SEED_METRICS:
        assert any(
            key.split("{")[0] == name and value > 0 for key, value in samples(text).items()
        ), name
    assert value_of(text, "finloom_facts_loaded_total") == CELADON_FACTS
    assert value_of(text, "finloom_database_size_bytes") == db.stat().st_size + (
        Path(f"{db}.wal").stat().st_size if Path(f"{db}.wal").exists() else 0
    )
    promtool_check(text)


def test_a_failed_run_still_pushes_and_counts_its_error(
    standin: EdgarStandIn, pushgateway: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINLOOM_PUSHGATEWAY_URL", pushgateway)
    monkeypatch.setenv("FINLOOM_SEC_USER_AGENT", UA)
    db = tmp_path / "warehouse.duckdb"

    with pytest.raises(Exception, match="ZZZZNOTATICKER"):
        backfill(tickers=["ZZZZNOTATICKER"], db_path=str(db))

    pushed = httpx.get(f"{pushgateway}/metrics", timeout=5).text
    group = {"job": "finloom", "flow": "backfill"}
    assert value_of(pushed, "finloom_pipeline_errors_total", stage="resolve", **group) == 1
    assert not [
        k
        for k in samples(pushed)
        if k.startswith("finloom_last_success_timestamp_seconds") and 'flow="backfill"' in k
    ], "a failed run must not record a success"


# ------------------------------------------------------------------ failure webhook


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True
    bodies: list[dict[str, Any]]


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver(("127.0.0.1", 0), _Handler)
    server.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_failed_flow_run_reaches_the_alert_webhook(
    receiver: _Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks/finloom"
    monkeypatch.setenv("FINLOOM_ALERT_WEBHOOK_URL", url)
    missing = tmp_path / "no-such-folder"

    state = backfill(source=str(missing), db_path=str(tmp_path / "w.duckdb"), return_state=True)

    assert state.is_failed()
    assert len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert body["flow"] == "backfill"
    assert body["state"] == "Failed"
    assert body["flow_run_id"] == str(state.state_details.flow_run_id)
    assert "no-such-folder" in body["message"]
    assert body["text"].startswith("FinLoom flow run backfill/")


def test_a_successful_run_sends_nothing(
    receiver: _Receiver, standin: EdgarStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "FINLOOM_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{receiver.server_address[1]}/"
    )
    backfill(ciks=[CELADON], db_path=str(tmp_path / "w.duckdb"), quality=False)
    assert receiver.bodies == []


# ------------------------------------------------------------------ tracing of a real run


def test_a_backfill_traces_every_stage_and_each_company(shared_edgar: Path, tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from finloom_ops import tracing

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.use_provider(provider)
    try:
        backfill(
            ciks=[CELADON, 999999999],
            source=str(shared_edgar),
            db_path=str(tmp_path / "w.duckdb"),
            quality=False,
            return_state=True,
        )
    finally:
        tracing.use_provider(None)
        provider.shutdown()

    spans = memory.get_finished_spans()
    attrs = {id(s): dict(s.attributes or {}) for s in spans}
    names = {s.name for s in spans}
    assert {"finloom.resolve", "finloom.download", "finloom.parse", "finloom.load",
            "finloom.normalize"} <= names  # fmt: skip
    load = next(s for s in spans if s.name == "finloom.load")
    companies = {attrs[id(s)]["finloom.cik"]: s for s in spans if s.name == "finloom.load.company"}
    assert attrs[id(companies[CELADON])]["finloom.status"] == "loaded"
    parent = companies[CELADON].parent
    assert parent is not None and parent.span_id == load.context.span_id
    downloads = {
        attrs[id(s)]["finloom.cik"]: attrs[id(s)]["finloom.status"]
        for s in spans
        if s.name == "finloom.download.company"
    }
    assert downloads == {CELADON: "downloaded", 999999999: "failed"}
    assert attrs[id(load)]["finloom.facts"] == CELADON_FACTS
