"""Parsed companies staged as Parquet: how a Dask worker hands a batch to the one writer.

On a Dask cluster the CPU-heavy part of the ingest, DuckDB's JSON reader turning each
companyfacts document into FACT_SCHEMA rows, runs on the workers. A worker writes each
parsed company's tables to Parquet files in a folder the writer can read (the run's
staging folder: on one machine, the same path; across machines, a shared folder) and
returns only a ``ParquetCompany``, a small descriptor (paths, row counts, hashes and the
company's record). The writer then bulk-loads those files into the warehouse
(``read_parquet`` for the facts, Arrow for the filings) through the same loader as a
local run, so both store the same rows.

A document DuckDB's reader refuses (a value that is not a finite number, a date that is
not one) fails its company at the ``parse`` stage on the worker, as the loader fails it
locally; the rest of the batch goes on. Files are removed once their company is loaded
(``discard``), and with the run's staging folder in any case.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from finloom_core.cik import cik10
from finloom_core.errors import first_line
from finloom_core.parse.companyfacts import FACT_COLUMNS, FACT_SCHEMA, facts_select
from finloom_core.parse.submissions import FILING_SCHEMA
from finloom_core.records import CompanyOutcome, ParsedCompany, Status
from finloom_core.redact import redact
from finloom_core.settings import DEFAULT_MEMORY_LIMIT
from finloom_core.staging import FactsDocument

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ParquetCompany:
    """A company parsed on a worker, its tables waiting in Parquet files.

    ``parsed`` is the company as ``parse_documents`` made it, except that its ``facts``
    point at the Parquet file of its parsed facts (``parquet=True``; the sha256 is still
    the JSON document's) and its ``filings`` are empty: they are in ``filings_path``.
    ``document`` is the companyfacts JSON it came from (a staged copy is removed once the
    company is loaded); ``seconds``: the worker's parse time, for the parse metrics.
    """

    parsed: ParsedCompany
    filings_path: str | None = None
    facts_rows: int = 0
    filings_rows: int = 0
    document: FactsDocument | None = None
    seconds: float = 0.0

    @property
    def cik(self) -> int:
        return self.parsed.cik

    def load_ready(self) -> ParsedCompany:
        """The company as the loader takes it: its filings read back from Parquet."""
        if self.filings_path is None:
            return self.parsed
        filings = pq.read_table(self.filings_path, schema=FILING_SCHEMA)
        return dataclasses.replace(self.parsed, filings=filings)

    def discard(self) -> None:
        """Remove the company's Parquet files and its staged JSON document."""
        if self.parsed.facts is not None:
            self.parsed.facts.discard()
        if self.filings_path is not None:
            Path(self.filings_path).unlink(missing_ok=True)
        if self.document is not None:
            self.document.discard()


def stage_parquet(
    parsed: Sequence[ParsedCompany | CompanyOutcome],
    out_dir: Path,
    *,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    seconds: Callable[[int], float] | None = None,
) -> list[ParquetCompany | CompanyOutcome]:
    """Parse each company's companyfacts document into a Parquet file under ``out_dir``
    (with its filings in another); outcomes pass through, in order.

    ``seconds(cik)``: the time already spent parsing the company (added to its own).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[ParquetCompany | CompanyOutcome] = []
    with duckdb.connect(config={"memory_limit": memory_limit}) as con:
        for item in parsed:
            if isinstance(item, CompanyOutcome):
                results.append(item)
                continue
            started = time.perf_counter()
            try:
                staged = _stage_company(con, item, out_dir)
            except duckdb.Error as exc:
                reason = redact(first_line(exc))
                log.warning("cik %s: parse failed: %s", item.cik, reason)
                if item.facts is not None:
                    item.facts.discard()
                results.append(
                    CompanyOutcome(
                        item.cik, Status.FAILED, item.company.name, reason=reason, stage="parse"
                    )
                )
                continue
            spent = time.perf_counter() - started + (seconds(item.cik) if seconds else 0.0)
            results.append(dataclasses.replace(staged, seconds=spent))
    return results


def _stage_company(
    con: duckdb.DuckDBPyConnection, parsed: ParsedCompany, out_dir: Path
) -> ParquetCompany:
    name = f"CIK{cik10(parsed.cik)}"
    facts, facts_rows = None, 0
    if parsed.facts is not None:
        with facts_select(con, [(parsed.cik, parsed.facts.path)]) as (select, params):
            query = f"SELECT {FACT_COLUMNS} FROM ({select})"
            table = con.sql(query, params=params).to_arrow_table()
        path = out_dir / f"{name}.facts.parquet"
        _write(table.cast(FACT_SCHEMA), path)
        facts = FactsDocument(path, parsed.facts.sha256, staged=True, parquet=True)
        facts_rows = table.num_rows
    filings_path = None
    if parsed.filings.num_rows:
        filings_path = out_dir / f"{name}.filings.parquet"
        _write(parsed.filings, filings_path)
    return ParquetCompany(
        parsed=dataclasses.replace(parsed, facts=facts, filings=FILING_SCHEMA.empty_table()),
        filings_path=None if filings_path is None else str(filings_path),
        facts_rows=facts_rows,
        filings_rows=parsed.filings.num_rows,
        document=parsed.facts,
    )


def _write(table: pa.Table, path: Path) -> None:
    """Write ``table`` whole, or leave nothing: a partial file is never left behind."""
    partial = path.with_name(path.name + ".partial")
    try:
        pq.write_table(table, partial)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
