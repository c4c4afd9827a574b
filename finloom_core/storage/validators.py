"""The ``http_validators`` table: ETag and Last-Modified of each stored SEC document.

Validators are written only inside the transaction that stores (or confirms unchanged) the
document they describe, so a crash between download and load never leaves validators
vouching for data the warehouse does not hold. They are read only for companies present
in ``company_loads``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from finloom_core.errors import FinloomError, first_line
from finloom_core.settings import DEFAULT_MEMORY_LIMIT
from finloom_core.sql import registered
from finloom_core.storage.database import open_warehouse
from finloom_core.validators import Validators

log = logging.getLogger(__name__)


def stored_validators(con: duckdb.DuckDBPyConnection, ciks: Sequence[int]) -> dict[str, Validators]:
    """The validators of the stored documents of ``ciks``, by URL."""
    rows = con.execute(
        "SELECT url, etag, last_modified FROM http_validators"
        " WHERE list_contains(?, cik) AND cik IN (SELECT cik FROM company_loads)",
        [list(ciks)],
    ).fetchall()
    return {str(url): Validators(etag, modified) for url, etag, modified in rows}


def known_validators(
    db_path: Path | str, ciks: Sequence[int], *, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> dict[str, Validators]:
    """``stored_validators`` of a warehouse file; empty when there is none or it cannot be
    read now (the requests are then plain: nothing is skipped wrongly)."""
    if not ciks or not Path(db_path).exists():
        return {}
    try:
        with open_warehouse(db_path, memory_limit=memory_limit) as con:
            return stored_validators(con, ciks)
    except (FinloomError, duckdb.Error) as exc:
        log.warning("HTTP validators not read (%s): plain requests", first_line(exc))
        return {}


def store_validators(
    con: duckdb.DuckDBPyConnection, rows: Iterable[tuple[int, str, Validators]]
) -> None:
    """Upsert (cik, url, validators) rows; call inside the transaction storing the content."""
    kept = [(cik, url, v) for cik, url, v in rows if v]
    if not kept:
        return
    table = pa.table(
        {
            "url": [url for _, url, _ in kept],
            "cik": [cik for cik, _, _ in kept],
            "etag": [v.etag for _, _, v in kept],
            "last_modified": [v.last_modified for _, _, v in kept],
        }
    )
    with registered(con, "staged_validators", table):
        con.execute(
            "INSERT INTO http_validators BY NAME"
            " SELECT *, current_timestamp AS stored_at FROM staged_validators"
            " ON CONFLICT (url) DO UPDATE SET cik = excluded.cik, etag = excluded.etag,"
            " last_modified = excluded.last_modified, stored_at = excluded.stored_at"
        )
