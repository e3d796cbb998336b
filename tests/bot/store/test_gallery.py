"""GalleryRows: entries, likes, listings, featuring, removal and stats. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from bot.store import Asker, NotFound, Store
from tests.bot.store.helpers import NO_LIMITS, new_job, spec


@pytest.fixture
async def store(database_url):  # every test here runs on SQLite and on PostgreSQL
    async with Store.open(database_url, upgrade=True, limits=NO_LIMITS) as s:
        yield s


async def test_gallery_entries_and_likes_are_idempotent(store):
    jobs = [await new_job(store, spec(), Asker("u", "g1")) for _ in range(3)]
    entries = [await store.gallery.add(job, f"https://discord/{job}") for job in jobs]
    assert await store.gallery.add(jobs[0], "https://elsewhere") == entries[0]
    first = await store.gallery.like(entries[1], "x")
    again = await store.gallery.like(entries[1], "x")
    assert (first.added, first.likes) == (True, 1) and (again.added, again.likes) == (False, 1)
    # Concurrent likes by different users are all counted, repeated ones once.
    await asyncio.gather(*(store.gallery.like(entries[2], f"user{i % 4}") for i in range(20)))
    assert (await store.gallery.like(entries[2], "user0")).likes == 4
    assert (await store.gallery.unlike(entries[2], "user0")).likes == 3
    assert (await store.gallery.unlike(entries[2], "user0")).likes == 3
    assert (await store.gallery.unlike(entries[0], "nobody")).likes == 0, "withdrawing a like never given is a no-op"
    top = await store.gallery.listing("g1", order="top", limit=2)
    assert [item.id for item in top] == [entries[2], entries[1]] and top[0].likes == 3
    recent = await store.gallery.listing("g1", order="recent")
    assert [item.id for item in recent] == entries[::-1]
    assert recent[-1].message_link == f"https://discord/{jobs[0]}" and recent[-1].params["layer"] == "block13"
    assert await store.gallery.listing("other") == []
    with pytest.raises(NotFound):
        await store.gallery.like(12345, "x")
    with pytest.raises(NotFound):
        await store.gallery.unlike(12345, "x")
    with pytest.raises(NotFound):
        await store.gallery.add(12345, "https://discord/none")


async def test_listings_page_through_in_order_and_ties_go_newest_first(store):
    jobs = [await new_job(store, spec(seed=i), Asker(f"u{i}", "g1", "c1")) for i in range(5)]
    entries = [await store.gallery.add(job, f"https://discord/{job}") for job in jobs]
    for entry, likes in zip(entries, (2, 0, 2, 1, 0)):
        for fan in range(likes):
            await store.gallery.like(entry, f"fan{fan}")
    top = [item.id for item in await store.gallery.listing("g1", "top", limit=10)]
    assert top == [entries[2], entries[0], entries[3], entries[4], entries[1]]
    assert [item.id for item in await store.gallery.listing("g1", "top", limit=2, offset=2)] == top[2:4]
    assert [item.id for item in await store.gallery.listing("g1", "recent", limit=3, offset=3)] == [entries[1], entries[0]]
    with pytest.raises(AssertionError, match="order must be one of"):
        await store.gallery.listing("g1", "oldest")  # type: ignore[arg-type]


async def test_an_entry_carries_its_jobs_asker_seed_command_and_result(store):
    job_id = await new_job(store, spec(seed=42), Asker("alice", "g1", "c1", front="discord"), command="dream seed:42")
    assert await store.gallery.item(job_id) is None, "no entry before it is posted"
    assert await store.jobs.finish(job_id, {"total": 1.0}, "job-1.webp", "image/webp")
    await store.jobs.posted(job_id, "https://discord.com/channels/g1/c1/7", channel_id="c9", in_guild=True)
    item = await store.gallery.item(job_id)
    assert (item.job_id, item.guild_id, item.channel_id, item.message_link) == \
        (job_id, "g1", "c9", "https://discord.com/channels/g1/c1/7"), "the channel it was posted in"
    assert (item.user_id, item.seed, item.command, item.result_location, item.result_type, item.kind, item.likes) == \
        ("alice", 42, "dream seed:42", "job-1.webp", "image/webp", "dream", 0)
    await store.jobs.posted(job_id, "https://discord.com/channels/g1/c1/7", channel_id="c9", in_guild=True)
    assert len(await store.gallery.listing("g1")) == 1, "posting twice keeps one entry"
    # A result posted in a direct message enters no gallery.
    dm_job = await new_job(store, spec(), Asker("alice", None, "dm"))
    await store.jobs.finish(dm_job, {}, "job-2.png", "image/png")
    await store.jobs.posted(dm_job, "https://discord.com/channels/@me/dm/8", channel_id="dm", in_guild=False)
    assert await store.gallery.item(dm_job) is None and await store.gallery.listing(None) == []
    assert (await store.jobs.get(dm_job)).delivery == "posted"
    # An entry added without a channel takes its job's.
    other = await new_job(store, spec(), Asker("bob", "g1", "c2"))
    await store.gallery.add(other, "https://discord/other")
    assert (await store.gallery.item(other)).channel_id == "c2"


async def test_a_post_is_featured_once(store):
    job_id = await new_job(store, spec(), Asker("u", "g1", "c1"))
    link = "https://discord.com/channels/g1/c1/5"
    await store.gallery.add(job_id, link)
    claims = await asyncio.gather(*(store.gallery.claim_feature(link) for _ in range(10)))
    assert claims.count(True) == 1, "of several likes reaching the threshold at once, one features it"
    assert not await store.gallery.claim_feature(link), "nor again later"
    assert not await store.gallery.claim_feature("https://discord.com/channels/g1/c1/404"), "no entry: nothing to feature"


async def test_removed_entries_leave_every_listing_and_the_stats(store):
    jobs = [await new_job(store, spec(), Asker("u", "g1", "c1")) for _ in range(3)]
    links = [f"https://discord.com/channels/g1/c1/{job}" for job in jobs]
    entries = [await store.gallery.add(job, link) for job, link in zip(jobs, links)]
    await store.gallery.like(entries[0], "fan")
    assert await store.gallery.job_of_post(links[0]) == jobs[0]
    assert await store.gallery.remove([]) == 0
    assert await store.gallery.remove(["https://discord.com/channels/g1/c1/404"]) == 0, "most deleted messages carry no result"
    assert await store.gallery.remove([links[0], links[0], links[1], "https://discord.com/channels/g1/c1/404"]) == 2
    assert await store.gallery.remove([links[0]]) == 0, "already removed"
    assert [item.job_id for item in await store.gallery.listing("g1")] == [jobs[2]]
    assert [item.job_id for item in await store.gallery.listing("g1", "top")] == [jobs[2]]
    assert await store.gallery.item(jobs[0]) is None and await store.gallery.job_of_post(links[0]) is None
    assert await store.gallery.job_of_post(links[2]) == jobs[2]
    stats = await store.gallery.stats("g1")
    assert (stats.gallery_entries, stats.likes, stats.jobs) == (1, 0, 3), "removed entries and their likes are not counted"


async def test_stats_count_per_guild_and_overall(store):
    a = await new_job(store, spec(), Asker("u1", "g1"))
    await new_job(store, spec(kind="zoom"), Asker("u2", "g1"))
    await new_job(store, spec(), Asker("u3", "g2"))
    await store.jobs.mark_running(a)
    await store.jobs.finish(a, {}, "x", "image/png")
    await store.gallery.like(await store.gallery.add(a, "link"), "fan")
    g1, total, empty = await store.gallery.stats("g1"), await store.gallery.stats(), await store.gallery.stats("none")
    assert g1.jobs_by_status == {"done": 1, "queued": 1} and g1.jobs_by_kind == {"dream": 1, "zoom": 1}
    assert (g1.users, g1.gallery_entries, g1.likes, g1.jobs) == (2, 1, 1, 2)
    assert (total.jobs, total.users, total.gallery_entries, total.likes) == (3, 3, 1, 1)
    assert (empty.jobs, empty.users, empty.gallery_entries, empty.likes) == (0, 0, 0, 0)
