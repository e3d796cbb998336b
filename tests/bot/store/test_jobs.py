"""JobRows: admission (rate limits, the active-job cap, exempt roles, the time cap) and a job's life
from admission to its result. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from dataclasses import replace

import pytest

from bot.store import Asker, GuildSettings, NotFound, RateLimits, Store
from bot.store.jobs import (
    effective_limits,
    gcra_available,
    gcra_decide,
    is_exempt,
    time_cap,
)
from core.params import as_dict, params_from_dict
from tests.bot.store.helpers import NO_LIMITS, NOW, admit, new_job, spec


@pytest.fixture
def url(database_url):
    # Every test here runs on SQLite and on PostgreSQL (see tests/conftest.py).
    return database_url


# -- rate limits and the active-job cap ------------------------------------------------------------


async def test_fifty_concurrent_admissions_admit_exactly_five(url):
    limits = RateLimits(user_burst=5, user_refill_seconds=60, guild_jobs_per_hour=0, max_active_jobs=0)
    async with Store.open(url, upgrade=True, limits=limits) as store:
        results = await asyncio.gather(*(admit(store, Asker("alice", "g1"), spec(seed=i), now=NOW) for i in range(50)))
        assert sum(r.allowed for r in results) == 5
        refused = [r for r in results if not r.allowed]
        assert all(r.retry_after > 0 and r.refusal == "user_rate" and r.limit == 5 and r.job_id is None for r in refused)
        assert sorted(job.id for job in await store.jobs.active("alice")) == sorted(r.job_id for r in results if r.allowed)


@pytest.mark.parametrize("limit", ["max_active_jobs", "user_burst"])
async def test_a_thousand_concurrent_admissions_against_a_limit_of_five_admit_exactly_five(url, limit):
    limits = replace(NO_LIMITS, **{limit: 5})
    # Every admission of one user waits for the same lock (the user's bucket row, or SQLite's write
    # lock), so they run one after another whatever the pool size. The last of the 1000 callers
    # waits for a connection while the other 999 run: allow that wait on a slow, shared machine.
    async with Store.open(url, upgrade=True, limits=limits, pool_timeout=300) as store:
        start = time.perf_counter()
        results = await asyncio.gather(*(admit(store, Asker("zed", "g1"), spec(seed=i), now=NOW) for i in range(1000)))
        elapsed = time.perf_counter() - start
        allowed = [r for r in results if r.allowed]
        print(f"\n{store.database.dialect}, {limit}=5: {len(allowed)} of 1000 admitted in {elapsed:.2f} s")
        assert len(allowed) == 5 and len({r.job_id for r in allowed}) == 5
        assert [job.id for job in await store.jobs.active("zed")] == sorted(r.job_id for r in allowed)
        assert (await store.gallery.stats()).jobs == 5, "a refused admission creates no job"
        refused = [r for r in results if not r.allowed]
        assert all(r.job_id is None and r.limit == 5 for r in refused)
        if limit == "user_burst":
            assert (await store.guilds.quota("zed", "g1", now=NOW)).user_available == 0
            assert all(r.refusal == "user_rate" and r.retry_after > 0 for r in refused)
        else:
            assert all(r.refusal == "active_jobs" for r in refused)
            assert all(r.retry_after == 0 for r in refused), "the wait depends on a job finishing, not on a clock"


async def test_atomicity_holds_across_separate_engines_on_one_database(url):
    # Five Store instances, each with its own engine and connection pool: only the database can
    # serialise them, so a read-then-write race would admit more than five.
    limits = RateLimits(user_burst=5, user_refill_seconds=60, guild_jobs_per_hour=0, max_active_jobs=0)
    async with Store.open(url, upgrade=True):
        pass
    async with AsyncExitStack() as stack:
        stores = [await stack.enter_async_context(Store.open(url, limits=limits)) for _ in range(5)]
        results = await asyncio.gather(*(admit(stores[i % 5], Asker("alice"), spec(seed=i), now=NOW) for i in range(50)))
        assert sum(r.allowed for r in results) == 5
        assert len(await stores[0].jobs.active("alice")) == 5


async def test_active_job_cap_is_exact_under_concurrency_across_engines(url):
    limits = RateLimits(user_burst=0, guild_jobs_per_hour=0, max_active_jobs=5)
    async with Store.open(url, upgrade=True):
        pass
    async with AsyncExitStack() as stack:
        stores = [await stack.enter_async_context(Store.open(url, limits=limits)) for _ in range(4)]
        results = await asyncio.gather(*(admit(stores[i % 4], Asker("bob", "g1"), spec(seed=i), now=NOW) for i in range(40)))
        allowed = [r for r in results if r.allowed]
        assert len(allowed) == 5 and len({r.job_id for r in allowed}) == 5
        assert len(await stores[0].jobs.active("bob")) == 5
        refused = next(r for r in results if not r.allowed)
        assert (refused.refusal, refused.limit, refused.job_id) == ("active_jobs", 5, None)


async def test_limits_survive_reopening_and_retry_after_shrinks_with_time(url):
    limits = RateLimits(user_burst=3, user_refill_seconds=60, guild_jobs_per_hour=0, max_active_jobs=0)
    async with Store.open(url, upgrade=True, limits=limits) as store:
        assert all([(await admit(store, Asker("carol", "g1"), now=NOW)).allowed for _ in range(3)])
    async with Store.open(url, limits=limits) as store:
        denied = await admit(store, Asker("carol", "g1"), now=NOW)
        assert not denied.allowed and denied.retry_after == pytest.approx(60)
        assert (denied.refusal, denied.limit, denied.job_id) == ("user_rate", 3, None)
        later = await admit(store, Asker("carol", "g1"), now=NOW + 45)
        assert not later.allowed and later.retry_after == pytest.approx(15) and later.refusal == "user_rate"
        assert (await admit(store, Asker("carol", "g1"), now=NOW + 60)).allowed
        assert not (await admit(store, Asker("carol", "g1"), now=NOW + 60)).allowed
        # Other users have their own bucket.
        assert (await admit(store, Asker("dave", "g1"), now=NOW)).allowed


async def test_active_job_cap_frees_when_a_job_ends(url):
    limits = RateLimits(user_burst=0, guild_jobs_per_hour=0, max_active_jobs=2)
    async with Store.open(url, upgrade=True, limits=limits) as store:
        first = await admit(store, Asker("erin"), now=NOW)
        second = await admit(store, Asker("erin"), now=NOW)
        assert first.allowed and second.allowed
        third = await admit(store, Asker("erin"), now=NOW)
        assert (third.allowed, third.refusal, third.limit, third.retry_after) == (False, "active_jobs", 2, 0)
        assert not (await admit(store, Asker("erin", "g9"), now=NOW)).allowed, "the cap is the user's, in any server"
        assert await store.jobs.mark_running(first.job_id)
        assert await store.jobs.finish(first.job_id, {"total": 1.5}, "job-1.png", "image/png")
        assert (await admit(store, Asker("erin"), now=NOW)).allowed


async def test_exempt_role_is_admitted_without_consuming(url):
    limits = RateLimits(user_burst=1, user_refill_seconds=60, guild_jobs_per_hour=0, max_active_jobs=1)
    async with Store.open(url, upgrade=True, limits=limits) as store:
        await store.guilds.change("g1", exempt_role_ids=[111, "222"])
        for _ in range(5):
            admission = await admit(store, Asker("mod", "g1", roles=("9", "222")), now=NOW)
            assert admission.allowed
        # The exemption did not use up the bucket, but the role only counts in its own guild.
        quota = await store.guilds.quota("mod", "g1", now=NOW)
        assert quota.user_available == 1 and quota.active_jobs == 5 and not quota.exempt
        assert (await store.guilds.quota("mod", "g1", roles=[111], now=NOW)).exempt
        elsewhere = await admit(store, Asker("mod", "g2", roles=("222",)), now=NOW)
        assert (elsewhere.allowed, elsewhere.refusal) == (False, "active_jobs")  # the active cap applies


async def test_guild_limit_is_shared_by_its_users_and_consumes_nothing_when_refused(url):
    limits = RateLimits(user_burst=2, user_refill_seconds=60, guild_jobs_per_hour=3, max_active_jobs=0)
    async with Store.open(url, upgrade=True, limits=limits) as store:
        assert [(await admit(store, Asker(user, "g1"), now=NOW)).allowed for user in "abc"] == [True] * 3
        refused = await admit(store, Asker("d", "g1"), now=NOW)
        assert (refused.allowed, refused.refusal, refused.limit, refused.job_id) == (False, "server_rate", 3, None)
        assert refused.retry_after == pytest.approx(1200)  # one job per 3600/3 s refills
        # Other guilds and direct messages are not affected.
        assert (await admit(store, Asker("d", "g2"), now=NOW)).allowed
        assert (await admit(store, Asker("e"), now=NOW)).allowed
        # "d" was refused by the guild, so their own bucket still holds one job (2 - the g2 one).
        assert (await store.guilds.quota("d", None, now=NOW)).user_available == 1
        assert [job.guild_id for job in await store.jobs.active("d")] == ["g2"], "the refused one recorded no job"


async def test_guild_overrides_replace_the_defaults(url):
    async with Store.open(url, upgrade=True, limits=RateLimits(user_burst=1, max_active_jobs=0)) as store:
        settings = await store.guilds.change("g1", user_burst=3, prefix="?", gallery_channel_id=42)
        assert store.guilds.limits_of(settings).user_burst == 3 and settings.prefix == "?"
        assert settings.gallery_channel_id == "42"
        assert [(await admit(store, Asker("f", "g1"), now=NOW)).allowed for _ in range(4)] == [True, True, True, False]
        assert [(await admit(store, Asker("f2", "g2"), now=NOW)).allowed for _ in range(2)] == [True, False]
        await store.guilds.change("g1", user_burst=None)
        assert (await store.guilds.get("g1")).user_burst is None
        assert (await admit(store, Asker("f3", "g1"), now=NOW)).allowed
        assert not (await admit(store, Asker("f3", "g1"), now=NOW)).allowed, "reset: the bot's burst of 1 again"
        with pytest.raises(AssertionError, match="unknown guild setting"):
            await store.guilds.change("g1", colour="red")


# -- the time cap ------------------------------------------------------------------------------------


async def test_a_job_over_its_time_cap_is_refused_at_admission_with_the_cap_as_its_limit(url):
    limits = RateLimits(user_burst=1, user_refill_seconds=60, guild_jobs_per_hour=0, max_active_jobs=1)
    bot_cap = 120.0
    async with Store.open(url, upgrade=True, limits=limits) as store:
        await store.guilds.change("g1", max_job_seconds=30, exempt_role_ids=["mods"])
        over = await admit(store, Asker("u", "g1"), predicted=31, max_seconds=bot_cap, now=NOW)
        assert (over.allowed, over.refusal, over.limit, over.retry_after, over.job_id) == (False, "over_time_cap", 30, 0, None)
        quota = await store.guilds.quota("u", "g1", now=NOW)
        assert (quota.user_available, quota.active_jobs) == (1, 0), "refused over the cap: nothing consumed, no job"
        at_cap = await admit(store, Asker("u", "g1"), predicted=30, max_seconds=bot_cap, now=NOW)
        assert (at_cap.allowed, at_cap.limit) == (True, 30), "a job predicted to take the cap exactly is admitted"
        # Exempt roles get the bot's own cap, never more.
        mod = Asker("m", "g1", roles=("mods",))
        exempt = await admit(store, mod, predicted=100, max_seconds=bot_cap, now=NOW)
        assert (exempt.allowed, exempt.limit) == (True, bot_cap)
        too_long = await admit(store, mod, predicted=121, max_seconds=bot_cap, now=NOW)
        assert (too_long.allowed, too_long.refusal, too_long.limit) == (False, "over_time_cap", bot_cap)
        # A server's cap above the bot's does not raise it.
        await store.guilds.change("g2", max_job_seconds=500)
        above = await admit(store, Asker("v", "g2"), predicted=121, max_seconds=bot_cap, now=NOW)
        assert (above.refusal, above.limit) == ("over_time_cap", bot_cap)
        # Outside servers, and in a server without a cap of its own, the bot's applies.
        for asker in (Asker("w"), Asker("x", "g3")):
            assert (await admit(store, asker, predicted=120, max_seconds=bot_cap, now=NOW)).limit == bot_cap
            refused = await admit(store, asker, predicted=120.5, max_seconds=bot_cap, now=NOW + 3600)
            assert (refused.refusal, refused.limit) == ("over_time_cap", bot_cap)
        assert (await store.gallery.stats()).jobs == 4, "only the admitted jobs were recorded"


# -- a job's life ----------------------------------------------------------------------------------


async def test_admit_records_the_front_reply_and_command_and_finish_the_result_type(url):
    async with Store.open(url, upgrade=True, limits=NO_LIMITS) as store:
        asker = Asker("u1", "g1", "c1", front="discord", reply_to="m1")
        job_id = await new_job(store, spec(seed=7), asker, owner="P", command="dream layer:block13 seed:7")
        console_id = await new_job(store, spec(), Asker("console:me"))
        job, console = await store.jobs.get(job_id), await store.jobs.get(console_id)
        assert (job.front, job.reply_to, job.command, job.result_type, job.owner) == \
            ("discord", "m1", "dream layer:block13 seed:7", None, "P")
        assert (job.user_id, job.guild_id, job.channel_id, job.seed) == ("u1", "g1", "c1", 7)
        assert (console.front, console.reply_to, console.command, console.guild_id) == ("console", None, None, None)
        [listed] = await store.jobs.active("u1")  # listings carry them too
        assert (listed.front, listed.reply_to, listed.command) == ("discord", "m1", "dream layer:block13 seed:7")
        await store.jobs.answered_in(job_id, "m2")  # the acknowledgement the result will answer
        assert (await store.jobs.get(job_id)).reply_to == "m2"
        assert await store.jobs.mark_running(job_id, owner="P")
        assert await store.jobs.finish(job_id, {"total": 3.0}, "job-1.mp4", "video/mp4", owner="P")
        done = await store.jobs.get(job_id)
        assert (done.status, done.result_location, done.result_type, done.timings) == ("done", "job-1.mp4", "video/mp4", {"total": 3.0})
        assert (done.front, done.command, done.reply_to) == ("discord", "dream layer:block13 seed:7", "m2"), "kept"
        await store.jobs.posted(job_id, "https://discord.com/channels/g1/c1/9", channel_id="c1", in_guild=True)
        item = await store.gallery.item(job_id)
        assert (item.command, item.result_type, item.result_location) == ("dream layer:block13 seed:7", "video/mp4", "job-1.mp4")


async def test_job_lifecycle_and_recovery_after_restart(url):
    async with Store.open(url, upgrade=True, limits=NO_LIMITS) as store:
        a = await new_job(store, spec(seed=11), Asker("u1", "1", "2"))
        b = await new_job(store, spec(kind="visualize", image=None), Asker("u2"))
        c = await new_job(store, spec(), Asker("u1"))
        assert [(await store.jobs.get(j)).status for j in (a, b, c)] == ["queued"] * 3
        assert await store.jobs.mark_running(a)
        assert not await store.jobs.mark_running(a)
        assert (await store.jobs.get(a)).started_at is not None
        with pytest.raises(NotFound):
            await store.jobs.cancel(b, "u1")  # not theirs
        assert await store.jobs.cancel(b, "u2")
        assert not await store.jobs.cancel(b, "u2")  # already ended
        assert not await store.jobs.mark_running(b)  # a cancelled job does not start
        assert (await store.jobs.get(b)).status == "cancelled"
        assert [job.id for job in await store.jobs.active("u1")] == [a, c] and await store.jobs.active("u2") == []
    async with Store.open(url) as store:
        # A restart finds the unfinished jobs (held by no process) and adopts them to run again.
        orphans = await store.leases.orphans()
        assert [job.id for job in orphans] == [a, c]
        job = orphans[0]
        assert (job.status, job.user_id, job.guild_id, job.channel_id) == ("running", "u1", "1", "2")
        adopted = await store.leases.claim(a, "P2")
        stored = spec(seed=11)  # inputs and params are kept, so the job can run again
        assert (adopted.kind, adopted.params, adopted.seed, adopted.image) == ("dream", as_dict(stored.params), 11, stored.image)
        assert params_from_dict(adopted.kind, adopted.params) == stored.params
        assert abs(adopted.created_at - time.time()) < 600, "created by the database's clock, in epoch seconds"
        assert await store.jobs.mark_running(a, owner="P2")
        assert await store.jobs.finish(a, {"total": 2.0}, "results/a.png", "image/png", owner="P2")
        await store.jobs.posted(a, "https://x/1", channel_id="2", in_guild=True)
        assert not await store.jobs.fail(a, "too late")  # a finished job keeps its outcome
        assert not await store.jobs.cancel(a)
        assert await store.jobs.fail(c, "out of memory")
        done, failed = await store.jobs.get(a), await store.jobs.get(c)
        assert (done.status, done.timings, done.result_location, done.result_type) == ("done", {"total": 2.0}, "results/a.png", "image/png")
        assert done.result_message_link == "https://x/1" and done.finished_at >= done.created_at
        assert (failed.status, failed.error) == ("failed", "out of memory")
        assert await store.leases.orphans() == []
        assert await store.jobs.active("u1") == []
        assert await store.jobs.counts() == {("dream", "done"): 1, ("dream", "failed"): 1, ("visualize", "cancelled"): 1}
        assert await store.jobs.get(999) is None
        with pytest.raises(NotFound):
            await store.jobs.cancel(999, "u1")
        with pytest.raises(NotFound):
            await store.jobs.cancel(999)


async def test_a_job_is_finished_once(url):
    async with Store.open(url, upgrade=True, limits=NO_LIMITS) as store:
        job_id = await new_job(store, spec(), Asker("u", "g", "c"))
        assert await store.jobs.finish(job_id, {"total": 1.0}, "job-1.png", "image/png")
        assert not await store.jobs.finish(job_id, {"total": 9.0}, "job-1.gif", "image/gif"), "a second finish changes nothing"
        record = await store.jobs.get(job_id)
        assert (record.result_location, record.result_type, record.delivery_attempts) == ("job-1.png", "image/png", 1)
        cancelled = await new_job(store, spec(), Asker("u"))
        assert await store.jobs.cancel(cancelled, "u")
        assert not await store.jobs.finish(cancelled, {}, "job-2.png", "image/png"), "a cancelled job is not finished"
        assert (await store.jobs.get(cancelled)).result_location is None


# -- the rules, on their own -------------------------------------------------------------------------


def test_a_gcra_bucket_allows_its_burst_then_one_per_interval():
    tat, retry_after = None, 0.0
    for expected_tat in (NOW + 60, NOW + 120, NOW + 180):  # a burst of 3
        tat, retry_after = gcra_decide(tat, NOW, burst=3, interval=60)
        assert (tat, retry_after) == (expected_tat, 0)
    assert gcra_decide(tat, NOW, burst=3, interval=60) == (NOW + 180, pytest.approx(60)), "refused: the bucket is unchanged"
    assert gcra_decide(tat, NOW + 59, burst=3, interval=60) == (NOW + 180, pytest.approx(1))
    assert gcra_decide(tat, NOW + 60, burst=3, interval=60) == (NOW + 240, 0), "a request exactly at the refill fits"
    assert gcra_decide(NOW - 3600, NOW, burst=3, interval=60) == (NOW + 60, 0), "an idle bucket is full, not fuller"


def test_a_gcra_bucket_reports_what_it_holds_without_taking_any():
    assert gcra_available(None, NOW, burst=3, interval=60) == (3, 0)
    assert gcra_available(NOW - 1, NOW, burst=3, interval=60) == (3, 0)
    assert gcra_available(NOW + 60, NOW, burst=3, interval=60) == (2, 60)
    assert gcra_available(NOW + 180, NOW + 30, burst=3, interval=60) == (0, pytest.approx(30))
    assert gcra_available(NOW + 90, NOW, burst=3, interval=60) == (1, pytest.approx(30))


def test_a_server_cap_lowers_the_bots_and_exempt_roles_skip_it():
    assert time_cap(None, 120, exempt=False) == 120, "outside servers: the bot's"
    assert time_cap(GuildSettings("g"), 120, exempt=False) == 120, "a server without a cap of its own: the bot's"
    capped = GuildSettings("g", max_job_seconds=30, exempt_role_ids=("7",))
    assert time_cap(capped, 120, exempt=False) == 30
    assert time_cap(capped, 120, exempt=True) == 120
    assert time_cap(GuildSettings("g", max_job_seconds=500), 120, exempt=False) == 120, "never above the bot's"
    assert is_exempt(capped, [7]) and is_exempt(capped, ("1", "7")), "role ids compare as strings"
    assert not is_exempt(capped, ["8"]) and not is_exempt(None, ["7"]) and not is_exempt(GuildSettings("g"), ["7"])
    defaults = RateLimits(user_burst=3, user_refill_seconds=60, guild_jobs_per_hour=30, max_active_jobs=2)
    assert effective_limits(None, defaults) == defaults and effective_limits(capped, defaults) == defaults
    assert effective_limits(GuildSettings("g", user_burst=0, max_active_jobs=5), defaults) == \
        RateLimits(user_burst=0, user_refill_seconds=60, guild_jobs_per_hour=30, max_active_jobs=5)
