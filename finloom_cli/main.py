"""The ``finloom`` command line.

Exit codes: 0 success; 1 the run finished but some companies failed or were deferred, or
an unexpected error; 2 bad input or configuration (unknown ticker, malformed CIK, missing
User-Agent, unusable source or database). Errors are one line on stderr; set
FINLOOM_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from finloom_cli.audit import audit_app
from finloom_cli.backfill import backfill
from finloom_cli.backup import backup, restore
from finloom_cli.cache import cache_app
from finloom_cli.common import DbOption, guarded, note
from finloom_cli.config import config_app
from finloom_cli.db import db_app
from finloom_cli.export import export
from finloom_cli.financials import financials
from finloom_cli.monitoring import monitoring_app
from finloom_cli.nightly import nightly
from finloom_cli.quality import quality_app
from finloom_cli.secret import prefect_api, secret_app
from finloom_core.settings import load_settings

app = typer.Typer(
    name="finloom",
    help="FinLoom: SEC EDGAR XBRL financial data into a trustworthy DuckDB warehouse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(cache_app, name="cache")
app.add_typer(quality_app, name="quality")
app.add_typer(monitoring_app, name="monitoring")
app.add_typer(config_app, name="config")
app.add_typer(secret_app, name="secret")
app.command()(backfill)
app.command()(financials)
app.command()(nightly)
app.command()(export)
app.command()(backup)
app.command()(restore)


@app.callback()
def _every_command(ctx: typer.Context) -> None:
    # secret:NAME settings resolve through Prefect Secret blocks (finloom_ops.secrets), and
    # AWS_SECRET_ACCESS_KEY=secret:NAME too, except where a secret is being stored or shown.
    from finloom_ops import secrets

    secrets.install(prepare=prefect_api)
    if ctx.invoked_subcommand not in ("secret", "config"):
        guarded(secrets.resolve_environment)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 9108,
    db: DbOption = None,
    access_log: Annotated[bool, typer.Option(help="Log every HTTP request.")] = False,
) -> None:
    """Serve health probes (/health/live, /health/startup, /health/ready, /health) and
    /metrics (every run recorded in the metrics folder). Never holds the database open."""

    def run() -> None:
        from finloom_cli.serve import run_server  # FastAPI and uvicorn; no Prefect
        from finloom_core.edgar import SecGate

        settings = load_settings()
        if db is not None:
            settings = settings.model_copy(update={"db_path": db})
        note(f"finloom serve on http://{host}:{port} (database {settings.db_path})")
        gate = SecGate.from_settings(settings)  # the server's SEC requests: its probe
        run_server(settings, host, port, access_log=access_log, gate=gate)

    guarded(run)  # a port in use is a ConfigurationError: one line, exit 2


def main() -> None:  # pragma: no cover - console entry point
    app()
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    app()
