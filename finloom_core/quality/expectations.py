"""Great Expectations suites (``expectations/*.json``) run against the DuckDB warehouse.

Each suite is named after the table it checks. The table is read into a pandas DataFrame
(only the columns the suite names, so facts stay small: ~260k rows of short strings for the
17 sample companies) and validated through GX's API: pandas data source -> dataframe asset
-> whole-dataframe batch definition -> ValidationDefinition. With ``docs_dir``, the results
are also rendered as GX Data Docs (static HTML) into that folder.

``import great_expectations`` costs ~4 s, so it happens inside :func:`validate_tables` only.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import duckdb

SUITES = ("facts", "filings", "financials")
DOCS_SITE = "finloom_local_site"

log = logging.getLogger(__name__)


def load_suite_json(expectations_dir: Path | str, name: str) -> dict[str, Any]:
    path = Path(expectations_dir) / f"{name}.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def suite_columns(suite: dict[str, Any]) -> list[str]:
    """Every column a suite's expectations name, in first-seen order."""
    columns: list[str] = []
    for expectation in suite.get("expectations", []):
        kwargs = expectation.get("kwargs", {})
        names = [kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B")]
        names += list(kwargs.get("column_list") or [])
        for name in names:
            if name and name not in columns:
                columns.append(name)
    return columns


def table_frame(con: duckdb.DuckDBPyConnection, table: str, columns: list[str]) -> Any:
    """The suite's columns of ``table`` as a pandas DataFrame (dates as datetime64)."""
    existing = {
        row[0]
        for row in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]
        ).fetchall()
    }
    wanted = [c for c in columns if c in existing] or ["*"]
    select = ", ".join(f'"{c}"' if c != "*" else c for c in wanted)
    return con.sql(f'SELECT {select} FROM "{table}"').df()


def validate_tables(
    con: duckdb.DuckDBPyConnection,
    expectations_dir: Path | str,
    docs_dir: Path | str | None = None,
    tables: tuple[str, ...] = SUITES,
) -> dict[str, Any]:
    """Run each suite against its table; returns {table: GX result dict (``to_json_dict()``)}.

    A table missing from the database is reported as ``{"success": False, "error": ...}``
    rather than raising. With ``docs_dir`` the Data Docs site (``index.html`` and pages)
    replaces whatever that folder held.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="finloom-gx-") as project:
        # A file context in a throw-away project: everything offline, and Data Docs are
        # rendered by GX's own site builder from the stored validation results.
        context = gx.get_context(mode="file", project_root_dir=project)
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = context.data_sources.add_pandas("finloom")
        results: dict[str, Any] = {}
        definitions = []
        frames: dict[str, Any] = {}
        for table in tables:
            raw = load_suite_json(expectations_dir, table)
            try:
                frames[table] = table_frame(con, table, suite_columns(raw))
            except duckdb.Error as exc:
                results[table] = {"success": False, "error": str(exc).splitlines()[0]}
                continue
            suite = context.suites.add(
                gx.ExpectationSuite(
                    name=raw["name"], expectations=raw["expectations"], meta=raw.get("meta")
                )
            )
            asset = source.add_dataframe_asset(name=table)
            batch = asset.add_batch_definition_whole_dataframe(f"{table}-all")
            definitions.append(
                context.validation_definitions.add(
                    gx.ValidationDefinition(name=f"{table}-validation", data=batch, suite=suite)
                )
            )
        for definition in definitions:
            table = definition.data.data_asset.name
            result = definition.run(batch_parameters={"dataframe": frames[table]})
            results[table] = result.to_json_dict()
        if docs_dir is not None and definitions:
            _write_docs(context, Path(project), Path(docs_dir))
    return results


def _write_docs(context: Any, project: Path, docs_dir: Path) -> None:
    context.build_data_docs()
    sites = list(project.rglob("index.html"))
    if not sites:
        log.warning("GX built no Data Docs site under %s", project)
        return
    site = sites[0].parent
    if docs_dir.exists():
        shutil.rmtree(docs_dir)
    docs_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(site, docs_dir)


def summarize(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per table: success, evaluated and failed expectations, and the failed ones' types."""
    summary: dict[str, dict[str, Any]] = {}
    for table, result in results.items():
        if "error" in result:
            summary[table] = {
                "success": False,
                "evaluated": 0,
                "failed": [],
                "error": result["error"],
            }
            continue
        failed = [
            {
                "expectation": r["expectation_config"]["type"],
                "column": r["expectation_config"]["kwargs"].get("column")
                or r["expectation_config"]["kwargs"].get("column_list")
                or r["expectation_config"]["kwargs"].get("column_A"),
                "unexpected_count": (r.get("result") or {}).get("unexpected_count"),
            }
            for r in result.get("results", [])
            if not r.get("success")
        ]
        summary[table] = {
            "success": bool(result.get("success")),
            "evaluated": len(result.get("results", [])),
            "failed": failed,
        }
    return summary
