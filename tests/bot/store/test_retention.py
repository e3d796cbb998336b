"""RetentionRows (bot/store/retention.py): which results may expire, each marked expired once however
many processes sweep, never one still to post or kept by a gallery; files found gone are recorded and
left out of listings. The files themselves are the service's (tests/bot/service/test_retention.py)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import update

from bot.store import Asker, ResultFileRow, Store
from bot.store.models import Job
from tests.bot.fake_runners import fake_spec
from tests.bot.store.helpers import NO_LIMITS, new_job

DAY = 86400.0
THIRTY_DAYS = 30 * DAY


@pytest.fixture
async def store(database_url):  # every test here runs on SQLite and on PostgreSQL
    async with Store.open(database_url, upgrade=True, limits=NO_LIMITS) as s:
        yield s


async def finished(store: Store, *, guild: str | None = "g1", channel: str | None = "c1", posted: bool = True,
                   days_ago: float = 0.0) -> int:
    """A finished job (posted in its channel unless told), finished `days_ago` by the database's clock."""
    job_id = await new_job(store, fake_spec(), Asker("alice", guild, channel), owner="A")
    assert await store.jobs.finish(job_id, {"total": 1.0}, f"job-{job_id}.png", "image/png", owner="A")
    if posted and channel is not None:
        await store.jobs.posted(job_id, f"https://discord.com/channels/{guild}/{channel}/{9000 + job_id}", channel_id=channel,
                                in_guild=guild is not None)
    await age(store, job_id, days_ago)
    return job_id


async def age(store: Store, job_id: int, days: float) -> None:
    async with store.database.writing() as session:
        await session.execute(update(Job).where(Job.id == job_id).values(finished_at=Job.finished_at - days * DAY))


async def expirable_ids(store: Store) -> list[int]:
    return [row.job_id for row in await store.retention.expirable(THIRTY_DAYS)]


async def test_a_result_older_than_the_retention_expires_and_a_newer_one_stays(store):
    old = await finished(store, days_ago=31)
    new = await finished(store, days_ago=29)
    assert await store.retention.expirable(THIRTY_DAYS) == [ResultFileRow(old, f"job-{old}.png")]
    assert await store.retention.expire(await store.retention.expirable(THIRTY_DAYS), THIRTY_DAYS) == \
        [ResultFileRow(old, f"job-{old}.png")]
    expired, kept = await store.jobs.get(old), await store.jobs.get(new)
    assert (expired.result_removed, kept.result_removed) == ("expired", None)
    assert (expired.params, expired.command, expired.result_location) == (kept.params, kept.command, f"job-{old}.png"), \
        "the row keeps what made it"
    assert await expirable_ids(store) == [] and await store.retention.removed() == {"expired": 1}
    assert await store.retention.expire([ResultFileRow(old, f"job-{old}.png")], THIRTY_DAYS) == [], "expired once"


async def test_a_result_still_to_post_featured_or_in_a_public_gallery_does_not_expire(store):
    pending = await finished(store, posted=False, days_ago=40)  # Discord refused it: it is to be posted again
    featured = await finished(store, guild="g1", days_ago=40)
    assert await store.gallery.claim_feature(f"https://discord.com/channels/g1/c1/{9000 + featured}")
    public = await finished(store, guild="g2", days_ago=40)
    await store.guilds.change("g2", public_gallery=True)
    private = await finished(store, guild="g3", days_ago=40)
    console = await finished(store, guild=None, channel=None, days_ago=40)  # nothing to post
    given_up = await finished(store, posted=False, days_ago=40)
    await store.deliveries.end(given_up, "undeliverable", "its channel is gone")
    withdrawn = await finished(store, guild="g2", days_ago=40)  # in the public server, but its message was deleted
    await store.gallery.remove([f"https://discord.com/channels/g2/c1/{9000 + withdrawn}"])
    candidates = await store.retention.expirable(THIRTY_DAYS)
    assert [row.job_id for row in candidates] == [private, console, given_up, withdrawn]
    # The server publishes its gallery between the sweep's look and its mark: the mark checks again.
    await store.guilds.change("g3", public_gallery=True)
    assert [row.job_id for row in await store.retention.expire(candidates, THIRTY_DAYS)] == [console, given_up, withdrawn]
    assert [(await store.jobs.get(j)).result_removed for j in (pending, featured, public, private)] == [None] * 4


async def test_two_stores_expiring_at_once_mark_each_result_once(store, database_url):
    old = [await finished(store, days_ago=31) for _ in range(12)]
    async with Store.open(database_url, limits=NO_LIMITS) as other:
        seen = await asyncio.gather(store.retention.expirable(THIRTY_DAYS), other.retention.expirable(THIRTY_DAYS))
        assert [row.job_id for row in seen[0]] == [row.job_id for row in seen[1]] == old, "both saw every candidate"
        # Each tries every candidate, in halves, interleaved: each result is marked by exactly one.
        halves = [seen[0][:6], seen[0][6:]]
        marked = await asyncio.gather(*(handle.retention.expire(half, THIRTY_DAYS)
                                        for half in halves for handle in (store, other)))
    ids = [row.job_id for rows in marked for row in rows]
    assert sorted(ids) == old, "each marked once, none twice, none left"


async def test_a_result_found_missing_is_recorded_once_and_left_out_of_listings(store):
    missing, expired, kept = [await finished(store, days_ago=d) for d in (1, 31, 1)]
    await store.retention.expire(await store.retention.expirable(THIRTY_DAYS), THIRTY_DAYS)
    assert await store.retention.missing(missing) is True
    assert await store.retention.missing(missing) is False and await store.retention.missing(expired) is False, \
        "recorded once; an expired result stays expired"
    listed = await store.gallery.listing("g1")
    assert [(item.job_id, item.result_removed) for item in listed] == [(kept, None), (expired, "expired")]
    assert (await store.jobs.get(missing)).result_removed == "missing"
    assert await store.retention.removed() == {"expired": 1, "missing": 1}
