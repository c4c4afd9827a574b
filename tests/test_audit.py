"""The audit log: one hash-chained entry per operation; ``finloom audit`` lists it and
``finloom audit verify`` fails, naming the entry, after any row is changed or removed."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from finloom_core import audit
from finloom_core.records import CompanyOutcome, Status
from finloom_core.storage.database import open_warehouse
from finloom_core.storage.published import current_snapshot, is_stale, publish
from finloom_ops.observe import ObservedRun

SMALL = ("CIK0001640147.json", "CIK0001835632.json")  # two small real companies


def cli(*args: str) -> Any:
    from finloom_cli.main import app

    return CliRunner().invoke(app, list(args))


def error_lines(result: Any) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A warehouse with three entries: a success, a failure, a success."""
    monkeypatch.chdir(tmp_path)  # no .env
    path = tmp_path / "w.duckdb"
    with open_warehouse(path):
        pass
    audit.record(path, "export", {"to": "lake/"}, counts={"rows": 10, "files": 2})
    audit.record(path, "backup", {"to": "s3://b/p"}, audit.FAILED, "BackupError: no bucket")
    audit.record(path, "backfill", {"ciks": [320193]}, counts={"companies_loaded": 1})
    return path


def listed(db: Path, *extra: str) -> list[dict[str, Any]]:
    result = cli("audit", "--json", "--db", str(db), *extra)
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


def verified(db: Path) -> Any:
    return cli("audit", "verify", "--db", str(db))


def test_entries_form_a_chain_and_list_as_json(db: Path) -> None:
    rows = listed(db)
    assert [(r["seq"], r["action"], r["outcome"]) for r in rows] == [
        (1, "export", "success"), (2, "backup", "failed"), (3, "backfill", "success"),
    ]  # fmt: skip
    assert {"at", "actor", "action", "parameters", "outcome", "counts", "hash"} <= set(rows[0])
    assert rows[1]["reason"] == "BackupError: no bucket" and rows[0]["reason"] is None
    assert rows[0]["actor"]["user"] == audit.os_user() and rows[0]["actor"]["host"]
    assert rows[0]["counts"] == {"rows": 10, "files": 2}
    assert rows[0]["prev_hash"] == audit.GENESIS
    assert [r["prev_hash"] for r in rows[1:]] == [r["hash"] for r in rows[:-1]]
    for row in rows:  # the documented canonical form: every field but hash, sorted, compact
        fields = {k: v for k, v in row.items() if k != "hash"}
        text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        assert audit.entry_hash(fields) == row["hash"]
        assert hashlib.sha256(text.encode()).hexdigest() == row["hash"]
    assert json.loads(audit.head_path(db).read_text())["seq"] == 3
    done = verified(db)
    assert done.exit_code == 0, done.output
    assert "3 entries, chain intact" in done.stdout and rows[-1]["hash"] in done.stdout


def test_since_filters_and_bad_input_is_one_line_exit_2(db: Path) -> None:
    assert len(listed(db, "--since", "2000-01-01")) == 3
    assert listed(db, "--since", "2999-01-01T00:00:00Z") == []
    bad = cli("audit", "--since", "yesterday-ish", "--db", str(db))
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert len(error_lines(bad)) == 1 and "--since" in error_lines(bad)[0]
    missing = cli("audit", "verify", "--db", str(db.with_name("none.duckdb")))
    assert missing.exit_code == 2 and len(error_lines(missing)) == 1


CHANGES = {
    "seq": "seq = seq + 10",
    "at": '"at" = "at" + INTERVAL 1 SECOND',
    "actor": """actor = '{"user": "mallory", "host": "x"}'""",
    "action": "action = 'export'",
    "parameters": """parameters = '{"ciks": [1]}'""",
    "outcome": "outcome = CASE outcome WHEN 'success' THEN 'failed' ELSE 'success' END",
    "reason": "reason = coalesce(reason || '!', 'fine')",
    "counts": """counts = '{"companies_loaded": 99}'""",
    "prev_hash": "prev_hash = repeat('a', 64)",
    "hash": "hash = repeat('b', 64)",
}


def tamper(db: Path, sql: str, *params: Any) -> None:
    with duckdb.connect(str(db)) as con:
        con.execute(sql, list(params))


def assert_broken_at(db: Path, seq: int, *needles: str) -> None:
    result = verified(db)
    assert result.exit_code == 1, result.output
    (line,) = error_lines(result)
    assert f"entry #{seq} " in line, line
    for needle in needles:
        assert needle in line, line


@pytest.mark.parametrize("column", sorted(CHANGES))
@pytest.mark.parametrize("seq", [2, 3], ids=["middle", "newest"])
def test_verify_names_the_entry_after_any_column_of_any_row_changes(
    db: Path, column: str, seq: int
) -> None:
    assert verified(db).exit_code == 0
    tamper(db, f"UPDATE audit_log SET {CHANGES[column]} WHERE seq = ?", seq)
    assert_broken_at(db, seq)


def test_an_update_that_recomputes_the_hash_breaks_the_link_or_the_head(db: Path) -> None:
    """A forger rewriting entry #2 with a correct hash of its new content: entry #3 still
    links to the old hash; doing the same to the newest entry, the head names it."""
    for seq in (2, 3):
        with duckdb.connect(str(db)) as con:
            row = con.execute(
                f"SELECT {audit._COLUMNS} FROM audit_log WHERE seq = ?", [seq]
            ).fetchone()
            assert row is not None
            entry = audit._entry(row)
            forged = {**entry.fields(), "outcome": "success", "reason": None}
            con.execute(
                "UPDATE audit_log SET outcome = 'success', reason = NULL, hash = ? WHERE seq = ?",
                [audit.entry_hash(forged), seq],
            )
        assert_broken_at(db, seq, "was changed")


@pytest.mark.parametrize("seq", [1, 2, 3], ids=["first", "middle", "newest"])
def test_verify_names_a_deleted_entry_even_the_newest(db: Path, seq: int) -> None:
    tamper(db, "DELETE FROM audit_log WHERE seq = ?", seq)
    assert_broken_at(db, seq, "removed")


def test_the_newest_entry_deleted_stays_visible_after_the_next_entry(db: Path) -> None:
    tamper(db, "DELETE FROM audit_log WHERE seq = 3")
    entry = audit.record(db, "export", {"to": "lake/"})
    assert entry is not None and entry.seq == 4  # chained to the head: #3, not the table
    assert_broken_at(db, 3, "removed")


def test_every_entry_deleted_or_the_head_removed_fails(db: Path, tmp_path: Path) -> None:
    tamper(db, "DELETE FROM audit_log")
    assert_broken_at(db, 1, "removed")
    other = tmp_path / "o.duckdb"
    with open_warehouse(other):
        pass
    assert verified(other).exit_code == 0  # no entry, no head: nothing to vouch for
    audit.record(other, "export")
    audit.head_path(other).unlink()
    assert_broken_at(other, 2, "no chain head")
    audit.head_path(other).write_text("garbage")
    assert_broken_at(other, 2, "unreadable")


def test_an_entry_added_by_hand_is_not_in_the_head(db: Path) -> None:
    with duckdb.connect(str(db)) as con:
        last = con.execute("SELECT hash FROM audit_log WHERE seq = 3").fetchone()
        assert last is not None
        fields = {"seq": 4, "at": "2026-01-01T00:00:00.000000Z", "actor": {}, "action": "x",
                  "parameters": {}, "outcome": "success", "reason": None, "counts": {},
                  "prev_hash": last[0]}  # fmt: skip
        con.execute(
            f"INSERT INTO audit_log ({audit._COLUMNS}) VALUES"
            " (4, TIMESTAMP '2026-01-01', '{}', 'x', '{}', 'success', NULL, '{}', ?, ?)",
            [last[0], audit.entry_hash(fields)],
        )
    assert_broken_at(db, 4, "not in the chain head")


def test_secrets_are_redacted_before_hashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from finloom_core import redact

    monkeypatch.setenv("FINLOOM_SERVE_TOKEN", "s3cr3t-token-value")
    redact.refresh_secrets()
    db = tmp_path / "w.duckdb"
    with open_warehouse(db):
        pass
    entry = audit.record(
        db, "secret set",
        {"name": "serve_token", "value": "s3cr3t-token-value", "api_key": "k-1234",
         "to": "s3://user:hunter22@host/x"},
        audit.FAILED, "HTTPError: http://u:hunter22@host/ s3cr3t-token-value",
    )  # fmt: skip
    assert entry is not None
    stored = db.read_bytes() + audit.head_path(db).read_bytes()
    for secret in (b"s3cr3t-token-value", b"k-1234", b"hunter22"):
        assert secret not in stored
    assert entry.parameters["value"] == "***" and entry.parameters["api_key"] == "***"
    assert entry.parameters["to"] == "s3://***@host/x" and "***" in str(entry.reason)
    monkeypatch.delenv("FINLOOM_SERVE_TOKEN")
    redact.refresh_secrets()


def test_an_entry_that_cannot_be_written_is_a_warning_never_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="finloom_core.audit"):
        assert audit.record(tmp_path / "none.duckdb", "export") is None
        assert not (tmp_path / "none.duckdb").exists()  # never created for an entry
        db = tmp_path / "w.duckdb"
        with open_warehouse(db):
            pass
        with duckdb.connect(str(db), read_only=True):  # cannot be opened for writing now
            assert audit.record(db, "export", outcome=audit.FAILED, reason="x") is None
    messages = [r.getMessage() for r in caplog.records]
    assert any("does not exist" in m for m in messages), messages
    assert any("the export entry (failed) was NOT recorded" in m for m in messages), messages


def test_an_audit_entry_alone_leaves_the_published_copy_current(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with open_warehouse(db):
        pass
    publish(db)
    assert not is_stale(db)
    assert audit.record(db, "export") is not None
    assert not is_stale(db) and current_snapshot(db) is not None
    with open_warehouse(db) as con:
        con.execute("CREATE TABLE written (x INTEGER)")
    assert is_stale(db)


def test_restore_adopts_the_restored_chain_and_records_itself(db: Path, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    done = cli("backup", "--to", str(folder), "--db", str(db))
    assert done.exit_code == 0, done.output
    target = tmp_path / "r.duckdb"
    restored = cli("restore", "--from", str(folder), "--db", str(target))
    assert restored.exit_code == 0, restored.output
    rows = listed(target)
    assert [r["action"] for r in rows] == ["export", "backup", "backfill", "restore"]
    assert rows[-1]["counts"]["audit_entries_restored"] == 3
    assert verified(target).exit_code == 0
    source = listed(db)  # the backup itself is recorded in the warehouse it read
    assert source[-1]["action"] == "backup" and source[-1]["outcome"] == "success"
    assert source[-1]["counts"]["tables"] == rows[-1]["counts"]["tables"]
    refused = cli("restore", "--from", str(folder), "--db", str(target))
    assert refused.exit_code == 2  # not recorded: the database at --db stays untouched
    assert len(listed(target)) == 4 and verified(target).exit_code == 0


def test_a_run_counts_its_loads() -> None:
    run = ObservedRun("backfill")
    run.add_loads(
        [
            CompanyOutcome(1, Status.LOADED, facts=10),
            CompanyOutcome(2, Status.UNCHANGED, facts=7),
            CompanyOutcome(3, Status.FAILED, reason="x"),
        ],
        {1: 4, 2: 7},
    )
    run.add_loads([CompanyOutcome(4, Status.LOADED, facts=5)], {1: 4, 2: 7})
    assert run.counts == {
        "companies": 4, "companies_loaded": 2, "companies_failed": 1,
        "facts_added": 15, "facts_removed": 4,
    }  # fmt: skip


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness", "clean_finloom_env")
def test_flow_runs_successful_and_failed_are_recorded_with_actor_and_counts(
    shared_edgar: Path, tmp_path: Path
) -> None:
    from flows.backfill import backfill

    folder = tmp_path / "edgar" / "companyfacts"
    folder.mkdir(parents=True)
    for name in SMALL:
        (folder / name).symlink_to(shared_edgar / "companyfacts" / name)
    db, source = tmp_path / "w.duckdb", str(folder.parent)
    first = backfill(source=source, db_path=str(db), quality=False)
    with open_warehouse(db) as con:  # every company's facts replaced by the next run
        con.execute("UPDATE company_loads SET facts_sha256 = 'changed'")
    backfill(source=source, db_path=str(db), quality=False)
    failed = backfill(
        source=str(tmp_path / "no-such-folder"), db_path=str(db), quality=False, return_state=True
    )
    assert failed.is_failed()

    rows = listed(db)
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("backfill", "success"), ("backfill", "success"), ("backfill", "failed"),
    ]  # fmt: skip
    for row in rows:
        assert row["actor"]["user"] == audit.os_user() and row["actor"]["flow_run_id"]
        assert row["at"].endswith("Z") and row["parameters"]["db_path"] == str(db)
    loaded = first["facts_written"]
    assert rows[0]["counts"] == {
        "companies": 2,
        "companies_loaded": 2,
        "facts_added": loaded,
        "facts_removed": 0,
    }
    assert rows[1]["counts"]["facts_added"] == rows[1]["counts"]["facts_removed"] == loaded
    assert "no-such-folder" in rows[2]["reason"] and rows[2]["reason"].startswith("SourceError")
    assert len({r["actor"]["flow_run_id"] for r in rows}) == 3
    assert verified(db).exit_code == 0
    tamper(db, "UPDATE audit_log SET outcome = 'success', reason = NULL WHERE seq = 3")
    assert_broken_at(db, 3, "was changed")


HOLDER = """
import sys, time
import duckdb
con = duckdb.connect(sys.argv[1])
print("ready", flush=True)
time.sleep(120)
"""


def test_a_locked_warehouse_lists_its_published_copy_and_verify_says_locked(db: Path) -> None:
    publish(db)
    audit.record(db, "export", {"to": "after-the-publish/"})
    text = cli("audit", "--db", str(db))
    assert text.exit_code == 0 and "#4  " in text.stdout
    assert "reason: BackupError: no bucket" in text.stdout and "files=2 rows=10" in text.stdout
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ready"
        shown = cli("audit", "--json", "--db", str(db))
        assert shown.exit_code == 0 and "locked by a running load" in shown.stderr
        rows = json.loads(shown.stdout)  # the published copy: not the entry written after it
        assert [r["seq"] for r in rows] == [1, 2, 3]
        locked = verified(db)
    finally:
        holder.terminate()
        holder.wait(timeout=30)
    assert locked.exit_code == 2 and "Traceback" not in locked.output
    assert len(error_lines(locked)) == 1 and "locked" in error_lines(locked)[0]
    assert verified(db).exit_code == 0
