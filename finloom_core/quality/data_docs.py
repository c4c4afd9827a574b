"""Data Docs: FinLoom's own static HTML pages of the Great Expectations results.

GX's site builder renders pages that load Bootstrap, jQuery and bootstrap-table from CDNs:
offline (an air-gapped server, a laptop on a train) its index shows empty tables. FinLoom
therefore renders the validation results itself, into self-contained pages (inline CSS, no
script, no external link), readable in any browser without a network:

* ``index.html``: one row per table (result, expectations evaluated and failed, rows
  checked, chunks), then every failed expectation with its sample of unexpected values;
* ``<table>.html``: every expectation of that table's suite with its arguments and result.

The pages are rendered from the *merged* results of :func:`validate_tables` (every chunk of
a table counted once), so they show exactly what the quality report and the returned dict
say. Values from the warehouse are HTML-escaped.
"""

from __future__ import annotations

import html
import logging
import shutil
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

INDEX = "index.html"
SAMPLE_VALUES = 10  # unexpected values shown per expectation

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #1d2327; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.meta { color: #646970; margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: .6rem 0 1rem; }
th, td { border: 1px solid #dcdcde; padding: .35rem .55rem; text-align: left;
         vertical-align: top; }
th { background: #f6f7f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 12px/1.4 ui-monospace, Menlo, Consolas, monospace; word-break: break-all; }
.pass { color: #00712e; font-weight: 600; } .fail { color: #b32d2e; font-weight: 600; }
tr.failed td { background: #fcf0f1; }
@media (prefers-color-scheme: dark) {
  body { background: #1d2327; color: #f0f0f1; } th { background: #2c3338; }
  th, td { border-color: #3c434a; } tr.failed td { background: #3b2326; }
  .pass { color: #68de7c; } .fail { color: #ff8085; } .meta { color: #a7aaad; }
  a { color: #72aee6; }
}
"""


def write_docs(results: Mapping[str, Any], docs_dir: Path | str) -> Path:
    """Render ``results`` ({table: merged GX result dict}) into ``docs_dir``; returns the index.

    The folder is replaced as a whole: the pages are written to a sibling folder first,
    which then takes the place of the old one.
    """
    target = Path(docs_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.new")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    (staging / INDEX).write_text(index_page(results, generated), encoding="utf-8")
    for table, result in results.items():
        (staging / page_name(table)).write_text(
            table_page(table, result, generated), encoding="utf-8"
        )
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    log.info("Data Docs written to %s", target / INDEX)
    return target / INDEX


WHOLE = "whole warehouse"


def _scope(results: Mapping[str, Any]) -> str:
    """The scope the validation results name (``meta["scope"]``), else the whole warehouse."""
    for result in results.values():
        scope = (result.get("meta") or {}).get("scope")
        if scope:
            return str(scope)
    return WHOLE


def page_name(table: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in table) + ".html"


def index_page(results: Mapping[str, Any], generated: str) -> str:
    rows = []
    failures: list[str] = []
    for table, result in results.items():
        link = f'<a href="{_e(page_name(table))}">{_e(table)}</a>'
        if "error" in result:
            rows.append(
                f"<tr class=failed><td>{link}</td><td>{_verdict(False)}</td>"
                f"<td colspan=4>not validated: {_e(result['error'])}</td></tr>"
            )
            continue
        checks = list(result.get("results", []))
        failed = [r for r in checks if not r.get("success")]
        rows.append(
            f"<tr{' class=failed' if failed else ''}><td>{link}</td>"
            f"<td>{_verdict(bool(result.get('success')))}</td>"
            f"<td class=num>{len(checks):,}</td><td class=num>{len(failed):,}</td>"
            f"<td class=num>{_rows_checked(checks)}</td>"
            f"<td class=num>{_e((result.get('meta') or {}).get('chunks', 1))}</td></tr>"
        )
        failures += [_expectation_row(r, table=table) for r in failed]
    body = [
        "<h1>FinLoom data quality: Great Expectations</h1>",
        f"<p class=meta>Suites in <code>expectations/</code>, run against the DuckDB "
        f"warehouse; rendered {_e(generated)}.</p>",
        f"<p>Scope: {_e(_scope(results))}.</p>",
        "<table><thead><tr><th>table</th><th>result</th><th>expectations</th>"
        "<th>failed</th><th>rows checked</th><th>chunks</th></tr></thead>",
        f"<tbody>{''.join(rows)}</tbody></table>",
        "<h2>Failed expectations</h2>",
    ]
    if failures:
        body += [_expectations_table(failures, with_table=True)]
    else:
        body += ["<p>None: every expectation of every suite holds.</p>"]
    return _page("FinLoom Data Docs", body)


def table_page(table: str, result: Mapping[str, Any], generated: str) -> str:
    body = [
        f"<p><a href={INDEX}>&larr; all tables</a></p>",
        f"<h1>{_e(table)}: {_verdict(bool(result.get('success')))}</h1>",
    ]
    if "error" in result:
        body.append(f"<p>The table was not validated: {_e(result['error'])}</p>")
        return _page(f"FinLoom Data Docs: {table}", body)
    checks = list(result.get("results", []))
    stats = result.get("statistics") or {}
    meta = result.get("meta") or {}
    body += [
        f"<p class=meta>Suite <code>{_e(meta.get('expectation_suite_name') or table)}</code>: "
        f"{stats.get('successful_expectations', 0):,} of "
        f"{stats.get('evaluated_expectations', len(checks)):,} expectations hold; "
        f"{_rows_checked(checks)} rows checked in {_e(meta.get('chunks', 1))} chunk(s); "
        f"rendered {_e(generated)}.</p>",
        f"<p>Scope: {_e(meta.get('scope') or WHOLE)}.</p>",
        _expectations_table([_expectation_row(r) for r in checks], with_table=False),
    ]
    return _page(f"FinLoom Data Docs: {table}", body)


def _page(title: str, body: Iterable[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _expectations_table(rows: list[str], *, with_table: bool) -> str:
    head = "<th>table</th>" if with_table else ""
    return (
        f"<table><thead><tr>{head}<th>expectation</th><th>column(s)</th><th>arguments</th>"
        "<th>result</th><th>unexpected</th><th>sample of unexpected values</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _expectation_row(check: Mapping[str, Any], *, table: str | None = None) -> str:
    config = check.get("expectation_config") or {}
    kwargs = dict(config.get("kwargs") or {})
    kwargs.pop("batch_id", None)
    columns = [
        kwargs.pop(k) for k in ("column", "column_list", "column_A", "column_B") if k in kwargs
    ]
    result = check.get("result") or {}
    unexpected = result.get("unexpected_count")
    percent = result.get("unexpected_percent")
    share = "" if unexpected is None else f"{unexpected:,}"
    if unexpected and percent is not None:
        share += f" ({percent:.3g}%)"
    exception = (check.get("exception_info") or {}).get("exception_message")
    sample = ", ".join(
        _value(v) for v in (result.get("partial_unexpected_list") or [])[:SAMPLE_VALUES]
    )
    if exception:
        sample = f"error: {_e(exception)}"
    success = bool(check.get("success"))
    cells = [f"<td>{_e(table)}</td>"] if table is not None else []
    cells += [
        f"<td><code>{_e(config.get('type'))}</code></td>",
        f"<td>{_e(', '.join(_plain(c) for c in columns))}</td>",
        f"<td>{'<br>'.join(f'{_e(k)}: <code>{_value(v)}</code>' for k, v in kwargs.items())}</td>",
        f"<td>{_verdict(success)}</td>",
        f"<td class=num>{share}</td>",
        f"<td>{sample}</td>",
    ]
    return f"<tr{'' if success else ' class=failed'}>{''.join(cells)}</tr>"


def _rows_checked(checks: list[Mapping[str, Any]]) -> str:
    counts = [(c.get("result") or {}).get("element_count") for c in checks]
    known = [n for n in counts if isinstance(n, int)]
    return f"{max(known):,}" if known else ""


def _verdict(success: bool) -> str:
    return "<span class=pass>passed</span>" if success else "<span class=fail>FAILED</span>"


def _plain(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return _e(", ".join(f"{k}={_plain(v)}" for k, v in value.items()))
    if isinstance(value, list | tuple):
        return _e(f"[{_plain(value)}]")
    return _e(value)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)
