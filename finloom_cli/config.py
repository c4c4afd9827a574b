"""``finloom config show``: every setting, its effective value and where it comes from.

Sources, highest first: ``environment``, ``.env``, ``profile:<FINLOOM_ENV>`` (the TOML file
``config/<env>.toml``), ``default``. Secret values are shown as ``***``; ``secret:NAME``
references are not resolved (no Prefect API is needed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr

from finloom_cli.common import guarded
from finloom_core.redact import REDACTED, is_reference, redact
from finloom_core.settings import (
    SECRET_BEARING,
    FinloomSettings,
    load_settings,
    settings_layers,
)

config_app = typer.Typer(
    help="FinLoom's settings: environment > .env > profile (FINLOOM_ENV) > defaults.",
    no_args_is_help=True,
)


def shown(name: str, value: Any) -> Any:
    """A setting's value as ``config show`` prints it: JSON-ready, secrets as ``***``."""
    if value is None:
        return None
    if isinstance(value, SecretStr) or (name in SECRET_BEARING and is_reference(value)):
        return REDACTED
    if isinstance(value, Path):
        return redact(str(value))
    return redact(value) if isinstance(value, str) else value


def effective_settings() -> dict[str, dict[str, Any]]:
    """``{FINLOOM_<FIELD>: {"value": ..., "source": ...}}`` for every setting."""
    settings = load_settings(resolve_secrets=False)
    layers = settings_layers()
    return {
        f"FINLOOM_{name.upper()}": {
            "value": shown(name, getattr(settings, name)),
            "source": layers.source(name),
        }
        for name in FinloomSettings.model_fields
    }


@config_app.command("show")
def show(
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object: {variable: {value, source}}.")
    ] = False,
) -> None:
    """Every setting with its effective value and its source (environment, .env,
    profile:<env>, default); secrets as ***."""
    rows = guarded(effective_settings)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    width = max(len(variable) for variable in rows)
    source_width = max(len(row["source"]) for row in rows.values())
    for variable, row in rows.items():
        value = "(unset)" if row["value"] is None else str(row["value"])
        line = f"{variable:<{width}}  {row['source']:<{source_width}}  {value}"
        typer.echo(line)
