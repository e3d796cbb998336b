"""DeliveryRows: results never lost. A finished job stays "pending" until its result is posted, and
each try is claimed by one process. The service's backoff is in tests/bot/service/test_delivery.py,
the Discord side in tests/bot/discord_front/cogs/dreams/test_apps.py."""

from __future__ import annotations

import asyncio
import time

import pytest
from alembic import command

from bot.store import DEFAULT_LEASE_SECONDS, Asker, Store, upgrade_async
from bot.store.migrate import alembic_config, head_revision
from tests.bot.fake_runners import fake_spec
from tests.bot.store.helpers import NO_LIMITS, new_job
from tests.bot.store.test_migrations import insert_old_job, inspect_db, run_sql


@pytest.fixture
async def store(database_url):  # every test here runs on SQLite and on PostgreSQL
    async with Store.open(database_url, upgrade=True, limits=NO_LIMITS) as s:
        yield s


NOW_ISH = 1_800_000_000.0


async def finished_job(store: Store, *, channel: str | None = "c1") -> int:
    job_id = await new_job(store, fake_spec(), Asker("alice", "g1", channel), owner="A")
    assert await store.jobs.finish(job_id, {"total": 1.0}, "job.png", "image/png", owner="A")
    return job_id


async def test_a_finished_job_with_a_channel_is_pending_until_posted(store):
    before = time.time()
    job_id = await finished_job(store)
    console_job = await finished_job(store, channel=None)
    [pending] = await store.deliveries.pending()
    assert (pending.id, pending.delivery, pending.delivery_attempts) == (job_id, "pending", 1), \
        "finishing is the first try: its finisher posts at once"
    assert before <= pending.delivery_tried_at <= time.time()
    console = await store.jobs.get(console_job)
    assert (console.delivery, console.delivery_attempts, console.delivery_tried_at) == (None, 0, None), \
        "a console job has nothing to post"
    assert await store.deliveries.failed(job_id, "HTTP 503") == 1
    assert (await store.jobs.get(job_id)).delivery_error == "HTTP 503"
    assert [r.id for r in await store.deliveries.pending()] == [job_id], "a failed try leaves it pending"
    await store.jobs.posted(job_id, "https://discord.com/channels/g1/c1/9", channel_id="c1", in_guild=True)
    record = await store.jobs.get(job_id)
    assert (record.delivery, record.delivery_error, record.result_message_link) == \
        ("posted", None, "https://discord.com/channels/g1/c1/9")
    assert await store.deliveries.pending() == []
    assert await store.deliveries.failed(job_id, "late") == 1 and (await store.jobs.get(job_id)).delivery_error is None, \
        "a posted result's failure is not recorded"


async def test_of_many_processes_sweeping_at_once_exactly_one_tries_again(store):
    job_id = await finished_job(store)
    claims = await asyncio.gather(*(store.deliveries.claim(job_id, 1, now=NOW_ISH) for _ in range(20)))
    assert claims.count(True) == 1
    record = await store.jobs.get(job_id)
    assert (record.delivery_attempts, record.delivery_tried_at) == (2, NOW_ISH)
    assert not await store.deliveries.claim(job_id, 1), "a try seen before the last one is stale"
    assert await store.deliveries.claim(job_id, 2, now=NOW_ISH + DEFAULT_LEASE_SECONDS + 1), "once its holder's lease ran out"
    await store.jobs.posted(job_id, "https://discord.com/channels/g1/c1/9", channel_id="c1", in_guild=True)
    assert not await store.deliveries.claim(job_id, 3), "a posted result is not tried again"


async def test_an_undeliverable_result_keeps_its_reason(store):
    job_id = await finished_job(store)
    await store.deliveries.end(job_id, "undeliverable", "its channel is gone, and the requester's DMs are closed")
    record = await store.jobs.get(job_id)
    assert record.delivery == "undeliverable" and "DMs are closed" in record.delivery_error
    assert await store.deliveries.pending() == []
    assert not await store.deliveries.claim(job_id, record.delivery_attempts), "nor tried again"
    by_dm = await finished_job(store)
    await store.deliveries.end(by_dm, "sent_by_dm", "its channel is gone")
    assert ((await store.jobs.get(by_dm)).delivery, await store.deliveries.pending()) == ("sent_by_dm", [])
    with pytest.raises(AssertionError, match="does not end a delivery"):
        await store.deliveries.end(await finished_job(store), "posted")


async def test_the_delivery_columns_arrive_on_a_database_that_holds_jobs(database_url):
    db = database_url
    await upgrade_async(db, "0005")
    await run_sql(
        db,
        *insert_old_job("dream", '{"layer": "deep"}', 5),
        *insert_old_job("zoom", '{"frames": 3}', 3, user="v"),
        *insert_old_job("visualize", '{"target": 1}', 7, user="w"),
        "UPDATE jobs SET channel_id = 'c', status = 'done', result_location = 'results/job-' || id || '.png' "
        "WHERE kind <> 'visualize'",
        "UPDATE jobs SET result_message_link = 'https://discord.com/channels/g/c/' || id WHERE kind = 'dream'",
    )
    async with Store.open(db, upgrade=True) as store:
        assert (await inspect_db(db))[0] == head_revision()
        jobs = {job.kind: job for job in [await store.jobs.get(i) for i in (1, 2, 3)]}
        assert {kind: (job.delivery, job.delivery_attempts) for kind, job in jobs.items()} == {
            "dream": ("posted", 0), "zoom": (None, 0), "visualize": (None, 0)}, \
            "posted results say so; older unposted ones are not posted days late"
        assert jobs["visualize"].status == "queued" and jobs["dream"].seed == 5
        assert await store.deliveries.pending() == []
        assert await store.jobs.mark_running(jobs["visualize"].id)
        await store.guilds.change("g")  # the rest of the store still works
        link = jobs["dream"].result_message_link
        await store.gallery.add(jobs["dream"].id, link)
        assert await store.gallery.claim_feature(link) and not await store.gallery.claim_feature(link), "featured once"
    await asyncio.to_thread(command.downgrade, alembic_config(db), "0005")
    assert await run_sql(db, "SELECT kind, seed FROM jobs ORDER BY id") == [("dream", 5), ("zoom", 3), ("visualize", 7)]


async def test_a_try_under_way_is_held_by_its_poster_and_claimed_by_another_only_once_that_process_is_gone(store):
    lease = DEFAULT_LEASE_SECONDS
    job_id = await finished_job(store)  # finished by A, which posts it now: its lease is its hold on the post
    tried_at = (await store.jobs.get(job_id)).delivery_tried_at
    assert not await store.deliveries.claim(job_id, 1, owner="B", after=10, now=tried_at + 11), \
        "past the backoff, but A's post is still under way"
    assert await store.leases.renew("A", [job_id], now=tried_at + lease - 5) == {job_id}, "A renews while it posts"
    assert not await store.deliveries.claim(job_id, 1, owner="B", after=10, now=tried_at + lease + 5), \
        "a slow post outlasts the first lease while A renews it"
    assert await store.deliveries.claim(job_id, 1, owner="B", after=10, now=tried_at + 2 * lease), "A is gone: B tries"
    record = await store.jobs.get(job_id)
    assert (record.owner, record.delivery_attempts) == ("B", 2)
    assert await store.leases.renew("A", [job_id], now=tried_at + 2 * lease) == set(), "A holds it no more"
    assert await store.deliveries.failed(job_id, "HTTP 503") == 2
    assert await store.deliveries.claim(job_id, 2, owner="C", after=20, now=tried_at + 2 * lease + 21), \
        "a failed try holds nothing: only the backoff is waited for"
