"""Backups of the whole warehouse, and their verified restore.

A backup is a folder ``<to>/<id>/`` (``<to>`` a local folder or ``s3://bucket/prefix``;
``<id>`` the UTC time it started, ``20261129T154211Z``) holding one zstd Parquet file per
table (every table of the warehouse, ``schema_migrations`` included) and ``manifest.json``,
written last: a backup without it is incomplete and never listed nor restored. The manifest
records, per table, its row count, a content hash (the sum of DuckDB's ``hash()`` of every
row, all columns, as a HUGEINT: independent of row order) and the file's SHA-256 and size,
plus the warehouse's schema version. Every table is read in one read-only transaction, so
a backup is one consistent snapshot of ``db_path``.

A restore never touches ``db_path`` until the very end: it downloads a backup beside it,
checks every file's size and SHA-256, builds a new database in a temporary file (the
schema by FinLoom's own migrations up to the backup's version, the rows by one bulk insert
per table), checks every table's row count and content hash against the manifest, applies
the newer migrations, checkpoints, and only then renames the file onto ``db_path``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from finloom_core.errors import BackupError, DatabaseLockedError, InputError, first_line
from finloom_core.lake import sql_literal
from finloom_core.s3 import Store, open_store
from finloom_core.settings import DEFAULT_MEMORY_LIMIT
from finloom_core.sql import quote_ident, table_names, transaction
from finloom_core.storage.database import connect, open_warehouse
from finloom_core.storage.schema import MIGRATIONS, SCHEMA_VERSION, current_version, migrate
from finloom_core.storage.status import probe_file

BACKUP_FORMAT = "finloom-backup"
BACKUP_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd"
# schema.migrate's own bookkeeping table (restored with its rows, not by a migration)
SCHEMA_MIGRATIONS_DDL = (
    "CREATE TABLE schema_migrations ("
    " version INTEGER PRIMARY KEY, description VARCHAR NOT NULL,"
    " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
)


@dataclass(frozen=True, slots=True)
class BackupInfo:
    id: str
    created_at: str
    schema_version: int
    rows: dict[str, int]
    bytes: int


@dataclass(frozen=True, slots=True)
class BackupResult:
    location: str
    backup: BackupInfo
    pruned: list[str]
    seconds: float


@dataclass(frozen=True, slots=True)
class RestoreResult:
    location: str
    backup: BackupInfo
    db_path: Path
    seconds: float


def table_fingerprint(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, str]:
    """(row count, content hash) of ``table``: the sum of ``hash(row)`` over all columns,
    order-independent (a HUGEINT as text)."""
    rows = con.execute(
        f"SELECT count(*), coalesce(sum(hash(finloom_row)::HUGEINT), 0)::VARCHAR"
        f" FROM {quote_ident(table)} AS finloom_row"
    ).fetchall()
    return int(rows[0][0]), str(rows[0][1])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _info(manifest: dict[str, Any]) -> BackupInfo:
    tables = manifest["tables"]
    return BackupInfo(
        id=str(manifest["id"]),
        created_at=str(manifest["created_at"]),
        schema_version=int(manifest["schema_version"]),
        rows={t["name"]: int(t["rows"]) for t in tables},
        bytes=sum(int(t["bytes"]) for t in tables),
    )


def create_backup(
    db_path: Path | str,
    to: str,
    *,
    keep: int | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> BackupResult:
    """Back up the warehouse at ``db_path`` (opened read-only: point it at a published
    snapshot to never wait for a load) to ``to``; then keep the newest ``keep`` backups."""
    if keep is not None and keep < 1:
        raise InputError(f"--keep {keep}: keep at least 1 backup")
    started = time.perf_counter()
    store = open_store(to)
    store.check()
    taken = set(_backup_ids(store))
    stamp = datetime.now(UTC)
    backup_id = stamp.strftime("%Y%m%dT%H%M%SZ")
    n = 1
    while backup_id in taken:
        n += 1
        backup_id = f"{stamp.strftime('%Y%m%dT%H%M%SZ')}-{n}"
    staging = Path(tempfile.mkdtemp(prefix="finloom-backup-"))
    uploaded: list[str] = []
    try:
        tables, version = _dump(db_path, staging, memory_limit)
        manifest = {
            "format": BACKUP_FORMAT,
            "format_version": BACKUP_FORMAT_VERSION,
            "id": backup_id,
            "created_at": stamp.isoformat(timespec="seconds"),
            "source": str(db_path),
            "schema_version": version,
            "duckdb_version": duckdb.__version__,
            "tables": tables,
        }
        for table in tables:
            key = f"{backup_id}/{table['file']}"
            store.put_file(staging / table["file"], key)
            uploaded.append(key)
        body = json.dumps(manifest, indent=2).encode()
        store.put_bytes(f"{backup_id}/{MANIFEST}", body)  # last: the backup now exists
    except BaseException:
        with suppress(BackupError):  # if not: incomplete, never listed nor restored
            store.delete(uploaded)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    pruned = prune_backups(store, keep) if keep is not None else []
    return BackupResult(store.url, _info(manifest), pruned, time.perf_counter() - started)


def _dump(
    db_path: Path | str, staging: Path, memory_limit: str
) -> tuple[list[dict[str, Any]], int]:
    """Every table to ``staging/<table>.parquet`` in one read-only transaction."""
    con = connect(db_path, read_only=True, memory_limit=memory_limit)
    tables: list[dict[str, Any]] = []
    try:
        with transaction(con):
            names = table_names(con)
            if "schema_migrations" not in names:
                raise BackupError(f"{db_path} is not a FinLoom warehouse (no schema_migrations)")
            version = current_version(con)
            for index, name in enumerate(names):
                rows, content = table_fingerprint(con, name)
                file = f"{index:02d}-{name}.parquet"
                target = sql_literal(staging / file)
                con.execute(f"COPY {quote_ident(name)} TO {target} ({PARQUET_OPTIONS})")
                path = staging / file
                tables.append(
                    {
                        "name": name,
                        "file": file,
                        "rows": rows,
                        "hash": content,
                        "sha256": _sha256(path),
                        "bytes": path.stat().st_size,
                    }
                )
    except duckdb.Error as exc:
        raise BackupError(f"backup of {db_path}: {first_line(exc)}") from None
    finally:
        con.close()
    return tables, version


def _backup_ids(store: Store) -> dict[str, bool]:
    """Every backup folder -> whether it is complete (has its manifest), oldest first."""
    found: dict[str, bool] = {}
    for key in store.list_keys():
        head, _, rest = key.partition("/")
        if rest and head[:1].isdigit():
            found[head] = found.get(head, False) or rest == MANIFEST
    return dict(sorted(found.items()))


def _read_manifest(store: Store, backup_id: str) -> dict[str, Any]:
    raw = store.get_bytes(f"{backup_id}/{MANIFEST}")
    try:
        manifest = json.loads(raw)
        if manifest.get("format") != BACKUP_FORMAT or manifest.get("id") != backup_id:
            raise ValueError("not a FinLoom backup manifest")
        if int(manifest["format_version"]) > BACKUP_FORMAT_VERSION:
            raise ValueError(f"format version {manifest['format_version']} is newer than this")
        for table in manifest["tables"]:
            for field in ("name", "file", "rows", "hash", "sha256", "bytes"):
                if field not in table:
                    raise ValueError(f"table entry without {field}")
            if "/" in table["file"] or table["file"].startswith("."):
                raise ValueError(f"bad file name {table['file']!r}")
        _info(manifest)
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"backup {backup_id} at {store.url}: bad manifest: {exc}") from None
    return dict(manifest)


def list_backups(location: str) -> list[BackupInfo]:
    """The complete backups at ``location``, oldest first."""
    store = open_store(location)
    store.check()
    ids = [i for i, complete in _backup_ids(store).items() if complete]
    return [_info(_read_manifest(store, i)) for i in ids]


def prune_backups(store: Store, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` complete backups, and incomplete folders older
    than the oldest backup kept (leftovers of failed runs); return the ids deleted."""
    ids = _backup_ids(store)
    complete = [i for i, done in ids.items() if done]
    if not complete:
        return []
    doomed = complete[:-keep] if keep < len(complete) else []
    oldest_kept = complete[-keep] if keep <= len(complete) else complete[0]
    doomed += [i for i, done in ids.items() if not done and i < oldest_kept]
    if doomed:
        keys = [k for k in store.list_keys() if k.split("/", 1)[0] in set(doomed)]
        store.delete(keys)
    return sorted(doomed)


def restore_backup(
    location: str,
    db_path: Path | str,
    *,
    backup_id: str | None = None,
    force: bool = False,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> RestoreResult:
    """Restore the newest (or the named) backup at ``location`` as the database at
    ``db_path``, verified against its manifest first; an existing non-empty database is
    replaced only with ``force`` (and never while another process holds it)."""
    started = time.perf_counter()
    db_path = Path(db_path).expanduser()
    _check_target(db_path, force)
    store = open_store(location)
    store.check()
    ids = _backup_ids(store)
    complete = [i for i, done in ids.items() if done]
    if backup_id is None:
        if not complete:
            raise BackupError(f"no backup at {store.url}")
        backup_id = complete[-1]
    elif backup_id not in complete:
        known = ", ".join(complete[-3:]) or "none"
        state = "is incomplete" if backup_id in ids else "does not exist"
        raise InputError(f"backup {backup_id!r} {state} at {store.url} (latest: {known})")
    manifest = _read_manifest(store, backup_id)
    if int(manifest["schema_version"]) > SCHEMA_VERSION:
        raise BackupError(
            f"backup {backup_id} is schema v{manifest['schema_version']}; this FinLoom "
            f"knows up to v{SCHEMA_VERSION}: restore it with a newer FinLoom"
        )
    db_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{db_path.name}.restore-", dir=db_path.parent))
    try:
        for table in manifest["tables"]:
            _download_checked(store, backup_id, table, work)
        built = work / "restore.duckdb"
        _build(built, manifest, work, memory_limit)
        _check_target(db_path, force)  # still free to replace, right before the swap
        wal = db_path.with_name(db_path.name + ".wal")
        wal.unlink(missing_ok=True)  # an old log must never replay into the new file
        built.replace(db_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with open_warehouse(db_path, memory_limit=memory_limit):
        pass  # publishes the restored warehouse's status (row counts) beside it
    return RestoreResult(store.url, _info(manifest), db_path, time.perf_counter() - started)


def _check_target(db_path: Path, force: bool) -> None:
    if not db_path.exists():
        return
    if db_path.is_dir():
        raise InputError(f"{db_path} is a folder, not a database file")
    if db_path.stat().st_size > 0 and not force:
        raise InputError(f"database {db_path} exists and is not empty: pass --force to replace it")
    try:
        lock = probe_file(db_path).lock
    except OSError as exc:
        raise InputError(f"database {db_path} cannot be read: {exc.strerror or exc}") from None
    if lock is not None:
        who = f" (PID {lock.pid})" if lock.pid else ""
        raise DatabaseLockedError(
            f"database {db_path} is open in another process{who}: stop it first",
            path=str(db_path),
        )


def _download_checked(store: Store, backup_id: str, table: dict[str, Any], work: Path) -> None:
    local = work / table["file"]
    store.get_file(f"{backup_id}/{table['file']}", local)
    size = local.stat().st_size
    if size != int(table["bytes"]):
        raise BackupError(
            f"backup {backup_id}: {table['file']} is {size} bytes, the manifest says "
            f"{table['bytes']} (truncated or replaced)"
        )
    if _sha256(local) != table["sha256"]:
        raise BackupError(f"backup {backup_id}: {table['file']} fails its SHA-256 checksum")


def _build(path: Path, manifest: dict[str, Any], work: Path, memory_limit: str) -> None:
    """The schema by FinLoom's migrations up to the backup's version, every table's rows
    by one bulk insert, each table verified (rows, content hash); then newer migrations."""
    version = int(manifest["schema_version"])
    backup_id = manifest["id"]
    con = duckdb.connect(str(path))
    try:
        con.execute(f"SET memory_limit = {sql_literal(memory_limit)}")
        with transaction(con):
            con.execute(SCHEMA_MIGRATIONS_DDL)
            for migration in MIGRATIONS:
                if migration.version <= version:
                    for statement in migration.statements:
                        con.execute(statement)
            catalog = set(table_names(con))
            names = {t["name"] for t in manifest["tables"]}
            if names != catalog:
                odd = sorted(names ^ catalog)
                raise BackupError(
                    f"backup {backup_id}: its tables do not match schema v{version} ({odd[0]})"
                )
            for table in manifest["tables"]:
                con.execute(
                    f"INSERT INTO {quote_ident(table['name'])} BY NAME"
                    " SELECT * FROM read_parquet(?)",
                    [str(work / table["file"])],
                )
                rows, content = table_fingerprint(con, table["name"])
                if (rows, content) != (int(table["rows"]), str(table["hash"])):
                    raise BackupError(
                        f"backup {backup_id}: table {table['name']} restored {rows} rows with "
                        f"hash {content}; the manifest says {table['rows']} rows, "
                        f"hash {table['hash']}"
                    )
        migrate(con)  # newer migrations, each in its own transaction
        con.execute("CHECKPOINT")
    except duckdb.Error as exc:
        raise BackupError(f"restore of backup {backup_id}: {first_line(exc)}") from None
    finally:
        con.close()
