"""The lake: the warehouse's main tables as Parquet any engine can read.

Layout (one folder per table, Hive-style partitions for ``facts``)::

    DIR/_manifest.json                          what the last export wrote (rows, files)
    DIR/companies/data_0.parquet
    DIR/filings/data_0.parquet
    DIR/financials/data_0.parquet
    DIR/facts/fiscal_year=2023/data_0.parquet   one folder per fiscal year
    DIR/facts/fiscal_year=__HIVE_DEFAULT_PARTITION__/data_0.parquet   facts without one

The partition rule: a fact's ``fiscal_year`` column, which is SEC's ``fy`` of the filing
that reported it (Apple's FY2023 10-K reports its FY2021 comparatives with fy=2023), so
``WHERE fiscal_year = 2023`` reads one folder. The column is not repeated inside the files:
readers rebuild it from the folder name (Hive partitioning). Facts SEC gives no ``fy``
go to ``__HIVE_DEFAULT_PARTITION__``, the Hive/Spark/Arrow spelling of NULL.

Every export is whole (a full rewrite: see README "Lake and backups" for its cost), read
from the warehouse in one read-only transaction, written to a staging folder and its row
counts checked against the warehouse before anything is published:

* Local folder: the staging folder sits inside ``DIR``; each table's folder is swapped in
  by two renames (old out, new in), then ``_manifest.json`` is replaced atomically. A
  reader sees a table's previous export or its new one, whole; never a half-written one.
* S3: every object has a fixed name (``facts/fiscal_year=2023/data_0.parquet``) and an S3
  PUT replaces an object atomically, so a reader sees each file old or new, never half;
  objects the new export no longer has (a vanished partition) are deleted after the new
  ``_manifest.json`` is up. A reader that needs one export whole reads the files the
  manifest lists.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from finloom_core.errors import BackupError, first_line
from finloom_core.s3 import Store, is_s3, open_store
from finloom_core.settings import DEFAULT_MEMORY_LIMIT
from finloom_core.sql import quote_ident, transaction
from finloom_core.storage.database import connect

LAKE_TABLES = ("companies", "filings", "facts", "financials")
PARTITIONED = {"facts": "fiscal_year"}
MANIFEST = "_manifest.json"
LAKE_FORMAT = "finloom-lake"
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd"
_STAGING_PREFIX = ".finloom-export-"
_STALE_STAGING_SECONDS = 6 * 3600


@dataclass(frozen=True, slots=True)
class ExportResult:
    target: str
    export_id: str
    rows: dict[str, int]
    partitions: dict[str, list[str]] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0


def sql_literal(path: Path | str) -> str:
    """A file path as a SQL string literal (COPY takes no bound parameter for its path)."""
    text = str(path)
    if "\x00" in text:
        raise BackupError(f"path {text!r} contains a NUL byte")
    return "'" + text.replace("'", "''") + "'"


def export_lake(
    db_path: Path | str,
    target: str,
    *,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    tables: tuple[str, ...] = LAKE_TABLES,
) -> ExportResult:
    """Export ``tables`` of the warehouse at ``db_path`` to ``target`` (a folder or
    ``s3://bucket/prefix``) as Parquet; the lake's row count of each table equals the
    warehouse's (checked before publishing)."""
    started = time.perf_counter()
    export_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    store = open_store(target)
    store.check()
    existing: dict[str, int] = {}
    if is_s3(target):
        existing = store.list_keys()
        foreign = bool(existing) and MANIFEST not in existing
    else:
        root = Path(target).expanduser()
        _drop_stale_staging(root)
        foreign = root.is_dir() and not (root / MANIFEST).exists() and any(root.iterdir())
    if foreign:
        raise BackupError(
            f"{store.url} is not empty and holds no {MANIFEST}: not a FinLoom lake, "
            "refusing to write into it"
        )
    if is_s3(target):
        staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX))
    else:
        try:
            root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=root))
        except OSError as exc:
            raise BackupError(f"{target}: cannot write: {exc.strerror or exc}") from None
    try:
        rows = _write_tables(db_path, staging, tables, memory_limit)
        files = _files(staging)
        manifest = {
            "format": LAKE_FORMAT,
            "export_id": export_id,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "partition_rule": "facts by fiscal_year (SEC fy of the reporting filing); "
            "NULL -> __HIVE_DEFAULT_PARTITION__",
            "tables": {
                name: {
                    "rows": rows[name],
                    "partition_by": PARTITIONED.get(name),
                    "files": {k: size for k, size in files.items() if k.startswith(name + "/")},
                }
                for name in tables
            },
        }
        body = json.dumps(manifest, indent=2, sort_keys=True).encode()
        if is_s3(target):
            _publish_s3(store, staging, files, existing, body, tables)
        else:
            _publish_local(Path(target).expanduser(), staging, tables, body)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    partitions = {
        name: sorted({k.split("/")[1] for k in files if k.startswith(name + "/")})
        for name in PARTITIONED
        if name in tables
    }
    return ExportResult(
        target=store.url,
        export_id=export_id,
        rows=rows,
        partitions=partitions,
        files=len(files),
        bytes=sum(files.values()),
        seconds=time.perf_counter() - started,
    )


def _write_tables(
    db_path: Path | str, staging: Path, tables: tuple[str, ...], memory_limit: str
) -> dict[str, int]:
    """COPY every table to ``staging/<table>/`` in one read-only transaction; return the
    warehouse's row counts, checked equal to what the Parquet files hold."""
    rows: dict[str, int] = {}
    con = connect(db_path, read_only=True, memory_limit=memory_limit)
    try:
        with transaction(con):
            for name in tables:
                table = quote_ident(name)
                rows[name] = int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
                folder = staging / name
                column = PARTITIONED.get(name)
                if column is not None:
                    options = f"{PARQUET_OPTIONS}, PARTITION_BY ({quote_ident(column)})"
                    con.execute(f"COPY {table} TO {sql_literal(folder)} ({options})")
                else:
                    folder.mkdir()
                    target = sql_literal(folder / "data_0.parquet")
                    con.execute(f"COPY {table} TO {target} ({PARQUET_OPTIONS})")
                if not any(folder.rglob("*.parquet")):  # an empty partitioned table
                    continue
                written = con.execute(
                    "SELECT count(*) FROM read_parquet(?, hive_partitioning = true)",
                    [str(folder / "**" / "*.parquet")],
                ).fetchall()[0][0]
                if int(written) != rows[name]:
                    raise BackupError(
                        f"lake table {name}: {written} rows written, the warehouse has {rows[name]}"
                    )
    except duckdb.Error as exc:
        raise BackupError(f"lake export from {db_path}: {first_line(exc)}") from None
    finally:
        con.close()
    return rows


def _drop_stale_staging(root: Path) -> None:
    """Remove staging folders an interrupted export left (older than six hours: one export
    writes a lake at a time, and none takes that long)."""
    if not root.is_dir():
        return
    for path in root.glob(_STAGING_PREFIX + "*"):
        if path.is_dir() and time.time() - path.stat().st_mtime > _STALE_STAGING_SECONDS:
            shutil.rmtree(path, ignore_errors=True)


def _files(staging: Path) -> dict[str, int]:
    return {
        p.relative_to(staging).as_posix(): p.stat().st_size
        for p in sorted(staging.rglob("*"))
        if p.is_file()
    }


def _publish_local(root: Path, staging: Path, tables: tuple[str, ...], manifest: bytes) -> None:
    """Swap each table folder in (old out, new in: two renames), then the manifest."""
    retired = staging / ".retired"
    retired.mkdir()
    try:
        for name in tables:
            live = root / name
            if live.exists():
                os.rename(live, retired / name)
            os.rename(staging / name, live)
        tmp = staging / MANIFEST
        tmp.write_bytes(manifest)
        os.replace(tmp, root / MANIFEST)
    except OSError as exc:
        raise BackupError(f"{root}: cannot publish the lake: {exc}") from None


def _publish_s3(
    target: Store,
    staging: Path,
    files: dict[str, int],
    existing: dict[str, int],
    body: bytes,
    tables: tuple[str, ...],
) -> None:
    """Upload every file (fixed names: each PUT replaces its object whole), check them
    listed with their sizes, put the manifest, then delete the objects of the exported
    tables' folders that the export no longer has (a vanished partition)."""
    for key in files:
        target.put_file(staging / key, key)
    listed = target.list_keys()
    missing = [k for k, size in files.items() if listed.get(k) != size]
    if missing:
        raise BackupError(f"{target.url}: {len(missing)} lake file(s) not stored: {missing[0]}")
    target.put_bytes(MANIFEST, body)
    folders = tuple(name + "/" for name in tables)
    stale = [k for k in existing if k.startswith(folders) and k not in files]
    if stale:
        target.delete(stale)
