"""The DuckDB warehouse: schema and migrations, a locked file, a corrupt file."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from finloom_core import settings as settings_module
from finloom_core.errors import (
    ConfigurationError,
    DatabaseCorruptError,
    DatabaseLockedError,
    StorageError,
)
from finloom_core.settings import DEFAULT_MEMORY_LIMIT, FinloomSettings
from finloom_core.storage.database import connect, open_warehouse
from finloom_core.storage.schema import MIGRATIONS, SCHEMA_VERSION, current_version, migrate

REPO = Path(__file__).resolve().parents[1]
TABLES = {"companies", "filings", "facts", "company_loads", "schema_migrations"}


def tables(con) -> set[str]:
    return {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def test_connect_creates_the_schema(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "warehouse.duckdb"  # the parent folder is created too
    with open_warehouse(db) as con:
        assert tables(con) >= TABLES
        assert current_version(con) == SCHEMA_VERSION
        rows = con.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        assert [r[0] for r in rows] == [m.version for m in MIGRATIONS]
    assert db.is_file()


def test_migrations_run_once(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with open_warehouse(db) as con:
        con.execute(
            "INSERT INTO companies (cik, name, updated_at) VALUES (1, 'kept', current_timestamp)"
        )
    for _ in range(2):
        with open_warehouse(db) as con:
            assert migrate(con) == SCHEMA_VERSION
            assert con.execute("SELECT count(*) FROM schema_migrations").fetchall() == [
                (len(MIGRATIONS),)
            ]
            assert con.execute("SELECT name FROM companies").fetchall() == [("kept",)]


def test_read_only_open_of_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.duckdb"
    with pytest.raises(StorageError):
        connect(missing, read_only=True)
    assert not missing.exists()


HOLDER = textwrap.dedent(
    """
    import sys, time
    from finloom_core.storage.database import connect
    con = connect(sys.argv[1])
    print("ready", flush=True)
    time.sleep(60)
    """
)


def test_a_second_process_holding_the_database(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = holder.stdout.readline() if holder.stdout else ""
        assert line.strip() == "ready", holder.stderr.read() if holder.stderr else ""
        with pytest.raises(DatabaseLockedError) as info:
            connect(db)
        message = str(info.value)
        assert "\n" not in message
        assert "locked" in message
        assert str(db) in message
        assert info.value.path == str(db)
    finally:
        holder.kill()
        holder.wait(timeout=10)
    with open_warehouse(db) as con:  # usable again once the holder is gone
        assert current_version(con) == SCHEMA_VERSION


@pytest.mark.parametrize(
    "garbage",
    [os.urandom(64 * 1024), b"this is not a database\n" * 500, b"\x00" * 8192 + b"DUCK" * 100],
    ids=["random", "text", "zeros"],
)
def test_a_garbage_file_is_corrupt_and_left_unchanged(tmp_path: Path, garbage: bytes) -> None:
    db = tmp_path / "garbage.duckdb"
    db.write_bytes(garbage)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    for read_only in (False, True):
        with pytest.raises(DatabaseCorruptError) as info:
            connect(db, read_only=read_only)
        assert "\n" not in str(info.value)
        assert str(db) in str(info.value)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert db.stat().st_size == len(garbage)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.duckdb"]  # no WAL left


# ---- the memory limit is an argument, never read from the environment here --------------


def duckdb_reports(limit: str) -> str:
    """What DuckDB's current_setting('memory_limit') shows for ``limit`` (e.g. 953.6 MiB)."""
    with duckdb.connect() as con:
        con.execute(f"SET memory_limit = '{limit}'")
        return str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])


def memory_limit(con: duckdb.DuckDBPyConnection) -> str:
    return str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])


@pytest.fixture
def unreadable_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An environment whose settings cannot be read (and a load_settings that refuses to
    run): opening the warehouse must not consult either."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINLOOM_DUCKDB_MEMORY_LIMIT", "not a size")

    def refuse(**_: object) -> FinloomSettings:
        raise AssertionError("the warehouse read the settings")

    monkeypatch.setattr(settings_module, "load_settings", refuse)


@pytest.mark.usefixtures("unreadable_settings")
@pytest.mark.parametrize("read_only", [False, True])
def test_open_warehouse_sets_the_memory_limit_it_is_given(tmp_path: Path, read_only: bool) -> None:
    db = tmp_path / "w.duckdb"
    connect(db).close()  # the default limit: no settings read either
    assert duckdb_reports("1GB") != duckdb_reports(DEFAULT_MEMORY_LIMIT)
    with open_warehouse(db, read_only=read_only, memory_limit="1GB") as con:
        assert memory_limit(con) == duckdb_reports("1GB")
    with open_warehouse(db, read_only=read_only) as con:
        assert memory_limit(con) == duckdb_reports(DEFAULT_MEMORY_LIMIT)


def test_the_default_memory_limit_is_the_settings_default() -> None:
    assert FinloomSettings.model_fields["duckdb_memory_limit"].default == DEFAULT_MEMORY_LIMIT


@pytest.mark.parametrize("limit", ["lots", "1GB'; DROP TABLE facts; --", "2GB\n", ""])
def test_a_malformed_memory_limit_is_a_configuration_error(tmp_path: Path, limit: str) -> None:
    db = tmp_path / "w.duckdb"
    with pytest.raises(ConfigurationError) as info:
        connect(db, memory_limit=limit)
    assert "\n" not in str(info.value)
    assert not db.exists()
