"""Arrow tables exposed to DuckDB SQL for the length of a statement."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

import duckdb
import pyarrow as pa


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
