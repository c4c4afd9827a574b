"""The one transaction shape: a failed COMMIT is rolled back and its error, not the
rollback's, is the one that propagates."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import cast

import duckdb
import pytest

from finloom_core.sql import transaction
from tests.factories import COMMIT_FAILURE, FailingCommit


@pytest.mark.parametrize("ends_transaction", [True, False], ids=["ends", "keeps"])
def test_a_failed_commit_is_rolled_back_and_its_error_propagates(
    tmp_path: Path, ends_transaction: bool
) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as real:
        real.execute("CREATE TABLE t (x INTEGER)")
        con = FailingCommit(real, ends_transaction=ends_transaction)
        with (
            pytest.raises(duckdb.IOException, match="Read-only file system") as raised,
            transaction(cast(duckdb.DuckDBPyConnection, con)),
        ):
            real.execute("INSERT INTO t VALUES (1)")
        assert str(raised.value) == COMMIT_FAILURE  # not "cannot rollback - ..."
        assert con.statements == ["BEGIN", "COMMIT", "ROLLBACK"]
        # the connection is out of the failed transaction: nothing written, usable again
        assert real.execute("SELECT count(*) FROM t").fetchall() == [(0,)]
        with transaction(real):
            real.execute("INSERT INTO t VALUES (2)")
        assert real.execute("SELECT x FROM t").fetchall() == [(2,)]


def test_an_error_in_the_block_wins_over_a_failing_rollback(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as real:
        real.execute("CREATE TABLE t (x INTEGER)")
        with pytest.raises(ValueError, match="the block's own error"), transaction(real):
            real.execute("INSERT INTO t VALUES (1)")
            real.execute("ROLLBACK")  # the transaction is gone: the handler's ROLLBACK fails
            raise ValueError("the block's own error")
        assert real.execute("SELECT count(*) FROM t").fetchall() == [(0,)]


def test_every_transaction_goes_through_the_helper() -> None:
    """No module but sql.py runs BEGIN, COMMIT or ROLLBACK itself (the loader, the schema
    migration, the normalizer and the quality store use ``transaction()``)."""
    root = Path(__file__).resolve().parents[1]
    verbs = re.compile(r"\s*(BEGIN|COMMIT|ROLLBACK|START\s+TRANSACTION)\b", re.IGNORECASE)
    found = []
    for package in ("finloom_core", "finloom_ops", "tasks", "flows", "finloom_cli"):
        for path in sorted((root / package).rglob("*.py")):
            if path == root / "finloom_core" / "sql.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                first = node.args[0] if isinstance(node, ast.Call) and node.args else None
                if (
                    isinstance(first, ast.Constant)
                    and isinstance(first.value, str)
                    and verbs.match(first.value)
                ):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert found == []
    users = {"storage/loader.py", "storage/schema.py", "normalize/financials.py",
             "quality/store.py"}  # fmt: skip
    for name in users:
        assert "with transaction(con):" in (root / "finloom_core" / name).read_text(), name
