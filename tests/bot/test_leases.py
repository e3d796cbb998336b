"""Job leases: one bot process holds each unfinished job; only expired leases are adopted; finishing checks the owner."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from alembic import command

from bot.executor import LocalProcessExecutor
from bot.service import Accepted, DreamService, Requester
from bot.store import RateLimits, Store, upgrade_async
from bot.store.migrate import alembic_config
from bot.commands import Request
from tests.bot.fake_runners import fake_compile, fake_restore, fake_spec
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


async def test_an_admitted_job_is_held_by_its_process_until_its_lease_runs_out(store):
    start = time.time()
    admitted = await store.admit_and_create_job(fake_spec(), user_id="alice", owner="A", now=start)
    job = await store.get_job(admitted.job_id)
    assert job.owner == "A" and job.lease_expires_at == pytest.approx(start + LEASE)
    assert await store.orphaned_jobs(now=start + LEASE - 1) == [], "a live lease is nobody else's to take"
    assert [j.id for j in await store.orphaned_jobs(now=start + LEASE + 1)] == [admitted.job_id]
    assert await store.claim_job(admitted.job_id, "B", now=start + 1) is None, "not adoptable while A's lease lasts"


async def test_renewal_keeps_a_job_and_reports_the_ones_no_longer_held(store):
    start = time.time()
    kept = await store.create_job(fake_spec(), user_id="alice", owner="A")
    cancelled = await store.create_job(fake_spec(), user_id="alice", owner="A")
    someone_elses = await store.create_job(fake_spec(), user_id="bob", owner="B")
    await store.cancel_job(cancelled)
    held = await store.renew_leases("A", [kept, cancelled, someone_elses], now=start + 100)
    assert held == {kept}
    assert (await store.get_job(kept)).lease_expires_at == pytest.approx(start + 100 + LEASE)
    assert (await store.get_job(someone_elses)).owner == "B", "renewing never takes another process's job"


async def test_an_expired_job_is_adopted_once_and_only_its_new_owner_can_finish_it(store):
    job_id = await store.create_job(fake_spec(image=b"photo"), user_id="alice", owner="A")
    assert await store.mark_running(job_id, owner="A")
    later = time.time() + LEASE + 1
    claims = await asyncio.gather(*(store.claim_job(job_id, f"P{i}", now=later) for i in range(20)))
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1, "twenty processes racing for one orphan: exactly one adopts it"
    adopted = winners[0]
    assert adopted.status == "queued" and adopted.image == b"photo" and adopted.started_at is None
    assert not await store.mark_running(job_id, owner="A")
    assert not await store.finish_job(job_id, {}, "a.png", owner="A"), "the old owner may not finish (and post) it"
    assert not await store.fail_job(job_id, "too late", owner="A")
    assert await store.renew_leases("A", [job_id]) == set()
    assert await store.finish_job(job_id, {"total": 1.0}, "b.png", owner=adopted.owner)
    record = await store.get_job(job_id)
    assert (record.status, record.result_location) == ("done", "b.png")


async def test_a_released_job_is_anybodys_at_once(store):
    job_id = await store.create_job(fake_spec(), user_id="alice", owner="A")
    assert not await store.release_job(job_id, "B"), "only the holder gives a job back"
    assert await store.release_job(job_id, "A")
    record = await store.get_job(job_id)
    assert (record.status, record.owner, record.lease_expires_at) == ("queued", None, None)
    assert [j.id for j in await store.orphaned_jobs()] == [job_id]
    assert (await store.claim_job(job_id, "B")).owner == "B"


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
        orphans = await store.orphaned_jobs()
        assert [(j.status, j.owner) for j in orphans] == [("queued", None), ("running", None)], \
            "jobs from before leases belong to nobody: the first process to start adopts them"
        adopted = await store.claim_job(orphans[1].id, "new-process")
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
    """One bot process: its own store connection, workers and service, all on the shared database."""

    def __init__(self, url: str, results, *, lease: float = LEASE, heartbeat: float = 10.0):
        self.url, self.results, self.lease, self.heartbeat = url, results, lease, heartbeat

    async def __aenter__(self) -> DreamService:
        self._store_cm = Store.open(self.url, upgrade=True, lease_seconds=self.lease,
                                    limits=RateLimits(user_burst=10, max_active_jobs=10))
        store = await self._store_cm.__aenter__()
        self._executor = LocalProcessExecutor(workers=1, runner_factory=FAKE, cancel_grace=1.0, shutdown_timeout=2.0)
        await self._executor.start()
        self.service = DreamService(store=store, executor=self._executor, results_dir=self.results, compile=fake_compile,
                                    restore=fake_restore, heartbeat_seconds=self.heartbeat)
        return self.service

    async def __aexit__(self, *exc_info: object) -> None:
        await self.service.close()
        await self._executor.close()
        await self._store_cm.__aexit__(*exc_info)


async def test_a_second_process_does_not_run_the_job_the_first_is_running(url, tmp_path):
    """The reported bug: a second console on the same file re-ran job 1 while the first still ran it."""
    async with _Process(url, tmp_path / "a") as first, _Process(url, tmp_path / "b") as second:
        admitted = await first.submit(zoom(steps=20, sleep=0.05), ALICE)
        assert isinstance(admitted, Accepted)
        await until(lambda: first.executor.running(), "the first process to start the job")
        assert await second.recover() == [], "the first process's lease is alive"
        outcome = await asyncio.wait_for(first.follow(admitted.job_id), LIMIT)
        assert outcome.status == "done"
        assert await second.recover() == []
        assert second.executor.running() == () and second.executor.queued() == ()
        record = await second.job(admitted.job_id)
        assert (record.status, record.owner) == ("done", first.owner)


async def test_a_dead_processs_jobs_are_adopted_once_its_lease_runs_out(url, tmp_path):
    adopted: list[int] = []

    async def on_adopted(records):
        adopted.extend(r.id for r in records)

    async with _Process(url, tmp_path / "b", lease=3.0, heartbeat=0.2) as survivor:
        # A process that is gone left this job running, with 3 s left on its lease.
        dead = await survivor.store.create_job(fake_spec("zoom", steps=2), user_id="alice", guild_id="g1", channel_id="c1", owner="dead")
        await survivor.store.mark_running(dead, owner="dead")
        assert await survivor.recover(on_adopted=on_adopted) == [], "the dead process's lease has not run out yet"
        await until(lambda: adopted == [dead], "the heartbeat to adopt the orphan once its lease ran out")
        outcome = await asyncio.wait_for(survivor.follow(dead), LIMIT)
        assert outcome.status == "done"
        assert (await survivor.job(dead)).owner == survivor.owner


async def test_a_process_that_lost_its_lease_stops_and_does_not_finish_the_job(url, tmp_path):
    async with _Process(url, tmp_path / "a", heartbeat=0.2) as stalled, _Process(url, tmp_path / "b") as other:
        admitted = await stalled.submit(zoom(steps=200, sleep=0.05), ALICE)
        await until(lambda: stalled.executor.running(), "the job to start")
        # As if the first process had stalled past its lease: the other adopts the job.
        adopted = await other.store.claim_job(admitted.job_id, other.owner, now=time.time() + LEASE + 1)
        assert adopted is not None
        outcome = await asyncio.wait_for(stalled.follow(admitted.job_id), LIMIT)
        assert outcome.status == "interrupted" and "another bot process" in outcome.error
        assert stalled.executor.running() == (), "the stalled process stopped its copy"
        record = await other.job(admitted.job_id)
        assert (record.status, record.owner) == ("queued", other.owner), "nothing was finished by the old owner"


async def test_a_cancel_from_another_process_stops_the_running_job(url, tmp_path):
    async with _Process(url, tmp_path / "a", heartbeat=0.2) as runner, _Process(url, tmp_path / "b") as other:
        admitted = await runner.submit(zoom(steps=200, sleep=0.05), ALICE)
        await until(lambda: runner.executor.running(), "the job to start")
        assert await other.cancel(admitted.job_id, ALICE) == f"job {admitted.job_id} cancelled"
        outcome = await asyncio.wait_for(runner.follow(admitted.job_id), LIMIT)
        assert outcome.status == "cancelled"
        assert (await other.job(admitted.job_id)).status == "cancelled"


async def test_closing_gives_jobs_back_for_another_process_at_once(url, tmp_path):
    async with _Process(url, tmp_path / "b") as other:
        async with _Process(url, tmp_path / "a") as closing:
            admitted = await closing.submit(zoom(steps=200, sleep=0.05), ALICE)
            await until(lambda: closing.executor.running(), "the job to start")
        record = await other.job(admitted.job_id)
        assert (record.status, record.owner) == ("queued", None)
        assert [r.id for r in await other.recover()] == [admitted.job_id], "no wait for a lease to run out"
        assert (await asyncio.wait_for(other.follow(admitted.job_id), LIMIT)).status == "done"
