"""``finloom export``: the warehouse's main tables as a Parquet lake (``finloom_core.lake``)."""

from __future__ import annotations

from typing import Annotated

import typer

from finloom_cli.audit import audited
from finloom_cli.common import DbOption, guarded, note, out
from finloom_core.settings import load_settings


def export(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="Lake folder or s3://bucket/prefix (S3: the AWS_* settings).",
            show_default=False,
        ),
    ],
    db: DbOption = None,
) -> None:
    """Write companies, filings, facts (partitioned by fiscal_year) and financials as Parquet."""
    from finloom_core.lake import ExportResult, export_lake
    from finloom_core.storage.published import read_target

    def run() -> ExportResult:
        settings = load_settings()
        source = read_target(db or settings.db_path).path  # the published copy, if any
        note(f"exporting {source} to {to} ...")
        return export_lake(source, to, memory_limit=settings.duckdb_memory_limit)

    def counts(done: ExportResult) -> dict[str, int]:
        return {"rows": sum(done.rows.values()), "files": done.files, "bytes": done.bytes}

    result = guarded(audited("export", db, {"to": to, "db": db}, run, counts))
    for name, rows in result.rows.items():
        parts = result.partitions.get(name)
        extra = f" in {len(parts)} partitions" if parts else ""
        out.print(f"{name}: {rows:,} rows{extra}", highlight=False)
    out.print(
        f"lake {result.target}: {result.files} files, {result.bytes / 2**20:.1f} MiB, "
        f"{result.seconds:.1f} s (export {result.export_id})",
        highlight=False,
    )
