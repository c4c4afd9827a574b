"""How the tasks and flows report themselves: metrics, trace spans, logs, alerts.

* :func:`stage` wraps one task's work: an OpenTelemetry span ``finloom.<stage>`` and, if the
  work raises, ``finloom_pipeline_errors_total{stage}`` (a company that fails inside a task
  is counted by the task itself, from its outcome).
* :func:`observed_flow` wraps one flow run: it activates the metrics folder (hooked on the
  run's ``SecGate`` when it sends SEC requests), configures logging and tracing, records
  ``finloom_last_success_timestamp_seconds`` when the run ends well, the database size
  either way, and pushes to the Pushgateway at the end, success or failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from finloom_core.edgar import SecGate
from finloom_core.settings import FinloomSettings
from finloom_ops import metrics
from finloom_ops.logs import configure_logging, root_run
from finloom_ops.tracing import configure_tracing, shutdown_tracing, stage_span


@contextmanager
def stage(name: str, **attributes: Any) -> Iterator[Any]:
    """A span around one pipeline stage; an exception is counted under ``stage=name``."""
    with stage_span(name, **attributes) as span:
        try:
            yield span
        except BaseException:
            metrics.current().pipeline_errors.labels(name).inc()
            raise


@contextmanager
def observed_flow(
    flow: str, settings: FinloomSettings, db_path: str | Path, gate: SecGate | None = None
) -> Iterator[None]:
    """Metrics, logging and tracing for one flow run (see the module docstring); ``gate``
    is the run's SEC gate, whose requests and breaker state the metrics record."""
    from prefect.runtime import flow_run

    configure_logging(settings)
    configure_tracing(settings)
    metrics.activate(settings, db_path, gate)
    try:
        with root_run(flow_run.id):
            yield
        metrics.record_success(flow)
    finally:
        metrics.record_database_size(db_path)
        metrics.push(settings, flow)
        shutdown_tracing()
