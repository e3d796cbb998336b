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
    assert settings.result_retention_days == 30, "results are kept 30 days unless the operator says otherwise"
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
    monkeypatch.setenv("RESULT_RETENTION_DAYS", "-1")
    with pytest.raises(ConfigError) as info:
        load_settings()
    lines = str(info.value).splitlines()
    assert sorted(lines) == sorted([
        "DEVICE: must be one of auto, cpu, cuda (got 'gpu')",
        "WORKERS: must be >= 0 (got '-1')",
        "USER_BURST: must be a whole number (got 'lots')",
        "USER_REFILL_SECONDS: must be > 0 (got '0')",
        "RESULT_RETENTION_DAYS: must be >= 0 (got '-1')",
    ])


def test_device_is_case_insensitive_and_url_and_prefix_are_checked():
    assert load_settings(device="CUDA").device == "cuda"
    with pytest.raises(ConfigError) as info:
        load_settings(database_url="not a url", command_prefix="")
    assert sorted(str(info.value).splitlines()) == [
        "COMMAND_PREFIX: must not be empty (got '')",
        "DATABASE_URL: not a database URL, e.g. sqlite+aiosqlite:///dreambot.db",
    ]


def test_shards_come_as_ranges_or_lists_and_need_a_count(monkeypatch):
    assert (load_settings().shard_count, load_settings().shard_ids) == (None, None)  # unsharded
    monkeypatch.setenv("SHARD_COUNT", "8")
    for text, shards in [("0-3", (0, 1, 2, 3)), ("4-7", (4, 5, 6, 7)), ("0,2,5", (0, 2, 5)), (" 5, 0-1 ,1", (0, 1, 5)),
                         ("6", (6,)), ("", None)]:
        monkeypatch.setenv("SHARD_IDS", text)
        assert load_settings().shard_ids == shards, text
    assert load_settings(shard_ids=(1, 3)).shard_ids == (1, 3)

    for text, line in [
        ("0-8", "SHARD_IDS (0,1,2,3,4,5,6,7,8) must name shards 0 to 7, as SHARD_COUNT is 8"),
        ("3-1", "SHARD_IDS: the range 3-1 runs backwards; write 1-3 (got '3-1')"),
        ("0;1", "SHARD_IDS: must be shard numbers and ranges, e.g. 0-3 or 0,2,5 (got '0;1')"),
        ("-1", "SHARD_IDS: must be shard numbers and ranges, e.g. 0-3 or 0,2,5 (got '-1')"),
    ]:
        monkeypatch.setenv("SHARD_IDS", text)
        with pytest.raises(ConfigError) as info:
            load_settings()
        assert str(info.value) == line
    monkeypatch.delenv("SHARD_COUNT")
    monkeypatch.setenv("SHARD_IDS", "0-1")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == "SHARD_IDS needs SHARD_COUNT, the number of shards across all bot processes"
    with pytest.raises(ConfigError) as info:
        load_settings(shard_count=0, shard_ids=None)
    assert str(info.value) == "SHARD_COUNT: must be >= 1 (got 0)"


def test_ray_executor_settings_and_their_errors(monkeypatch):
    assert (load_settings().executor, load_settings().ray_address) == ("local", "")
    monkeypatch.setenv("EXECUTOR", "Ray")
    monkeypatch.setenv("RAY_ADDRESS", "ray://head.example:10001")
    monkeypatch.setenv("RAY_GPUS_PER_ACTOR", "0.5")
    settings = load_settings()
    assert (settings.executor, settings.ray_address, settings.ray_gpus_per_actor, settings.ray_cpus_per_actor) == (
        "ray", "ray://head.example:10001", 0.5, 1.0)
    assert load_settings(ray_address="auto").ray_address == "auto"
    assert load_settings(ray_address="10.0.0.5:6379").ray_address == "10.0.0.5:6379"

    monkeypatch.setenv("EXECUTOR", "kubernetes")
    monkeypatch.setenv("RAY_ADDRESS", "head node")
    monkeypatch.setenv("RAY_GPUS_PER_ACTOR", "2")
    monkeypatch.setenv("RAY_CPUS_PER_ACTOR", "0")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert sorted(str(info.value).splitlines()) == [
        "EXECUTOR: must be one of local, ray (got 'kubernetes')",
        "RAY_ADDRESS: must be empty (start Ray here), auto, ray://host:port or host:port (got 'head node')",
        "RAY_CPUS_PER_ACTOR: must be > 0 (got '0')",
        "RAY_GPUS_PER_ACTOR: must be <= 1 (got '2')",
    ]


@pytest.mark.parametrize(("heartbeat", "lease"), [(15, 30), (20, 30), (0.5, 1)])
def test_a_heartbeat_of_half_the_lease_or_more_is_refused(heartbeat, lease):
    # One missed beat must not cost a process its jobs: it renews at least twice per lease.
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None, heartbeat_seconds=heartbeat, lease_seconds=lease)
    assert f"HEARTBEAT_SECONDS ({heartbeat:g}) must be more than 0 and under half of LEASE_SECONDS ({lease:g})" in str(info.value)
    assert len(str(info.value).splitlines()) == 1


def test_a_heartbeat_under_half_the_lease_is_taken():
    settings = load_settings(_env_file=None, heartbeat_seconds=14.9, lease_seconds=30)
    assert (settings.heartbeat_seconds, settings.lease_seconds) == (14.9, 30)
