"""LeaseRows: one bot process holds each unfinished job; only expired leases are adopted; finishing
checks the owner. Two processes sharing a database, through the service, are in
tests/bot/service/test_leases.py."""

from __future__ import annotations

import asyncio
import time

import pytest
from alembic import command

from bot.store import Asker, Store, upgrade_async
from bot.store.migrate import alembic_config
from tests.bot.fake_runners import fake_spec
from tests.bot.store.helpers import NO_LIMITS, new_job
from tests.bot.store.test_migrations import OLD_TIME, columns, insert_old_job, run_sql

LEASE = 30.0
ALICE = Asker("alice")


@pytest.fixture
def url(database_url):
    return database_url  # every test here runs on SQLite and on PostgreSQL


@pytest.fixture
async def store(url):
    async with Store.open(url, upgrade=True, lease_seconds=LEASE, limits=NO_LIMITS) as s:
        yield s


async def test_an_admitted_job_is_held_by_its_process_until_its_lease_runs_out(store):
    start = time.time()
    job_id = await new_job(store, fake_spec(), ALICE, owner="A", now=start)
    job = await store.jobs.get(job_id)
    assert job.owner == "A" and job.lease_expires_at == pytest.approx(start + LEASE)
    assert await store.leases.orphans(now=start + LEASE - 1) == [], "a live lease is nobody else's to take"
    assert [j.id for j in await store.leases.orphans(now=start + LEASE + 1)] == [job_id]
    assert await store.leases.claim(job_id, "B", now=start + 1) is None, "not adoptable while A's lease lasts"
    assert (await store.jobs.get(job_id)).owner == "A"


async def test_a_job_admitted_without_an_owner_is_anybodys(store):
    job_id = await new_job(store, fake_spec(), ALICE)
    job = await store.jobs.get(job_id)
    assert (job.owner, job.lease_expires_at) == (None, None)
    assert [j.id for j in await store.leases.orphans()] == [job_id]


async def test_renewal_keeps_a_job_and_reports_the_ones_no_longer_held(store):
    start = time.time()
    kept = await new_job(store, fake_spec(), ALICE, owner="A")
    cancelled = await new_job(store, fake_spec(), ALICE, owner="A")
    someone_elses = await new_job(store, fake_spec(), Asker("bob"), owner="B")
    await store.jobs.cancel(cancelled)
    held = await store.leases.renew("A", [kept, cancelled, someone_elses], now=start + 100)
    assert held == {kept}
    assert (await store.jobs.get(kept)).lease_expires_at == pytest.approx(start + 100 + LEASE)
    other = await store.jobs.get(someone_elses)
    assert other.owner == "B", "renewing never takes another process's job"
    assert other.lease_expires_at == pytest.approx(start + LEASE, abs=5), "nor extends it"
    assert await store.leases.renew("A", []) == set()


async def test_orphans_claimed_by_the_batch_from_two_processes_at_once_are_each_adopted_once(url):
    async with Store.open(url, upgrade=True, lease_seconds=LEASE, limits=NO_LIMITS) as a, \
            Store.open(url, lease_seconds=LEASE, limits=NO_LIMITS) as b:
        jobs = [await new_job(a, fake_spec(image=f"photo {i}".encode()), ALICE, owner="dead") for i in range(60)]
        still_held = jobs[7]
        later = time.time() + LEASE + 1
        assert await a.leases.renew("dead", [still_held], now=later) == {still_held}  # not an orphan at `later`
        # Ten claimers on two connections, each taking overlapping batches of 25 (one job twice, one unknown id).
        batches = [[*jobs[start:start + 25], jobs[start], 10_000] for start in range(0, 60, 6)]
        claims = await asyncio.gather(*((a, b)[i % 2].leases.claim_many(batch, f"P{i}", now=later)
                                        for i, batch in enumerate(batches)))
        adopted = [record for claim in claims for record in claim]
        assert sorted(r.id for r in adopted) == [job for job in jobs if job != still_held], "each orphan adopted once"
        for i, claim in enumerate(claims):
            assert [r.id for r in claim] == sorted(r.id for r in claim) and {r.owner for r in claim} <= {f"P{i}"}
        assert all(r.status == "queued" and r.image == f"photo {jobs.index(r.id)}".encode() for r in adopted), \
            "returned as queued again, with their inputs"
        assert await a.leases.claim_many(jobs, "late", now=later) == [], "then held, by their new owners"
        assert await a.leases.claim_many([], "nobody") == []


async def test_an_expired_job_is_adopted_once_and_only_its_new_owner_can_finish_it(store):
    job_id = await new_job(store, fake_spec(image=b"photo"), ALICE, owner="A")
    assert await store.jobs.mark_running(job_id, owner="A")
    later = time.time() + LEASE + 1
    claims = await asyncio.gather(*(store.leases.claim(job_id, f"P{i}", now=later) for i in range(20)))
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1, "twenty processes racing for one orphan: exactly one adopts it"
    adopted = winners[0]
    assert adopted.status == "queued" and adopted.image == b"photo" and adopted.started_at is None
    assert adopted.lease_expires_at == pytest.approx(later + LEASE)
    assert not await store.jobs.mark_running(job_id, owner="A")
    assert not await store.jobs.finish(job_id, {}, "a.png", "image/png", owner="A"), "the old owner may not finish (and post) it"
    assert not await store.jobs.fail(job_id, "too late", owner="A")
    assert await store.leases.renew("A", [job_id]) == set()
    assert not await store.leases.release(job_id, "A"), "nor give it back"
    assert await store.jobs.finish(job_id, {"total": 1.0}, "b.png", "image/png", owner=adopted.owner)
    record = await store.jobs.get(job_id)
    assert (record.status, record.result_location, record.owner) == ("done", "b.png", adopted.owner)
    assert await store.leases.claim(job_id, "late", now=later + 10 * LEASE) is None, "a finished job is nobody's to adopt"


async def test_a_released_job_is_anybodys_at_once(store):
    job_id = await new_job(store, fake_spec(), ALICE, owner="A")
    assert await store.jobs.mark_running(job_id, owner="A")
    assert not await store.leases.release(job_id, "B"), "only the holder gives a job back"
    assert await store.leases.release(job_id, "A")
    record = await store.jobs.get(job_id)
    assert (record.status, record.owner, record.lease_expires_at, record.started_at) == ("queued", None, None, None)
    assert [j.id for j in await store.leases.orphans()] == [job_id]
    assert (await store.leases.claim(job_id, "B")).owner == "B"
    finished = await new_job(store, fake_spec(), ALICE, owner="A")
    assert await store.jobs.finish(finished, {}, "c.png", "image/png", owner="A")
    assert not await store.leases.release(finished, "A"), "a finished job does not go back in the queue"
    assert (await store.jobs.get(finished)).status == "done"


async def test_the_lease_columns_arrive_on_a_database_that_holds_unfinished_jobs(url):
    await upgrade_async(url, "0003")
    await run_sql(
        url,
        *insert_old_job("zoom", '{"frames": 3}', 3),
        *[f"INSERT INTO jobs (user_id, kind, params, seed, status, created_at) "
          f"VALUES ('u', 'zoom', '{{\"frames\": 3}}', 3, '{status}', {OLD_TIME})" for status in ("running", "done")],
        "INSERT INTO gallery_entries (job_id, message_link, kind, params, likes, created_at) "
        f"VALUES (3, 'https://discord/3', 'zoom', '{{}}', 1, {OLD_TIME})",
        f"INSERT INTO likes (entry_id, user_id, created_at) VALUES (1, 'fan', {OLD_TIME})",
    )
    async with Store.open(url, upgrade=True) as store:
        orphans = await store.leases.orphans()
        assert [(j.status, j.owner) for j in orphans] == [("queued", None), ("running", None)], \
            "jobs from before leases belong to nobody: the first process to start adopts them"
        adopted = await store.leases.claim(orphans[1].id, "new-process")
        assert (adopted.status, adopted.params, adopted.owner) == ("queued", {"frames": 3}, "new-process")
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0003")
    assert await run_sql(url, "SELECT count(*) FROM jobs") == [(3,)]
    assert await run_sql(url, "SELECT count(*) FROM gallery_entries") == [(1,)], "the done job's gallery entry is kept"
    assert await run_sql(url, "SELECT count(*) FROM likes") == [(1,)]
    assert not {"owner", "lease_expires_at"} & await columns(url, "jobs")


# -- one clock: the database's ---------------------------------------------------------------------


class SkewedClock:
    """This process's wall clock, off by `skew` seconds while set (time.time is what a process
    would read for its own idea of now)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch, self.true_time = monkeypatch, time.time

    def set(self, skew: float) -> None:
        self.monkeypatch.setattr(time, "time", lambda: self.true_time() + skew)


@pytest.mark.parametrize("skew", [10 * LEASE, -10 * LEASE])
async def test_a_process_whose_clock_is_wrong_by_ten_leases_never_adopts_a_live_job(url, monkeypatch, skew):
    clock = SkewedClock(monkeypatch)
    # Two processes, each with its own handle on one database.
    async with Store.open(url, upgrade=True, lease_seconds=LEASE, limits=NO_LIMITS) as a, \
            Store.open(url, lease_seconds=LEASE, limits=NO_LIMITS) as b:
        clock.set(-skew)  # A's clock is wrong the other way while it takes and renews its lease
        job_id = await new_job(a, fake_spec(image=b"photo"), ALICE, owner="A")
        assert await a.jobs.mark_running(job_id, owner="A")
        assert await a.leases.renew("A", [job_id]) == {job_id}
        clock.set(skew)  # B's clock is wrong by ten leases while it looks for orphans
        assert await b.leases.orphans() == [], "a live lease is nobody else's, whatever either clock says"
        assert await b.leases.claim(job_id, "B") is None
        assert await a.leases.renew("A", [job_id]) == {job_id}, "A still holds it"
        assert (await b.jobs.get(job_id)).status == "running"

        # A dies: nothing renews its lease, which the database then sees run out.
        await run_sql(url, f"UPDATE jobs SET lease_expires_at = lease_expires_at - {2 * LEASE} WHERE id = {job_id}")
        clock.set(-skew)  # B's clock is now wrong the other way: the lease must still look over
        assert [j.id for j in await b.leases.orphans()] == [job_id]
        claims = await asyncio.gather(*(b.leases.claim(job_id, f"B{i}") for i in range(10)),
                                      *(a.leases.claim(job_id, f"A{i}") for i in range(10)))
        winners = [c for c in claims if c is not None]
        assert len(winners) == 1, "an expired job is adopted exactly once"
        assert await a.leases.orphans() == [] and await b.leases.orphans() == [], "and is then held again"
        assert await a.leases.renew("A", [job_id]) == set(), "its dead owner holds it no more"
