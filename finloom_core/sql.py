"""DuckDB helpers every floor may use: one transaction shape and Arrow views.

The bottom floor of finloom_core (it imports only DuckDB and pyarrow), so parsers,
the loader, the normalizer and the quality store share one way to run a transaction and
to expose an Arrow table to SQL, and every module that must put a table or column name in
SQL text (names from the catalog or a suite, never data values) quotes it one way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

import duckdb
import pyarrow as pa


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """``BEGIN``; ``COMMIT`` when the block ends, ``ROLLBACK`` when it raises.

    A failed ``COMMIT`` is rolled back too, so the connection never stays inside a dead
    transaction. A failed rollback (the connection already lost its transaction) never
    hides the error that caused it: the block's, or the ``COMMIT``'s.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[str]:
    """Register ``table`` as view ``name``; unregister it afterwards.

    If the statement failed, the transaction is aborted and unregistering raises too:
    that second error is suppressed so the first one (the real cause) propagates.
    """
    con.register(name, table)
    try:
        yield name
    finally:
        with suppress(duckdb.Error):
            con.unregister(name)


def quote_ident(name: str) -> str:
    """``name`` as a DuckDB quoted identifier (embedded double quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def table_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The tables of the connection's own database (schema ``main``, not temporary), sorted."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        " AND schema_name = 'main' AND NOT temporary ORDER BY table_name"
    ).fetchall()
    return [str(row[0]) for row in rows]
