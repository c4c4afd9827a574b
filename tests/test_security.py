"""Security checks of what users and documents hand FinLoom: database paths, archive member
names, settings; each refusal is one line with exit code 2."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from finloom_core.errors import ConfigurationError
from finloom_core.storage.database import check_local_path, connect
from tests.test_cli import finloom

# DuckDB opens these as a MotherDuck, S3, HTTP or in-memory database, downloading and
# installing an extension first for the remote ones: never what `--db` means.
NOT_FILES = ("md:warehouse", "motherduck:warehouse", "s3://bucket/w.duckdb",
             "http://127.0.0.1:9/w.duckdb", ":memory:")  # fmt: skip


@pytest.mark.parametrize("given", NOT_FILES)
def test_database_paths_duckdb_reads_as_remote_are_refused(
    given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError) as raised:
        connect(given)
    message = str(raised.value)
    assert "\n" not in message and "not a local file path" in message
    assert list(tmp_path.iterdir()) == []  # nothing created, nothing downloaded


def test_a_local_file_of_such_a_name_is_reached_by_its_absolute_path(tmp_path: Path) -> None:
    local = tmp_path / "md:warehouse"
    assert check_local_path(local) == local
    assert check_local_path("warehouse.duckdb") == Path("warehouse.duckdb")
    assert check_local_path("data/md:x") == Path("data/md:x")  # a folder first: a file


def test_cli_refuses_a_remote_database_in_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "md:warehouse").write_bytes(b"")  # a reader's existence check passes
    for args in (["financials", "AAPL", "--db", "md:warehouse"],
                 ["quality", "reconcile", "--db", "s3://bucket/w.duckdb"]):  # fmt: skip
        result = finloom(tmp_path, *args)
        assert result.code == 2, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "not a local file path" in lines[0], result.stderr
        assert "Traceback" not in result.output
    assert not (tmp_path / "s3:").exists()


def test_a_bad_serve_rate_limit_is_one_line_exit_2(tmp_path: Path) -> None:
    result = finloom(tmp_path, "serve", "--port", "9", env={"FINLOOM_SERVE_RATE_LIMIT": "plenty"})
    assert result.code == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "FINLOOM_SERVE_RATE_LIMIT" in lines[0], result.stderr


def test_archive_member_names_never_become_paths(tmp_path: Path) -> None:
    """Member names only select what is read: a hostile name (``..``, absolute) is read,
    never extracted, and the document is staged under its CIK inside the staging folder."""
    from finloom_core.edgar.archive import ZipSource

    document = {"cik": 1, "entityName": "X", "facts": {}}
    archive = tmp_path / "in" / "companyfacts.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("../../escaped/CIK0000000001.json", json.dumps(document))
        out.writestr("/abs/CIK0000000002.json", json.dumps({**document, "cik": 2}))
    staging = tmp_path / "staging"
    source = ZipSource(archive, staging)
    try:
        assert source.available_ciks() == [1, 2]
        staged = [source.fetch(cik).companyfacts for cik in (1, 2)]
    finally:
        source.close()
    assert [doc.path for doc in staged if doc is not None] == [
        staging / "CIK0000000001.json",
        staging / "CIK0000000002.json",
    ]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "CIK0000000001.json",
        "CIK0000000002.json",
        "companyfacts.zip",
    ]
    assert not (tmp_path / "escaped").exists() and not Path("/abs").exists()
