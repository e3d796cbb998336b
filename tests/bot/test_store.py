from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from dataclasses import replace

import pytest

from bot.store import NotFound, RateLimits, SchemaOutdated, Store
from core.jobs import JobSpec
from core.params import as_dict, params_from_dict, validate_params

NOW = 1_700_000_000.0
NO_LIMITS = RateLimits(user_burst=0, guild_jobs_per_hour=0, max_active_jobs=0)


@pytest.fixture
def url(database_url):
    # Every test here runs on SQLite and on PostgreSQL (see tests/conftest.py).
    return database_url


def spec(kind="dream", seed=1, image=b"\x89PNG fake"):
    params = validate_params(kind, {"layer": "block13", "strength": 2.0} if kind != "visualize" else {"steps": 20})
    return JobSpec(kind=kind, params=params, image=image, seed=seed)


async def test_fifty_concurrent_admissions_admit_exactly_five(url):
    limits = RateLimits(user_burst=5, user_refill_seconds=60, guild_jobs_per_hour=0, max_active_jobs=0)
    async with Store.open(url, upgrade=True, limits=limits) as store:
        results = await asyncio.gather(*(store.admit("alice", "g1", now=NOW) for _ in range(50)))
    assert sum(r.allowed for r in results) == 5
    assert all(r.retry_after > 0 and "another job in" in r.reason for r in results if not r.allowed)


@pytest.mark.parametrize("limit", ["max_active_jobs", "user_burst"])
async def test_a_thousand_concurrent_admissions_against_a_limit_of_five_admit_exactly_five(url, limit):
    limits = replace(NO_LIMITS, **{limit: 5})
    # Every admission of one user waits for the same lock (the user's bucket row, or SQLite's write
    # lock), so they run one after another whatever the pool size. The last of the 1000 callers
    # waits for a connection while the other 999 run: allow that wait on a slow, shared machine.
    async with Store.open(url, upgrade=True, limits=limits, pool_timeout=300) as store:
        start = time.perf_counter()
        results = await asyncio.gather(
            *(store.admit_and_create_job(spec(seed=i), user_id="zed", guild_id="g1", now=NOW) for i in range(1000))
        )
        elapsed = time.perf_counter() - start
        allowed = [r for r in results if r.allowed]
        print(f"\n{store.engine.dialect.name}, {limit}=5: {len(allowed)} of 1000 admitted in {elapsed:.2f} s")
        assert len(allowed) == 5 and len({r.job_id for r in allowed}) == 5
        assert [job.id for job in await store.active_jobs("zed")] == sorted(r.job_id for r in allowed)
        assert (await store.stats()).jobs == 5, "a refused admission creates no job"
        if limit == "user_burst":
            assert (await store.quota("zed", "g1", now=NOW)).user_available == 0
            assert all(r.retry_after > 0 for r in results if not r.allowed)
        else:
            assert all("already have 5 jobs" in r.reason for r in results if not r.allowed)


async def test_atomicity_holds_across_separate_engines_on_one_file(url):
    # Five Store instances, each with its own engine and connection pool: only the database can
    # serialise them, so a read-then-write race would admit more than five.
    limits = RateLimits(user_burst=5, user_refill_seconds=60, guild_jobs_per_hour=0, max_active_jobs=0)
    async with Store.open(url, upgrade=True):
        pass
    async with AsyncExitStack() as stack:
        stores = [await stack.enter_async_context(Store.open(url, limits=limits)) for _ in range(5)]
        results = await asyncio.gather(*(stores[i % 5].admit("alice", None, now=NOW) for i in range(50)))
    assert sum(r.allowed for r in results) == 5


async def test_active_job_cap_is_exact_under_concurrency_across_engines(url):
    limits = RateLimits(user_burst=0, guild_jobs_per_hour=0, max_active_jobs=5)
    async with Store.open(url, upgrade=True):
        pass
    async with AsyncExitStack() as stack:
        stores = [await stack.enter_async_context(Store.open(url, limits=limits)) for _ in range(4)]
        results = await asyncio.gather(
            *(stores[i % 4].admit_and_create_job(spec(seed=i), user_id="bob", guild_id="g1", now=NOW) for i in range(40))
        )
        allowed = [r for r in results if r.allowed]
        assert len(allowed) == 5 and len({r.job_id for r in allowed}) == 5
        assert len(await stores[0].active_jobs("bob")) == 5
        refused = next(r for r in results if not r.allowed)
        assert "already have 5 jobs queued or running" in refused.reason and refused.job_id is None


async def test_limits_survive_reopening_and_retry_after_shrinks_with_time(url):
    limits = RateLimits(user_burst=3, user_refill_seconds=60, guild_jobs_per_hour=0, max_active_jobs=0)
    async with Store.open(url, upgrade=True, limits=limits) as store:
        assert all([(await store.admit("carol", "g1", now=NOW)).allowed for _ in range(3)])
    async with Store.open(url, limits=limits) as store:
        denied = await store.admit("carol", "g1", now=NOW)
        assert not denied.allowed and denied.retry_after == pytest.approx(60)
        assert denied.reason == "you can start another job in 1 min"
        later = await store.admit("carol", "g1", now=NOW + 45)
        assert not later.allowed and later.retry_after == pytest.approx(15)
        assert (await store.admit("carol", "g1", now=NOW + 60)).allowed
        assert not (await store.admit("carol", "g1", now=NOW + 60)).allowed
        # Other users have their own bucket.
        assert (await store.admit("dave", "g1", now=NOW)).allowed


async def test_active_job_cap_frees_when_a_job_ends(url):
    limits = RateLimits(user_burst=0, guild_jobs_per_hour=0, max_active_jobs=2)
    async with Store.open(url, upgrade=True, limits=limits) as store:
        first = await store.admit_and_create_job(spec(), user_id="erin", now=NOW)
        second = await store.admit_and_create_job(spec(), user_id="erin", now=NOW)
        assert first.allowed and second.allowed
        third = await store.admit_and_create_job(spec(), user_id="erin", now=NOW)
        assert not third.allowed and "2 jobs queued or running" in third.reason
        assert not (await store.admit("erin", None, now=NOW)).allowed  # plain admit counts jobs too
        assert await store.mark_running(first.job_id)
        assert await store.finish_job(first.job_id, {"total": 1.5}, "results/1.png")
        assert (await store.admit_and_create_job(spec(), user_id="erin", now=NOW)).allowed


async def test_exempt_role_is_admitted_without_consuming(url):
    limits = RateLimits(user_burst=1, user_refill_seconds=60, guild_jobs_per_hour=0, max_active_jobs=1)
    async with Store.open(url, upgrade=True, limits=limits) as store:
        await store.set_guild_settings("g1", exempt_role_ids=[111, "222"])
        for _ in range(5):
            admission = await store.admit_and_create_job(spec(), user_id="mod", guild_id="g1", roles=["9", "222"], now=NOW)
            assert admission.allowed
        # The exemption did not use up the bucket, but the role only counts in its own guild.
        quota = await store.quota("mod", "g1", now=NOW)
        assert quota.user_available == 1 and quota.active_jobs == 5 and not quota.exempt
        assert (await store.quota("mod", "g1", roles=[111], now=NOW)).exempt
        assert not (await store.admit("mod", "g2", roles=["222"], now=NOW)).allowed  # active cap applies


async def test_guild_limit_is_shared_by_its_users_and_consumes_nothing_when_refused(url):
    limits = RateLimits(user_burst=2, user_refill_seconds=60, guild_jobs_per_hour=3, max_active_jobs=0)
    async with Store.open(url, upgrade=True, limits=limits) as store:
        assert [(await store.admit(user, "g1", now=NOW)).allowed for user in "abc"] == [True] * 3
        refused = await store.admit("d", "g1", now=NOW)
        assert not refused.allowed and "limit of 3 jobs per hour" in refused.reason
        assert refused.retry_after == pytest.approx(1200)  # one job per 3600/3 s refills
        # Other guilds and direct messages are not affected.
        assert (await store.admit("d", "g2", now=NOW)).allowed
        assert (await store.admit("e", None, now=NOW)).allowed
        # "d" was refused by the guild, so their own bucket still holds one job (2 - the g2 one).
        assert (await store.quota("d", None, now=NOW)).user_available == 1


async def test_guild_overrides_replace_the_defaults(url):
    async with Store.open(url, upgrade=True, limits=RateLimits(user_burst=1, max_active_jobs=0)) as store:
        settings = await store.set_guild_settings("g1", user_burst=3, prefix="?", gallery_channel_id=42)
        assert settings.limits(store.limits).user_burst == 3 and settings.prefix == "?"
        assert settings.gallery_channel_id == "42"
        assert [(await store.admit("f", "g1", now=NOW)).allowed for _ in range(4)] == [True, True, True, False]
        assert [(await store.admit("f2", "g2", now=NOW)).allowed for _ in range(2)] == [True, False]
        await store.set_guild_settings("g1", user_burst=None)
        assert (await store.get_guild_settings("g1")).user_burst is None
        with pytest.raises(ValueError, match="unknown guild setting"):
            await store.set_guild_settings("g1", colour="red")


async def test_concurrent_first_changes_of_a_guilds_settings_all_apply(url):
    # Each change would create the guild's row; on PostgreSQL only one insert may win, the rest update it.
    changes = [{"prefix": "?"}, {"user_burst": 7}, {"like_threshold": 3}] * 4
    async with Store.open(url, upgrade=True) as store:
        await asyncio.gather(*(store.set_guild_settings("g1", **change) for change in changes))
        settings = await store.get_guild_settings("g1")
    assert (settings.prefix, settings.user_burst, settings.like_threshold) == ("?", 7, 3)


async def test_job_lifecycle_and_recovery_after_restart(url):
    async with Store.open(url, upgrade=True, limits=NO_LIMITS) as store:
        a = await store.create_job(spec(seed=11), user_id="u1", guild_id=1, channel_id=2)
        b = await store.create_job(spec(kind="visualize", image=None), user_id="u2")
        c = await store.create_job(spec(), user_id="u1")
        assert [await store.queue_position(j) for j in (a, b, c)] == [1, 2, 3]
        assert await store.mark_running(a)
        assert not await store.mark_running(a)
        assert [await store.queue_position(j) for j in (a, b, c)] == [0, 1, 2]
        with pytest.raises(NotFound):
            await store.cancel_job(b, "u1")  # not theirs
        assert await store.cancel_job(b, "u2")
        assert not await store.cancel_job(b, "u2")  # already ended
        assert not await store.mark_running(b)  # a cancelled job does not start
        assert await store.queue_position(b) is None and await store.queue_position(c) == 1
    async with Store.open(url) as store:
        recovered = await store.jobs_to_recover()
        assert [job.id for job in recovered] == [a, c]
        job = recovered[0]
        assert (job.status, job.user_id, job.guild_id, job.channel_id) == ("running", "u1", "1", "2")
        stored = spec(seed=11)  # inputs and params are kept, so the job can run again
        assert (job.kind, job.params, job.seed, job.image) == ("dream", as_dict(stored.params), 11, stored.image)
        assert params_from_dict(job.kind, job.params) == stored.params
        assert job.created_at.tzinfo is not None
        assert await store.finish_job(a, {"total": 2.0}, "results/a.png", result_message_link="https://x/1")
        assert not await store.fail_job(a, "too late")  # a finished job keeps its outcome
        assert await store.fail_job(c, "out of memory")
        done, failed = await store.get_job(a), await store.get_job(c)
        assert (done.status, done.timings, done.result_location) == ("done", {"total": 2.0}, "results/a.png")
        assert done.result_message_link == "https://x/1" and done.finished_at >= done.created_at
        assert (failed.status, failed.error) == ("failed", "out of memory")
        assert await store.jobs_to_recover() == []
        assert await store.get_job(999) is None
        with pytest.raises(NotFound):
            await store.cancel_job(999, "u1")


async def test_gallery_entries_and_likes_are_idempotent(url):
    async with Store.open(url, upgrade=True, limits=NO_LIMITS) as store:
        jobs = [await store.create_job(spec(), user_id="u", guild_id="g1") for _ in range(3)]
        entries = [await store.add_gallery_entry(job, f"https://discord/{job}") for job in jobs]
        assert await store.add_gallery_entry(jobs[0], "https://elsewhere") == entries[0]
        first = await store.like(entries[1], "x")
        again = await store.like(entries[1], "x")
        assert (first.added, first.likes) == (True, 1) and (again.added, again.likes) == (False, 1)
        # Concurrent likes by different users are all counted, repeated ones once.
        await asyncio.gather(*(store.like(entries[2], f"user{i % 4}") for i in range(20)))
        assert (await store.like(entries[2], "user0")).likes == 4
        assert (await store.unlike(entries[2], "user0")).likes == 3
        assert (await store.unlike(entries[2], "user0")).likes == 3
        top = await store.gallery("g1", order="top", limit=2)
        assert [item.id for item in top] == [entries[2], entries[1]] and top[0].likes == 3
        recent = await store.gallery("g1", order="recent")
        assert [item.id for item in recent] == entries[::-1]
        assert recent[-1].message_link == f"https://discord/{jobs[0]}" and recent[-1].params["layer"] == "block13"
        assert await store.gallery("other") == []
        with pytest.raises(NotFound):
            await store.like(12345, "x")


async def test_stats_count_per_guild_and_overall(url):
    async with Store.open(url, upgrade=True, limits=NO_LIMITS) as store:
        a = await store.create_job(spec(), user_id="u1", guild_id="g1")
        await store.create_job(spec(kind="zoom"), user_id="u2", guild_id="g1")
        await store.create_job(spec(), user_id="u3", guild_id="g2")
        await store.mark_running(a)
        await store.finish_job(a, {}, "x")
        await store.like(await store.add_gallery_entry(a, "link"), "fan")
        g1, total = await store.stats("g1"), await store.stats()
    assert g1.jobs_by_status == {"done": 1, "queued": 1} and g1.jobs_by_kind == {"dream": 1, "zoom": 1}
    assert (g1.users, g1.gallery_entries, g1.likes, g1.jobs) == (2, 1, 1, 2)
    assert (total.jobs, total.users) == (3, 3)


async def test_quota_reports_without_consuming(url):
    limits = RateLimits(user_burst=3, user_refill_seconds=60, guild_jobs_per_hour=10, max_active_jobs=2)
    async with Store.open(url, upgrade=True, limits=limits) as store:
        await store.admit_and_create_job(spec(), user_id="q", guild_id="g1", now=NOW)
        quota = await store.quota("q", "g1", now=NOW + 30)
        assert (quota.user_available, quota.user_burst, quota.user_next_in) == (2, 3, pytest.approx(30))
        assert (quota.guild_available, quota.active_jobs, quota.max_active_jobs) == (9, 1, 2)
        assert await store.quota("q", "g1", now=NOW + 30) == quota


async def test_opening_an_unmigrated_database_says_so(url):
    with pytest.raises(SchemaOutdated, match="revision none"):
        async with Store.open(url):
            pass
