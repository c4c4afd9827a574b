"""Profiles (FINLOOM_ENV -> config/<env>.toml), their precedence, and ``finloom config show``.

Precedence: the environment > ``.env`` > the profile > the default.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finloom_core.errors import ConfigurationError
from finloom_core.settings import FinloomSettings, load_settings, settings_layers
from tests.test_cli import REPO, assert_usage_error, finloom

STAGING = """\
# staging
max_requests_per_second = 3
batch_size = 50
http_max_retries = 2
breaker_fail_max = 7
"""


@pytest.fixture
def workdir(clean_finloom_env: None, tmp_path: Path) -> Path:
    """The working directory (clean FINLOOM_* environment) with config/staging.toml."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "staging.toml").write_text(STAGING, encoding="utf-8")
    return tmp_path


def test_each_source_wins_over_the_ones_below(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / ".env").write_text(
        "FINLOOM_HTTP_MAX_RETRIES=3\nFINLOOM_BATCH_SIZE=40\n", encoding="utf-8"
    )
    monkeypatch.setenv("FINLOOM_ENV", "staging")
    monkeypatch.setenv("FINLOOM_BATCH_SIZE", "9")

    settings = load_settings()

    assert settings.max_requests_per_second == 3  # profile over default
    assert settings.http_max_retries == 3  # .env over profile
    assert settings.batch_size == 9  # environment over .env and profile
    assert settings.breaker_cooloff_seconds == 600  # default
    layers = settings_layers()
    assert [layers.source(name) for name in ("max_requests_per_second", "http_max_retries")] == [
        "profile:staging",
        ".env",
    ]
    assert layers.source("batch_size") == "environment"
    assert layers.source("breaker_cooloff_seconds") == "default"


def test_no_profile_without_finloom_env(workdir: Path) -> None:
    assert load_settings().max_requests_per_second == FinloomSettings().max_requests_per_second
    assert load_settings().max_requests_per_second != 3
    assert settings_layers().profile is None


def test_the_profile_can_be_chosen_in_dotenv_and_read_from_finloom_config_dir(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("profiles")
    (elsewhere / "qa.toml").write_text("batch_size = 321\n", encoding="utf-8")
    (workdir / ".env").write_text(f"FINLOOM_ENV=qa\nFINLOOM_CONFIG_DIR={elsewhere}\n")
    settings = load_settings()
    assert settings.batch_size == 321
    assert settings.env == "qa" and settings.config_dir == elsewhere
    assert settings_layers().source("batch_size") == "profile:qa"


@pytest.mark.parametrize(
    ("profile", "content", "needles"),
    [
        ("nope", None, ("FINLOOM_ENV: unknown profile 'nope'", "config/nope.toml", "staging")),
        ("../staging", None, ("FINLOOM_ENV: '../staging' is not a profile name",)),
        ("typo", "batch_sise = 3\n", ("unknown setting 'batch_sise'", "config/typo.toml")),
        ("prefixed", "FINLOOM_BATCH_SIZE = 3\n", ("unknown setting 'FINLOOM_BATCH_SIZE'",)),
        ("loop", 'env = "prod"\n', ("unknown setting 'env'", "config/loop.toml")),
        ("broken", "batch_size = \n", ("config/broken.toml: not a readable TOML profile",)),
        ("fast", "max_requests_per_second = 30\n", ("FINLOOM_MAX_REQUESTS_PER_SECOND", "fast")),
    ],
)
def test_a_bad_profile_is_one_line(
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    profile: str,
    content: str | None,
    needles: tuple[str, ...],
) -> None:
    if content is not None:
        (workdir / "config" / f"{profile}.toml").write_text(content, encoding="utf-8")
    monkeypatch.setenv("FINLOOM_ENV", profile)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    assert info.value.__cause__ is None
    for needle in needles:
        assert needle in message, (needle, message)


@pytest.mark.parametrize("profile", ["dev", "staging", "prod"])
def test_the_shipped_profiles_are_valid(
    clean_finloom_env: None, monkeypatch: pytest.MonkeyPatch, profile: str
) -> None:
    monkeypatch.setenv("FINLOOM_ENV", profile)
    monkeypatch.setenv("FINLOOM_CONFIG_DIR", str(REPO / "config"))
    load_settings()  # every key a setting, every value valid, no secret needing a store
    layers = settings_layers()
    assert layers.profile_values, f"config/{profile}.toml sets nothing"
    assert "sec_user_agent" not in layers.profile_values
    assert "\n# " in "\n" + (REPO / "config" / f"{profile}.toml").read_text()  # commented


# ------------------------------------------------------------------ finloom config show


def test_config_show_json_gives_values_and_sources(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "staging.toml").write_text(STAGING, encoding="utf-8")
    (tmp_path / ".env").write_text("FINLOOM_HTTP_MAX_RETRIES=3\n", encoding="utf-8")
    env = {
        "FINLOOM_ENV": "staging",
        "FINLOOM_BATCH_SIZE": "9",
        "FINLOOM_SERVE_TOKEN": "tok-Zq8-config-show-secret",
        "FINLOOM_REDIS_URL": "redis://:pw-Zq8-redis@127.0.0.1:6379/0",
        "FINLOOM_ALERT_WEBHOOK_URL": "secret:alert-webhook",
    }
    result = finloom(tmp_path, "config", "show", "--json", env=env)
    assert result.code == 0, result
    shown = json.loads(result.stdout)
    assert shown["FINLOOM_MAX_REQUESTS_PER_SECOND"] == {"value": 3, "source": "profile:staging"}
    assert shown["FINLOOM_BATCH_SIZE"] == {"value": 9, "source": "environment"}
    assert shown["FINLOOM_HTTP_MAX_RETRIES"] == {"value": 3, "source": ".env"}
    assert shown["FINLOOM_DB_PATH"] == {"value": "finloom.duckdb", "source": "default"}
    assert shown["FINLOOM_ENV"] == {"value": "staging", "source": "environment"}
    assert shown["FINLOOM_SERVE_TOKEN"] == {"value": "***", "source": "environment"}
    assert shown["FINLOOM_ALERT_WEBHOOK_URL"] == {"value": "***", "source": "environment"}
    assert shown["FINLOOM_REDIS_URL"]["value"] == "redis://***@127.0.0.1:6379/0"
    assert shown["FINLOOM_SLACK_WEBHOOK_URL"] == {"value": None, "source": "default"}
    assert set(shown) == {f"FINLOOM_{name.upper()}" for name in FinloomSettings.model_fields}
    assert "Zq8" not in result.output

    text = finloom(tmp_path, "config", "show", env=env)
    assert text.code == 0, text
    rows = {line.split()[0]: line.split()[1:] for line in text.stdout.splitlines()}
    assert rows["FINLOOM_MAX_REQUESTS_PER_SECOND"] == ["profile:staging", "3.0"]
    assert rows["FINLOOM_BATCH_SIZE"] == ["environment", "9"]
    assert rows["FINLOOM_SERVE_TOKEN"] == ["environment", "***"]
    assert "Zq8" not in text.output


def test_an_unknown_profile_stops_every_command_in_one_line(tmp_path: Path) -> None:
    for args in (("config", "show", "--json"), ("backfill", "--ciks", "320193")):
        result = finloom(tmp_path, *args, env={"FINLOOM_ENV": "nope"})
        assert_usage_error(result, "unknown profile 'nope'")
        assert result.stdout == ""
