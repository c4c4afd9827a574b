"""FinloomSettings: FINLOOM_ environment variables, defaults, .env, one-line config errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from finloom_core.errors import ConfigurationError
from finloom_core.settings import SEC_MAX_REQUESTS_PER_SECOND, FinloomSettings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No FINLOOM_ variable from the caller's shell, and no stray .env in the working dir."""
    for name in list(os.environ):
        if name.upper().startswith("FINLOOM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults() -> None:
    settings = FinloomSettings()
    assert settings.sec_user_agent is None
    assert settings.edgar_data_url == "https://data.sec.gov"
    assert settings.edgar_www_url == "https://www.sec.gov"
    assert settings.db_path == Path("finloom.duckdb")
    assert 0 < settings.max_requests_per_second < 10
    assert settings.breaker_cooloff_seconds == 600


def test_environment_variables_use_the_finloom_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINLOOM_SEC_USER_AGENT", "Acme Research ops@acme.example")
    monkeypatch.setenv("FINLOOM_EDGAR_DATA_URL", "http://127.0.0.1:8080/")
    monkeypatch.setenv("FINLOOM_DB_PATH", "/data/warehouse.duckdb")
    monkeypatch.setenv("FINLOOM_MAX_REQUESTS_PER_SECOND", "5.5")
    monkeypatch.setenv("FINLOOM_BREAKER_COOLOFF_SECONDS", "30")
    settings = load_settings()
    assert settings.sec_user_agent == "Acme Research ops@acme.example"
    assert settings.edgar_data_url == "http://127.0.0.1:8080"  # trailing slash stripped
    assert settings.db_path == Path("/data/warehouse.duckdb")
    assert settings.max_requests_per_second == 5.5
    assert settings.breaker_cooloff_seconds == 30


def test_unprefixed_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PATH", "elsewhere.duckdb")
    monkeypatch.setenv("SEC_USER_AGENT", "Nobody nobody@example.com")
    settings = FinloomSettings()
    assert settings.db_path == Path("finloom.duckdb")
    assert settings.sec_user_agent is None


def test_dotenv_file_in_working_directory(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / ".env").write_text(
        "FINLOOM_SEC_USER_AGENT=DotEnv Co admin@dotenv.example\n"
        "FINLOOM_DB_PATH=from_dotenv.duckdb\n"
        "FINLOOM_BREAKER_COOLOFF_SECONDS=120\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("FINLOOM_BREAKER_COOLOFF_SECONDS", "90")  # the environment wins
    settings = load_settings()
    assert settings.sec_user_agent == "DotEnv Co admin@dotenv.example"
    assert settings.db_path == Path("from_dotenv.duckdb")
    assert settings.breaker_cooloff_seconds == 90


@pytest.mark.parametrize("value", [None, "", "   "])
def test_require_user_agent_names_the_variable(value: str | None) -> None:
    settings = FinloomSettings(sec_user_agent=value)
    with pytest.raises(ConfigurationError) as info:
        settings.require_user_agent()
    assert "FINLOOM_SEC_USER_AGENT" in str(info.value)
    assert "\n" not in str(info.value)


def test_require_user_agent_returns_the_declared_agent() -> None:
    settings = FinloomSettings(sec_user_agent="  Acme ops@acme.example ")
    assert settings.require_user_agent() == "Acme ops@acme.example"


def test_load_settings_turns_a_rate_above_sec_cap_into_one_line_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FINLOOM_MAX_REQUESTS_PER_SECOND", "50")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("FINLOOM_MAX_REQUESTS_PER_SECOND")
    assert "\n" not in message
    assert info.value.__cause__ is None  # no pydantic traceback chained behind it


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FINLOOM_MAX_REQUESTS_PER_SECOND", "0"),
        ("FINLOOM_MAX_REQUESTS_PER_SECOND", "fast"),
        ("FINLOOM_BREAKER_COOLOFF_SECONDS", "-1"),
        ("FINLOOM_EDGAR_DATA_URL", "data.sec.gov"),
    ],
)
def test_load_settings_names_the_bad_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert str(info.value).startswith(variable)
    assert "\n" not in str(info.value)


def test_sec_cap_is_ten_and_the_default_stays_below_it() -> None:
    assert SEC_MAX_REQUESTS_PER_SECOND == 10
    assert FinloomSettings().max_requests_per_second < SEC_MAX_REQUESTS_PER_SECOND
    assert load_settings(max_requests_per_second=10).max_requests_per_second == 10
