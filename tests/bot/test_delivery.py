"""Results never lost, in the store and the service: a finished job stays "pending" until its result
is posted, each try is claimed by one process, and tries back off. The Discord side is in
tests/bot/test_discord_apps.py."""

from __future__ import annotations

import asyncio
import time

import pytest
from alembic import command

from bot.executor import LocalProcessExecutor
from bot.service import DreamService
from bot.store import Store, upgrade_async
from bot.store.migrate import alembic_config, head_revision
from tests.bot.fake_runners import fake_spec
from tests.bot.test_migrations import inspect_db, insert_old_job, run_sql

FAKE = "tests.bot.fake_runners:FakeRunner"


@pytest.fixture
async def store(database_url):  # every test here runs on SQLite and on PostgreSQL
    async with Store.open(database_url, upgrade=True) as s:
        yield s


async def finished_job(store: Store, *, channel: str | None = "c1") -> int:
    job_id = await store.create_job(fake_spec(), user_id="alice", guild_id="g1", channel_id=channel, owner="A")
    assert await store.finish_job(job_id, {"total": 1.0}, "job.png", owner="A")
    return job_id


async def test_a_finished_job_with_a_channel_is_pending_until_posted(store):
    job_id = await finished_job(store)
    console_job = await finished_job(store, channel=None)
    [pending] = await store.pending_deliveries()
    assert (pending.id, pending.delivery, pending.delivery_attempts) == (job_id, "pending", 1), \
        "finishing is the first try: its finisher posts at once"
    assert (await store.get_job(console_job)).delivery is None, "a console job has nothing to post"
    await store.delivery_failed(job_id, "HTTP 503")
    assert (await store.get_job(job_id)).delivery_error == "HTTP 503"
    await store.set_result_message_link(job_id, "https://discord.com/channels/g1/c1/9")
    record = await store.get_job(job_id)
    assert (record.delivery, record.delivery_error) == ("posted", None)
    assert await store.pending_deliveries() == []


async def test_of_many_processes_sweeping_at_once_exactly_one_tries_again(store):
    job_id = await finished_job(store)
    claims = await asyncio.gather(*(store.claim_delivery(job_id, 1) for _ in range(20)))
    assert claims.count(True) == 1
    assert (await store.get_job(job_id)).delivery_attempts == 2
    assert not await store.claim_delivery(job_id, 1), "a try seen before the last one is stale"


async def test_an_undeliverable_result_keeps_its_reason(store):
    job_id = await finished_job(store)
    await store.end_delivery(job_id, "undeliverable", "its channel is gone, and the requester's DMs are closed")
    record = await store.get_job(job_id)
    assert record.delivery == "undeliverable" and "DMs are closed" in record.delivery_error
    assert await store.pending_deliveries() == []


async def test_the_service_hands_out_a_result_again_only_after_its_backoff(store, tmp_path):
    executor = LocalProcessExecutor(workers=1, runner_factory=FAKE)  # never started: nothing runs here
    service = DreamService(store=store, executor=executor, results_dir=tmp_path, delivery_retry_seconds=10)
    assert [service.delivery_retry_delay(n) for n in (1, 2, 3, 20)] == [10, 20, 40, 3600]
    job_id = await finished_job(store)
    finished_at = (await store.get_job(job_id)).delivery_tried_at
    assert await service.deliveries_due(now=finished_at + 9) == []
    [due] = await service.deliveries_due(now=finished_at + 11)
    assert (due.id, due.delivery_attempts) == (job_id, 2)
    assert await service.deliveries_due(now=finished_at + 12) == [], "claimed: no second try meanwhile"
    assert await service.delivery_failed(job_id, "HTTP 502") == 20
    assert await service.deliveries_due(now=finished_at + 11 + 19) == []
    assert [r.id for r in await service.deliveries_due(now=finished_at + 11 + 21)] == [job_id]
    assert await service.deliveries_due(lambda record: False, now=time.time() + 10_000) == [], "another front's jobs"


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
        jobs = {job.kind: job for job in [await store.get_job(i) for i in (1, 2, 3)]}
        assert {kind: (job.delivery, job.delivery_attempts) for kind, job in jobs.items()} == {
            "dream": ("posted", 0), "zoom": (None, 0), "visualize": (None, 0)}, \
            "posted results say so; older unposted ones are not posted days late"
        assert jobs["visualize"].status == "queued" and jobs["dream"].seed == 5
        assert await store.pending_deliveries() == []
        await store.mark_running(jobs["visualize"].id)
        await store.set_guild_settings("g")  # the rest of the store still works
        link = jobs["dream"].result_message_link
        await store.add_gallery_entry(jobs["dream"].id, link)
        assert await store.claim_feature(link) and not await store.claim_feature(link), "featured once"
    await asyncio.to_thread(command.downgrade, alembic_config(db), "0005")
    assert await run_sql(db, "SELECT kind, seed FROM jobs ORDER BY id") == [("dream", 5), ("zoom", 3), ("visualize", 7)]
