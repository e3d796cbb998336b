from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import ConfigError, Settings, load_settings
from bot.store import RateLimits

ENV_NAMES = [name.upper() for name in Settings.model_fields]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    # Neither the developer's environment nor a .env in the working directory may leak in.
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults():
    settings = load_settings()
    assert settings.discord_token is None
    assert settings.database_url == "sqlite+aiosqlite:///dreambot.db"
    assert (settings.dream_model, settings.device, settings.workers, settings.command_prefix) == (
        "efficientnet-lite0", "auto", 0, "!"
    )
    assert settings.results_dir == Path("results")
    assert settings.rate_limits == RateLimits(3, 60.0, 30, 2)


def test_environment_then_dotenv_then_overrides(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("DEVICE=cpu\nWORKERS=2\nUSER_BURST=5\nDISCORD_TOKEN=from-dotenv\n")
    monkeypatch.setenv("WORKERS", "4")  # the environment wins over .env
    settings = load_settings(max_active_jobs=7)
    assert (settings.device, settings.workers, settings.max_active_jobs) == ("cpu", 4, 7)
    assert settings.rate_limits.user_burst == 5
    assert settings.discord_token.get_secret_value() == "from-dotenv"
    assert load_settings(_env_file=None).device == "auto"


def test_token_never_shows_in_repr_or_errors(monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", "very-secret-token")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://bot:db-password@host/db")
    settings = load_settings()
    assert "very-secret-token" not in repr(settings) and "very-secret-token" not in str(settings)
    assert "db-password" not in repr(settings)
    with pytest.raises(ConfigError) as info:
        load_settings(device="gpu")
    assert "very-secret-token" not in str(info.value)


def test_each_bad_value_gives_one_clear_line(monkeypatch):
    monkeypatch.setenv("DEVICE", "gpu")
    monkeypatch.setenv("WORKERS", "-1")
    monkeypatch.setenv("USER_BURST", "lots")
    monkeypatch.setenv("USER_REFILL_SECONDS", "0")
    with pytest.raises(ConfigError) as info:
        load_settings()
    lines = str(info.value).splitlines()
    assert sorted(lines) == sorted([
        "DEVICE: must be one of auto, cpu, cuda (got 'gpu')",
        "WORKERS: must be >= 0 (got '-1')",
        "USER_BURST: must be a whole number (got 'lots')",
        "USER_REFILL_SECONDS: must be > 0 (got '0')",
    ])


def test_device_is_case_insensitive_and_url_and_prefix_are_checked():
    assert load_settings(device="CUDA").device == "cuda"
    with pytest.raises(ConfigError) as info:
        load_settings(database_url="not a url", command_prefix="")
    assert sorted(str(info.value).splitlines()) == [
        "COMMAND_PREFIX: must not be empty (got '')",
        "DATABASE_URL: not a database URL, e.g. sqlite+aiosqlite:///dreambot.db",
    ]
