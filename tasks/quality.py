"""Prefect tasks of the ``quality`` flow: reconcile -> score -> validate -> publish.

Thin adapters around ``finloom_core.quality``. Every task opens (and closes) its own DuckDB
connection and hands back plain data (dicts, lists, Arrow tables), so nothing holding a
database lock crosses a task boundary.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from finloom_core.storage.database import open_warehouse
from finloom_ops import metrics
from finloom_ops.observe import stage
from tasks import RETRY_ON_LOCKED_DATABASE

REPORT_ARTIFACT_KEY = "finloom-quality-report"
SCORES_ARTIFACT_KEY = "finloom-quality-scores"
WORST_FILINGS = 10
SEVERITIES = ("critical", "error", "warning", "info")


def check_dict(check: Any) -> dict[str, Any]:
    """A CheckResult (dataclass, pydantic model or dict) as a JSON-ready dict."""
    if isinstance(check, dict):
        data = dict(check)
    elif dataclasses.is_dataclass(check) and not isinstance(check, type):
        data = dataclasses.asdict(check)
    elif hasattr(check, "model_dump"):
        data = check.model_dump()
    else:
        data = dict(vars(check))
    return json.loads(json.dumps(data, default=str))  # type: ignore[no-any-return]


def critical_failures(checks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in checks if not c.get("passed") and c.get("severity") == "critical"]


@task(name="quality-reconcile", cache_policy=NO_CACHE,
      **RETRY_ON_LOCKED_DATABASE)  # fmt: skip
def reconcile_task(db_path: str, ciks: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """The reconciliation checks, as dicts {check, severity, passed, affected_records, detail}."""
    from finloom_core.quality.reconcile import run_checks

    with stage("quality", step="reconcile"), open_warehouse(db_path) as con:
        checks = [check_dict(c) for c in run_checks(con, ciks=list(ciks) if ciks else None)]
    failed = [c["check"] for c in checks if not c.get("passed")]
    get_run_logger().info("reconciliation: %d checks, failed: %s", len(checks), failed or "none")
    return checks


@task(name="quality-score", cache_policy=NO_CACHE,
      **RETRY_ON_LOCKED_DATABASE)  # fmt: skip
def score_task(db_path: str, ciks: Sequence[int] | None = None) -> dict[str, Any]:
    """Filing scores and company scores, as Arrow tables under ``filings`` and ``companies``."""
    from finloom_core.quality.scoring import score_companies, score_filings

    wanted = list(ciks) if ciks else None
    with stage("quality", step="score"), open_warehouse(db_path) as con:
        filings = score_filings(con, ciks=wanted)
        companies = score_companies(con, filings)
    get_run_logger().info("scored %d filings of %d companies", filings.num_rows, companies.num_rows)
    return {"filings": filings, "companies": companies}


@task(name="quality-validate", cache_policy=NO_CACHE)
def validate_task(
    db_path: str, expectations_dir: str, docs_dir: str | None = None
) -> dict[str, Any]:
    """Great Expectations suites against the warehouse; {table: GX result dict}."""
    from finloom_core.quality.expectations import summarize, validate_tables

    with stage("quality", step="validate"), open_warehouse(db_path) as con:
        results = validate_tables(con, expectations_dir, docs_dir)
    for table, row in summarize(results).items():
        get_run_logger().info(
            "expectations %s: %s (%d failed)", table, "passed" if row["success"] else "FAILED",
            len(row["failed"]),
        )  # fmt: skip
    return results


def _store(db_path: str, run_id: str, checks: list[dict[str, Any]], scores: Any) -> None:
    """Append the run's checks and filing scores to DuckDB (finloom_core.quality.store)."""
    from finloom_core.quality.reconcile import CheckResult
    from finloom_core.quality.store import store_results

    with open_warehouse(db_path) as con:
        store_results(con, run_id, [CheckResult(**c) for c in checks], scores)


@task(name="quality-publish", cache_policy=NO_CACHE,
      **RETRY_ON_LOCKED_DATABASE)  # fmt: skip
def publish_task(
    db_path: str,
    run_id: str,
    checks: list[dict[str, Any]],
    scores: dict[str, Any],
    expectations: dict[str, Any] | None,
) -> dict[str, Any]:
    """Store results in DuckDB and publish the two artifacts; returns the report dict."""
    from finloom_core.quality.expectations import summarize

    filings = scores["filings"].to_pylist()
    companies = scores["companies"].to_pylist()
    with stage("publish", filings=len(filings)):
        _store(db_path, run_id, checks, scores["filings"])
    grades = metrics.current().quality_grades
    for grade, count in Counter(str(f.get("grade")) for f in filings if f.get("grade")).items():
        grades.labels(grade).inc(count)
    expectations_summary = summarize(expectations) if expectations else {}
    report = {
        "run_id": run_id,
        "reconciliation": checks,
        "scores": filings,
        "companies": companies,
        "expectations": expectations or {},
        "expectations_summary": expectations_summary,
        "critical": [c["check"] for c in critical_failures(checks)],
    }
    create_markdown_artifact(
        markdown=report_markdown(report),
        key=REPORT_ARTIFACT_KEY,
        description=f"FinLoom data quality: {len(filings)} filings, {len(checks)} checks",
    )
    create_table_artifact(
        table=[score_row(f) for f in filings] or [{"note": "no filings scored"}],
        key=SCORES_ARTIFACT_KEY,
        description="FinLoom quality score of every filing (0-100, grade A-F)",
    )
    return report


# ------------------------------------------------------------------ rendering


def components_of(filing: dict[str, Any]) -> dict[str, Any]:
    raw = filing.get("components")
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {"components": raw}
        return parsed if isinstance(parsed, dict) else {"components": parsed}
    return raw if isinstance(raw, dict) else {}


def _lost(value: Any) -> float:
    """How many points a component cost (0 when unknown), for ordering the reasons."""
    if isinstance(value, dict):
        score, weight = value.get("score"), value.get("weight")
        if isinstance(score, int | float) and isinstance(weight, int | float):
            # a component scores 0-100; it costs its weight times the share it missed
            return float(weight) * (100.0 - float(score)) / 100.0
        for key in ("penalty", "lost", "deduction"):
            if isinstance(value.get(key), int | float):
                return float(value[key])
        return 0.0
    return 0.0


def reasons(filing: dict[str, Any], limit: int = 3) -> str:
    """The components that cost the most points, as one short line."""
    parts = sorted(components_of(filing).items(), key=lambda kv: -_lost(kv[1]))
    text = []
    for name, value in parts:
        if _lost(value) <= 0 and len(parts) > limit:
            continue
        if isinstance(value, dict):
            why = value.get("reason") or value.get("detail") or value.get("note")
            shown = (
                why
                if isinstance(why, str)
                else ", ".join(
                    f"{k}={v}" for k, v in value.items() if isinstance(v, int | float | str)
                )
            )
        else:
            shown = str(value)
        text.append(f"{name}: {shown}"[:160])
        if len(text) >= limit:
            break
    return "; ".join(text) or "-"


def score_row(filing: dict[str, Any]) -> dict[str, Any]:
    return {
        "cik": filing.get("cik"),
        "accession": filing.get("accession"),
        "form": filing.get("form"),
        "fiscal_year": filing.get("fiscal_year"),
        "fiscal_period": filing.get("fiscal_period"),
        "score": None if filing.get("score") is None else round(float(filing["score"]), 1),
        "grade": filing.get("grade"),
        "reasons": reasons(filing),
    }


def _cell(value: Any) -> str:
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")


def report_markdown(report: dict[str, Any]) -> str:
    checks: list[dict[str, Any]] = report["reconciliation"]
    filings: list[dict[str, Any]] = report["scores"]
    failing = sorted(
        (c for c in checks if not c.get("passed")),
        key=lambda c: SEVERITIES.index(c["severity"]) if c.get("severity") in SEVERITIES else 9,
    )
    scored = [f for f in filings if f.get("score") is not None]
    mean = sum(float(f["score"]) for f in scored) / len(scored) if scored else None
    status = "CRITICAL" if report["critical"] else ("findings" if failing else "clean")
    lines = [
        f"# FinLoom data quality: {status}",
        "",
        f"- run: `{report['run_id']}`",
        f"- reconciliation: {len(checks) - len(failing)} of {len(checks)} checks passed"
        + (f"; critical: {', '.join(report['critical'])}" if report["critical"] else ""),
        f"- filings scored: {len(filings)}"
        + (f", mean score {mean:.1f}" if mean is not None else ""),
    ]
    if report["expectations_summary"]:
        parts = [
            f"{table} {'passed' if row['success'] else 'FAILED'}"
            + (f" ({len(row['failed'])} failed)" if row["failed"] else "")
            for table, row in report["expectations_summary"].items()
        ]
        lines.append(f"- Great Expectations: {', '.join(parts)}")
    lines += ["", "## Failing checks", ""]
    if failing:
        lines += ["| check | severity | affected records | sample |", "|---|---|---:|---|"]
        for c in failing:
            detail = json.dumps(c.get("detail") or {}, default=str)
            lines.append(
                f"| {_cell(c['check'])} | {_cell(c.get('severity'))} | "
                f"{_cell(c.get('affected_records'))} | {_cell(detail[:200])} |"
            )
    else:
        lines.append("none")
    lines += ["", f"## Worst {WORST_FILINGS} filings", ""]
    worst = sorted(scored, key=lambda f: float(f["score"]))[:WORST_FILINGS]
    if worst:
        lines += ["| CIK | accession | form | period | score | grade | why |",
                  "|---|---|---|---|---:|---|---|"]  # fmt: skip
        for f in worst:
            row = score_row(f)
            lines.append(
                f"| {int(row['cik']):010d} | {_cell(row['accession'])} | {_cell(row['form'])} | "
                f"{_cell(row['fiscal_year'])} {_cell(row['fiscal_period'])} | {row['score']} | "
                f"{_cell(row['grade'])} | {_cell(row['reasons'])} |"
            )
    else:
        lines.append("no filings scored")
    lines += ["", "## Grade distribution", ""]
    grades = Counter(str(f.get("grade")) for f in filings)
    if grades:
        lines += ["| grade | filings |", "|---|---:|"]
        lines += [f"| {g} | {grades[g]} |" for g in sorted(grades)]
    else:
        lines.append("no filings scored")
    if report["companies"]:
        lines += ["", "## Companies", ""]
        keys = [k for k in report["companies"][0] if k != "cik"]
        lines += ["| CIK | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for company in report["companies"]:
            cells = [_cell(_fmt(company[k])) for k in keys]
            lines.append(f"| {int(company['cik']):010d} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return value


def default_expectations_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "expectations"
