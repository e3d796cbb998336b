"""GuildRows: servers' settings, the limits they make, and what a member could start now. Every
test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.store import Asker, GuildSettings, RateLimits, Store
from tests.bot.store.helpers import NOW, admit


@pytest.fixture
def url(database_url):
    return database_url  # every test here runs on SQLite and on PostgreSQL


async def test_a_server_without_settings_has_every_default(url):
    async with Store.open(url, upgrade=True) as store:
        assert await store.guilds.get("g1") == GuildSettings(guild_id="g1")
        assert await store.guilds.get(123) == GuildSettings(guild_id="123")  # type: ignore[arg-type]


async def test_changes_apply_field_by_field_and_none_resets_one(url):
    async with Store.open(url, upgrade=True) as store:
        settings = await store.guilds.change("g1", user_burst=3, prefix="?", gallery_channel_id=42,
                                             exempt_role_ids=[111, "222"], max_job_seconds=30.5)
        assert (settings.user_burst, settings.prefix, settings.max_job_seconds) == (3, "?", 30.5)
        assert settings.gallery_channel_id == "42" and settings.exempt_role_ids == ("111", "222"), \
            "Discord ids arrive as ints; the store keeps strings"
        changed = await store.guilds.change("g1", like_threshold=5, public_gallery=True)
        assert (changed.user_burst, changed.prefix, changed.like_threshold, changed.public_gallery) == (3, "?", 5, True), \
            "a change leaves the other fields as they were"
        assert await store.guilds.get("g1") == changed
        reset = await store.guilds.change("g1", user_burst=None, gallery_channel_id=None, exempt_role_ids=None)
        assert (reset.user_burst, reset.gallery_channel_id, reset.exempt_role_ids, reset.prefix) == (None, None, (), "?")
        assert await store.guilds.get("g1") == reset
        assert await store.guilds.get("g2") == GuildSettings(guild_id="g2"), "one server's settings are its own"
        with pytest.raises(AssertionError, match="unknown guild setting"):
            await store.guilds.change("g1", colour="red")
        assert await store.guilds.get("g1") == reset


async def test_concurrent_first_changes_of_a_guilds_settings_all_apply(url):
    # Each change would create the guild's row; on PostgreSQL only one insert may win, the rest update it.
    changes = [{"prefix": "?"}, {"user_burst": 7}, {"like_threshold": 3}] * 4
    async with Store.open(url, upgrade=True) as store:
        await asyncio.gather(*(store.guilds.change("g1", **change) for change in changes))
        settings = await store.guilds.get("g1")
    assert (settings.prefix, settings.user_burst, settings.like_threshold) == ("?", 7, 3)


async def test_limits_of_a_server_are_the_bots_with_its_overrides(url):
    defaults = RateLimits(user_burst=4, user_refill_seconds=30, guild_jobs_per_hour=20, max_active_jobs=2)
    async with Store.open(url, upgrade=True, limits=defaults) as store:
        assert store.guilds.limits_of(None) == defaults, "outside servers"
        assert store.guilds.limits_of(await store.guilds.get("g1")) == defaults, "a server without overrides"
        settings = await store.guilds.change("g1", user_burst=0, guild_jobs_per_hour=100, prefix="?")
        assert store.guilds.limits_of(settings) == RateLimits(user_burst=0, user_refill_seconds=30,
                                                              guild_jobs_per_hour=100, max_active_jobs=2)


@pytest.mark.parametrize("skew", [3600.0, -3600.0])
async def test_quota_runs_on_the_database_clock_as_admission_does(url, monkeypatch, skew):
    """A process whose own clock is an hour off still reports what admission would decide."""
    limits = RateLimits(user_burst=1, user_refill_seconds=60, guild_jobs_per_hour=0, max_active_jobs=5)
    async with Store.open(url, upgrade=True, limits=limits) as store:
        assert (await admit(store, Asker("q", "g1"))).allowed  # the burst is spent, on the database's clock
        true_time = time.time
        monkeypatch.setattr(time, "time", lambda: true_time() + skew)
        quota = await store.guilds.quota("q", "g1")
        assert quota.user_available == 0 and 0 < quota.user_next_in <= 60, quota
        assert not (await admit(store, Asker("q", "g1"))).allowed, "and admission agrees"


async def test_quota_reports_without_consuming(url):
    limits = RateLimits(user_burst=3, user_refill_seconds=60, guild_jobs_per_hour=10, max_active_jobs=2)
    async with Store.open(url, upgrade=True, limits=limits) as store:
        fresh = await store.guilds.quota("q", "g1", now=NOW)
        assert (fresh.user_available, fresh.user_next_in, fresh.guild_available, fresh.active_jobs) == (3, 0, 10, 0)
        assert (await admit(store, Asker("q", "g1"), now=NOW)).allowed
        quota = await store.guilds.quota("q", "g1", now=NOW + 30)
        assert (quota.user_available, quota.user_burst, quota.user_next_in) == (2, 3, pytest.approx(30))
        assert (quota.guild_available, quota.active_jobs, quota.max_active_jobs, quota.exempt) == (9, 1, 2, False)
        assert await store.guilds.quota("q", "g1", now=NOW + 30) == quota
        assert (await admit(store, Asker("q", "g1"), now=NOW + 30)).allowed, "asking for the quota took nothing"
        # Outside servers there is no server limit; a limit switched off has no count.
        dm = await store.guilds.quota("q", None, now=NOW + 30)
        assert (dm.guild_available, dm.user_available, dm.active_jobs) == (None, 1, 2)
        await store.guilds.change("g2", user_burst=0, guild_jobs_per_hour=0, exempt_role_ids=["mods"])
        off = await store.guilds.quota("q", "g2", roles=["mods"], now=NOW)
        assert (off.user_available, off.user_next_in, off.guild_available, off.exempt) == (None, 0, None, True)
