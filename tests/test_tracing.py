"""OpenTelemetry stage spans: names, attributes, errors, nesting, tracing off, OTLP export."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from finloom_core.records import CompanyOutcome, Status
from finloom_ops import tracing

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.use_provider(provider)
    try:
        yield memory
    finally:
        tracing.use_provider(None)
        provider.shutdown()


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def test_stage_span_name_and_attributes(exporter: InMemorySpanExporter) -> None:
    with tracing.stage_span(
        "download", companies=3, ciks=[1, 2, 3], source="api", batch=None
    ) as span:
        span.set_attribute("finloom.status", "loaded")

    (recorded,) = exporter.get_finished_spans()
    assert recorded.name == "finloom.download"
    attributes = dict(recorded.attributes or {})
    assert attributes == {
        "finloom.companies": 3,
        "finloom.ciks.count": 3,  # a list becomes its length, never the CIKs themselves
        "finloom.source": "api",
        "finloom.status": "loaded",
    }
    assert recorded.status.status_code is StatusCode.UNSET


def test_company_spans_are_children_of_the_stage_span(exporter: InMemorySpanExporter) -> None:
    outcomes = [
        CompanyOutcome(cik=320193, status=Status.LOADED),
        CompanyOutcome(cik=789019, status=Status.FAILED, reason="bad JSON at byte 12"),
    ]
    with tracing.stage_span("load", companies=len(outcomes)):
        tracing.record_outcomes("load", outcomes)
        tracing.company_span("load", 1750, "unchanged", facts=0)

    spans = exporter.get_finished_spans()
    (stage,) = by_name(spans, "finloom.load")
    companies = by_name(spans, "finloom.load.company")
    assert len(companies) == 3
    assert stage.context is not None
    for child in companies:
        assert child.parent is not None
        assert child.parent.span_id == stage.context.span_id
        assert child.context is not None
        assert child.context.trace_id == stage.context.trace_id
    seen = {
        (span.attributes or {})["finloom.cik"]: dict(span.attributes or {}) for span in companies
    }
    assert seen[320193] == {"finloom.cik": 320193, "finloom.status": "loaded"}
    assert seen[789019] == {
        "finloom.cik": 789019,
        "finloom.status": "failed",
        "finloom.reason": "bad JSON at byte 12",
    }
    assert seen[1750] == {"finloom.cik": 1750, "finloom.status": "unchanged", "finloom.facts": 0}
    failed = next(s for s in companies if (s.attributes or {})["finloom.cik"] == 789019)
    assert failed.status.status_code is StatusCode.ERROR
    assert stage.status.status_code is StatusCode.UNSET


def test_nested_stage_spans(exporter: InMemorySpanExporter) -> None:
    with tracing.stage_span("resolve") as outer, tracing.stage_span("download"):
        pass
    (inner,) = by_name(exporter.get_finished_spans(), "finloom.download")
    assert inner.parent is not None
    assert inner.parent.span_id == outer.get_span_context().span_id


def test_exception_marks_the_span_and_is_reraised(exporter: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError, match="boom"), tracing.stage_span("parse", cik=320193):
        raise ValueError("boom")

    (recorded,) = exporter.get_finished_spans()
    assert recorded.name == "finloom.parse"
    assert recorded.status.status_code is StatusCode.ERROR
    assert "ValueError: boom" in (recorded.status.description or "")
    attributes = dict(recorded.attributes or {})
    assert attributes["finloom.status"] == "error"
    assert attributes["finloom.cik"] == 320193
    assert [event.name for event in recorded.events] == ["exception"]


def test_tracing_off_is_a_no_op() -> None:
    tracing.use_provider(None)
    tracing.configure_tracing(SimpleNamespace(otlp_endpoint=None))  # type: ignore[arg-type]
    assert not tracing.tracing_enabled()
    # a provider that is never injected sees nothing
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    try:
        with tracing.stage_span("quality", companies=2) as span:
            assert not span.is_recording()
            tracing.record_outcomes("quality", [CompanyOutcome(cik=1, status=Status.LOADED)])
            tracing.company_span("quality", 1, "loaded")
        with pytest.raises(RuntimeError), tracing.stage_span("publish"):
            raise RuntimeError("still raised with tracing off")
        assert tracing.shutdown_tracing() is True
        assert memory.get_finished_spans() == ()
    finally:
        tracing.use_provider(None)
        provider.shutdown()


class _Receiver(BaseHTTPRequestHandler):
    requests: list[tuple[str, str, bytes]] = []  # noqa: RUF012 - replaced per test

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).requests.append((self.path, self.headers.get("Content-Type", ""), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    received: list[tuple[str, str, bytes]] = []
    handler = type("Receiver", (_Receiver,), {"requests": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.integration
def test_configure_tracing_exports_over_otlp_http(
    otlp_receiver: tuple[str, list[tuple[str, str, bytes]]],
) -> None:
    """In a fresh process (OpenTelemetry's global provider can be set once per process):
    configure from FINLOOM_OTLP_ENDPOINT, end a span, flush, and exit without running atexit
    hooks (so the SDK's own shutdown-at-exit cannot be what sent it)."""
    base, received = otlp_receiver
    script = textwrap.dedent(
        """
        import os
        from opentelemetry import trace
        from finloom_core.settings import load_settings
        from finloom_ops import tracing

        settings = load_settings()
        tracing.configure_tracing(settings)
        tracing.configure_tracing(settings)  # idempotent: one provider, one processor
        assert tracing.tracing_enabled()
        assert trace.get_tracer_provider() is tracing._provider, "not installed globally"
        with tracing.stage_span("load", companies=1):
            tracing.company_span("load", 320193, "loaded")
        print("flushed", tracing.shutdown_tracing(), flush=True)
        os._exit(0)
        """
    )
    env = {**os.environ, "FINLOOM_OTLP_ENDPOINT": base + "/"}
    env.pop("OTEL_SDK_DISABLED", None)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "flushed True"

    assert received, "no OTLP request reached the receiver"
    paths = {path for path, _, _ in received}
    assert paths == {"/v1/traces"}
    assert all(ctype == "application/x-protobuf" for _, ctype, _ in received)

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    names: dict[str, dict[str, Any]] = {}
    services = set()
    for _, _, body in received:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    services.add(attribute.value.string_value)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    names[span.name] = {
                        a.key: a.value.int_value or a.value.string_value for a in span.attributes
                    }
    assert services == {"finloom"}
    assert names == {
        "finloom.load": {"finloom.companies": 1},
        "finloom.load.company": {"finloom.cik": 320193, "finloom.status": "loaded"},
    }


# ---------------------------------------------------------------------------- logs <-> traces


def _json_capture(logger_name: str) -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    from finloom_ops import logs

    stream = io.StringIO()
    handler = logs.JsonStreamHandler(stream)
    handler.setFormatter(logs.FinloomJsonFormatter())
    handler.addFilter(logs.CorrelationFilter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    return logger, stream, handler


def test_json_lines_inside_a_span_carry_its_trace_and_span_ids(
    exporter: InMemorySpanExporter,
) -> None:
    logger, stream, handler = _json_capture("finloom.tests.traced")
    logger.setLevel(logging.INFO)
    try:
        logger.info("before any span")
        with tracing.stage_span("load", companies=1):
            logger.info("in the load span")
            with tracing.stage_span("normalize"):
                logger.info("in the nested span")
        logger.info("after")
    finally:
        logger.removeHandler(handler)
    before, load_line, nested_line, after = (json.loads(x) for x in stream.getvalue().splitlines())
    load = by_name(exporter.get_finished_spans(), "finloom.load")[0]
    nested = by_name(exporter.get_finished_spans(), "finloom.normalize")[0]
    assert load_line["trace_id"] == format(load.context.trace_id, "032x")
    assert load_line["span_id"] == format(load.context.span_id, "016x")
    assert nested_line["trace_id"] == load_line["trace_id"]  # one trace
    assert nested_line["span_id"] == format(nested.context.span_id, "016x")
    assert "trace_id" not in before and "span_id" not in before
    assert "trace_id" not in after and "span_id" not in after


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness")
def test_a_normalize_task_records_metrics_and_links_its_log_line_to_its_span(
    shared_edgar: Path, tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    from prefect import flow

    from finloom_core.edgar.sources import FolderSource
    from finloom_core.pipeline import run_pipeline
    from finloom_ops import metrics
    from tasks.normalize import normalize_task

    apple = 320193
    db = tmp_path / "warehouse.duckdb"
    run_pipeline(FolderSource(shared_edgar), [apple], db, normalize=False)

    @flow
    def normalize_only(db_path: str) -> dict[int, int]:
        return normalize_task(db_path, [apple])

    def value(name: str) -> float:
        for family in metrics.current().registry.collect():
            for sample in family.samples:
                if sample.name == name and not sample.labels:
                    return float(sample.value)
        raise AssertionError(f"no sample {name}")

    names = ("finloom_companies_normalized_total", "finloom_financials_rows_normalized_total",
             "finloom_normalize_duration_seconds_count")  # fmt: skip
    before = {name: value(name) for name in names}
    task_runs, stream, handler = _json_capture("prefect.task_runs")
    level = task_runs.level
    task_runs.setLevel(logging.INFO)  # the test harness logs warnings only
    try:
        counts = normalize_only(str(db))
    finally:
        task_runs.removeHandler(handler)
        task_runs.setLevel(level)
    rows = counts[apple]
    assert rows > 0
    after = {name: value(name) for name in names}
    assert after["finloom_companies_normalized_total"] - before[names[0]] == 1
    assert after["finloom_financials_rows_normalized_total"] - before[names[1]] == rows
    assert after["finloom_normalize_duration_seconds_count"] - before[names[2]] == 1

    span = by_name(exporter.get_finished_spans(), "finloom.normalize")[0]
    assert span.attributes is not None and span.attributes["finloom.rows"] == rows
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    normalized = [x for x in lines if x["message"].startswith("normalized 1 companies")]
    assert len(normalized) == 1
    assert normalized[0]["trace_id"] == format(span.context.trace_id, "032x")
    assert normalized[0]["span_id"] == format(span.context.span_id, "016x")
