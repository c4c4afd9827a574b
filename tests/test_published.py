"""The published warehouse: readers read a read-only snapshot while the next load writes.

A reader holding a snapshot open never blocks a load, and a load (with its publish) never
breaks an open reader; a new reader sees what the last publish copied; only the newest
``keep`` snapshots stay; before the first publish readers open the warehouse itself.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from finloom_core.edgar.sources import FolderSource
from finloom_core.errors import DatabaseLockedError, StorageError
from finloom_core.health import CORRUPT_REASON, check_database
from finloom_core.pipeline import run_pipeline
from finloom_core.storage.database import open_warehouse
from finloom_core.storage.published import (
    current_path,
    current_snapshot,
    is_stale,
    open_published,
    publish,
    published_dir,
    snapshots,
)
from tests.edgar_standin import EdgarStandIn
from tests.nightly_helpers import index_path, master_idx
from tests.test_cli import finloom

APPLE, TSM = 320193, 1046179
APPLE_FY2023_REVENUE = 383_285_000_000
APPLE_FACTS, TSM_FACTS = 24_579, 5_979

# Holds the warehouse open read-write, as a load (or an analyst's notebook) does, until
# killed. With "finloom" it opens it as FinLoom's loads do (publishing "writing").
HOLDER = """
import sys, time
if sys.argv[2] == "finloom":
    from finloom_core.storage.database import open_warehouse
    held = open_warehouse(sys.argv[1])
    held.__enter__()
else:
    import duckdb
    held = duckdb.connect(sys.argv[1])
print("ready", flush=True)
time.sleep(300)
"""

# A reader in another process: opens the published warehouse once, then answers each line
# of stdin with the facts it counts and Apple's FY2023 revenue, through that one connection.
READER = """
import sys
from finloom_core.storage.published import connect_published
con, target = connect_published(sys.argv[1])
print(target.path, flush=True)
for _ in sys.stdin:
    facts = con.execute("SELECT count(*) FROM facts").fetchone()[0]
    revenue = con.execute(
        "SELECT value FROM financials WHERE cik = 320193 AND metric = 'revenue'"
        " AND fiscal_year = 2023 AND fiscal_period = 'FY'"
    ).fetchone()[0]
    print(facts, int(revenue), flush=True)
"""


Hold = Callable[..., "subprocess.Popen[bytes]"]


@pytest.fixture
def hold() -> Iterator[Hold]:
    """``hold(db, how)``: a process holding ``db`` open read-write until the test ends."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(db: Path, how: str = "duckdb") -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(db), how], stdout=subprocess.PIPE
        )
        processes.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        return process

    yield start
    for process in processes:
        process.kill()
        process.wait(timeout=30)


def facts(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return int(con.execute("SELECT count(*) FROM facts").fetchall()[0][0])


@pytest.fixture(scope="module")
def apple(shared_edgar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse with Apple loaded (not published); tests copy it."""
    db = tmp_path_factory.mktemp("published") / "apple.duckdb"
    run_pipeline(FolderSource(shared_edgar), [APPLE], db)
    return db


@pytest.fixture
def db(apple: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "w.duckdb"
    copy.write_bytes(apple.read_bytes())
    return copy


# ---------------------------------------------------------------------------- publish


def test_publish_copies_the_warehouse_into_a_read_only_snapshot(db: Path) -> None:
    assert current_snapshot(db) is None and is_stale(db)
    done = publish(db)
    assert done.current == current_path(db) == published_dir(db) / "current.duckdb"
    assert current_snapshot(db) == done.snapshot and done.snapshot.parent == published_dir(db)
    assert os.readlink(done.current) == done.snapshot.name  # relative: the folder may move
    assert facts(done.current) == facts(db) == APPLE_FACTS
    assert not done.snapshot.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert not is_stale(db)
    with open_warehouse(db) as con:  # a write makes the published copy stale
        con.execute("DELETE FROM facts WHERE cik = ?", [APPLE])
    assert is_stale(db)
    assert facts(done.current) == APPLE_FACTS
    # no temporary file is left behind
    assert sorted(p.name for p in published_dir(db).iterdir()) == sorted(
        [done.snapshot.name, "current.duckdb"]
    )


def test_publish_keeps_the_newest_n_snapshots(db: Path) -> None:
    published = [publish(db, keep=2) for _ in range(4)]
    kept = snapshots(db)
    assert kept == [published[2].snapshot, published[3].snapshot]
    assert current_snapshot(db) == published[3].snapshot
    assert published[2].removed == (published[0].snapshot,)
    assert published[3].removed == (published[1].snapshot,)
    publish(db, keep=1)
    assert len(snapshots(db)) == 1
    with pytest.raises(StorageError, match="at least 1"):
        publish(db, keep=0)


def test_snapshot_names_sort_by_age_also_when_the_clock_steps_back(db: Path) -> None:
    first = publish(db)
    ahead = published_dir(db) / "29991231T235959999999Z.duckdb"  # from a clock set ahead
    ahead.write_bytes(first.snapshot.read_bytes())
    later = publish(db, keep=2)
    assert later.snapshot.name == "30000101T000000000000Z.duckdb"
    assert snapshots(db) == [ahead, later.snapshot] and later.removed == (first.snapshot,)


def test_publishing_through_the_writers_connection_keeps_its_lock(db: Path) -> None:
    """The copy is made by another process: closing a descriptor of the file in the
    writer's process would drop DuckDB's lock while its connection is still open."""
    probe = [sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1])", str(db)]
    with open_warehouse(db) as con:
        publish(con)  # the file is read from the connection
        locked = subprocess.run(probe, capture_output=True, text=True, timeout=60)
        assert locked.returncode != 0 and "lock" in locked.stderr, locked.stderr
        assert con.execute("SELECT count(*) FROM facts").fetchone() == (APPLE_FACTS,)
    assert facts(current_path(db)) == APPLE_FACTS


def test_a_failed_copy_leaves_the_published_warehouse_as_it_was(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = publish(db)
    monkeypatch.setattr(sys, "executable", str(db.parent / "no-such-python"))
    with pytest.raises(StorageError, match="cannot be published"):
        publish(db)
    assert current_snapshot(db) == first.snapshot and snapshots(db) == [first.snapshot]
    assert [p.name for p in published_dir(db).iterdir() if p.name.startswith(".")] == []


# ---------------------------------------------------------------------------- readers


def test_a_reader_keeps_its_snapshot_while_loads_publish_and_new_readers_see_them(
    db: Path, shared_edgar: Path
) -> None:
    publish(db)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert reader.stdin is not None and reader.stdout is not None

    def ask() -> tuple[int, int]:
        assert reader.stdin is not None and reader.stdout is not None
        reader.stdin.write("?\n")
        reader.stdin.flush()
        counted, revenue = reader.stdout.readline().split()
        return int(counted), int(revenue)

    try:
        held = Path(reader.stdout.readline().strip())
        assert held == current_snapshot(db)
        assert ask() == (APPLE_FACTS, APPLE_FY2023_REVENUE)
        # the next load writes the warehouse while the reader holds its snapshot open...
        outcomes = run_pipeline(FolderSource(shared_edgar), [TSM], db)
        assert [o.status.value for o in outcomes] == ["loaded"]
        assert ask() == (APPLE_FACTS, APPLE_FY2023_REVENUE)
        # ...and publishes twice, keeping one snapshot: the reader's file is removed
        publish(db, keep=1)
        publish(db, keep=1)
        assert not held.exists()
        assert ask() == (APPLE_FACTS, APPLE_FY2023_REVENUE)
    finally:
        reader.stdin.close()
        reader.wait(timeout=60)
    assert reader.returncode == 0
    with open_published(db) as con:  # a new reader sees the new load
        assert con.execute("SELECT count(*) FROM facts").fetchone() == (APPLE_FACTS + TSM_FACTS,)


def test_before_the_first_publish_readers_open_the_warehouse_itself(db: Path, hold: Hold) -> None:
    with open_published(db) as con:
        assert con.execute("SELECT count(*) FROM facts").fetchone() == (APPLE_FACTS,)
    hold(db)  # a load holds it: nothing to read, and the error says why
    with (
        pytest.raises(DatabaseLockedError, match="nothing is published for readers yet"),
        open_published(db),
    ):
        pass
    missing = db.parent / "none.duckdb"
    with (
        pytest.raises(StorageError, match="does not exist and nothing is published"),
        open_published(missing),
    ):
        pass


def test_readers_never_block_a_load_or_its_publish(db: Path, shared_edgar: Path) -> None:
    publish(db)
    readers = [open_published(db) for _ in range(3)]
    connections = [reader.__enter__() for reader in readers]
    try:
        run_pipeline(FolderSource(shared_edgar), [TSM], db)  # no "locked" error
        publish(db)
        assert {c.execute("SELECT count(*) FROM facts").fetchone() for c in connections} == {
            (APPLE_FACTS,)
        }
    finally:
        for reader in readers:
            reader.__exit__(None, None, None)
    assert facts(current_path(db)) == APPLE_FACTS + TSM_FACTS


# ---------------------------------------------------------------------------- health


def test_health_checks_the_published_warehouse_ready_while_a_load_writes(
    db: Path, hold: Hold
) -> None:
    publish(db)
    writer = hold(db, "finloom")
    check = check_database(db)
    assert (check.healthy, check.status) == (True, "ok"), check
    assert check.detail["published"] == str(current_snapshot(db))
    assert check.detail["writer_pid"] == writer.pid

    snapshot = current_snapshot(db)
    assert snapshot is not None
    snapshot.chmod(0o644)
    snapshot.write_bytes(b"\x00FINLOOM-NOT-A-DATABASE\xff" * 100)
    broken = check_database(db)
    assert (broken.healthy, broken.status) == (False, "error")
    assert broken.detail["reason"] == CORRUPT_REASON


# ---------------------------------------------------------------------------- command line


def test_financials_and_db_info_answer_while_another_process_holds_the_warehouse(
    db: Path, hold: Hold, tmp_path: Path
) -> None:
    publish(db)
    hold(db)  # e.g. an analyst's notebook left open read-write, or a load
    result = finloom(
        tmp_path / "cli", "financials", "AAPL", "--period", "FY", "--metrics", "revenue",
        "--years", "2023", "--format", "json", "--db", str(db),
    )  # fmt: skip
    assert result.code == 0, result
    (row,) = json.loads(result.stdout)
    assert row["value"] == APPLE_FY2023_REVENUE

    info = finloom(tmp_path / "cli", "db", "info", "--json", "--db", str(db))
    assert info.code == 0, info
    shown = json.loads(info.stdout)
    assert shown["published"] == str(current_path(db))
    assert shown["snapshot"] == str(current_snapshot(db))
    assert shown["tables"]["facts"] == APPLE_FACTS == facts(Path(shown["published"]))

    table = finloom(tmp_path / "cli", "db", "info", "--db", str(db))
    assert table.code == 0, table
    assert f"published: {current_path(db)}" in table.stdout


def test_db_info_json_before_the_first_publish(db: Path, tmp_path: Path) -> None:
    info = finloom(tmp_path / "cli", "db", "info", "--json", "--db", str(db))
    assert info.code == 0, info
    shown = json.loads(info.stdout)
    assert shown["published"] is None and shown["path"] == str(db)
    assert shown["tables"]["facts"] == APPLE_FACTS


# ---------------------------------------------------------------------------- the flows

SMALL = ("CIK0001640147.json", "CIK0001835632.json")


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness", "clean_finloom_env")
def test_the_backfill_flow_publishes_a_completed_load_only(
    shared_edgar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows import backfill as module

    folder = tmp_path / "edgar" / "companyfacts"
    folder.mkdir(parents=True)
    for name in SMALL:
        (folder / name).symlink_to(shared_edgar / "companyfacts" / name)
    db, source = tmp_path / "w.duckdb", str(folder.parent)
    monkeypatch.setenv("FINLOOM_PUBLISHED_KEEP", "1")

    def crashed(*args: object, **kwargs: object) -> None:
        raise RuntimeError("normalize crashed")

    normalize = module.normalize_task
    monkeypatch.setattr(module, "normalize_task", crashed)
    stopped = module.backfill(source=source, db_path=str(db), quality=False, return_state=True)
    assert stopped.is_failed()
    assert facts(db) > 0 and current_snapshot(db) is None  # loaded, stopped: not published
    monkeypatch.setattr(module, "normalize_task", normalize)

    module.backfill(source=source, db_path=str(db), quality=False)  # rebuilds, publishes
    first = current_snapshot(db)
    assert first is not None and facts(first) == facts(db)
    with duckdb.connect(str(first), read_only=True) as con:
        assert con.execute("SELECT count(DISTINCT cik) FROM financials").fetchone() == (2,)

    module.backfill(source=source, db_path=str(db), quality=False)  # nothing changed
    assert snapshots(db) == [first]

    with open_warehouse(db) as con:  # written since: the next run publishes, keeping one
        con.execute("DELETE FROM company_loads")
    module.backfill(source=source, db_path=str(db), quality=False)
    (latest,) = snapshots(db)
    assert latest != first and current_snapshot(db) == latest


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness", "clean_finloom_env")
def test_a_night_publishes_what_it_loaded_and_a_night_without_loads_only_a_first_copy(
    standin: EdgarStandIn, tmp_path: Path
) -> None:
    from datetime import date

    from flows.nightly import nightly

    saturday, tuesday, marvell = date(2026, 11, 28), date(2026, 11, 24), 1835632
    db = tmp_path / "w.duckdb"
    nightly(from_date=saturday, to_date=saturday, db_path=str(db))  # no index: nothing due
    empty = current_snapshot(db)  # nothing was published yet: the night publishes
    assert empty is not None and facts(empty) == 0
    nightly(from_date=saturday, to_date=saturday, db_path=str(db))
    assert snapshots(db) == [empty]  # published already: not again

    standin.serve_document(
        index_path(tuesday), master_idx(tuesday, [(marvell, "Marvell Technology, Inc.", "10-K")])
    )
    nightly(from_date=tuesday, to_date=tuesday, db_path=str(db), quality=False)
    loaded = current_snapshot(db)  # published by the night's backfill subflow
    assert loaded is not None and loaded != empty
    assert facts(loaded) == facts(db) > 0
