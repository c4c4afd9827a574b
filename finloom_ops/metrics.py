"""FinLoom's Prometheus metrics, recorded by the tasks and flows (never by finloom_core).

Every flow run records into the folder ``FINLOOM_METRICS_DIR`` (default: ``<db_path>.metrics``
beside the database) through prometheus-client's multiprocess mode, so ``finloom serve``,
a separate long-running process, exposes the sum of every run, during and after each one:
counters and histograms add up across runs, ``finloom_circuit_breaker_state`` and
``finloom_database_size_bytes`` show the most recent value, and
``finloom_last_success_timestamp_seconds`` the latest time. With ``FINLOOM_PUSHGATEWAY_URL``
set, each flow run also pushes its own values to that Pushgateway at its end, success or
failure (job ``finloom``, grouped by ``flow``), the pattern Prometheus recommends for batch
jobs. The folder stays small: at the start of every flow run (and before a scrape of a
crowded folder) the files of ended processes are merged into one archive and deleted
(``finloom_ops/metrics_compaction.py``).

SEC requests and the circuit breaker's state are recorded from the hooks of the run's
:class:`~finloom_core.edgar.SecGate`: :func:`activate` registers a request observer and a
breaker listener on the gate a flow run built, so only that run's requests are counted.

Labels are bounded: a status, stage, grade, flow or breaker name; never a CIK or accession.
This module does not import Prefect, so ``finloom serve`` can use it cheaply.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    push_to_gateway,
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from finloom_core.redact import redact
from finloom_core.settings import FinloomSettings
from finloom_ops import metrics_compaction

if TYPE_CHECKING:  # imported lazily: `finloom financials` records a metric without them
    import pybreaker

    from finloom_core.edgar import RequestEvent, SecGate

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PUSH_JOB = "finloom"
PUSH_TIMEOUT_SECONDS = 5.0
# pybreaker's STATE_CLOSED, STATE_OPEN, STATE_HALF_OPEN
BREAKER_STATES = {"closed": 0, "open": 1, "half-open": 2}
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class Metrics:
    """The metric objects of one process, all in ``registry``."""

    registry: CollectorRegistry
    directory: Path | None  # multiprocess folder; None: this process only
    filings_downloaded: Counter
    facts_loaded: Counter
    pipeline_errors: Counter
    download_duration: Histogram
    parse_duration: Histogram
    sec_requests: Counter
    sec_rate_limited: Counter
    circuit_breaker_state: Gauge
    database_size: Gauge
    quality_grades: Counter
    last_success: Gauge
    companies_normalized: Counter
    rows_normalized: Counter
    normalize_duration: Histogram
    query_duration: Histogram


STAGES = ("resolve", "download", "parse", "load", "normalize", "quality", "publish")
DOWNLOAD_STATUSES = ("downloaded", "no_facts", "failed", "deferred")
GRADES = ("A", "B", "C", "D", "F")
QUERIES = ("financials", "quality_score")  # the reads timed by the CLI (query_duration)


def _build(directory: Path | None) -> Metrics:
    metrics = _create(directory)
    # every known label value starts at 0, so each series exists (and rate() works) from
    # the first scrape, before anything happened
    for stage in STAGES:
        metrics.pipeline_errors.labels(stage)
    for status in DOWNLOAD_STATUSES:
        metrics.filings_downloaded.labels(status)
    for grade in GRADES:
        metrics.quality_grades.labels(grade)
    for query in QUERIES:
        metrics.query_duration.labels(query)
    return metrics


def _create(directory: Path | None) -> Metrics:
    registry = CollectorRegistry(auto_describe=True)

    def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, doc, labels, registry=registry)

    return Metrics(
        registry=registry,
        directory=directory,
        filings_downloaded=counter(
            "finloom_filings_downloaded",
            "Companies' EDGAR documents (companyfacts + submissions) fetched, by outcome "
            "(downloaded, no_facts, failed, deferred).",
            ("status",),
        ),
        facts_loaded=counter("finloom_facts_loaded", "XBRL facts written to the warehouse."),
        pipeline_errors=counter(
            "finloom_pipeline_errors",
            "Failures by pipeline stage (a company that failed, or a task that raised).",
            ("stage",),
        ),
        download_duration=Histogram(
            "finloom_download_duration_seconds",
            "Seconds to fetch one company's documents from the source.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        ),
        parse_duration=Histogram(
            "finloom_parse_duration_seconds",
            "Seconds to parse one company's submissions and check its companyfacts.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        ),
        sec_requests=counter(
            "finloom_edgar_requests",
            "HTTP requests sent to SEC, by status code ('error': no response).",
            ("status",),
        ),
        sec_rate_limited=counter(
            "finloom_edgar_rate_limited",
            "SEC rate-limit answers (HTTP 429 or the 403 'request rate threshold' page).",
        ),
        circuit_breaker_state=Gauge(
            "finloom_circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
            ("name",),
            registry=registry,
            multiprocess_mode="mostrecent",
        ),
        database_size=Gauge(
            "finloom_database_size_bytes",
            "Size of the DuckDB warehouse file (and its WAL) in bytes.",
            registry=registry,
            multiprocess_mode="mostrecent",
        ),
        quality_grades=counter(
            "finloom_filing_quality_grade",
            "Filings scored by quality runs, by letter grade.",
            ("grade",),
        ),
        last_success=Gauge(
            "finloom_last_success_timestamp_seconds",
            "Unix time at which a run of the flow last ended successfully.",
            ("flow",),
            registry=registry,
            multiprocess_mode="max",
        ),
        companies_normalized=counter(
            "finloom_companies_normalized",
            "Companies whose standardized financials a normalize step rebuilt.",
        ),
        rows_normalized=counter(
            "finloom_financials_rows_normalized",
            "Rows written to the financials table by normalize steps.",
        ),
        normalize_duration=Histogram(
            "finloom_normalize_duration_seconds",
            "Seconds one normalize step (a batch of companies) took.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        ),
        query_duration=Histogram(
            "finloom_query_duration_seconds",
            "Seconds a read of the published warehouse took, by query (financials: "
            "`finloom financials`; quality_score: the company lookup of `finloom quality "
            "score --ticker`).",
            ("query",),
            buckets=DURATION_BUCKETS,
            registry=registry,
        ),
    )


_lock = threading.Lock()
_current: Metrics | None = None


def _use_multiprocess(directory: Path) -> bool:
    """Point prometheus-client's value store at ``directory`` (False if it is unusable)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("metrics folder %s unusable (%s): metrics stay in this process", directory, exc)
        return False
    metrics_compaction.hold_marker(directory)  # this process's files are not compacted
    os.environ[MULTIPROC_ENV] = str(directory)
    # The value class is chosen when prometheus_client is first imported (Prefect imports it
    # early); a fresh multiprocess value class makes metrics built from now on write here.
    values.ValueClass = values.MultiProcessValue()
    return True


def activate(
    settings: FinloomSettings, db_path: str | Path | None = None, gate: SecGate | None = None
) -> Metrics:
    """The process's metrics, recording into the metrics folder of ``db_path``'s warehouse.

    Called at the start of every flow run; a later run against another warehouse switches
    folders. With the run's ``gate``, its SEC requests and breaker state are recorded (the
    request observer and breaker listener are registered on that gate, once) and the
    breaker gauge starts at the gate's state. Without one (a run that sends no SEC request),
    the gauge starts at 0 (closed) when these metrics are new to the process, and is left
    alone otherwise (an enclosing run's gate owns it).
    """
    if db_path is not None:
        settings = settings.model_copy(update={"db_path": Path(db_path)})
    with _lock:
        before = _current
    current = activate_reader(settings)
    metrics_compaction.compact(current.directory)  # ended runs' files -> one archive
    if gate is not None:
        gate.add_request_observer(_record_request)
        listener = _breaker_listener()
        gate.add_breaker_listener(listener)
        listener.state_change(gate.breaker, None, gate.breaker.state)
    elif current is not before:
        current.circuit_breaker_state.labels("sec").set(0)
    record_database_size(settings.db_path)
    return current


def current() -> Metrics:
    """The active metrics; a process that never activated gets in-process-only metrics."""
    global _current
    with _lock:
        if _current is None:
            _current = _build(None)
        return _current


# ------------------------------------------------------------------ recorders


def _record_request(event: RequestEvent) -> None:
    m = current()
    m.sec_requests.labels("error" if event.status is None else str(event.status)).inc()
    if event.rate_limited:
        m.sec_rate_limited.inc()


_listener: Any = None


def _breaker_listener() -> Any:
    """The one breaker listener of the process (pybreaker imported on first use)."""
    global _listener
    if _listener is None:
        import pybreaker

        class _BreakerListener(pybreaker.CircuitBreakerListener):  # type: ignore[misc]
            def state_change(
                self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any
            ) -> None:
                name = getattr(new_state, "name", new_state)
                state = BREAKER_STATES.get(name, 0)
                current().circuit_breaker_state.labels(cb.name or "sec").set(state)

        _listener = _BreakerListener()
    return _listener


def database_size(db_path: str | Path) -> int:
    """Bytes of the DuckDB file plus its write-ahead log (0 when absent)."""
    total = 0
    for path in (Path(db_path), Path(f"{db_path}.wal")):
        try:
            total += path.stat().st_size
        except OSError:
            continue
    return total


def record_database_size(db_path: str | Path) -> None:
    current().database_size.set(database_size(db_path))


def record_success(flow: str) -> None:
    current().last_success.labels(flow).set(time.time())


def record_normalized(companies: int, rows: int, seconds: float) -> None:
    """One normalize step: companies rebuilt, financials rows written, its seconds."""
    m = current()
    m.companies_normalized.inc(companies)
    m.rows_normalized.inc(rows)
    m.normalize_duration.observe(seconds)


def record_query(settings: FinloomSettings, query: str, seconds: float) -> bool:
    """A CLI read's seconds under ``query`` (one of ``QUERIES``), recorded into the
    warehouse's metrics folder, but only when that folder exists (a flow run or ``finloom
    serve`` made it): a read-only command creates no folder beside someone's database, and
    costs nothing more than this check when nobody collects its metrics. Never raises: a
    metric is not worth failing a read for. True when recorded."""
    try:
        if not settings.resolved_metrics_dir().is_dir():
            return False
        activate_reader(settings).query_duration.labels(query).observe(seconds)
    except Exception as exc:
        log.debug("query metric not recorded: %s", redact(str(exc)))
        return False
    return True


# ------------------------------------------------------------------ export


def push(settings: FinloomSettings, flow: str) -> bool:
    """Push this process's metrics to the Pushgateway, if one is configured.

    A push that fails is logged and reported as False: monitoring never fails a run.
    """
    if not settings.pushgateway_url:
        return False
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FlowView(current().registry, flow))
    try:
        push_to_gateway(
            settings.pushgateway_url,
            job=PUSH_JOB,
            grouping_key={"flow": flow},
            registry=registry,
            timeout=PUSH_TIMEOUT_SECONDS,
        )
    except Exception as exc:  # URLError, HTTPError, timeouts
        # the URL may carry credentials (user:password@host): never written as given
        log.warning(
            "could not push metrics to %s: %s", redact(settings.pushgateway_url), redact(str(exc))
        )
        return False
    return True


QUALITY_FLOW = "quality"
QUALITY_FAMILIES = frozenset({"finloom_filing_quality_grade"})
QUALITY_STAGES = frozenset({"quality", "publish"})


def _belongs(flow: str, family: str, labels: dict[str, str]) -> bool:
    """Whether a sample goes into ``flow``'s push.

    A sample labelled with another flow (a subflow's success time, recorded in the same
    process) would contradict the push's ``flow`` grouping label, which the Pushgateway
    refuses; and a backfill's quality subflow pushes the quality metrics while the backfill
    pushes the rest, so a sum over groups counts nothing twice.
    """
    if labels.get("flow", flow) != flow:
        return False
    quality = family in QUALITY_FAMILIES or labels.get("stage") in QUALITY_STAGES
    if (
        family == "finloom_last_success_timestamp_seconds"
        or family == "finloom_database_size_bytes"
    ):
        return True
    return quality if flow == QUALITY_FLOW else not quality


class _FlowView(Collector):
    """The registry's samples that belong to one flow's push (see :func:`_belongs`)."""

    def __init__(self, registry: CollectorRegistry, flow: str) -> None:
        self._registry = registry
        self._flow = flow

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            kept = [s for s in family.samples if _belongs(self._flow, family.name, s.labels)]
            if kept:
                family.samples = kept
                yield family


class _FinloomOnly(Collector):
    """FinLoom's families of the metrics folder (libraries that create metrics after the
    folder is set, Prefect's event client for one, write there too)."""

    def __init__(self, directory: Path) -> None:
        self._source = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(self._source, path=str(directory))

    def collect(self) -> Iterator[Metric]:
        for family in self._source.collect():
            if family.name.startswith("finloom_"):
                yield family


def exposition(settings: FinloomSettings) -> bytes:
    """Prometheus text of every run recorded in the metrics folder (for ``/metrics``).

    The database size is refreshed first (a file stat; the database is never opened). Past
    ``COMPACT_ABOVE_FILES`` files, ended processes' files are first merged into the archive
    (see ``metrics_compaction``), so a scrape reads a bounded number of files.
    """
    metrics = activate_reader(settings)
    metrics.database_size.set(database_size(settings.db_path))
    if metrics.directory is None:
        return generate_latest(metrics.registry)
    if metrics_compaction.file_count(metrics.directory) > metrics_compaction.COMPACT_ABOVE_FILES:
        metrics_compaction.compact(metrics.directory)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FinloomOnly(metrics.directory))
    with metrics_compaction.reading(metrics.directory):
        return generate_latest(registry)


def gauge_value(settings: FinloomSettings, metric: str, **labels: str) -> float | None:
    """The value every run recorded for one gauge series (``None`` if none did)."""
    metrics = activate_reader(settings)
    if metrics.directory is None:
        families = list(metrics.registry.collect())
    else:
        with metrics_compaction.reading(metrics.directory):
            families = list(_FinloomOnly(metrics.directory).collect())
    for family in families:
        for sample in family.samples:
            if sample.name == metric and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def activate_reader(settings: FinloomSettings) -> Metrics:
    """The metrics recording into ``settings``' metrics folder, without hooking the EDGAR
    client (what ``finloom serve`` needs)."""
    global _current
    directory = settings.resolved_metrics_dir().resolve()
    with _lock:
        if _current is None or _current.directory != directory:
            usable = _use_multiprocess(directory)
            _current = _build(directory if usable else None)
        return _current
