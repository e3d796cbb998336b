"""The service's leases: one bot process holds each unfinished job; only expired leases are adopted;
finishing checks the owner. (The lease rows themselves: tests/bot/store/test_leases.py.)"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import AsyncExitStack

import pytest
from alembic import command
from sqlalchemy import update

from bot.commands import Request
from bot.executor import LocalProcessExecutor
from bot.results import LocalResults
from bot.service import Accepted, Requester, Service
from bot.store import RateLimits, Store, upgrade_async
from bot.store.migrate import alembic_config
from bot.store.models import Job
from tests.bot.fake_runners import fake_compile, fake_describe, fake_restore, fake_spec
from tests.bot.rows import add_job
from tests.bot.waiting import LIMIT, until

FAKE = "tests.bot.fake_runners:FakeRunner"
ALICE = Requester("alice", guild_id="g1", channel_id="c1")
LEASE = 30.0


@pytest.fixture
def url(database_url):
    return database_url  # every test here runs on SQLite and on PostgreSQL


@pytest.fixture
async def store(url):
    async with Store.open(url, upgrade=True, lease_seconds=LEASE) as s:
        yield s


async def test_the_lease_columns_arrive_on_a_database_that_holds_unfinished_jobs(tmp_path):
    path = tmp_path / "old.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade_async(url, "0003")
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO users (id, created_at) VALUES ('u', '2024-01-01 00:00:00')")
        for status in ("queued", "running", "done"):
            conn.execute(
                "INSERT INTO jobs (user_id, kind, params, seed, status, created_at) "
                f"VALUES ('u', 'zoom', '{{\"frames\": 3}}', 3, '{status}', '2024-01-01 00:00:00')"
            )
        conn.execute("INSERT INTO gallery_entries (job_id, message_link, kind, params, likes, created_at) "
                     "VALUES (3, 'https://discord/3', 'zoom', '{}', 1, '2024-01-01 00:00:00')")
        conn.execute("INSERT INTO likes (entry_id, user_id, created_at) VALUES (1, 'fan', '2024-01-01 00:00:00')")
    async with Store.open(url, upgrade=True) as store:
        orphans = await store.leases.orphans()
        assert [(j.status, j.owner) for j in orphans] == [("queued", None), ("running", None)], \
            "jobs from before leases belong to nobody: the first process to start adopts them"
        adopted = await store.leases.claim(orphans[1].id, "new-process")
        assert (adopted.status, adopted.params) == ("queued", {"frames": 3})
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0003")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM gallery_entries").fetchone() == (1,), "the done job's gallery entry is kept"
        assert conn.execute("SELECT count(*) FROM likes").fetchone() == (1,)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    assert "owner" not in columns and "lease_expires_at" not in columns


# -- two bot processes on one database (two services, each with its own store connection and workers) --


def zoom(**params) -> Request:
    return Request("zoom", params, seed=3)


class _Process:
    """One bot process: its own store connection, workers and service, all on the shared database.
    `async with` gives itself, with `.store`, `.executor` and `.service` open."""

    def __init__(self, url: str, results, *, lease: float = LEASE, heartbeat: float = 10.0, restore=fake_restore):
        self.url, self.results, self.lease, self.heartbeat, self.restore = url, results, lease, heartbeat, restore
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> _Process:
        stack = self._stack
        self.store = await stack.enter_async_context(Store.open(
            self.url, upgrade=True, lease_seconds=self.lease, limits=RateLimits(user_burst=10, max_active_jobs=10)))
        self.executor = await stack.enter_async_context(
            LocalProcessExecutor(workers=1, runner_factory=FAKE, cancel_grace=1.0, shutdown_timeout=2.0))
        self.service = await stack.enter_async_context(Service.open(
            store=self.store, executor=self.executor, results=LocalResults(self.results), compile=fake_compile,
            restore=self.restore, describe=fake_describe, heartbeat_seconds=self.heartbeat))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.__aexit__(*exc_info)


async def test_a_second_process_does_not_run_the_job_the_first_is_running(url, tmp_path):
    """The reported bug: a second console on the same file re-ran job 1 while the first still ran it."""
    async with _Process(url, tmp_path / "a") as first, _Process(url, tmp_path / "b") as second:
        admitted = await first.service.jobs.submit(zoom(steps=20, sleep=0.05), ALICE)
        assert isinstance(admitted, Accepted)
        await until(lambda: first.executor.running(), "the first process to start the job")
        assert await second.service.leases.recover() == [], "the first process's lease is alive"
        outcome = await asyncio.wait_for(first.service.jobs.follow(admitted.job_id), LIMIT)
        assert outcome.status == "done"
        assert await second.service.leases.recover() == []
        assert second.executor.running() == () and second.executor.queued() == ()
        record = await second.store.jobs.get(admitted.job_id)
        assert (record.status, record.owner) == ("done", first.service.owner)


async def test_a_dead_processs_jobs_are_adopted_once_its_lease_runs_out(url, tmp_path):
    adopted: list[int] = []

    async def on_adopted(records):
        adopted.extend(r.id for r in records)

    async with _Process(url, tmp_path / "b", lease=3.0, heartbeat=0.2) as survivor:
        # A process that is gone left this job running, with 3 s left on its lease.
        dead = await add_job(survivor.store, fake_spec("zoom", steps=2), user_id="alice", guild_id="g1", channel_id="c1", owner="dead")
        await survivor.store.jobs.mark_running(dead, owner="dead")
        assert await survivor.service.leases.recover(on_adopted=on_adopted) == [], "the dead process's lease has not run out yet"
        await until(lambda: adopted == [dead], "the heartbeat to adopt the orphan once its lease ran out")
        outcome = await asyncio.wait_for(survivor.service.jobs.follow(dead), LIMIT)
        assert outcome.status == "done"
        assert (await survivor.store.jobs.get(dead)).owner == survivor.service.owner


def slow_restore(*args, **kwargs):
    """fake_restore taking 10 ms a job, so queueing 200 adopted jobs again outlasts a 1 s lease."""
    time.sleep(0.01)
    return fake_restore(*args, **kwargs)


async def test_jobs_adopted_by_the_hundred_keep_their_leases_while_the_rest_are_queued(url, tmp_path):
    """A dead process left 200 jobs. The heartbeat that adopts them queues them one by one for over
    a lease's length; the leases taken first are renewed meanwhile, so when the last is queued none
    has run out (or another process would adopt it again and it would run twice)."""
    handed_over: list[list[int]] = []

    async def on_adopted(records):
        handed_over.append([r.id for r in records])

    async with _Process(url, tmp_path / "b", lease=1.0, heartbeat=0.2, restore=slow_restore) as survivor:
        left = [await add_job(survivor.store, fake_spec("zoom", steps=200, sleep=0.05), user_id="alice", guild_id="g1",
                              channel_id="c1", owner="dead", now=time.time() + 3600) for _ in range(200)]
        assert await survivor.service.leases.recover(on_adopted=on_adopted) == [], "the dead process's leases have not run out yet"
        async with survivor.store.database.writing() as session:  # now they all run out at once
            await session.execute(update(Job).where(Job.owner == "dead").values(lease_expires_at=0.0))
        await until(lambda: handed_over, "the heartbeat to adopt the orphans once their leases ran out")
        orphaned = {job.id for job in await survivor.store.leases.orphans()}
        assert handed_over == [left] and orphaned == set(), f"{len(orphaned)} adopted jobs lost their lease meanwhile"
        holders = {(await survivor.store.jobs.get(job)).owner for job in left}
        assert holders == {survivor.service.owner}


async def test_a_process_that_lost_its_lease_stops_and_does_not_finish_the_job(url, tmp_path):
    async with _Process(url, tmp_path / "a", heartbeat=0.2) as stalled, _Process(url, tmp_path / "b") as other:
        admitted = await stalled.service.jobs.submit(zoom(steps=200, sleep=0.05), ALICE)
        await until(lambda: stalled.executor.running(), "the job to start")
        # As if the first process had stalled past its lease: the other adopts the job.
        adopted = await other.store.leases.claim(admitted.job_id, other.service.owner, now=time.time() + LEASE + 1)
        assert adopted is not None
        outcome = await asyncio.wait_for(stalled.service.jobs.follow(admitted.job_id), LIMIT)
        assert outcome.status == "interrupted" and "another bot process" in outcome.error
        assert stalled.executor.running() == (), "the stalled process stopped its copy"
        record = await other.store.jobs.get(admitted.job_id)
        assert (record.status, record.owner) == ("queued", other.service.owner), "nothing was finished by the old owner"


async def test_a_cancel_from_another_process_stops_the_running_job(url, tmp_path):
    async with _Process(url, tmp_path / "a", heartbeat=0.2) as runner, _Process(url, tmp_path / "b") as other:
        admitted = await runner.service.jobs.submit(zoom(steps=200, sleep=0.05), ALICE)
        await until(lambda: runner.executor.running(), "the job to start")
        assert await other.service.jobs.cancel(admitted.job_id, ALICE) == f"job {admitted.job_id} cancelled"
        outcome = await asyncio.wait_for(runner.service.jobs.follow(admitted.job_id), LIMIT)
        assert outcome.status == "cancelled"
        assert (await other.store.jobs.get(admitted.job_id)).status == "cancelled"


async def test_closing_gives_jobs_back_for_another_process_at_once(url, tmp_path):
    async with _Process(url, tmp_path / "b") as other:
        async with _Process(url, tmp_path / "a") as closing:
            admitted = await closing.service.jobs.submit(zoom(steps=200, sleep=0.05), ALICE)
            await until(lambda: closing.executor.running(), "the job to start")
        record = await other.store.jobs.get(admitted.job_id)
        assert (record.status, record.owner) == ("queued", None)
        assert [r.id for r in await other.service.leases.recover()] == [admitted.job_id], "no wait for a lease to run out"
        assert (await asyncio.wait_for(other.service.jobs.follow(admitted.job_id), LIMIT)).status == "done"
