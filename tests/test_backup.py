"""``finloom backup`` / ``finloom restore`` against a real S3 API (moto's server on
127.0.0.1) and a local folder: every table restored row for row (counts and a hash of all
columns), retention, and every failure (missing bucket, refused credentials, corrupt or
truncated file, tampered manifest, unknown id, an existing database) in one line, with
the database at the target path never damaged."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import moto.settings
import pytest

from finloom_core.backup import (
    MANIFEST,
    create_backup,
    list_backups,
    restore_backup,
    table_fingerprint,
)
from finloom_core.errors import BackupError, InputError
from finloom_core.storage.database import open_warehouse
from finloom_core.storage.published import current_snapshot
from finloom_core.storage.schema import MIGRATIONS, SCHEMA_VERSION
from tests import s3_server as servers
from tests.s3_server import S3Server, aws_env, build_warehouse

s3_server = servers.s3_server
s3 = servers.s3


@pytest.fixture(scope="module")
def warehouse(shared_edgar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("backup") / "warehouse.duckdb"
    build_warehouse(shared_edgar, db)
    return db


def fingerprints(db: Path) -> dict[str, tuple[int, str]]:
    with open_warehouse(db, read_only=True) as con:
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            ).fetchall()
        ]
        return {t: table_fingerprint(con, t) for t in sorted(names)}


def data(db: Path) -> dict[str, tuple[int, str]]:
    """Every table but the audit log, which grows with every command and flow run
    recorded in it (the backup's own entry, after the backup was taken)."""
    return {t: f for t, f in fingerprints(db).items() if t != "audit_log"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def existing_db(path: Path) -> str:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE keep_me AS SELECT 42 AS answer")
    con.close()
    return sha256(path)


def test_s3_backup_restores_every_table_row_for_row(
    warehouse: Path, s3: S3Server, tmp_path: Path
) -> None:
    bucket = s3.new_bucket()
    made = create_backup(warehouse, f"s3://{bucket}/prod")
    source = fingerprints(warehouse)
    assert {"companies", "filings", "facts", "financials", "financials_history",
            "quality_scores", "reconciliation_results", "nightly_watermark",
            "nightly_pending", "http_validators", "company_loads",
            "schema_migrations"} <= set(source)  # fmt: skip
    assert all(n > 0 for n, _ in source.values())
    assert made.backup.rows == {t: n for t, (n, _) in source.items()}
    restored = tmp_path / "new.duckdb"
    result = restore_backup(f"s3://{bucket}/prod", restored)
    assert result.backup.id == made.backup.id
    assert fingerprints(restored) == source
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    with open_warehouse(restored) as con:  # a working warehouse: writable, current schema
        assert con.execute("SELECT max(version) FROM schema_migrations").fetchall()[0][0] == (
            SCHEMA_VERSION
        )


def test_keep_lists_and_restores_by_id(warehouse: Path, tmp_path: Path) -> None:
    folder = str(tmp_path / "backups")
    ids = [create_backup(warehouse, folder, keep=2).backup.id for _ in range(3)]
    assert len(set(ids)) == 3
    assert [b.id for b in list_backups(folder)] == ids[1:]
    assert not (tmp_path / "backups" / ids[0]).exists()
    restored = tmp_path / "r.duckdb"
    assert restore_backup(folder, restored, backup_id=ids[1]).backup.id == ids[1]
    with pytest.raises(InputError, match=f"backup '{ids[0]}' does not exist"):
        restore_backup(folder, tmp_path / "other.duckdb", backup_id=ids[0])
    assert not (tmp_path / "other.duckdb").exists()


def test_an_incomplete_backup_is_never_listed_nor_restored(warehouse: Path, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    good = create_backup(warehouse, str(folder)).backup.id
    partial = folder / "29991231T235959Z"
    partial.mkdir()
    (partial / "00-companies.parquet").write_bytes(b"PAR1")
    assert [b.id for b in list_backups(str(folder))] == [good]
    assert restore_backup(str(folder), tmp_path / "r.duckdb").backup.id == good


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
def test_a_damaged_file_fails_and_leaves_the_existing_database(
    warehouse: Path, s3: S3Server, tmp_path: Path, damage: str
) -> None:
    bucket = s3.new_bucket()
    backup_id = create_backup(warehouse, f"s3://{bucket}/b").backup.id
    client = s3.client()
    key = next(
        o["Key"]
        for o in client.list_objects_v2(Bucket=bucket)["Contents"]
        if o["Key"].endswith("-facts.parquet")
    )
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    if damage == "truncated":
        body = body[: len(body) // 2]
    else:
        middle = len(body) // 2
        body = body[:middle] + bytes([body[middle] ^ 1]) + body[middle + 1 :]
    client.put_object(Bucket=bucket, Key=key, Body=body)
    target = tmp_path / "prod.duckdb"
    before = existing_db(target)
    needle = "bytes, the manifest says" if damage == "truncated" else "fails its SHA-256"
    with pytest.raises(BackupError, match=needle) as caught:
        restore_backup(f"s3://{bucket}/b", target, force=True)
    assert backup_id in str(caught.value)
    assert sha256(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prod.duckdb"]


def test_a_tampered_manifest_fails_the_content_check(warehouse: Path, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    backup_id = create_backup(warehouse, str(folder)).backup.id
    path = folder / backup_id / MANIFEST
    manifest = json.loads(path.read_text())
    facts = next(t for t in manifest["tables"] if t["name"] == "facts")
    facts["hash"] = str(int(facts["hash"]) + 1)
    path.write_text(json.dumps(manifest))
    target = tmp_path / "r.duckdb"
    with pytest.raises(BackupError, match=r"table facts restored .* hash"):
        restore_backup(str(folder), target)
    assert not target.exists()
    path.write_text("{not json")
    with pytest.raises(BackupError, match="bad manifest"):
        restore_backup(str(folder), target)
    assert not target.exists()


def test_an_existing_database_needs_force_and_its_old_log_goes(
    warehouse: Path, tmp_path: Path
) -> None:
    folder = str(tmp_path / "backups")
    create_backup(warehouse, folder)
    target = tmp_path / "prod.duckdb"
    before = existing_db(target)
    with pytest.raises(InputError, match="exists and is not empty: pass --force"):
        restore_backup(folder, target)
    assert sha256(target) == before
    wal = tmp_path / "prod.duckdb.wal"
    wal.write_bytes(b"an old write-ahead log")
    restore_backup(folder, target, force=True)
    assert not wal.exists()
    assert fingerprints(target) == fingerprints(warehouse)


def test_an_older_schema_backup_is_restored_then_migrated(tmp_path: Path) -> None:
    old = tmp_path / "v6.duckdb"
    con = duckdb.connect(str(old))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description VARCHAR"
        " NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    for migration in MIGRATIONS:
        if migration.version <= 6:
            for statement in migration.statements:
                con.execute(statement)
            con.execute(
                "INSERT INTO schema_migrations (version, description) VALUES (?, ?)",
                [migration.version, migration.description],
            )
    con.execute("INSERT INTO nightly_watermark VALUES (1, DATE '2025-01-02', now())")
    con.close()
    folder = str(tmp_path / "backups")
    assert create_backup(old, folder).backup.schema_version == 6
    restored = tmp_path / "r.duckdb"
    restore_backup(folder, restored)
    found = fingerprints(restored)
    assert found["nightly_watermark"] == fingerprints(old)["nightly_watermark"]
    assert "http_validators" in found  # migration 7 ran after the restore
    assert found["schema_migrations"][0] == SCHEMA_VERSION


def test_a_missing_bucket_and_refused_credentials_are_one_line_errors(
    warehouse: Path, s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(BackupError, match="bucket 'no-such-bucket' does not exist"):
        create_backup(warehouse, "s3://no-such-bucket/b")
    bucket = s3.new_bucket()
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto checks keys
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOTAKEY")
    with pytest.raises(BackupError) as caught:
        create_backup(warehouse, f"s3://{bucket}/b")
    assert "\n" not in str(caught.value) and f"s3://{bucket}/b" in str(caught.value)
    assert "check the AWS credentials" in str(caught.value)
    with pytest.raises(BackupError):
        restore_backup(f"s3://{bucket}/b", tmp_path / "r.duckdb")
    assert not (tmp_path / "r.duckdb").exists()


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


def one_line_error(done: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert done.returncode == code, done
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], done.stderr


def test_cli_backup_list_restore_and_errors(
    warehouse: Path, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.new_bucket()
    env = aws_env(s3_server)
    url = f"s3://{bucket}/prod"
    done = finloom(tmp_path, "backup", "--to", url, "--keep", "3", "--db", str(warehouse), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("backup ")
    backup_id = done.stdout.split()[1]
    listed = finloom(tmp_path, "backup", "--list", "--to", url, env=env)
    assert listed.returncode == 0 and backup_id in listed.stdout
    restored = tmp_path / "new.duckdb"
    done = finloom(tmp_path, "restore", "--from", url, "--db", str(restored), env=env)
    assert done.returncode == 0, done.stderr
    assert f"restored backup {backup_id}" in done.stdout
    assert data(restored) == data(warehouse)
    published = current_snapshot(restored)  # readers get the restored warehouse at once
    assert published is not None and data(published) == data(warehouse)
    before = sha256(restored)
    again = finloom(tmp_path, "restore", "--from", url, "--db", str(restored), env=env)
    one_line_error(again, 2, "pass --force")
    unknown = finloom(
        tmp_path, "restore", "--from", url, "--id", "20000101T000000Z", "--db",
        str(tmp_path / "x.duckdb"), env=env,
    )  # fmt: skip
    one_line_error(unknown, 2, "does not exist")
    missing = finloom(tmp_path, "backup", "--to", "s3://no-such-bucket/p", "--db",
                      str(warehouse), env=env)  # fmt: skip
    one_line_error(missing, 1, "does not exist")
    assert sha256(restored) == before
    assert not (tmp_path / "x.duckdb").exists()


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness")
def test_the_backup_flow_backs_up_and_prunes(warehouse: Path, tmp_path: Path) -> None:
    from flows.backup import backup

    folder = str(tmp_path / "backups")
    backup(to=folder, keep=1, db_path=str(warehouse))
    second = backup(to=folder, keep=1, db_path=str(warehouse))
    assert [b.id for b in list_backups(folder)] == [second.backup.id]
    restored = tmp_path / "r.duckdb"
    restore_backup(folder, restored)
    assert data(restored) == data(warehouse)
