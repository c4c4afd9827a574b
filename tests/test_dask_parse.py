"""The parse stage on a Dask cluster (``FINLOOM_DASK_ADDRESS``): same warehouse, row for row.

The cluster is the real case: a ``dask scheduler`` and a ``dask worker`` (two worker
processes) started here as separate processes on a free port, in a folder of their own
(not the repository: the paths the workers get must be absolute), and stopped at the end
of the module. A backfill of /work/shared/edgar through it must store exactly what a local
run stores, and the scheduler must have run the ``parse-parquet`` tasks (its per-prefix
count of tasks that completed in memory on a worker).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from distributed import Client

from finloom_core.errors import ConfigurationError
from finloom_core.settings import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOTAL_FACTS = 258_602  # the 17 companyfacts files of shared/edgar
COMPARED = (
    "companies", "company_loads", "facts", "filings", "filing_companies", "financials",
    "financials_history",
)  # fmt: skip
PARSE_PREFIX = "parse_parquet_task"  # the Dask key prefix of the parse-parquet task runs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group this module started (the worker's nannies and worker
    processes are in it), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dask scheduler`` + ``dask worker --nworkers 2 --nthreads 1``: the scheduler's address."""
    home = tmp_path_factory.mktemp("dask-cluster")
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINLOOM_")}
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> None:
        log = (home / f"{name}.log").open("wb")
        command = [sys.executable, "-m", f"distributed.cli.dask_{name}", *args, "--no-dashboard"]
        proc = subprocess.Popen(
            command, cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        started.append(proc)

    try:
        start("scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1])
        start("worker", address, "--nworkers", "2", "--nthreads", "1",
              "--local-directory", str(home / "workers"))  # fmt: skip
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in reversed(started):
            _stop(proc)


def parse_tasks_done(address: str) -> int:
    """parse-parquet tasks the scheduler saw complete (in a worker's memory), ever."""
    with Client(address, timeout="30s") as client:
        return int(
            client.run_on_scheduler(
                lambda dask_scheduler: (
                    dask_scheduler.task_prefixes[PARSE_PREFIX].state_counts["memory"]
                    if PARSE_PREFIX in dask_scheduler.task_prefixes
                    else 0
                )
            )
        )


def worker_pids(address: str) -> set[int]:
    with Client(address, timeout="30s") as client:
        return set(client.run(os.getpid).values())


def tables(db: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every compared table's rows, sorted (timestamps of the write left out)."""
    rows: dict[str, list[tuple[object, ...]]] = {}
    with duckdb.connect(str(db), read_only=True) as con:
        for table in COMPARED:
            columns = [
                name
                for name, kind in con.execute(
                    "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ?",
                    [table],
                ).fetchall()
                if "TIMESTAMP" not in kind
            ]
            listed = ", ".join(f'"{c}"' for c in columns)  # names from the catalog
            fetched = con.execute(f'SELECT {listed} FROM "{table}"').fetchall()
            rows[table] = sorted(fetched, key=repr)
    return rows


def fact_count(db: Path) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        return int(con.execute("SELECT count(*) FROM facts").fetchall()[0][0])


@pytest.fixture(scope="module")
def local_warehouse(
    shared_edgar: Path, prefect_harness: None, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """/work/shared/edgar backfilled without Dask (batches of 10, no quality flow)."""
    from flows.backfill import backfill

    db = tmp_path_factory.mktemp("local") / "local.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("FINLOOM_")]:
            if name != "FINLOOM_STATE_DIR":
                mp.delenv(name)
        mp.chdir(db.parent)
        summary = backfill(source=str(shared_edgar), db_path=str(db), batch_size=10, quality=False)
    assert summary["facts"] == TOTAL_FACTS
    return db


@pytest.mark.usefixtures("prefect_harness", "clean_finloom_env")
def test_flow_on_dask_stores_what_a_local_run_stores(
    dask_cluster: str,
    local_warehouse: Path,
    shared_edgar: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.backfill import backfill

    shared = tmp_path / "shared"  # FINLOOM_DASK_STAGING_DIR: staged JSON and Parquet
    monkeypatch.setenv("FINLOOM_DASK_ADDRESS", dask_cluster)
    monkeypatch.setenv("FINLOOM_DASK_STAGING_DIR", str(shared))
    before = parse_tasks_done(dask_cluster)
    db = tmp_path / "dask.duckdb"

    # batches of 10: 4 batches, the next one parsed on the cluster while one loads
    summary = backfill(source=str(shared_edgar), db_path=str(db), batch_size=10, quality=False)

    assert summary["facts"] == TOTAL_FACTS
    assert fact_count(db) == TOTAL_FACTS
    assert tables(db) == tables(local_warehouse)
    # every batch went through the scheduler, as one task per worker thread at most
    assert parse_tasks_done(dask_cluster) - before >= 4
    assert os.getpid() not in worker_pids(dask_cluster)
    # the run's staging folder (and the Parquet in it) is gone
    assert shared.is_dir()
    assert list(shared.iterdir()) == []


def test_cli_backfill_on_dask(
    dask_cluster: str, local_warehouse: Path, shared_edgar: Path, tmp_path: Path
) -> None:
    """The acceptance run: ``finloom backfill --source .../edgar`` with FINLOOM_DASK_ADDRESS."""
    before = parse_tasks_done(dask_cluster)
    db = tmp_path / "cli.duckdb"

    proc = _finloom(
        tmp_path, "backfill", "--source", str(shared_edgar), "--db", str(db), "--no-quality",
        env={"FINLOOM_DASK_ADDRESS": dask_cluster},
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "facts stored: 258,602" in proc.stdout + proc.stderr
    assert fact_count(db) == TOTAL_FACTS
    assert tables(db) == tables(local_warehouse)
    assert parse_tasks_done(dask_cluster) > before


def test_cli_without_a_scheduler_fails_in_one_line(shared_edgar: Path, tmp_path: Path) -> None:
    closed = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there

    proc = _finloom(
        tmp_path, "backfill", "--source", str(shared_edgar), "--db", str(tmp_path / "x.duckdb"),
        env={"FINLOOM_DASK_ADDRESS": closed},
    )  # fmt: skip

    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: FINLOOM_DASK_ADDRESS: no Dask scheduler answers at {closed} "
        f"(Timed out trying to connect to {closed} after 10 s)"
    ]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert fact_count(tmp_path / "x.duckdb") == 0  # nothing loaded


def test_open_parse_without_a_scheduler_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.parse import open_parse

    closed = f"tcp://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("FINLOOM_DASK_ADDRESS", closed)
    with pytest.raises(ConfigurationError, match="FINLOOM_DASK_ADDRESS: no Dask scheduler"):
        open_parse(load_settings())


def _finloom(home: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m finloom_cli.main ARGS`` in ``home``, with no FINLOOM_* setting but ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FINLOOM_", "PREFECT_"))}
    base |= {
        "HOME": str(home),
        "PREFECT_HOME": str(home / ".prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "FINLOOM_STATE_DIR": str(home / "state"),
        "DO_NOT_TRACK": "1",
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "finloom_cli.main", *args],
        cwd=home, env={**base, **env}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_a_document_refused_on_a_worker_fails_as_in_a_local_run(
    shared_edgar: Path, tmp_path: Path
) -> None:
    """The worker's side without a cluster: parse_batch_to_parquet, then the writer's load."""
    from finloom_core.pipeline import load_batch, parse_batch, parse_batch_to_parquet
    from finloom_core.records import CompanyDocuments, Status
    from tests.factories import facts_document

    apple, celadon = 320193, 865941
    good = (shared_edgar / "companyfacts" / f"CIK{celadon:010d}.json").read_bytes()
    source = (shared_edgar / "companyfacts" / f"CIK{apple:010d}.json").read_bytes()
    bad = re.sub(rb'"val":\s*[-0-9.eE+]+', b'"val": 1e400', source, count=1)
    assert bad != source

    def docs() -> list[CompanyDocuments]:
        return [
            CompanyDocuments(apple, facts_document(apple, bad, staged=True), origin="test"),
            CompanyDocuments(celadon, facts_document(celadon, good, staged=True), origin="test"),
        ]

    local_docs, worker_docs = docs(), docs()
    local = load_batch(tmp_path / "local.duckdb", parse_batch(local_docs), source="test")
    parsed = parse_batch_to_parquet(worker_docs, tmp_path / "parsed")
    on_dask = load_batch(tmp_path / "dask.duckdb", parsed, source="test")

    expected = [(Status.FAILED, "parse"), (Status.LOADED, None)]
    assert [(o.status, o.stage) for o in on_dask] == expected
    assert on_dask == local  # same outcomes: status, stage, reason, counts
    assert "is not a finite number" in (on_dask[0].reason or "")
    with duckdb.connect(str(tmp_path / "dask.duckdb"), read_only=True) as con:
        assert con.execute("SELECT DISTINCT cik FROM facts").fetchall() == [(celadon,)]
    assert list((tmp_path / "parsed").iterdir()) == []  # Parquet removed once loaded
    staged = [d.companyfacts.path for d in worker_docs if d.companyfacts is not None]
    assert not any(path.exists() for path in staged)  # and the staged JSON documents
