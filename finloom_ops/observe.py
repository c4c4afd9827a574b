"""How the tasks and flows report themselves: metrics, trace spans, logs, alerts.

* :func:`stage` wraps one task's work: an OpenTelemetry span ``finloom.<stage>`` and, if the
  work raises, ``finloom_pipeline_errors_total{stage}`` (a company that fails inside a task
  is counted by the task itself, from its outcome).
* :func:`observed_flow` wraps one flow run: it activates the metrics folder (hooked on the
  run's ``SecGate`` when it sends SEC requests), configures logging and tracing, records
  ``finloom_last_success_timestamp_seconds`` when the run ends well, the database size
  either way, and pushes to the Pushgateway at the end, success or failure. It also
  appends the run's entry to the warehouse's audit log (``finloom_core.audit``): actor (OS
  user, flow-run id, deployment), the run's parameters (redacted), outcome (``failed``
  with the error's first line) and the counts the flow reported on the yielded
  :class:`ObservedRun` (``run.counts``, ``run.add_loads(...)``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finloom_core import audit
from finloom_core.edgar import SecGate
from finloom_core.errors import first_line
from finloom_core.redact import redact
from finloom_core.settings import FinloomSettings
from finloom_ops import metrics
from finloom_ops.logs import configure_logging, root_run
from finloom_ops.tracing import configure_tracing, shutdown_tracing, stage_span

log = logging.getLogger(__name__)


@contextmanager
def stage(name: str, **attributes: Any) -> Iterator[Any]:
    """A span around one pipeline stage; an exception is counted under ``stage=name``."""
    with stage_span(name, **attributes) as span:
        try:
            yield span
        except BaseException:
            metrics.current().pipeline_errors.labels(name).inc()
            raise


@dataclass
class ObservedRun:
    """What a flow reports to its audit entry: ``counts`` (e.g. ``companies_loaded``,
    ``facts_added``, ``facts_removed``), filled as the run goes, so a run that fails midway
    still records what it changed; ``entry`` is the recorded entry (None if not written)."""

    flow: str
    counts: dict[str, Any] = field(default_factory=dict)
    entry: audit.Entry | None = None

    def add_loads(self, outcomes: Iterable[Any], previous: Mapping[int, int] | None) -> None:
        """Count a batch's company outcomes (``records.CompanyOutcome``): companies, those
        loaded (changed) and failed or deferred; facts added (the loaded companies' facts)
        and removed (``previous``: the facts they held before, which a load replaces
        wholesale; not counted when unknown)."""
        counts = self.counts
        for outcome in outcomes:
            status = str(getattr(outcome.status, "value", outcome.status))
            counts["companies"] = counts.get("companies", 0) + 1
            if status == "loaded":
                counts["companies_loaded"] = counts.get("companies_loaded", 0) + 1
                counts["facts_added"] = counts.get("facts_added", 0) + int(outcome.facts)
                if previous is not None:
                    removed = int(previous.get(outcome.cik, 0))
                    counts["facts_removed"] = counts.get("facts_removed", 0) + removed
            elif status in ("failed", "deferred"):
                counts["companies_failed"] = counts.get("companies_failed", 0) + 1


def stored_fact_counts(
    db_path: str | Path, ciks: Iterable[int], memory_limit: str
) -> dict[int, int] | None:
    """The facts each company holds now (``company_loads``), read before a load replaces
    them; None (logged) when the warehouse cannot be read: the run goes on."""
    from finloom_core.storage.database import open_warehouse

    if not Path(db_path).exists():
        return {}  # a new warehouse: nothing stored yet
    try:
        with open_warehouse(db_path, read_only=True, memory_limit=memory_limit) as con:
            rows = con.execute(
                "SELECT cik, fact_count FROM company_loads WHERE list_contains(?, cik)",
                [list(ciks)],
            ).fetchall()
    except Exception as exc:
        log.warning("stored fact counts unknown (audit log): %s", redact(first_line(exc)))
        return None
    return {int(cik): int(count) for cik, count in rows}


@contextmanager
def observed_flow(
    flow: str, settings: FinloomSettings, db_path: str | Path, gate: SecGate | None = None
) -> Iterator[ObservedRun]:
    """Metrics, logging, tracing and the audit entry for one flow run (see the module
    docstring); ``gate`` is the run's SEC gate, whose requests and breaker state the
    metrics record."""
    from prefect.runtime import flow_run

    configure_logging(settings)
    configure_tracing(settings)
    metrics.activate(settings, db_path, gate)
    run = ObservedRun(flow)
    try:
        with root_run(flow_run.id):
            try:
                yield run
            except BaseException as exc:
                _audit(run, settings, db_path, audit.FAILED, audit.failure_reason(exc))
                raise
            _audit(run, settings, db_path, audit.SUCCESS, None)
        metrics.record_success(flow)
    finally:
        metrics.record_database_size(db_path)
        metrics.push(settings, flow)
        shutdown_tracing()


def _audit(
    run: ObservedRun,
    settings: FinloomSettings,
    db_path: str | Path,
    outcome: str,
    reason: str | None,
) -> None:
    """Append the run's audit entry (never raises: a failure is a warning)."""
    from prefect.runtime import deployment, flow_run

    try:
        parameters = dict(flow_run.parameters or {})
        who = audit.actor(
            flow_run.id, deployment.name, flow_run_name=flow_run.name,
            profile=getattr(settings, "env", None),  # the settings profile in force (FINLOOM_ENV)
        )  # fmt: skip
    except Exception as exc:  # the runtime outside a run: no flow-run details
        log.debug("flow-run details unknown: %s", exc)
        parameters, who = {}, audit.actor()
    run.entry = audit.record(
        db_path, run.flow, parameters, outcome, reason, run.counts, who,
        memory_limit=settings.duckdb_memory_limit,
    )  # fmt: skip
    if run.entry is not None:
        log.info(
            "audit log: entry #%d, %s %s (hash %s)",
            run.entry.seq, run.flow, outcome, run.entry.hash,
        )  # fmt: skip
