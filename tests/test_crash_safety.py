"""SIGKILL during a load: every company is fully old or fully new, and a rerun heals.

Version A is the shared EDGAR folder; version B is a companyfacts.zip built in tmp_path
from the same files with, for every company, one value changed and one fact removed. A
subprocess loads B over a database holding A and is killed mid-load, twice inside a
company's transaction (a marker it prints there) and a few times after a random delay;
and killed between a batch's committed load and its normalize, after which the rerun's
financials equal a clean run's.
"""

from __future__ import annotations

import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import orjson
import pytest

from finloom_core.edgar.sources import ZipSource
from finloom_core.pipeline import run_pipeline
from finloom_core.quality.reconcile import run_checks
from finloom_core.storage.database import open_warehouse

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

# Child process: loads a source into a database with run_pipeline. From within each load
# transaction (after the facts were replaced, before COMMIT) it prints "inside <ciks>" for
# the companies of that transaction, and pauses there when the CIK given as third argument
# is among them, so the parent can kill it at that point. With "normalize" as fourth
# argument it prints "normalizing <ciks>" before each batch's normalize instead, and pauses
# there (the batch's load committed) when the CIK is among them.
CHILD = """
import sys, time
from pathlib import Path
from finloom_core import pipeline
from finloom_core.edgar.sources import SourceSpec, open_source
from finloom_core.pipeline import run_pipeline
from finloom_core.storage import loader

source_path, db_path, pause_cik = sys.argv[1], sys.argv[2], int(sys.argv[3])
pause_in = sys.argv[4] if len(sys.argv) > 4 else "load"
replace_filings = loader._replace_filings
normalize_batch = pipeline.normalize_batch

def marked(con, companies, *args, **kwargs):
    # one company per transaction, or a batch of them
    ciks = [p.cik for p in (companies if isinstance(companies, list) else [companies])]
    print("inside " + ",".join(map(str, ciks)), flush=True)
    if pause_cik in ciks:
        time.sleep(120)
    return replace_filings(con, companies, *args, **kwargs)

def normalizing(db, ciks, **kwargs):
    print("normalizing " + ",".join(map(str, ciks)), flush=True)
    if pause_cik in ciks:
        time.sleep(120)
    return normalize_batch(db, ciks, **kwargs)

if pause_in == "normalize":
    pipeline.normalize_batch = normalizing
else:
    loader._replace_filings = marked
# archive members are staged beside the database (inside the test's tmp folder)
source = open_source(SourceSpec(source_path), staging=Path(db_path + ".staging"))
outcomes = run_pipeline(source, source.available_ciks(), db_path, batch_size=5)
failed = [o for o in outcomes if not o.ok]
print(f"finished {len(outcomes)} failed {len(failed)}", flush=True)
"""


def inside_ciks(line: str) -> list[int]:
    return [int(c) for c in line.split(" ", 1)[1].split(",")]


# Per company: row count, exact (order-independent) sum of values and a hash over the rows.
FINGERPRINT = (
    "SELECT cik, count(*), sum(value::DECIMAL(38, 6)),"
    " sum(hash(taxonomy, concept, unit, period_start, period_end, value, accession, filed)"
    "::HUGEINT) FROM facts GROUP BY cik"
)

Fingerprints = dict[int, tuple]


class Child:
    """A loader subprocess whose stdout lines can be awaited with a deadline."""

    def __init__(
        self,
        script: Path,
        source: Path,
        db: Path,
        pause_cik: int,
        log: Path,
        pause_in: str = "load",
    ) -> None:
        self._stderr = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(source), str(db), str(pause_cik), pause_in],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            bufsize=0,
        )
        self.log = log
        self.lines: list[str] = []
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)

    def wait_for(self, prefix: str, timeout: float = 30.0, cik: int | None = None) -> str | None:
        """The first line starting with ``prefix`` (and naming ``cik``, if given); None if the
        child exits first."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if line.startswith(prefix) and (cik is None or cik in inside_ciks(line)):
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {prefix!r} line in {timeout}s: {self.lines}")
            if not self._selector.select(remaining):
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)  # type: ignore[union-attr]
            if not chunk:
                return None
            self._buffer += chunk
            *complete, self._buffer = self._buffer.split(b"\n")
            self.lines += [c.decode() for c in complete]

    def wait(self, timeout: float = 60.0) -> int:
        """Let the child run to its end; its exit code."""
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self.kill()
        return code

    def kill(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait(timeout=30)
        self.close()
        return code

    def close(self) -> None:
        self._selector.close()
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self._buffer += self.proc.stdout.read()
            *complete, self._buffer = self._buffer.split(b"\n")
            self.lines += [c.decode() for c in complete]
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]


def fingerprints(db: Path) -> Fingerprints:
    with open_warehouse(db) as con:  # read-write: the file must open (and migrate) after a kill
        return {row[0]: tuple(row[1:]) for row in con.execute(FINGERPRINT).fetchall()}


def copy_db(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    wal = src.with_name(src.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, dst.with_name(dst.name + ".wal"))
    return dst


def build_version_b(shared_edgar: Path, path: Path) -> None:
    """Every company changed: first value + 1000 and the last fact of the last unit removed."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for file in sorted((shared_edgar / "companyfacts").glob("CIK*.json")):
            doc = orjson.loads(file.read_bytes())
            units = [
                rows
                for concepts in doc["facts"].values()
                for body in concepts.values()
                for rows in body["units"].values()
                if rows
            ]
            units[0][0]["val"] += 1000
            units[-1].pop()
            archive.writestr(file.name, orjson.dumps(doc))


@pytest.fixture(scope="module")
def versions(shared_edgar: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("crash")
    script = root / "child.py"
    script.write_text(CHILD)
    version_b = root / "b" / "companyfacts.zip"
    version_b.parent.mkdir()
    build_version_b(shared_edgar, version_b)

    # first clean run, in a subprocess, of the whole shared folder: version A
    db_a = root / "a.duckdb"
    child = Child(script, shared_edgar, db_a, 0, root / "a.log")
    assert child.wait() == 0, child.stderr()
    assert child.lines[-1] == f"finished {len(folder_ciks(shared_edgar))} failed 0", child.stderr()

    # a clean load of version B alone: what a completed reload must equal
    db_b = root / "b.duckdb"
    source = ZipSource(version_b, root / "b.staging")
    try:
        ciks = source.available_ciks()
        run_pipeline(source, ciks, db_b)
    finally:
        source.close()
    fp_a, fp_b = fingerprints(db_a), fingerprints(db_b)
    assert set(fp_b) == set(ciks) and set(ciks) <= set(fp_a)
    for cik in ciks:  # the two versions are told apart by count and by sum
        assert fp_a[cik][0] == fp_b[cik][0] + 1
        assert fp_a[cik][1] != fp_b[cik][1]
    return {"root": root, "script": script, "b": version_b, "db_a": db_a, "ciks": ciks,
            "fp_a": fp_a, "fp_b": fp_b}  # fmt: skip


def folder_ciks(root: Path) -> set[int]:
    return {int(p.name[3:13]) for p in (root / "submissions").glob("CIK??????????.json")} | {
        int(p.name[3:13]) for p in (root / "companyfacts").glob("CIK??????????.json")
    }


def assert_each_company_old_or_new(fp: Fingerprints, versions: dict) -> dict[int, str]:
    state = {}
    for cik in versions["ciks"]:
        if fp.get(cik) == versions["fp_a"][cik]:
            state[cik] = "old"
        elif fp.get(cik) == versions["fp_b"][cik]:
            state[cik] = "new"
        else:
            raise AssertionError(f"CIK {cik} is neither version: {fp.get(cik)}")
    return state


def assert_rerun_equals_clean_run(db: Path, versions: dict) -> None:
    source = ZipSource(versions["b"], db.with_name(db.name + ".rerun-staging"))
    try:
        outcomes = run_pipeline(source, versions["ciks"], db)
    finally:
        source.close()
    assert all(o.ok for o in outcomes), [o for o in outcomes if not o.ok]
    fp = fingerprints(db)
    assert {cik: fp[cik] for cik in versions["ciks"]} == versions["fp_b"]
    with open_warehouse(db, read_only=True) as con:
        orphans = con.execute(
            "SELECT count(*) FROM (SELECT DISTINCT accession FROM facts) f"
            " ANTI JOIN filings g ON g.accession = f.accession"
        ).fetchall()
    assert orphans == [(0,)]


@pytest.mark.parametrize("position", [0, 6])
def test_kill_inside_a_load_transaction(versions: dict, position: int) -> None:
    pause = versions["ciks"][position]
    db = copy_db(versions["db_a"], versions["root"] / f"inside-{position}.duckdb")
    child = Child(
        versions["script"], versions["b"], db, pause, versions["root"] / f"inside-{position}.log"
    )
    try:
        paused = child.wait_for("inside", cik=pause)
        assert paused is not None, child.stderr()
    finally:
        code = child.kill()
    assert code == -signal.SIGKILL

    # transactions that ended before the kill committed; the one open at the kill did not
    committed = {c for line in child.lines[: child.lines.index(paused)]
                 for c in inside_ciks(line)}  # fmt: skip
    state = assert_each_company_old_or_new(fingerprints(db), versions)
    assert state == {cik: "new" if cik in committed else "old" for cik in versions["ciks"]}
    assert state[pause] == "old"
    assert_rerun_equals_clean_run(db, versions)


def test_kill_after_random_delays(versions: dict) -> None:
    rng = random.Random(20240601)
    # right after the first company entered its transaction, then later and later
    delays = [0.0, rng.uniform(0.1, 0.6), rng.uniform(0.4, 1.5)]
    states = []
    for attempt, delay in enumerate(delays):
        db = copy_db(versions["db_a"], versions["root"] / f"random-{attempt}.duckdb")
        child = Child(
            versions["script"], versions["b"], db, 0, versions["root"] / f"random-{attempt}.log"
        )
        try:
            assert child.wait_for("inside") is not None, child.stderr()
            time.sleep(delay)
        finally:
            child.kill()
        states.append(assert_each_company_old_or_new(fingerprints(db), versions))
        assert_rerun_equals_clean_run(db, versions)
    # the first kill landed mid-run (the later ones may land anywhere, even after the end)
    assert "old" in states[0].values()


FINANCIALS = "SELECT * FROM {table} WHERE list_contains(?, cik) ORDER BY ALL"


def financials_rows(db: Path, ciks: list[int]) -> dict[str, list[tuple]]:
    with open_warehouse(db, read_only=True) as con:
        return {
            table: con.execute(FINANCIALS.format(table=table), [ciks]).fetchall()
            for table in ("financials", "financials_history")
        }


@pytest.mark.parametrize("start", ["fresh", "version-a"])
def test_kill_between_load_and_normalize(versions: dict, start: str) -> None:
    """Killed after the first batch's load committed, before its normalize: its facts are
    new and its financials missing (fresh warehouse) or old (over version A); reconciliation
    says so, and the rerun, which finds those companies unchanged, rebuilds them first."""
    pause = versions["ciks"][0]
    db = versions["root"] / f"between-{start}.duckdb"
    if start == "version-a":
        copy_db(versions["db_a"], db)
    log = versions["root"] / f"between-{start}.log"
    child = Child(versions["script"], versions["b"], db, pause, log, pause_in="normalize")
    try:
        paused = child.wait_for("normalizing", cik=pause)
        assert paused is not None, child.stderr()
    finally:
        assert child.kill() == -signal.SIGKILL
    first_batch = inside_ciks(paused)

    fp = fingerprints(db)
    assert all(fp[cik] == versions["fp_b"][cik] for cik in first_batch)  # the load committed
    with open_warehouse(db, read_only=True) as con:
        [stale] = [r for r in run_checks(con) if r.check == "stale_financials"]
    assert not stale.passed and stale.severity in ("error", "critical")
    assert {r["cik"] for r in stale.sample} == set(first_batch)
    if start == "fresh":
        assert financials_rows(db, first_batch) == {"financials": [], "financials_history": []}

    assert_rerun_equals_clean_run(db, versions)
    clean = versions["root"] / "b.duckdb"  # the clean load of version B alone
    assert financials_rows(db, versions["ciks"]) == financials_rows(clean, versions["ciks"])
