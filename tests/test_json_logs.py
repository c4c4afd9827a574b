"""JSON log lines: fields, correlation ids, one line per record, redaction, Prefect wiring."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finloom_ops import logs

ROOT = Path(__file__).resolve().parents[1]
SECRET = "tok-Zq8secret-value"


@pytest.fixture
def json_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """An isolated logger writing JSON lines to a buffer, with a secret in the environment."""
    monkeypatch.setenv("FINLOOM_TEST_TOKEN", SECRET)
    logs.refresh_secrets()
    stream = io.StringIO()
    handler = logs.JsonStreamHandler(stream)
    handler.setFormatter(logs.FinloomJsonFormatter())
    handler.addFilter(logs.CorrelationFilter())
    logger = logging.getLogger("finloom.tests.json")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, stream
    finally:
        logger.handlers = []
        logger.propagate = True
        monkeypatch.delenv("FINLOOM_TEST_TOKEN")
        logs.refresh_secrets()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    text = stream.getvalue()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_record_fields(json_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_logger
    logger.info("loaded %d facts", 12, extra={"cik": 320193, "accession": "0000320193-24-000123"})
    logger.warning("no extras")

    first, second = lines(stream)
    assert first["level"] == "INFO"
    assert first["logger"] == "finloom.tests.json"
    assert first["message"] == "loaded 12 facts"
    assert first["cik"] == 320193
    assert first["accession"] == "0000320193-24-000123"
    assert first["correlation_id"] == logs.process_correlation_id()
    assert len(logs.process_correlation_id()) == 32
    assert first["flow"] is None and first["task"] is None
    assert first["timestamp"].endswith("Z") and "T" in first["timestamp"]
    assert "cik" not in second and "accession" not in second
    assert second["correlation_id"] == logs.process_correlation_id()


def test_exception_is_one_line(json_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_logger
    try:
        raise ValueError("first line\nsecond line\u2028third")
    except ValueError:
        logger.exception("it failed", extra={"cik": 1750})

    raw = stream.getvalue()
    assert raw.count("\n") == 1 and raw.endswith("\n")
    (record,) = lines(stream)
    assert record["message"] == "it failed"
    assert record["exc"].startswith("Traceback (most recent call last):")
    assert "ValueError: first line\nsecond line\u2028third" in record["exc"]
    assert "exc_info" not in record


def test_secrets_are_redacted(json_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_logger
    logger.warning("calling with token %s", SECRET)
    try:
        raise RuntimeError(f"server said {SECRET}")
    except RuntimeError:
        logger.exception("request failed for %s", "ops@example.com")

    raw = stream.getvalue()
    assert SECRET not in raw
    first, second = lines(stream)
    assert first["message"] == "calling with token ***"
    assert "RuntimeError: server said ***" in second["exc"]
    assert second["message"] == "request failed for ops@example.com"  # e-mail is fine


def test_redact_filter_rewrites_text_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_abcdef123456")
    monkeypatch.setenv("SOME_PASSWORD", "hunter2-long")
    monkeypatch.setenv("FINLOOM_DB_PATH", "not-a-secret.duckdb")
    try:
        logs.refresh_secrets()
        assert set(logs.collect_secrets()) >= {"pnu_abcdef123456", "hunter2-long"}
        assert "not-a-secret.duckdb" not in logs.collect_secrets()
        record = logging.LogRecord(
            "x", logging.INFO, __file__, 1, "key=%s pw=%s", ("pnu_abcdef123456", "hunter2-long"),
            None,
        )  # fmt: skip
        assert logs.RedactFilter().filter(record)
        assert logging.Formatter("%(message)s").format(record) == "key=*** pw=***"
    finally:
        monkeypatch.undo()
        logs.refresh_secrets()


def _run(script: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done


def _json_lines(stderr: str) -> list[dict[str, Any]]:
    parsed = []
    for line in stderr.splitlines():
        if not line.strip():
            continue
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}\n--- stderr ---\n{stderr}")
    return parsed


WIRING = """
    import json, logging, sys
    import prefect  # lazy: Prefect's logging is not set up yet
    from finloom_core.settings import load_settings
    from finloom_ops import logs

    root = logging.getLogger()
    assert not root.handlers
    logs.configure_logging(load_settings())
    logs.configure_logging(load_settings())  # idempotent
    from prefect import flow  # imports prefect.main, which sets Prefect's logging up
    from prefect.logging.configuration import setup_logging
    from prefect.logging.handlers import APILogHandler

    setup_logging()  # again, as Prefect may do: incremental, levels only
    (console,) = root.handlers
    api = logging.getLogger("prefect.flow_runs").handlers[0]
    internal = logging.getLogger("prefect._internal").handlers[0]
    print(json.dumps({
        "console": type(console).__name__,
        "console_formatter": type(console.formatter).__name__,
        "shared_with_uvicorn": logging.getLogger("uvicorn").handlers == [console],
        "api_untouched": isinstance(api, APILogHandler) and api.formatter is None,
        "api_redacts": any(isinstance(f, logs.RedactFilter) for f in api.filters),
        "internal_formatter": type(internal.formatter).__name__,
        "correlation_filters": sum(isinstance(f, logs.CorrelationFilter) for f in console.filters),
    }))
    logging.getLogger("finloom.wiring").warning("[bold red]markup[/] stays http://x.example/a")
"""


@pytest.mark.integration
def test_json_mode_replaces_prefects_rich_console_handler() -> None:
    env = {
        **os.environ,
        "FINLOOM_LOG_FORMAT": "json",
        "PREFECT_LOGGING_MARKUP": "true",  # would eat "[bold red]" in a rich console
        "PREFECT_LOGGING_COLORS": "true",
        "FORCE_COLOR": "1",  # would add ANSI highlighting in a rich console
    }
    done = _run(WIRING, env)
    state = json.loads(done.stdout)
    assert state == {
        "console": "JsonStreamHandler",
        "console_formatter": "FinloomJsonFormatter",
        "shared_with_uvicorn": True,
        "api_untouched": True,
        "api_redacts": True,
        "internal_formatter": "FinloomJsonFormatter",
        "correlation_filters": 1,
    }
    assert "\x1b[" not in done.stderr
    (line,) = _json_lines(done.stderr)
    assert line["message"] == "[bold red]markup[/] stays http://x.example/a"


@pytest.mark.integration
def test_text_mode_leaves_prefects_console_alone() -> None:
    env = {**os.environ, "FINLOOM_LOG_FORMAT": "text"}
    done = _run(WIRING, env)
    state = json.loads(done.stdout)
    assert state["console"] == "PrefectConsoleHandler"
    assert state["console_formatter"] == "PrefectFormatter"
    assert state["shared_with_uvicorn"] is True
    assert state["internal_formatter"] != "FinloomJsonFormatter"
    assert state["api_untouched"] is True
    assert "| WARNING | finloom.wiring - " in done.stderr
    with pytest.raises(json.JSONDecodeError):
        json.loads(done.stderr.strip().splitlines()[-1])


FLOW = """
    import json, logging, os
    import prefect
    from prefect import flow, task, get_run_logger
    from prefect.context import get_run_context
    from finloom_core.settings import load_settings
    from finloom_ops.logs import configure_logging, process_correlation_id

    configure_logging(load_settings())
    log = logging.getLogger("finloom.test")
    log.warning("outside: before the flow")

    @task(name="say-hello")
    def say_hello(n):
        get_run_logger().info("inside: hello from task %s", n, extra={"cik": 320193})
        log.warning("inside: plain logger in task", extra={"accession": "0000320193-24-000123"})
        return n

    @flow(name="json-logs")
    def json_logs():
        get_run_logger().info("inside: flow; secret %s", os.environ["FINLOOM_TEST_TOKEN"])
        log.warning("inside: plain logger in flow", extra={"cik": 1})
        say_hello(1)
        say_hello.submit(2).result()
        try:
            raise ValueError("boom\\nsecond line " + os.environ["FINLOOM_TEST_TOKEN"])
        except ValueError:
            get_run_logger().exception("inside: failed")
        return str(get_run_context().flow_run.id)

    run_id = json_logs()
    log.warning("outside: after the flow")
    print(json.dumps({"flow_run_id": run_id, "process": process_correlation_id()}))
"""


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness")
def test_flow_run_logs_are_json_with_the_flow_run_id() -> None:
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    assert api_url, "the Prefect test harness sets PREFECT_API_URL"
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_LOGGING_LEVEL": "INFO",
        "FINLOOM_LOG_FORMAT": "json",
        "FINLOOM_TEST_TOKEN": SECRET,
    }
    done = _run(FLOW, env)
    ids = json.loads(done.stdout.strip().splitlines()[-1])
    run_id, process_id = ids["flow_run_id"], ids["process"]
    assert run_id != process_id

    assert SECRET not in done.stderr
    records = _json_lines(done.stderr)
    for record in records:
        assert {"timestamp", "level", "logger", "message", "correlation_id"} <= record.keys()

    inside = [r for r in records if r["message"].startswith("inside:")]
    outside = [r for r in records if r["message"].startswith("outside:")]
    engine = [r for r in records if r["logger"] in ("prefect.flow_runs", "prefect.task_runs")]
    assert len(inside) == 7, records
    assert len(outside) == 2, records
    assert engine, "Prefect's own run logs are missing"
    for record in inside + engine:
        assert record["correlation_id"] == run_id, record
        assert record["flow"] == "json-logs", record
    for record in outside:
        assert record["correlation_id"] == process_id, record
        assert record["flow"] is None and record["task"] is None

    in_tasks = [r for r in inside if "task" in r["message"]]
    assert len(in_tasks) == 4
    for record in in_tasks:
        assert record["task"].startswith("say-hello"), record
    assert {r["task"] for r in in_tasks if r["logger"] == "prefect.task_runs"} == {
        r["task"] for r in in_tasks if r["logger"] == "finloom.test"
    }
    in_flow = [r for r in inside if "task" not in r["message"]]
    assert all(r["task"] is None for r in in_flow)

    by_message = {r["message"]: r for r in inside}
    assert by_message["inside: flow; secret ***"]["logger"] == "prefect.flow_runs"
    assert by_message["inside: plain logger in flow"]["cik"] == 1
    assert by_message["inside: hello from task 1"]["cik"] == 320193
    failed = by_message["inside: failed"]
    assert failed["level"] == "ERROR"
    assert "ValueError: boom\nsecond line ***" in failed["exc"]


# ------------------------------------------------------------------ credentials in URLs

PASSWORD = "s3cret"


def test_url_credentials_are_redacted_in_text_and_json_lines(
    json_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    from finloom_core.redact import redact

    assert redact("GET http://ops:s3cret@127.0.0.1:9/x?y=a@b failed") == (
        "GET http://***@127.0.0.1:9/x?y=a@b failed"
    )
    assert redact("to https://user:p@ss:w0rd@mirror.example/a, then") == (
        "to https://***@mirror.example/a, then"
    )
    assert redact("mail ops@example.com, see http://example.com/a@b") == (
        "mail ops@example.com, see http://example.com/a@b"
    )
    logger, stream = json_logger
    logger.warning("could not push metrics to %s", "http://user:s3cret@127.0.0.1:9")
    (line,) = lines(stream)
    assert line["message"] == "could not push metrics to http://***@127.0.0.1:9"

    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "fetching %s", ("http://u:s3cret@h/a",), None
    )
    assert logs.RedactFilter().filter(record)
    assert logging.Formatter("%(message)s").format(record) == "fetching http://***@h/a"


def test_a_password_of_a_url_setting_is_a_secret_everywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from finloom_core.redact import redact
    from finloom_core.settings import FinloomSettings

    monkeypatch.setenv("FINLOOM_EDGAR_DATA_URL", "http://ops:pa%40ss-s3cret@127.0.0.1:9")
    try:
        logs.refresh_secrets()  # the environment's URL passwords, decoded or not
        assert redact("login pa@ss-s3cret refused") == "login *** refused"
        monkeypatch.delenv("FINLOOM_EDGAR_DATA_URL")
        settings = FinloomSettings(  # type: ignore[call-arg]
            _env_file=None, pushgateway_url="http://u:other-s3cret@127.0.0.1:9",
            serve_token="serve-token-value",
        )  # fmt: skip
        logs.refresh_secrets(settings)  # settings read from a .env file count too
        assert redact("other-s3cret serve-token-value") == "*** ***"
    finally:
        monkeypatch.undo()
        logs.refresh_secrets()


def test_the_pushgateway_warning_hides_the_urls_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from finloom_core.settings import FinloomSettings
    from finloom_ops import metrics

    url = f"http://user:{PASSWORD}@127.0.0.1:{_closed_port()}"
    settings = FinloomSettings(  # type: ignore[call-arg]
        _env_file=None, db_path=tmp_path / "w.duckdb", pushgateway_url=url
    )
    with caplog.at_level(logging.WARNING, logger="finloom_ops.metrics"):
        assert metrics.push(settings, "backfill") is False
    (record,) = [r for r in caplog.records if "could not push" in r.getMessage()]
    assert PASSWORD not in record.getMessage()
    assert "could not push metrics to http://***@127.0.0.1:" in record.getMessage()


def test_failure_notifications_and_trace_spans_hide_url_credentials() -> None:
    from types import SimpleNamespace

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from finloom_ops import tracing
    from finloom_ops.alerting import failure_message

    error = f"HTTP 500 from http://user:{PASSWORD}@127.0.0.1:9/api/xbrl/companyfacts/x.json"
    run = SimpleNamespace(id="run-id", name="brave-fox", deployment_id=None)
    body = failure_message(SimpleNamespace(name="backfill"), run, SimpleNamespace(
        name="Failed", message=error))  # fmt: skip
    assert PASSWORD not in json.dumps(body)
    assert "http://***@127.0.0.1:9/" in body["text"]

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.use_provider(provider)
    try:
        with pytest.raises(RuntimeError), tracing.stage_span("download"):
            raise RuntimeError(error)
        with tracing.stage_span("load"):
            tracing.company_span("load", 320193, "failed", reason=error)
    finally:
        tracing.use_provider(None)
        provider.shutdown()
    spans = memory.get_finished_spans()
    assert spans
    recorded = repr([(s.attributes, s.status.description, s.events) for s in spans])
    recorded += "".join(str(dict(e.attributes or {})) for s in spans for e in s.events)
    assert PASSWORD not in recorded and "***@127.0.0.1" in recorded


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prefect_database_files() -> list[Path]:
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    url = str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value())
    database = Path(url.split(":///", 1)[1])
    return [p for p in database.parent.iterdir() if p.name.startswith(database.name)]


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_credentials_in_urls_reach_no_output_artifact_or_health(
    log_format: str, tmp_path: Path
) -> None:
    """A backfill against an unreachable SEC and Pushgateway whose URLs carry a password:
    companies fail and the push fails, and the password is in none of stdout, stderr,
    Prefect's database (flow-run parameters, states, logs, artifacts), the run's result
    files, nor ``/health``."""
    from fastapi.testclient import TestClient
    from prefect.settings import PREFECT_API_URL

    import finloom_cli.serve as serve
    from finloom_core.settings import FinloomSettings
    from tests.test_cli import finloom

    url = f"http://user:{PASSWORD}@127.0.0.1:{_closed_port()}"
    db = tmp_path / "w.duckdb"
    env = {
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "FINLOOM_SEC_USER_AGENT": "FinLoom Tests tests@example.com",
        "FINLOOM_EDGAR_DATA_URL": url,
        "FINLOOM_EDGAR_WWW_URL": url,
        "FINLOOM_PUSHGATEWAY_URL": url,
        "FINLOOM_HTTP_MAX_RETRIES": "0",
        "FINLOOM_BREAKER_FAIL_MAX": "1",  # the second company is deferred, its reason a URL
        "FINLOOM_DOWNLOAD_CONCURRENCY": "1",  # ... which needs the companies one at a time
        "FINLOOM_LOG_FORMAT": log_format,
    }
    result = finloom(tmp_path, "backfill", "--ciks", "320193,789019", "--db", str(db), env=env)

    assert result.code == 1, result  # the companies failed: SEC is unreachable
    assert PASSWORD not in result.stdout and PASSWORD not in result.stderr, result
    assert "***@127.0.0.1" in result.stdout  # the failure reasons are there, redacted
    assert "could not push metrics to http://***@127.0.0.1" in result.stderr
    for path in [*_prefect_database_files(), *(tmp_path / ".prefect").rglob("*")]:
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    summaries = [str(a.data) for a in artifacts if a.key == "finloom-backfill-summary"]
    ours = [text for text in summaries if "***@127.0.0.1" in text]
    assert ours and not [text for text in summaries if PASSWORD in text]

    settings = FinloomSettings(  # type: ignore[call-arg]
        _env_file=None, db_path=db, edgar_data_url=url, sec_user_agent=None,
        serve_token="serve-token-for-tests",
    )  # fmt: skip
    with TestClient(serve.create_app(settings)) as client:
        public = client.get("/health")
        full = client.get("/health", headers={"Authorization": "Bearer serve-token-for-tests"})
    assert PASSWORD not in public.text and PASSWORD not in full.text
    assert full.json()["checks"]["sec"]["detail"]["url"].startswith("http://***@127.0.0.1:")


def test_lines_inside_a_request_scope_carry_its_request_id(
    json_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_logger
    logger.info("before")
    with logs.request_scope("req-42"):
        logger.info("serving")
        assert logs.current_request_id() == "req-42"
    logger.info("after")
    before, serving, after = lines(stream)
    assert serving["request_id"] == "req-42"
    assert "request_id" not in before and "request_id" not in after
    assert logs.current_request_id() is None
