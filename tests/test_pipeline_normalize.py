"""run_pipeline normalizes, after each batch's load, only the companies whose facts changed."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from finloom_core import pipeline
from finloom_core.edgar.sources import FolderSource
from finloom_core.pipeline import run_pipeline
from finloom_core.quality.reconcile import run_checks
from finloom_core.records import Status
from finloom_core.storage.database import open_warehouse

SNOW, MRVL = 1640147, 1835632
SENTINEL = -1.0


@pytest.fixture
def folder(shared_edgar: Path, tmp_path: Path) -> Path:
    """A private EDGAR folder with two companies' companyfacts (so one can be edited)."""
    root = tmp_path / "edgar"
    (root / "companyfacts").mkdir(parents=True)
    for cik in (SNOW, MRVL):
        name = f"CIK{cik:010d}.json"
        shutil.copy(shared_edgar / "companyfacts" / name, root / "companyfacts" / name)
    return root


def mark(db: Path) -> None:
    """Overwrite every financials value: a company normalized again loses the mark."""
    with open_warehouse(db) as con:
        con.execute("UPDATE financials SET value = ?", [SENTINEL])


def marked(db: Path) -> dict[int, bool]:
    with open_warehouse(db, read_only=True) as con:
        rows = con.execute(
            "SELECT cik, bool_and(value = ?) FROM financials GROUP BY cik", [SENTINEL]
        ).fetchall()
    return {int(cik): bool(flag) for cik, flag in rows}


def edit_one_fact(folder: Path, cik: int) -> None:
    path = folder / "companyfacts" / f"CIK{cik:010d}.json"
    doc = json.loads(path.read_bytes())
    rows = doc["facts"]["us-gaap"]["Assets"]["units"]["USD"]
    rows[-1]["val"] += 1
    path.write_text(json.dumps(doc))


def test_only_loaded_companies_are_normalized(folder: Path, tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    source = FolderSource(folder)

    first = run_pipeline(source, [SNOW, MRVL], db, batch_size=1)
    assert [o.status for o in first] == [Status.LOADED, Status.LOADED]
    assert all(o.financials > 0 for o in first)
    with open_warehouse(db, read_only=True) as con:
        counts = dict(con.execute("SELECT cik, count(*) FROM financials GROUP BY cik").fetchall())
    assert counts == {o.cik: o.financials for o in first}

    mark(db)
    rerun = run_pipeline(source, [SNOW, MRVL], db, batch_size=1)
    assert [o.status for o in rerun] == [Status.UNCHANGED, Status.UNCHANGED]
    assert [o.financials for o in rerun] == [0, 0]
    assert marked(db) == {SNOW: True, MRVL: True}, "an unchanged company was renormalized"

    edit_one_fact(folder, MRVL)
    changed = run_pipeline(source, [SNOW, MRVL], db)
    assert [o.status for o in changed] == [Status.UNCHANGED, Status.LOADED]
    assert changed[0].financials == 0 and changed[1].financials == counts[MRVL]
    assert marked(db) == {SNOW: True, MRVL: False}


class Killed(BaseException):
    """The process dies (kill -9) right after a batch's load transaction committed."""


def crash_before_normalize(monkeypatch: pytest.MonkeyPatch) -> None:
    def killed(*args: object, **kwargs: object) -> dict[int, int]:
        raise Killed

    monkeypatch.setattr(pipeline, "normalize_batch", killed)


def financials_rows(db: Path) -> tuple[list[tuple], list[tuple]]:
    """Every row of financials and financials_history, in a fixed order."""
    with open_warehouse(db, read_only=True) as con:
        return (
            con.execute("SELECT * FROM financials ORDER BY ALL").fetchall(),
            con.execute("SELECT * FROM financials_history ORDER BY ALL").fetchall(),
        )


def stale_check(db: Path) -> tuple[bool, list[int]]:
    with open_warehouse(db, read_only=True) as con:
        [result] = [r for r in run_checks(con) if r.check == "stale_financials"]
    assert result.severity in ("error", "critical")
    return result.passed, [int(r["cik"]) for r in result.sample]


def test_a_crash_between_load_and_normalize_is_rebuilt_by_the_next_run(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = FolderSource(folder)
    clean = tmp_path / "clean.duckdb"
    run_pipeline(source, [SNOW, MRVL], clean, batch_size=1)

    db = tmp_path / "w.duckdb"
    crash_before_normalize(monkeypatch)
    with pytest.raises(Killed):  # a fresh warehouse: the first batch's facts committed
        run_pipeline(source, [SNOW, MRVL], db, batch_size=1)
    monkeypatch.undo()
    with open_warehouse(db, read_only=True) as con:
        assert con.execute("SELECT DISTINCT cik FROM facts").fetchall() == [(SNOW,)]
        assert con.execute("SELECT count(*) FROM financials").fetchall() == [(0,)]
    assert stale_check(db) == (False, [SNOW])  # reconciliation notices

    rerun = run_pipeline(source, [SNOW, MRVL], db, batch_size=1)
    assert [o.status for o in rerun] == [Status.UNCHANGED, Status.LOADED]
    assert all(o.financials > 0 for o in rerun)  # the unchanged company was rebuilt first
    assert financials_rows(db) == financials_rows(clean)
    assert stale_check(db) == (True, [])

    # every company unchanged: a run that loads nothing still rebuilds what a crash left
    crash_before_normalize(monkeypatch)
    edit_one_fact(folder, MRVL)
    with pytest.raises(Killed):
        run_pipeline(source, [MRVL], db)
    monkeypatch.undo()
    assert stale_check(db) == (False, [MRVL])  # new facts, old financials
    run_pipeline(source, [MRVL], clean)
    assert financials_rows(db) != financials_rows(clean)
    again = run_pipeline(source, [SNOW, MRVL], db)
    assert [o.status for o in again] == [Status.UNCHANGED, Status.UNCHANGED]
    assert financials_rows(db) == financials_rows(clean)
    assert stale_check(db) == (True, [])


def test_normalize_false_only_loads(folder: Path, tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    outcomes = run_pipeline(FolderSource(folder), [SNOW, MRVL], db, normalize=False)
    assert [o.status for o in outcomes] == [Status.LOADED, Status.LOADED]
    with open_warehouse(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM financials").fetchall() == [(0,)]


def test_every_connection_of_a_run_gets_the_memory_limit_passed_in(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit is an argument: the environment (here unreadable) is never consulted."""
    monkeypatch.setenv("FINLOOM_DUCKDB_MEMORY_LIMIT", "not a size")
    real = pipeline.open_warehouse
    limits: list[str] = []

    @contextmanager
    def recording(path: Path | str, **kwargs: object) -> Iterator[duckdb.DuckDBPyConnection]:
        with real(path, **kwargs) as con:  # type: ignore[arg-type]
            setting = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
            limits.append(str(setting))
            yield con

    monkeypatch.setattr(pipeline, "open_warehouse", recording)
    outcomes = run_pipeline(
        FolderSource(folder), [SNOW, MRVL], tmp_path / "w.duckdb", batch_size=1,
        memory_limit="1GB",
    )  # fmt: skip
    assert [o.status for o in outcomes] == [Status.LOADED, Status.LOADED]
    assert limits == ["953.6 MiB"] * 4  # 1GB as DuckDB shows it: a load, a normalize per batch
