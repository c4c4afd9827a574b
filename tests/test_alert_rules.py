"""Prometheus alert rules and the Grafana dashboard shipped in deploy/.

The rules are checked and unit-tested with promtool (Debian package `prometheus`); the
dashboard is checked to query only the metric names FinLoom exposes, and all of them.
Missing promtool is a failure, not a skip: CI must never pass without running the tests.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "finloom-dashboard.json"

REQUIRED_ALERTS = {
    "FinloomNightlyMissing",
    "FinloomCircuitOpen",
    "FinloomSecRateLimited",
    "FinloomPipelineErrorsRising",
    "FinloomLowQualityShare",
    "FinloomDatabaseLarge",
}

HISTOGRAMS = {"finloom_download_duration_seconds", "finloom_parse_duration_seconds"}
METRICS = HISTOGRAMS | {
    "finloom_filings_downloaded_total",
    "finloom_facts_loaded_total",
    "finloom_pipeline_errors_total",
    "finloom_edgar_requests_total",
    "finloom_edgar_rate_limited_total",
    "finloom_circuit_breaker_state",
    "finloom_database_size_bytes",
    "finloom_filing_quality_grade_total",
    "finloom_last_success_timestamp_seconds",
}
ALLOWED_NAMES = METRICS | {f"{h}{s}" for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
METRIC_NAME = re.compile(r"finloom_[a-z_]+")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(
            "promtool is not on PATH; install it from the Debian package `prometheus` "
            "(apt-get install prometheus)"
        )
    return subprocess.run(
        [exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"{' '.join(map(str, result.args))} exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict[str, Any]]:
    groups = load_yaml(ALERTS)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def metric_names(expr: str) -> set[str]:
    return set(METRIC_NAME.findall(expr))


def base_metric(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name.removesuffix(suffix) in HISTOGRAMS:
            return name.removesuffix(suffix)
    return name


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_exprs() -> list[tuple[str, str]]:
    return [
        (panel.get("title", ""), target["expr"])
        for panel in walk_panels(dashboard()["panels"])
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def test_promtool_check_rules() -> None:
    assert_ok(promtool("check", "rules", str(ALERTS.relative_to(ROOT))))


def test_promtool_rule_unit_tests() -> None:
    assert_ok(promtool("test", "rules", str(ALERTS_TEST.relative_to(ROOT))))


def test_alert_unit_tests_load_the_shipped_rules() -> None:
    rule_files = load_yaml(ALERTS_TEST)["rule_files"]
    assert [(ALERTS_TEST.parent / f).resolve() for f in rule_files] == [ALERTS.resolve()]


def test_every_required_alert_is_defined() -> None:
    defined = {rule["alert"] for rule in alert_rules()}
    assert defined >= REQUIRED_ALERTS, f"missing alerts: {sorted(REQUIRED_ALERTS - defined)}"


def test_every_alert_fires_and_stays_silent_in_the_unit_tests() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for case in load_yaml(ALERTS_TEST)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    defined = {rule["alert"] for rule in alert_rules()}
    assert defined <= fires, f"alerts never tested firing: {sorted(defined - fires)}"
    assert defined <= silent, f"alerts never tested silent: {sorted(defined - silent)}"


def test_alerts_carry_severity_value_and_runbook() -> None:
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"page", "ticket"}, name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        assert "$value" in annotations["description"], f"{name}: description omits $value"
        assert "Observability" in annotations["runbook"], name


def test_alert_expressions_use_only_finloom_metrics() -> None:
    for rule in alert_rules():
        unknown = metric_names(rule["expr"]) - ALLOWED_NAMES
        assert not unknown, f"{rule['alert']} uses unknown metrics {sorted(unknown)}"


def test_dashboard_identity_and_datasource() -> None:
    data = dashboard()
    assert data["uid"] == "finloom-overview"
    assert data["title"] == "FinLoom pipeline"
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for panel in walk_panels(data["panels"]):
        if panel.get("type") == "row":
            continue
        for ds in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
            assert ds == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]


def test_dashboard_queries_only_finloom_metrics() -> None:
    exprs = dashboard_exprs()
    assert exprs, "dashboard has no panel queries"
    for title, expr in exprs:
        names = metric_names(expr)
        assert names, f"panel {title!r} queries no FinLoom metric: {expr}"
        unknown = names - ALLOWED_NAMES
        assert not unknown, f"panel {title!r} uses unknown metrics {sorted(unknown)}: {expr}"


def test_dashboard_shows_every_metric() -> None:
    shown = {base_metric(name) for _, expr in dashboard_exprs() for name in metric_names(expr)}
    assert shown >= METRICS, f"metrics without a panel: {sorted(METRICS - shown)}"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    rules = [
        {"record": f"finloom:dashboard_query_{i}", "expr": expr.replace("$__rate_interval", "5m")}
        for i, (_, expr) in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert_ok(promtool("check", "rules", str(path)))
