"""The monitoring stack of an operator: Prometheus scraping FinLoom, Alertmanager paging.

:func:`render` writes, into one folder, a ready set for the operator's own Prometheus and
Alertmanager::

    prometheus.yml             scrapes `finloom serve` (FINLOOM_SERVE_TARGET) and the
                               Pushgateway of FINLOOM_PUSHGATEWAY_URL (honor_labels), loads
                               alerts.yml, sends alerts to FINLOOM_ALERTMANAGER_TARGET
    alerts.yml                 FinLoom's alert rules (deploy/prometheus/alerts.yml)
    alertmanager.yml           severity="page" -> PagerDuty (Events API v2),
                               severity="ticket" -> Slack, grouped by alertname
    slack_api_url              the secrets, mode 0600, each written only when its setting
    pagerduty_routing_key      is set (and removed when it no longer is); the YAML files
    serve_token                name these files (api_url_file, routing_key_file,
    pushgateway_password       credentials_file, password_file), never their values

Paths inside the YAML are absolute: render on the machine (or at the path) where
Prometheus and Alertmanager read the folder. Every file is replaced atomically, so a
running Prometheus or Alertmanager reloading mid-render reads the old or the new file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from finloom_core.errors import ConfigurationError, InputError
from finloom_core.settings import FinloomSettings

# Where FinLoom's rules live in a checkout (deploy/ is not part of the wheel).
DEFAULT_RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "alerts.yml"

PROMETHEUS_FILE = "prometheus.yml"
RULES_FILE = "alerts.yml"
ALERTMANAGER_FILE = "alertmanager.yml"
SLACK_URL_FILE = "slack_api_url"
PAGERDUTY_KEY_FILE = "pagerduty_routing_key"
SERVE_TOKEN_FILE = "serve_token"
PUSHGATEWAY_PASSWORD_FILE = "pushgateway_password"
SECRET_FILES = (SLACK_URL_FILE, PAGERDUTY_KEY_FILE, SERVE_TOKEN_FILE, PUSHGATEWAY_PASSWORD_FILE)

# Alert severity -> the Alertmanager receiver it reaches.
RECEIVERS = {"page": "pagerduty", "ticket": "slack"}
DEFAULT_RECEIVER = RECEIVERS["ticket"]  # an alert without a known severity: a ticket

SERVE_JOB = "finloom-serve"
PUSHGATEWAY_JOB = "finloom-pushgateway"

DEFAULT_SCRAPE_INTERVAL = "15s"
DEFAULT_EVALUATION_INTERVAL = "30s"
DEFAULT_GROUP_WAIT = "30s"
MAX_GROUP_WAIT_SECONDS = 30.0
GROUP_INTERVAL = "5m"
REPEAT_INTERVAL = "4h"

SECRET_REFERENCE = "secret:"
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")

HEADER = (
    "# Rendered by `finloom monitoring render`: re-render rather than edit. Secrets are\n"
    "# in the 0600 files named below, never in this file.\n"
)

SLACK_TITLE = (
    '[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}'
    "{{ end }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.severity }})"
)
SLACK_TEXT = (
    "{{ range .Alerts }}*{{ .Annotations.summary }}*\n"
    "{{ with .Annotations.description }}{{ . }}\n{{ end }}"
    "{{ with .Annotations.runbook }}Runbook: {{ . }}\n{{ end }}{{ end }}"
)
PAGERDUTY_DESCRIPTION = (
    "{{ .CommonLabels.alertname }}: {{ if .CommonAnnotations.summary }}"
    "{{ .CommonAnnotations.summary }}{{ else }}{{ .Alerts.Firing | len }} alerts{{ end }}"
)


@dataclass(frozen=True)
class Target:
    """Where Prometheus reaches an HTTP endpoint: scheme, ``host:port`` and path prefix."""

    scheme: str
    address: str
    path: str = ""
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class Intervals:
    scrape: str = DEFAULT_SCRAPE_INTERVAL
    evaluation: str = DEFAULT_EVALUATION_INTERVAL
    group_wait: str = DEFAULT_GROUP_WAIT


@dataclass
class Rendered:
    """What :func:`render` wrote (``files``) and what the operator should know."""

    out: Path
    files: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ settings


def secret_value(settings: FinloomSettings, name: str) -> str | None:
    """The value of the secret setting ``name`` (e.g. ``slack_webhook_url``), or None when
    unset or blank: the one place the monitoring stack reads a secret, where a
    ``secret:NAME`` reference left in ``settings`` is resolved (a Prefect Secret block)."""
    raw = getattr(settings, name)
    if raw is None:
        return None
    value = str(raw.get_secret_value()).strip()
    if not value:
        return None
    if value.startswith(SECRET_REFERENCE):
        from finloom_core.redact import resolve_reference
        from finloom_ops.secrets import read_secret

        value = resolve_reference(value, f"FINLOOM_{name.upper()}", read_secret).strip()
    return value


def duration_seconds(value: str, option: str) -> float:
    """A Prometheus duration (``30s``, ``1m30s``, ``500ms``) in seconds; InputError if not."""
    match = _DURATION.match(value.strip())
    if not value.strip() or match is None:
        raise InputError(f"{option}: {value!r} is not a duration such as 15s, 1m or 500ms")
    hours, minutes, seconds, millis = (int(g) if g else 0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds + millis / 1000
    if total <= 0:
        raise InputError(f"{option}: {value!r} must be longer than zero")
    return total


def parse_target(value: str, variable: str, *, credentials: bool = False) -> Target:
    """``host:port`` or an ``http(s)://host[:port][/path]`` URL as a :class:`Target`; a
    one-line ConfigurationError naming ``variable`` otherwise. URL credentials are refused
    unless ``credentials`` (the Pushgateway's basic auth); they never reach a message."""
    text = value.strip()
    bare = "://" not in text
    try:
        parts = urlsplit(f"http://{text}" if bare else text)
        port = parts.port
    except ValueError:
        port, parts = None, None  # type: ignore[assignment]
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{variable}: expected host:port or an http(s):// URL, got {_shown(text)}"
        )
    if bare and port is None:
        raise ConfigurationError(f"{variable}: {_shown(text)} names no port (host:port)")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{variable}: a query or fragment is not allowed")
    if (parts.username or parts.password) and not credentials:
        raise ConfigurationError(f"{variable}: must not carry credentials (user:password@)")
    host = parts.hostname
    host = f"[{host}]" if ":" in host else host
    port = port or (443 if parts.scheme == "https" else 80)
    return Target(
        scheme=parts.scheme,
        address=f"{host}:{port}",
        path=parts.path.rstrip("/"),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def _shown(text: str) -> str:
    """A target for a message: without any ``user:password@``."""
    return repr(re.sub(r"^([A-Za-z][A-Za-z0-9+.\-]*://)?[^/@]*@", r"\1***@", text))


def _http_url(value: str, variable: str, *, secret: bool) -> str:
    """An http(s) URL without credentials; the message shows a secret's value never."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        parts = None  # type: ignore[assignment]
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        shown = "(value not shown: a secret)" if secret else _shown(value)
        raise ConfigurationError(f"{variable}: expected an http(s):// URL, got {shown}")
    if not secret and (parts.username or parts.password):
        raise ConfigurationError(f"{variable}: must not carry credentials (user:password@)")
    return value


def _routing_key(value: str) -> str:
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ConfigurationError(
            "FINLOOM_PAGERDUTY_ROUTING_KEY: must be one word (value not shown: a secret)"
        )
    return value


# ------------------------------------------------------------------------------- configs


def prometheus_config(
    out: Path,
    serve: Target,
    alertmanager: Target,
    pushgateway: Target | None,
    *,
    serve_token: bool,
    intervals: Intervals,
) -> dict[str, Any]:
    """prometheus.yml: two scrape jobs, FinLoom's rules, one Alertmanager."""
    serve_job: dict[str, Any] = {
        "job_name": SERVE_JOB,
        "scheme": serve.scheme,
        "metrics_path": f"{serve.path}/metrics",
        "static_configs": [{"targets": [serve.address]}],
    }
    if serve_token:
        serve_job["authorization"] = {
            "type": "Bearer",
            "credentials_file": str(out / SERVE_TOKEN_FILE),
        }
    jobs = [serve_job]
    if pushgateway is not None:
        push_job: dict[str, Any] = {
            "job_name": PUSHGATEWAY_JOB,
            "honor_labels": True,  # keep the pushed job="finloom" and flow labels
            "scheme": pushgateway.scheme,
            "metrics_path": f"{pushgateway.path}/metrics",
            "static_configs": [{"targets": [pushgateway.address]}],
        }
        if pushgateway.username is not None:
            push_job["basic_auth"] = {"username": pushgateway.username}
            if pushgateway.password is not None:
                push_job["basic_auth"]["password_file"] = str(out / PUSHGATEWAY_PASSWORD_FILE)
        jobs.append(push_job)
    alertmanager_config: dict[str, Any] = {
        "scheme": alertmanager.scheme,
        "static_configs": [{"targets": [alertmanager.address]}],
    }
    if alertmanager.path:
        alertmanager_config["path_prefix"] = alertmanager.path
    return {
        "global": {
            "scrape_interval": intervals.scrape,
            "evaluation_interval": intervals.evaluation,
        },
        "rule_files": [str(out / RULES_FILE)],
        "alerting": {"alertmanagers": [alertmanager_config]},
        "scrape_configs": jobs,
    }


def alertmanager_config(
    out: Path, pagerduty_url: str, *, slack: bool, pagerduty: bool, intervals: Intervals
) -> dict[str, Any]:
    """alertmanager.yml: pages to PagerDuty, tickets to Slack, grouped by alertname."""
    pagerduty_receiver: dict[str, Any] = {"name": RECEIVERS["page"]}
    if pagerduty:
        pagerduty_receiver["pagerduty_configs"] = [
            {
                "routing_key_file": str(out / PAGERDUTY_KEY_FILE),
                "url": pagerduty_url,
                "send_resolved": True,
                "severity": "critical",
                "description": PAGERDUTY_DESCRIPTION,
            }
        ]
    slack_receiver: dict[str, Any] = {"name": RECEIVERS["ticket"]}
    if slack:
        slack_receiver["slack_configs"] = [
            {
                "api_url_file": str(out / SLACK_URL_FILE),
                "send_resolved": True,
                "title": SLACK_TITLE,
                "text": SLACK_TEXT,
            }
        ]
    return {
        "route": {
            "receiver": DEFAULT_RECEIVER,
            "group_by": ["alertname"],
            "group_wait": intervals.group_wait,
            "group_interval": GROUP_INTERVAL,
            "repeat_interval": REPEAT_INTERVAL,
            "routes": [
                {"matchers": [f'severity="{severity}"'], "receiver": receiver}
                for severity, receiver in RECEIVERS.items()
            ],
        },
        "receivers": [pagerduty_receiver, slack_receiver],
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (message templates) as literal blocks, as an operator writes them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(config: dict[str, Any]) -> str:
    text = yaml.dump(config, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=200)
    return HEADER + text


# ------------------------------------------------------------------------------- writing


def write_file(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` atomically by ``text``, created with ``mode`` (never more open)."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", closefd=False) as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        os.close(fd)
    os.replace(temporary, path)


def _prepare_out(out: Path) -> Path:
    out = Path(os.path.abspath(out.expanduser()))
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: the folder is not writable")
    return out


def _read_rules(rules: Path) -> str:
    try:
        return rules.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read FinLoom's alert rules {rules} ({exc.strerror}): render from a "
            "FinLoom checkout or pass --rules deploy/prometheus/alerts.yml"
        ) from None


def render(
    settings: FinloomSettings,
    out: Path,
    *,
    intervals: Intervals | None = None,
    rules: Path | None = None,
) -> Rendered:
    """Write the monitoring stack's files into ``out`` (see the module's docstring).

    Everything is validated before anything is written: a malformed target or URL is a
    ConfigurationError, a bad interval or an unusable ``out`` an InputError (one line, no
    secret value in either).
    """
    intervals = intervals or Intervals()
    duration_seconds(intervals.scrape, "--scrape-interval")
    duration_seconds(intervals.evaluation, "--evaluation-interval")
    if duration_seconds(intervals.group_wait, "--group-wait") > MAX_GROUP_WAIT_SECONDS:
        raise InputError(f"--group-wait: {intervals.group_wait!r} is over 30s")

    serve = parse_target(settings.serve_target, "FINLOOM_SERVE_TARGET")
    alertmanager = parse_target(settings.alertmanager_target, "FINLOOM_ALERTMANAGER_TARGET")
    pushgateway = None
    if settings.pushgateway_url:
        pushgateway = parse_target(
            settings.pushgateway_url, "FINLOOM_PUSHGATEWAY_URL", credentials=True
        )
    pagerduty_url = _http_url(settings.pagerduty_url.strip(), "FINLOOM_PAGERDUTY_URL", secret=False)
    slack_url = secret_value(settings, "slack_webhook_url")
    if slack_url is not None:
        _http_url(slack_url, "FINLOOM_SLACK_WEBHOOK_URL", secret=True)
    routing_key = secret_value(settings, "pagerduty_routing_key")
    if routing_key is not None:
        _routing_key(routing_key)
    serve_token = secret_value(settings, "serve_token")
    rules_text = _read_rules(rules or DEFAULT_RULES)

    out = _prepare_out(out)
    result = Rendered(out=out)
    secrets = {
        SLACK_URL_FILE: slack_url,
        PAGERDUTY_KEY_FILE: routing_key,
        SERVE_TOKEN_FILE: serve_token,
        PUSHGATEWAY_PASSWORD_FILE: pushgateway.password if pushgateway else None,
    }
    texts = {
        RULES_FILE: rules_text,
        PROMETHEUS_FILE: dump_yaml(
            prometheus_config(
                out,
                serve,
                alertmanager,
                pushgateway,
                serve_token=serve_token is not None,
                intervals=intervals,
            )
        ),
        ALERTMANAGER_FILE: dump_yaml(
            alertmanager_config(
                out,
                pagerduty_url,
                slack=slack_url is not None,
                pagerduty=routing_key is not None,
                intervals=intervals,
            )
        ),
    }
    try:
        for name, value in secrets.items():  # secrets first: the YAML names them
            path = out / name
            if value is not None:
                write_file(path, value, 0o600)
                result.files.append(path)
            elif path.exists() or path.is_symlink():
                path.unlink()  # a secret no longer set must not linger
                result.removed.append(path)
        for name, text in texts.items():
            write_file(out / name, text, 0o644)
            result.files.append(out / name)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write ({exc.strerror or exc})") from None

    if pushgateway is None:
        result.warnings.append(
            "FINLOOM_PUSHGATEWAY_URL is not set: Prometheus scrapes `finloom serve` only "
            "(flow runs started elsewhere are not seen)"
        )
    if routing_key is None:
        result.warnings.append("FINLOOM_PAGERDUTY_ROUTING_KEY is not set: page alerts reach no one")
    if slack_url is None:
        result.warnings.append("FINLOOM_SLACK_WEBHOOK_URL is not set: ticket alerts reach no one")
    return result


__all__ = [
    "DEFAULT_RULES",
    "RECEIVERS",
    "Intervals",
    "Rendered",
    "Target",
    "alertmanager_config",
    "parse_target",
    "prometheus_config",
    "render",
    "secret_value",
]
