"""The service as one (bot/service/__init__.py): `Service.open` builds every part over one store,
executor and result store, with one prefix, time cap and owner; keeps this process's leases while
open; and on closing gives its jobs back to the store and stops taking jobs and posting results."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.commands import Request
from bot.executor import LocalProcessExecutor
from bot.results import LocalResults
from bot.service import Accepted, Denied, Metrics, Requester, Service, process_owner_id
from bot.store import RateLimits, Store
from tests.bot.fake_runners import fake_compile, fake_describe, fake_restore, fake_spec
from tests.bot.rows import add_job
from tests.bot.service.helpers import Workers
from tests.bot.waiting import LIMIT, until

FAKE = "tests.bot.fake_runners:FakeRunner"
ALICE = Requester("alice", guild_id="g1", channel_id="c1")
STAND_INS = {"compile": fake_compile, "restore": fake_restore, "describe": fake_describe}


@pytest.fixture
async def store(tmp_path):
    async with Store.open(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", limits=RateLimits(user_burst=2, max_active_jobs=2), upgrade=True) as s:
        yield s


@pytest.fixture
async def executor():
    async with LocalProcessExecutor(workers=1, runner_factory=FAKE, cancel_grace=1.0, shutdown_timeout=2.0) as pool:
        yield pool


@pytest.fixture
async def service(store, executor, tmp_path):
    async with Service.open(store=store, executor=executor, results=LocalResults(tmp_path / "results"), **STAND_INS) as service:
        yield service


def job(**params) -> Request:
    return Request("zoom", params, seed=3)


async def test_closing_the_service_puts_its_jobs_back_for_the_next_start(service, store, executor):
    running = await service.jobs.submit(job(steps=100, sleep=0.05), ALICE)
    waiting = await service.jobs.submit(job(steps=1), ALICE)
    await until(lambda: executor.running(), "the job to start")
    await service.close()
    assert [(await store.jobs.get(j.job_id)).status for j in (running, waiting)] == ["queued", "queued"]
    assert isinstance(await service.jobs.submit(job(), ALICE), Denied)


async def test_every_part_works_with_the_prefix_time_cap_owner_and_stores_it_was_opened_with(store, tmp_path):
    workers = Workers(predicted=1.0, queued=(), running=())
    metrics = Metrics(store, workers)  # type: ignore[arg-type]
    results = LocalResults(tmp_path / "results")
    async with Service.open(store=store, executor=workers, results=results, prefix="?", max_job_seconds=30.0,  # type: ignore[arg-type]
                            owner="process-7", metrics=metrics, **STAND_INS) as service:
        assert (service.owner, service.prefix, service.max_job_seconds, service.metrics) == ("process-7", "?", 30.0, metrics)
        admitted = await service.jobs.submit(job(steps=2), ALICE)
        assert isinstance(admitted, Accepted) and admitted.command == "zoom steps:2 seed:3", "the describe stand-in"
        assert (await store.jobs.get(admitted.job_id)).owner == "process-7", "the jobs part holds jobs as this owner"
        assert service.answers.help().splitlines()[0].startswith("?"), "the answers part speaks in the prefix"
        refused = service.jobs.check(Request("zoom", {"frames": "nine"}))
        assert refused is not None and refused.reason.endswith("; see ?help zoom")
        assert metrics.registry.get_sample_value("dreambot_admissions_refused_total", {"reason": "invalid_request"}) == 1
        assert (await service.answers.quota(ALICE)).endswith("jobs may take up to 30 s"), "the time cap, in answers"
        with pytest.raises(ValueError, match="max_job_seconds is at most 30, the bot's own limit"):
            await service.guilds.change("g1", max_job_seconds=31)
        location = await results.save(admitted.job_id, b"made", "image/png")
        assert await service.delivery.result(await store.jobs.get(admitted.job_id)) is None, "not finished yet"
        await store.jobs.finish(admitted.job_id, {}, location, "image/png", owner="process-7")
        assert await service.delivery.result(await store.jobs.get(admitted.job_id)) == (b"made", "image/png")


async def test_each_opening_is_a_new_owner_unless_told(store, tmp_path):
    owners = []
    for _ in range(2):
        async with Service.open(store=store, executor=Workers(), results=LocalResults(tmp_path)) as service:  # type: ignore[arg-type]
            owners.append(service.owner)
    assert owners[0] != owners[1] and owners[0].rsplit(":", 2)[0] == process_owner_id().rsplit(":", 2)[0]


async def test_while_open_this_processs_leases_are_renewed(store, tmp_path):
    async with Service.open(store=store, executor=Workers(predicted=1.0), results=LocalResults(tmp_path),  # type: ignore[arg-type]
                            heartbeat_seconds=0.05, **STAND_INS) as service:
        admitted = await service.jobs.submit(job(steps=1), ALICE)  # waits on the stand-in workers until closed
        first = (await store.jobs.get(admitted.job_id)).lease_expires_at
        async with asyncio.timeout(LIMIT):
            while (await store.jobs.get(admitted.job_id)).lease_expires_at <= first:
                await asyncio.sleep(0.02)
    record = await store.jobs.get(admitted.job_id)
    assert (record.status, record.owner, record.lease_expires_at) == ("queued", None, None), "given back on closing"


async def test_a_closed_service_takes_no_job_and_posts_no_result(store, tmp_path):
    job_id = await add_job(store, fake_spec(), user_id="alice", guild_id="g1", channel_id="c1")
    assert await store.jobs.finish(job_id, {"total": 1.0}, "job-1.png", "image/png")
    later = time.time() + 10_000  # past any wait before the next try
    async with Service.open(store=store, executor=Workers(predicted=1.0), results=LocalResults(tmp_path),  # type: ignore[arg-type]
                            **STAND_INS) as service:
        pass
    assert await service.delivery.due(now=later) == [], "no result is claimed for posting by a closed service"
    assert [r.id for r in await store.deliveries.pending()] == [job_id], "it stays to post, for the next start"
    refused = await service.jobs.submit(job(), ALICE)
    assert isinstance(refused, Denied) and refused.reason == "the bot is stopping; try again in a minute"
    async with Service.open(store=store, executor=Workers(predicted=1.0), results=LocalResults(tmp_path),  # type: ignore[arg-type]
                            **STAND_INS) as again:
        assert [r.id for r in await again.delivery.due(now=later)] == [job_id], "the next start posts it"
