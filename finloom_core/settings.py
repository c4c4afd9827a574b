"""FinLoom settings: one pydantic-settings object, read once at the edge and passed down.

Every field is set by an environment variable ``FINLOOM_<FIELD>`` (or a ``.env`` file in
the working directory). The names are a public contract: deployments and users rely on them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from finloom_core.errors import ConfigurationError

# SEC allows 10 requests/second per user; blocks have been reported from 9.7/s on.
SEC_MAX_REQUESTS_PER_SECOND = 10.0


class FinloomSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FINLOOM_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
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
        description="Requests allowed to start in any one-second window (SEC's cap is 10).",
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
    batch_size: int = Field(
        default=100, ge=1, le=1000, description="Companies per download/parse/load task run."
    )

    @field_validator("edgar_data_url", "edgar_www_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("sec_user_agent")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return value.strip()

    def require_user_agent(self) -> str:
        """The declared User-Agent, or a one-line ConfigurationError naming the variable."""
        if not self.sec_user_agent:
            raise ConfigurationError(
                "FINLOOM_SEC_USER_AGENT is not set: SEC requires a declared User-Agent such as "
                '"Your Company admin@example.com" before any request'
            )
        return self.sec_user_agent


def load_settings(**overrides: object) -> FinloomSettings:
    """Read settings from the environment (and .env), turning validation errors into one line."""
    try:
        return FinloomSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else "?"
        raise ConfigurationError(f"FINLOOM_{field.upper()}: {first['msg']}") from None
