"""FinLoom settings: one pydantic-settings object, read once at the edge and passed down.

Every field is set by an environment variable ``FINLOOM_<FIELD>`` (or a ``.env`` file in
the working directory). The names are a public contract: deployments and users rely on them.

Precedence: the environment > ``.env`` > the profile ``FINLOOM_ENV`` names (``config/<env>.toml``
or ``$FINLOOM_CONFIG_DIR/<env>.toml``, keys without the prefix) > the default. A
secret-bearing setting (``SECRET_BEARING``) may hold ``secret:NAME`` (the whole value or a
URL's password), resolved by :func:`load_settings` through ``finloom_core.redact``'s resolver.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from finloom_core.errors import ConfigurationError
from finloom_core.redact import is_reference, resolve_references

# SEC allows 10 requests/second per user; blocks have been reported from 9.7/s on.
SEC_MAX_REQUESTS_PER_SECOND = 10.0

# FINLOOM_DUCKDB_MEMORY_LIMIT's default, also the default of every warehouse connection
# (finloom_core.storage.database) opened without the setting.
DEFAULT_MEMORY_LIMIT = "2GB"
# FINLOOM_DOWNLOAD_CONCURRENCY's default, also download_batch's when called without it.
DEFAULT_DOWNLOAD_CONCURRENCY = 8
# FINLOOM_PUBLISHED_KEEP's default, also publish()'s when called without it.
DEFAULT_PUBLISHED_KEEP = 3
# FINLOOM_SERVE_RATE_LIMIT's default: per client address, probes exempt.
DEFAULT_SERVE_RATE_LIMIT = "600/minute"
MEMORY_LIMIT_PATTERN = r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"


def default_state_dir() -> Path:
    """Where FinLoom keeps machine-wide state by default: ``$XDG_STATE_HOME/finloom`` (an
    absolute XDG_STATE_HOME only, as the XDG spec says), else ``~/.local/state/finloom``."""
    xdg = os.environ.get("XDG_STATE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "finloom"
    try:
        home = Path.home()
    except RuntimeError:  # no HOME and no password entry: still one folder per user
        return Path(tempfile.gettempdir()) / f"finloom-state-{os.getuid()}"
    return home / ".local" / "state" / "finloom"


def _base_url(value: str) -> str:
    """An http(s) base URL without its trailing slash."""
    value = value.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value


PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
# Settings that may hold ``secret:NAME`` (their value, or their URL's password).
SECRET_BEARING = (
    "alert_webhook_url",
    "serve_token",
    "slack_webhook_url",
    "pagerduty_routing_key",
    "redis_url",
)


def _finloom_keys(values: Mapping[str, str | None]) -> dict[str, str]:
    """``{field: value}`` of the ``FINLOOM_*`` names in ``values`` (any case, as read)."""
    return {
        key.lower().removeprefix("finloom_"): value
        for key, value in values.items()
        if key.lower().startswith("finloom_") and value is not None
    }


@dataclass(frozen=True)
class SettingsLayers:
    """The raw values of each source, highest first: the environment, ``.env``, the profile."""

    environment: dict[str, str]
    dotenv: dict[str, str]
    profile: str | None = None
    profile_path: Path | None = None
    profile_values: dict[str, Any] = field(default_factory=dict)

    def source(self, name: str) -> str:
        """Where ``name`` is set: ``environment``, ``.env``, ``profile:<env>``, ``default``."""
        if name in self.environment:
            return "environment"
        if name in self.dotenv:
            return ".env"
        return f"profile:{self.profile}" if name in self.profile_values else "default"


def settings_layers(env_file: str | Path = ".env") -> SettingsLayers:
    """Read the environment, ``.env`` and the profile; a one-line ConfigurationError for an
    unknown profile, an unreadable one, or a key of it that is no setting."""
    environment = _finloom_keys(os.environ)
    dotenv = _finloom_keys(dotenv_values(env_file)) if Path(env_file).is_file() else {}
    chosen = {**dotenv, **environment}
    profile = (chosen.get("env") or "").strip()
    if not profile:
        return SettingsLayers(environment, dotenv)
    if not PROFILE_NAME.fullmatch(profile):
        raise ConfigurationError(f"FINLOOM_ENV: {profile!r} is not a profile name")
    folder = Path((chosen.get("config_dir") or "").strip() or "config").expanduser()
    path = folder / f"{profile}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.toml"))) or "none"
        raise ConfigurationError(
            f"FINLOOM_ENV: unknown profile {profile!r}: no {path} (profiles there: {known})"
        )
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"{path}: not a readable TOML profile: {exc}") from None
    for key in values:
        if key not in FinloomSettings.model_fields or key in ("env", "config_dir"):
            raise ConfigurationError(
                f"{path}: unknown setting {key!r} (keys are setting names without "
                "FINLOOM_, e.g. batch_size; FINLOOM_ENV and FINLOOM_CONFIG_DIR cannot be set here)"
            )
    return SettingsLayers(environment, dotenv, profile, path, values)


class FinloomSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FINLOOM_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    env: str | None = Field(
        default=None,
        description="Profile (e.g. `staging`): `config/<env>.toml` gives every setting that "
        "neither the environment nor `.env` sets. Unset: no profile.",
    )
    config_dir: Path | None = Field(
        default=None,
        description="Folder of the profiles; default: `config` in the working directory.",
    )
    sec_user_agent: str | None = Field(
        default=None,
        description='Declared User-Agent sent to SEC, e.g. "Acme Research ops@acme.example".',
    )
    edgar_data_url: str = Field(
        default="https://data.sec.gov", description="Base URL of SEC's XBRL and submissions API."
    )
    edgar_www_url: str = Field(
        default="https://www.sec.gov", description="Base URL of www.sec.gov (ticker map, archives)."
    )
    db_path: Path = Field(default=Path("finloom.duckdb"), description="DuckDB warehouse file.")
    max_requests_per_second: float = Field(
        default=8.0,
        gt=0,
        le=SEC_MAX_REQUESTS_PER_SECOND,
        description="Requests allowed to start in any window of one second plus a 0.25 s "
        "margin for arrival jitter (SEC's cap is 10: at most 10 is accepted).",
    )
    http_timeout_seconds: float = Field(default=30.0, gt=0, description="Per-request timeout.")
    http_max_retries: int = Field(
        default=4, ge=0, le=10, description="Retries of a 5xx, timeout or connection error."
    )
    http_backoff_seconds: float = Field(
        default=1.0, ge=0, description="First retry delay; doubles each retry, with full jitter."
    )
    http_backoff_max_seconds: float = Field(
        default=60.0, ge=0, description="Upper bound of one retry delay (Retry-After included)."
    )
    breaker_cooloff_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long the circuit stays open after SEC signals a block (429/403 page).",
    )
    breaker_fail_max: int = Field(
        default=5,
        ge=1,
        description="Consecutive failed requests (after retries) that also open the circuit.",
    )
    state_dir: Path | None = Field(
        default=None,
        description="Folder of FinLoom's machine-wide state: the SEC circuit's open-until, "
        "honoured by every FinLoom process of this user (SEC blocks the IP, not a warehouse); "
        "default: `$XDG_STATE_HOME/finloom`, else `~/.local/state/finloom`.",
    )
    batch_size: int = Field(
        default=100, ge=1, le=1000, description="Companies per download/parse/load task run."
    )
    download_concurrency: int = Field(
        default=DEFAULT_DOWNLOAD_CONCURRENCY,
        ge=1,
        le=32,
        description="Companies of a batch fetched at once from the live SEC API (threads "
        "behind the one rate limit); 1 fetches them one after another.",
    )
    duckdb_memory_limit: str = Field(
        default=DEFAULT_MEMORY_LIMIT,
        pattern=MEMORY_LIMIT_PATTERN,
        description="Memory DuckDB may use per process (e.g. `2GB`; at least `1GB`, as the "
        "JSON reader alone takes 512 MiB); beyond it, large joins and sorts spill to disk "
        "instead of growing.",
    )
    published_keep: int = Field(
        default=DEFAULT_PUBLISHED_KEEP,
        ge=1,
        le=100,
        description="Published snapshots kept in `<db_path>.published` for readers (each "
        "load publishes one; older ones are removed, and a reader holding one open keeps "
        "reading it).",
    )
    bulk_dir: Path | None = Field(
        default=None,
        description="Folder where `finloom backfill --bulk` keeps SEC's bulk archives "
        "(companyfacts.zip, submissions.zip) and their validators; default: `<db_path>.bulk`.",
    )
    dask_address: str | None = Field(
        default=None,
        description="Dask scheduler (e.g. `tcp://10.0.0.5:8786`) on whose workers `finloom "
        "backfill` parses the companies' documents into Parquet, bulk-loaded by the one "
        "writer. Unset: parsed in the run's own process.",
    )
    dask_staging_dir: Path | None = Field(
        default=None,
        description="Folder shared with the Dask workers (the same path on every machine) "
        "where a run with `FINLOOM_DASK_ADDRESS` stages downloaded documents and the Parquet "
        "of parsed companies, removed as they load; default: the system's temporary "
        "directory (workers on this machine).",
    )
    # -- observability
    metrics_dir: Path | None = Field(
        default=None,
        description="Folder where every run records its Prometheus metrics for `finloom serve` "
        "(prometheus-client multiprocess files); default: `<db_path>.metrics` beside the database.",
    )
    pushgateway_url: str | None = Field(
        default=None,
        description="Prometheus Pushgateway (e.g. http://127.0.0.1:9091); each flow run pushes "
        "its metrics there at its end. Unset: no push.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="`json`: one JSON object per log line, with correlation_id."
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP collector base URL (e.g. http://127.0.0.1:4318) for OpenTelemetry "
        "traces. Unset: tracing off.",
    )
    alert_webhook_url: SecretStr | None = Field(
        default=None,
        description="Webhook (Slack-compatible JSON) that receives a message when a flow run "
        "fails. Unset: no notification.",
    )
    alert_block: str | None = Field(
        default=None,
        description="Prefect notification block slug (e.g. `slack-webhook/ops`, "
        "`pager-duty-web-hook/on-call`) notified when a flow run fails. Unset: none.",
    )
    health_min_free_disk_mb: int = Field(
        default=1024, ge=0, description="`/health/ready` fails below this much free disk."
    )
    health_max_memory_percent: float = Field(
        default=95.0, gt=0, le=100, description="`/health/ready` fails above this memory use."
    )
    health_sec_probe_seconds: float = Field(
        default=300.0, gt=0, description="How long one SEC reachability probe is reused."
    )
    serve_token: SecretStr | None = Field(
        default=None,
        description="Bearer token that unlocks the details of `finloom serve`'s health "
        "endpoints (paths, PIDs, sizes, URLs). Unset: nobody gets details.",
    )
    serve_rate_limit: str | None = Field(
        default=DEFAULT_SERVE_RATE_LIMIT,
        description="Requests one client address may send `finloom serve` in a moving window "
        "(`limits` notation, e.g. `120/minute`, `20/second`); beyond it, 429 with "
        "`Retry-After`. The probes `/health/live`, `/health/ready` and `/health/startup` are "
        "never limited. `off`: no limit.",
    )
    # -- the monitoring stack rendered by `finloom monitoring render`
    serve_target: str = Field(
        default="127.0.0.1:9108",
        description="`host:port` (or URL) where Prometheus scrapes `finloom serve`.",
    )
    alertmanager_target: str = Field(
        default="127.0.0.1:9093",
        description="`host:port` (or URL) of the Alertmanager Prometheus sends alerts to.",
    )
    slack_webhook_url: SecretStr | None = Field(
        default=None,
        description="Slack incoming webhook receiving `severity=ticket` alerts from "
        "Alertmanager (a secret: written to a 0600 file, never into YAML). Unset: none.",
    )
    pagerduty_routing_key: SecretStr | None = Field(
        default=None,
        description="PagerDuty Events API v2 routing (integration) key receiving "
        "`severity=page` alerts from Alertmanager (a secret, as above). Unset: none.",
    )
    pagerduty_url: str = Field(
        default="https://events.pagerduty.com/v2/enqueue",
        description="PagerDuty Events API v2 endpoint Alertmanager posts pages to (e.g. "
        "`https://events.eu.pagerduty.com/v2/enqueue` for EU accounts).",
    )
    # -- a pool of workers sharing one SEC budget
    redis_url: str | None = Field(
        default=None,
        description="Redis shared by FinLoom workers (e.g. `redis://127.0.0.1:6379/0`): one "
        "SEC rate-limit window and one circuit for all of them, and the HTTP cache of ticker "
        "map, submissions and companyfacts. Unset: per-process limiter, machine-wide circuit "
        "file (FINLOOM_STATE_DIR), no cache.",
    )
    redis_fallback_requests_per_second: float = Field(
        default=1.0,
        gt=0,
        le=SEC_MAX_REQUESTS_PER_SECOND,
        description="Each process's rate while FINLOOM_REDIS_URL is unreachable mid-run (the "
        "shared window is gone): keep it at most the SEC budget divided by the workers.",
    )
    cache_ttl_seconds: int = Field(
        default=604800,
        ge=0,
        description="How long a response stays in the Redis HTTP cache (always revalidated "
        "with SEC before use; a 304 serves it); 0: no cache.",
    )
    cache_max_entry_mb: float = Field(
        default=16.0,
        gt=0,
        description="Responses larger than this once compressed (zlib) are not cached.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments > environment > ``.env`` > profile (FINLOOM_ENV) > defaults."""
        profile = InitSettingsSource(settings_cls, settings_layers().profile_values)
        return init_settings, env_settings, dotenv_settings, profile, file_secret_settings

    @field_validator("edgar_data_url", "edgar_www_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return _base_url(value)

    @field_validator("pushgateway_url", "otlp_endpoint")
    @classmethod
    def _optional_url(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else _base_url(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if is_reference(value):  # secret:NAME, resolved (and validated) by load_settings
            return value.strip()
        if not value.strip().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value.strip()

    @field_validator("alert_webhook_url", "serve_token", mode="before")
    @classmethod
    def _blank_webhook(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("state_dir", "dask_address", "dask_staging_dir", mode="before")
    @classmethod
    def _blank_state_dir(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("serve_rate_limit", mode="before")
    @classmethod
    def _rate_limit(cls, value: object) -> object:
        """``limits`` notation (checked by ``limits.parse``); blank: the default; off: None."""
        if value is None or not isinstance(value, str):
            return value
        text = value.strip()
        if not text:
            return DEFAULT_SERVE_RATE_LIMIT
        if text.lower() in ("off", "none"):
            return None
        from limits import parse

        try:
            amount = parse(text).amount
        except ValueError:
            amount = 0
        if amount < 1:
            raise ValueError(
                f"{text!r} is not a rate limit such as 120/minute or 20/second (or off)"
            )
        return text

    @field_validator("sec_user_agent")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return value.strip()

    def resolved_bulk_dir(self, db_path: Path | None = None) -> Path:
        """``bulk_dir``, or ``<db_path>.bulk`` beside the database."""
        if self.bulk_dir is not None:
            return self.bulk_dir.expanduser()
        db = db_path or self.db_path
        return db.with_name(db.name + ".bulk")

    def resolved_metrics_dir(self) -> Path:
        """``metrics_dir``, or ``<db_path>.metrics`` beside the database."""
        if self.metrics_dir is not None:
            return self.metrics_dir
        return self.db_path.with_name(self.db_path.name + ".metrics")

    def resolved_state_dir(self) -> Path:
        """``state_dir``, or ``$XDG_STATE_HOME/finloom`` (``~/.local/state/finloom``)."""
        if self.state_dir is not None:
            return self.state_dir.expanduser()
        return default_state_dir()

    def require_user_agent(self) -> str:
        """The declared User-Agent, or a one-line ConfigurationError naming the variable."""
        if not self.sec_user_agent:
            raise ConfigurationError(
                "FINLOOM_SEC_USER_AGENT is not set: SEC requires a declared User-Agent such as "
                '"Your Company admin@example.com" before any request'
            )
        return self.sec_user_agent


def load_settings(*, resolve_secrets: bool = True, **overrides: object) -> FinloomSettings:
    """Read settings (environment, .env, profile), turning validation errors into one line;
    ``secret:NAME`` references are resolved unless ``resolve_secrets`` is false."""
    settings = _validated(overrides)
    texts = {name: _text(getattr(settings, name)) for name in SECRET_BEARING}
    resolved = resolve_references(texts) if resolve_secrets else {}
    return _validated({**overrides, **resolved}) if resolved else settings


def _text(value: object) -> str | None:
    return value.get_secret_value() if isinstance(value, SecretStr) else value  # type: ignore[return-value]


def _validated(values: Mapping[str, object]) -> FinloomSettings:
    try:
        return FinloomSettings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first.get("loc") else "?"
        layers = settings_layers()
        where = f" (in {layers.profile_path})" if name in layers.profile_values else ""
        raise ConfigurationError(f"FINLOOM_{name.upper()}: {first['msg']}{where}") from None
