"""Where a backfill's parse stage runs: in the flow's own task runner, or on a Dask cluster.

``open_parse(settings)`` returns the run's parser. Without ``FINLOOM_DASK_ADDRESS`` it is
the ``parse`` task as always (the facts are then parsed by DuckDB's JSON reader inside the
load). With it, the run connects to that Dask scheduler through prefect-dask's
``DaskTaskRunner`` (one client for the whole run; a scheduler that does not answer, or has
no worker, within ``CONNECT_TIMEOUT`` is a one-line ConfigurationError) and each batch
is split into one chunk per worker thread, each chunk a ``parse-parquet`` task run on a
worker: the submissions are parsed, and DuckDB's JSON reader turns each companyfacts document into
Parquet files in ``<staging>/parsed`` (finloom_core.parquet_stage). The tasks return small
descriptors (paths, row counts, hashes); the flow's one writer bulk-loads their files.

What a worker is sent: each company's CIK, the path of its companyfacts document (the run's
staging folder, or the local EDGAR folder, made absolute) and its submissions documents
(bytes, a few MB at most). So the workers must see the same paths as the flow: on one
machine they do; across machines the EDGAR folder and ``FINLOOM_DASK_STAGING_DIR`` (where
the run's staging folder, and with it the Parquet, then goes) must be a shared folder
mounted at the same path everywhere. The next batch is downloaded in the flow's task
runner and parsed on the cluster while the current one loads, as in a local run (the
runner is used directly, not through a ``parse`` subflow: calling a subflow blocks the flow
until it ends, so the next batch could not parse while one loads).

The task runs report to the flow's Prefect API: the run's ``PREFECT_API_URL``, or the
temporary server of a ``finloom`` command (reachable from this machine only).
"""

from __future__ import annotations

import contextvars
import dataclasses
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from prefect.futures import PrefectFuture
from prefect.utilities.annotations import quote

from finloom_core.errors import ConfigurationError, first_line
from finloom_core.parquet_stage import ParquetCompany
from finloom_core.pipeline import Staged
from finloom_core.records import CompanyDocuments, CompanyOutcome, Status
from finloom_core.settings import FinloomSettings
from finloom_ops import metrics
from tasks.ingest import parse_parquet_task, parse_task

CONNECT_TIMEOUT = 10  # seconds to wait for the Dask scheduler when a run starts
PARSED_DIR = "parsed"  # under the run's staging folder: the Parquet of parsed companies

Docs = list[CompanyDocuments | CompanyOutcome]


class Pending(Protocol):
    def result(self) -> list[Staged]: ...


class LocalParse:
    """The ``parse`` task in the flow's task runner (the facts parse inside the load)."""

    shared_root: Path | None = None
    address: str | None = None

    def now(self, docs: Docs, staging: str) -> list[Staged]:
        # quote(): batches are handed over whole, so Prefect need not walk them
        return parse_task(quote(docs))

    def ahead(self, docs: PrefectFuture[Docs], staging: str) -> Pending:
        return parse_task.submit(docs)

    def close(self) -> None:
        pass


class DaskParse:
    """``parse-parquet`` task runs on the Dask scheduler at ``address`` (one client a run)."""

    def __init__(self, settings: FinloomSettings, address: str) -> None:
        from prefect_dask import DaskTaskRunner

        self.address = address
        self.memory_limit = settings.duckdb_memory_limit
        root = settings.dask_staging_dir
        self.shared_root = None if root is None else root.expanduser().resolve()
        if self.shared_root is not None:
            self.shared_root.mkdir(parents=True, exist_ok=True)
        self.runner = DaskTaskRunner(
            address=address, client_kwargs={"timeout": f"{CONNECT_TIMEOUT}s"}
        ).__enter__()
        try:
            self.client = self.runner.client  # connects now: a missing scheduler fails here
        except (OSError, TimeoutError, ValueError) as exc:
            self.runner.__exit__(None, None, None)
            raise ConfigurationError(
                f"FINLOOM_DASK_ADDRESS: no Dask scheduler answers at {address} ({first_line(exc)})"
            ) from None
        try:  # a scheduler without workers would leave the tasks queued for ever
            self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            self.runner.__exit__(None, None, None)
            raise ConfigurationError(
                f"FINLOOM_DASK_ADDRESS: the Dask scheduler at {address} has no worker"
                f" (none joined within {CONNECT_TIMEOUT} s)"
            ) from None
        self.api_url = _api_url()
        self._relay = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finloom-dask")

    def now(self, docs: Docs, staging: str) -> list[Staged]:
        return self._collect(self._submit(docs, staging))

    def ahead(self, docs: PrefectFuture[Docs], staging: str) -> Pending:
        """Submitted to the cluster once the download (in the flow's task runner) is done,
        from a thread carrying the flow run's context, so the flow goes on to its load."""
        context = contextvars.copy_context()
        relay = self._relay.submit(context.run, lambda: self._submit(docs.result(), staging))
        return _DaskPending(self, relay)

    def close(self) -> None:
        self._relay.shutdown(wait=True)
        self.runner.__exit__(None, None, None)

    def _slots(self) -> int:
        """Worker threads of the cluster now (at least one chunk)."""
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    def _submit(self, docs: Docs, staging: str) -> list[PrefectFuture[Any]]:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        out_dir = str(Path(staging).resolve() / PARSED_DIR)
        items = [_absolute(d) for d in docs]
        size = -(-len(items) // max(1, min(self._slots(), len(items))))  # ceil
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        updates = {PREFECT_API_URL: self.api_url} if self.api_url else {}
        with temporary_settings(updates=updates):  # the workers report to this run's API
            return [
                self.runner.submit(
                    parse_parquet_task,
                    # not quote()d: Dask would rebuild the annotation as nested tuples
                    {"staged": chunk, "out_dir": out_dir, "memory_limit": self.memory_limit},
                )
                for chunk in chunks
            ]

    def _collect(self, futures: Sequence[PrefectFuture[Any]]) -> list[Staged]:
        """The chunks' results in batch order; the parse metrics recorded from them."""
        results: list[Staged] = [item for f in futures for item in f.result()]
        m = metrics.current()
        for item in results:
            if isinstance(item, ParquetCompany):
                m.parse_duration.observe(item.seconds)
        failed = sum(
            1
            for r in results
            if isinstance(r, CompanyOutcome) and r.status == Status.FAILED and r.stage == "parse"
        )
        if failed:
            m.pipeline_errors.labels("parse").inc(failed)
        return results


class _DaskPending:
    def __init__(self, parse: DaskParse, relay: Future[list[PrefectFuture[Any]]]) -> None:
        self.parse = parse
        self.relay = relay

    def result(self) -> list[Staged]:
        return self.parse._collect(self.relay.result())


def open_parse(settings: FinloomSettings, address: str | None = None) -> LocalParse | DaskParse:
    """The run's parser: on the Dask cluster at ``address`` (default FINLOOM_DASK_ADDRESS),
    else in the flow's task runner. The caller closes it."""
    address = address or settings.dask_address
    return DaskParse(settings, address) if address else LocalParse()


def _absolute(item: CompanyDocuments | CompanyOutcome) -> CompanyDocuments | CompanyOutcome:
    """The company with its companyfacts path made absolute (a worker's working directory
    is its own)."""
    if isinstance(item, CompanyOutcome) or item.companyfacts is None:
        return item
    path = Path(os.path.abspath(item.companyfacts.path))
    return dataclasses.replace(item, companyfacts=dataclasses.replace(item.companyfacts, path=path))


def _api_url() -> str | None:
    """The Prefect API this flow run reports to (also a command's temporary server, which
    PREFECT_API_URL does not name), for the workers' task runs."""
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return None  # the settings the task runs carry already name it
    context = FlowRunContext.get()
    client = getattr(context, "client", None)
    url = getattr(client, "api_url", None)
    return str(url) if url else None
