"""``finloom monitoring``: the configuration of the operator's Prometheus and Alertmanager."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from finloom_cli.common import guarded, note, out
from finloom_core.settings import load_settings
from finloom_ops.monitoring import (
    DEFAULT_EVALUATION_INTERVAL,
    DEFAULT_GROUP_WAIT,
    DEFAULT_SCRAPE_INTERVAL,
    Intervals,
    render,
)

monitoring_app = typer.Typer(
    help="The monitoring stack: Prometheus scraping FinLoom, Alertmanager paging.",
    no_args_is_help=True,
)


@monitoring_app.command("render")
def render_command(
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out", help="Folder to write prometheus.yml, alerts.yml, alertmanager.yml into."
        ),
    ],
    scrape_interval: Annotated[
        str, typer.Option(help="Prometheus scrape interval.")
    ] = DEFAULT_SCRAPE_INTERVAL,
    evaluation_interval: Annotated[
        str, typer.Option(help="Prometheus rule evaluation interval.")
    ] = DEFAULT_EVALUATION_INTERVAL,
    group_wait: Annotated[
        str, typer.Option(help="Alertmanager group_wait (at most 30s).")
    ] = DEFAULT_GROUP_WAIT,
    rules: Annotated[
        Path | None,
        typer.Option(help="Alert rules to ship (default: deploy/prometheus/alerts.yml)."),
    ] = None,
) -> None:
    """Write a ready set for your own Prometheus and Alertmanager: prometheus.yml (scrapes
    FINLOOM_SERVE_TARGET and FINLOOM_PUSHGATEWAY_URL, loads FinLoom's rules, alerts
    FINLOOM_ALERTMANAGER_TARGET), alerts.yml and alertmanager.yml (severity page ->
    PagerDuty, ticket -> Slack). Secrets go into 0600 files beside them, never into YAML."""

    def run() -> None:
        intervals = Intervals(
            scrape=scrape_interval, evaluation=evaluation_interval, group_wait=group_wait
        )
        result = render(load_settings(), out_dir, intervals=intervals, rules=rules)
        for warning in result.warnings:
            note(f"warning: {warning}", logging.WARNING, style="yellow")
        for path in result.removed:
            note(f"removed {path} (its setting is no longer set)")
        for path in result.files:
            out.print(str(path), highlight=False, soft_wrap=True)

    guarded(run)
