"""Secrets in Prefect Secret blocks: ``secret:NAME`` settings, ``finloom secret``, redaction.

The seam (``finloom_core.redact``'s resolver) is checked with a resolver of the test's own;
the Prefect-backed one (``finloom_ops.secrets``) against the session's temporary Prefect
API; the command line in subprocesses, each with its own PREFECT_HOME and temporary server.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from finloom_core import redact
from finloom_core.errors import ConfigurationError, InputError
from finloom_core.settings import SECRET_BEARING, load_settings
from finloom_ops import secrets
from tests.test_cli import Result, clean_env

WEBHOOK_SECRET = "hooks-Zq8-4411-finloom-secret"
TOKEN = "tok-Pw7-serve-secret"


@pytest.fixture(autouse=True)
def no_resolver(clean_finloom_env: None) -> Iterator[None]:
    """No FINLOOM_* variable from the shell, and no resolver left behind by another test."""
    previous = redact.set_secret_resolver(None)
    secrets.clear_cache()
    try:
        yield
    finally:
        redact.set_secret_resolver(previous)
        secrets.clear_cache()


class Store:
    """A resolver of the test's own: a dict, counting its calls."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.calls: list[str] = []

    def __call__(self, name: str) -> str:
        self.calls.append(name)
        if name not in self.values:
            raise ConfigurationError(f"no secret {name!r}")
        return self.values[name]


# ------------------------------------------------------------------ the seam in finloom_core


def test_a_reference_without_a_resolver_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FINLOOM_ALERT_WEBHOOK_URL", "secret:alert-webhook")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("FINLOOM_ALERT_WEBHOOK_URL: secret:alert-webhook needs the Prefect")
    assert "\n" not in message


def test_every_secret_bearing_setting_resolves_and_is_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = Store(
        {
            "hook": f"https://chat.example/{WEBHOOK_SECRET}",
            "token": TOKEN,
            "slack": "https://hooks.slack.example/T0/B0/slack-Zq8-secret",
            "pager": "pager-Zq8-routing-secret",
            "redis-password": "p@ss/Zq8 redis",
        }
    )
    redact.set_secret_resolver(store)
    monkeypatch.setenv("FINLOOM_ALERT_WEBHOOK_URL", "secret:hook")
    monkeypatch.setenv("FINLOOM_SERVE_TOKEN", "secret:token")
    monkeypatch.setenv("FINLOOM_SLACK_WEBHOOK_URL", "secret:slack")
    monkeypatch.setenv("FINLOOM_PAGERDUTY_ROUTING_KEY", "secret:pager")
    monkeypatch.setenv("FINLOOM_REDIS_URL", "redis://:secret:redis-password@127.0.0.1:6379/0")

    settings = load_settings()

    assert settings.alert_webhook_url is not None and settings.serve_token is not None
    assert settings.alert_webhook_url.get_secret_value() == store.values["hook"]
    assert settings.serve_token.get_secret_value() == TOKEN
    assert settings.slack_webhook_url is not None
    assert settings.slack_webhook_url.get_secret_value() == store.values["slack"]
    assert settings.pagerduty_routing_key is not None
    assert settings.pagerduty_routing_key.get_secret_value() == store.values["pager"]
    # the password goes into the URL percent-encoded, as redis-py reads it
    assert settings.redis_url == "redis://:p%40ss%2FZq8%20redis@127.0.0.1:6379/0"
    assert sorted(store.calls) == ["hook", "pager", "redis-password", "slack", "token"]
    line = f"to {store.values['hook']} with {TOKEN} and {store.values['pager']}; p@ss/Zq8 redis"
    scrubbed = redact.redact(line)
    for value in (WEBHOOK_SECRET, TOKEN, "pager-Zq8", "p@ss/Zq8 redis"):
        assert value not in scrubbed
    assert "***" in scrubbed


def test_a_whole_redis_url_in_a_secret_is_validated_once_resolved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = Store({"good": "redis://:pw-Zq8-good@10.0.0.5:6379/1", "bad": "http://Zq8-bad-url"})
    redact.set_secret_resolver(store)
    monkeypatch.setenv("FINLOOM_REDIS_URL", "secret:good")
    assert load_settings().redis_url == store.values["good"]
    monkeypatch.setenv("FINLOOM_REDIS_URL", "secret:bad")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert str(info.value).startswith("FINLOOM_REDIS_URL: ")
    assert "Zq8-bad-url" not in str(info.value)


def test_references_are_kept_when_not_resolving_and_plain_values_never_resolve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = Store({})
    redact.set_secret_resolver(store)
    monkeypatch.setenv("FINLOOM_SERVE_TOKEN", "secret:token")
    unresolved = load_settings(resolve_secrets=False)
    assert unresolved.serve_token is not None
    assert unresolved.serve_token.get_secret_value() == "secret:token"
    monkeypatch.setenv("FINLOOM_SERVE_TOKEN", TOKEN)
    monkeypatch.setenv("FINLOOM_REDIS_URL", "redis://:plain-password@127.0.0.1:6379/0")
    assert load_settings().redis_url == "redis://:plain-password@127.0.0.1:6379/0"
    assert store.calls == []


def test_an_unknown_secret_is_a_one_line_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redact.set_secret_resolver(Store({}))
    monkeypatch.setenv("FINLOOM_PAGERDUTY_ROUTING_KEY", "secret:missing")
    with pytest.raises(ConfigurationError, match=r"^no secret 'missing'$"):
        load_settings()
    monkeypatch.setenv("FINLOOM_PAGERDUTY_ROUTING_KEY", "secret:")
    with pytest.raises(ConfigurationError, match="FINLOOM_PAGERDUTY_ROUTING_KEY: secret: needs"):
        load_settings()


def test_a_reference_is_no_secret_to_redact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINLOOM_ALERT_WEBHOOK_URL", "secret:alert-webhook")
    redact.refresh_secrets()
    assert redact.redact("see secret:alert-webhook") == "see secret:alert-webhook"


def test_no_flow_takes_a_secret_parameter() -> None:
    from flows.backfill import backfill
    from flows.backup import backup
    from flows.nightly import nightly
    from flows.quality import quality

    for flow in (backfill, nightly, quality, backup):
        parameters = set(inspect.signature(flow.fn).parameters)
        assert not parameters & {*SECRET_BEARING, "secret", "token", "password", "webhook"}


# ------------------------------------------------------------------ Prefect Secret blocks


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness")
def test_secret_blocks_store_list_and_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"https://chat.example/{WEBHOOK_SECRET}"
    secrets.save_secret("finloom-test-hook", url)
    secrets.clear_cache()  # read back from the API, not the cache
    assert secrets.read_secret("finloom-test-hook") == url
    assert "finloom-test-hook" in secrets.list_secrets()

    secrets.install()
    monkeypatch.setenv("FINLOOM_ALERT_WEBHOOK_URL", "secret:finloom-test-hook")
    settings = load_settings()
    assert settings.alert_webhook_url is not None
    assert settings.alert_webhook_url.get_secret_value() == url
    assert WEBHOOK_SECRET not in redact.redact(f"POST {url} failed")

    with pytest.raises(ConfigurationError) as info:
        secrets.read_secret("finloom-test-absent")
    assert str(info.value) == (
        "no Prefect secret block 'finloom-test-absent': store it with "
        "`finloom secret set finloom-test-absent`"
    )
    with pytest.raises(InputError):
        secrets.save_secret("Not A Name", "value")


@pytest.mark.integration
@pytest.mark.usefixtures("prefect_harness")
def test_monitoring_and_s3_credentials_resolve_through_secret_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from finloom_ops.monitoring import secret_value

    secrets.save_secret("finloom-test-slack", "https://hooks.slack.example/T1/B1/Zq8-slack")
    secrets.save_secret("finloom-test-aws", "aws-Zq8-secret-access-key")
    monkeypatch.setenv("FINLOOM_SLACK_WEBHOOK_URL", "secret:finloom-test-slack")
    settings = load_settings(resolve_secrets=False)  # the reference is left to secret_value
    assert secret_value(settings, "slack_webhook_url") == (
        "https://hooks.slack.example/T1/B1/Zq8-slack"
    )
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret:finloom-test-aws")
    secrets.resolve_environment()
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == "aws-Zq8-secret-access-key"
    assert "Zq8" not in redact.redact("key aws-Zq8-secret-access-key")


# ------------------------------------------------------------------ the command line


def run(home: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> Result:
    """``finloom ARGS`` in ``home`` with ``stdin`` piped in (no terminal)."""
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "finloom_cli.main", *args],
        cwd=home,
        env={**clean_env(home), **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def test_secret_set_refuses_an_empty_input_and_a_bad_name(tmp_path: Path) -> None:
    for args, needle in (
        (("secret", "set", "alert-webhook"), "no value for secret 'alert-webhook'"),
        (("secret", "set", "Alert_Webhook"), "secret name 'Alert_Webhook'"),
    ):
        result = run(tmp_path, *args, stdin="\n")
        assert result.code == 2, result
        assert "Traceback" not in result.output
        (line,) = result.error_lines()
        assert needle in line


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True
    bodies: list[dict[str, Any]]
    paths: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.paths.append(self.path)
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver(("127.0.0.1", 0), _Handler)
    server.bodies, server.paths = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.integration
def test_a_webhook_in_a_secret_block_gets_the_failure_and_is_written_nowhere(
    receiver: _Receiver, shared_edgar: Path, tmp_path: Path
) -> None:
    path = f"/hooks/{WEBHOOK_SECRET}"
    url = f"http://127.0.0.1:{receiver.server_address[1]}{path}"
    home = tmp_path / "home"
    stored = run(home, "secret", "set", "alert-webhook", stdin=url + "\n")
    assert stored.code == 0, stored
    listed = run(home, "secret", "list")
    assert listed.code == 0 and listed.stdout.split() == ["alert-webhook"], listed

    env = {"FINLOOM_ALERT_WEBHOOK_URL": "secret:alert-webhook", "FINLOOM_LOG_FORMAT": "json"}
    db = home / "w.duckdb"
    failed = run(
        home, "backfill", "--source", str(shared_edgar), "--ciks", "865941,999999999",
        "--db", str(db), "--no-quality", env=env,
    )  # fmt: skip
    assert failed.code == 1, failed
    assert receiver.paths == [path]  # the secret's URL got the failure, once
    assert receiver.bodies[0]["flow"] == "backfill" and receiver.bodies[0]["state"] == "Failed"
    shown = run(home, "config", "show", "--json", env=env)
    assert json.loads(shown.stdout)["FINLOOM_ALERT_WEBHOOK_URL"] == {
        "value": "***",
        "source": "environment",
    }
    for result in (stored, listed, failed, shown):
        assert WEBHOOK_SECRET not in result.output
    assert db.is_file() and list((home / ".prefect").glob("*.db"))
    # The warehouse and everything beside it, the Prefect database (where the block is
    # stored encrypted, and the runs' parameters and logs are) included.
    assert _files_holding(home, WEBHOOK_SECRET.encode()) == []
    assert not [line for line in failed.error_lines() if not line.startswith("{")]


def test_every_command_installs_the_prefect_resolver() -> None:
    from typer.testing import CliRunner

    from finloom_cli.main import app

    assert redact.set_secret_resolver(None) is None
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert redact.set_secret_resolver(None) is secrets.read_secret
