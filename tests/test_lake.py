"""``finloom export``: the Parquet lake, locally and on S3 (moto's server on 127.0.0.1).

Checked: one ``fiscal_year=YYYY`` folder per fiscal year of ``facts`` (NULL in
``__HIVE_DEFAULT_PARTITION__``), every table's rows and content equal to the warehouse's,
a re-export that drops vanished partitions, a failed export that leaves the previous lake
whole, and one-line errors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest

from finloom_core import lake
from finloom_core.backup import table_fingerprint
from finloom_core.errors import BackupError
from finloom_core.lake import LAKE_TABLES, MANIFEST, export_lake
from finloom_core.storage.database import open_warehouse
from tests import s3_server as servers
from tests.s3_server import S3Server, aws_env, build_warehouse

s3_server = servers.s3_server
s3 = servers.s3


@pytest.fixture(scope="module")
def warehouse(shared_edgar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("lake") / "warehouse.duckdb"
    build_warehouse(shared_edgar, db)
    return db


def years(db: Path) -> dict[int | None, int]:
    with open_warehouse(db, read_only=True) as con:
        return dict(con.execute("SELECT fiscal_year, count(*) FROM facts GROUP BY ALL").fetchall())


def fingerprints(db: Path, tables: tuple[str, ...] = LAKE_TABLES) -> dict[str, tuple[int, str]]:
    with open_warehouse(db, read_only=True) as con:
        return {t: table_fingerprint(con, t) for t in tables}


def lake_fingerprints(db: Path, root: Path) -> dict[str, tuple[int, str]]:
    """Each lake table read back (Hive partitions rebuilt) into an empty copy of the
    warehouse table, so the content hash compares the same column types."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{db}' AS w (READ_ONLY)")
        found = {}
        for table in LAKE_TABLES:
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM w.{table} LIMIT 0")
            con.execute(
                f"INSERT INTO {table} BY NAME"
                " SELECT * FROM read_parquet(?, hive_partitioning = true)",
                [str(root / table / "**" / "*.parquet")],
            )
            found[table] = table_fingerprint(con, table)
        return found
    finally:
        con.close()


def partition_folders(root: Path) -> set[str]:
    return {p.name for p in (root / "facts").iterdir()}


def expected_folders(db: Path) -> set[str]:
    return {f"fiscal_year={'__HIVE_DEFAULT_PARTITION__' if y is None else y}" for y in years(db)}


def test_local_export_partitions_facts_by_fiscal_year_and_equals_the_warehouse(
    warehouse: Path, tmp_path: Path
) -> None:
    root = tmp_path / "lake"
    result = export_lake(warehouse, str(root))
    by_year = years(warehouse)
    assert None in by_year and len(by_year) > 10
    assert partition_folders(root) == expected_folders(warehouse)
    assert lake_fingerprints(warehouse, root) == fingerprints(warehouse)
    assert result.rows == {t: n for t, (n, _) in fingerprints(warehouse).items()}
    manifest = json.loads((root / MANIFEST).read_text())
    assert manifest["export_id"] == result.export_id
    assert {t: manifest["tables"][t]["rows"] for t in LAKE_TABLES} == result.rows
    assert not [p for p in root.iterdir() if p.name.startswith(".")], "staging left behind"


def test_one_year_is_one_folder_and_any_engine_reads_the_null_partition(
    warehouse: Path, tmp_path: Path
) -> None:
    root = tmp_path / "lake"
    export_lake(warehouse, str(root))
    by_year = years(warehouse)
    year = max((y for y in by_year if y is not None), key=lambda y: by_year[y])
    files = list((root / "facts" / f"fiscal_year={year}").glob("*.parquet"))
    con = duckdb.connect()
    one_year = con.execute("SELECT count(*) FROM read_parquet(?)", [[str(f) for f in files]])
    assert one_year.fetchall()[0][0] == by_year[year]
    # pyarrow (pandas' engine) reads the Hive layout, NULL partition included
    dataset = ds.dataset(root / "facts", format="parquet", partitioning="hive")
    assert dataset.count_rows() == sum(by_year.values())
    assert dataset.count_rows(filter=ds.field("fiscal_year").is_null()) == by_year[None]
    assert dataset.count_rows(filter=ds.field("fiscal_year") == year) == by_year[year]


def test_re_export_drops_a_vanished_partition(warehouse: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.duckdb"
    shutil.copyfile(warehouse, db)
    with open_warehouse(db) as con:
        con.execute(
            "INSERT INTO facts (cik, taxonomy, concept, unit, period_end, value, accession,"
            " fiscal_year) VALUES (1, 'x', 'Old', 'USD', DATE '1990-12-31', 1, 'a', 1990)"
        )
    root = tmp_path / "lake"
    export_lake(db, str(root))
    assert "fiscal_year=1990" in partition_folders(root)
    with open_warehouse(db) as con:
        con.execute("DELETE FROM facts WHERE fiscal_year = 1990")
    export_lake(db, str(root))
    assert partition_folders(root) == expected_folders(db)
    assert lake_fingerprints(db, root) == fingerprints(db)


def test_a_failed_export_leaves_the_previous_lake_whole(
    warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "lake"
    first = export_lake(warehouse, str(root))
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))

    def broken(staging: Path) -> dict[str, int]:
        raise BackupError("disk full")

    monkeypatch.setattr(lake, "_files", broken)
    with pytest.raises(BackupError, match="disk full"):
        export_lake(warehouse, str(root))
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == before
    assert json.loads((root / MANIFEST).read_text())["export_id"] == first.export_id


def test_export_refuses_a_folder_that_is_not_a_lake(warehouse: Path, tmp_path: Path) -> None:
    root = tmp_path / "home"
    root.mkdir()
    (root / "facts").mkdir()
    (root / "facts" / "notes.txt").write_text("mine")
    with pytest.raises(BackupError, match="not a FinLoom lake"):
        export_lake(warehouse, str(root))
    assert (root / "facts" / "notes.txt").read_text() == "mine"


def test_s3_export_has_one_object_folder_per_year_and_equals_the_warehouse(
    warehouse: Path, s3: S3Server, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    db = tmp_path / "copy.duckdb"
    shutil.copyfile(warehouse, db)
    with open_warehouse(db) as con:
        con.execute(
            "INSERT INTO facts (cik, taxonomy, concept, unit, period_end, value, accession,"
            " fiscal_year) VALUES (1, 'x', 'Old', 'USD', DATE '1990-12-31', 1, 'a', 1990)"
        )
    export_lake(db, f"s3://{bucket}/lake")
    with open_warehouse(db) as con:
        con.execute("DELETE FROM facts WHERE fiscal_year = 1990")
    result = export_lake(db, f"s3://{bucket}/lake")
    client = s3.client()
    keys = [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    ]
    assert all(k.startswith("lake/") for k in keys)
    local = tmp_path / "downloaded"
    for key in keys:
        target = local / key.removeprefix("lake/")
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(target))
    assert partition_folders(local) == expected_folders(db)  # 1990 deleted from S3 too
    assert lake_fingerprints(db, local) == fingerprints(db)
    assert json.loads((local / MANIFEST).read_text())["export_id"] == result.export_id


def finloom(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd),
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_CONFIG_FILE": "/nonexistent",
    }
    return subprocess.run(
        [sys.executable, "-m", "finloom_cli.main", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_export_to_s3_and_a_missing_bucket_in_one_line(
    warehouse: Path, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.new_bucket()
    env = aws_env(s3_server)
    done = finloom(tmp_path, "export", "--to", f"s3://{bucket}/x", "--db", str(warehouse), env=env)
    assert done.returncode == 0, done.stderr
    facts = fingerprints(warehouse)["facts"][0]
    assert f"facts: {facts:,} rows in {len(years(warehouse))} partitions" in done.stdout
    missing = finloom(
        tmp_path, "export", "--to", "s3://no-such-bucket/x", "--db", str(warehouse), env=env
    )
    lines = [line for line in missing.stderr.splitlines() if line.strip()]
    assert missing.returncode != 0
    assert "Traceback" not in missing.stderr
    assert lines[-1].startswith("error:") and "does not exist" in lines[-1], lines
