"""The service between fronts and engine: admission, records, outcomes, shutdown and restart."""

from __future__ import annotations

import asyncio

import pytest

from bot.commands import Request, parse_command
from core.jobs import JobSpec
from bot.executor import LocalProcessExecutor
from bot.service import Accepted, Denied, DreamService, Requester
from bot.store import RateLimits, Store

FAKE = "tests.bot.fake_runners:FakeRunner"
ALICE = Requester("alice", guild_id="g1", channel_id="c1")


@pytest.fixture
async def store(tmp_path):
    async with Store.open(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", limits=RateLimits(user_burst=2, max_active_jobs=2), upgrade=True) as s:
        yield s


@pytest.fixture
async def service(store, tmp_path):
    async with LocalProcessExecutor(workers=1, runner_factory=FAKE) as executor:
        yield DreamService(store=store, executor=executor, results_dir=tmp_path / "results")


def job(**params) -> Request:
    return Request("zoom", params, seed=3)


async def test_a_job_is_admitted_recorded_run_and_its_result_saved(service, store):
    admitted = await service.submit(job(steps=2), ALICE)
    assert isinstance(admitted, Accepted) and admitted.spec.seed == 3
    events = []
    outcome = await service.run(admitted.job_id, admitted.spec, events.append)
    assert outcome.status == "done" and [e.step for e in events] == [1, 2]
    assert outcome.result_path.read_bytes() == b"ok:zoom"
    record = await store.get_job(admitted.job_id)
    assert record.status == "done" and record.result_location == str(outcome.result_path)


async def test_the_limit_denies_with_a_reason_and_nothing_is_recorded(service, store):
    for _ in range(2):
        assert isinstance(await service.submit(job(), ALICE), Accepted)
    denied = await service.submit(job(), ALICE)
    assert isinstance(denied, Denied) and denied.reason and "\n" not in denied.reason
    assert (await store.stats()).jobs == 2


async def test_engine_errors_fail_only_their_job(service, store):
    bad = await service.submit(job(fail="strength must be between 0.05 and 10"), ALICE)
    outcome = await service.run(bad.job_id, bad.spec)
    assert outcome.status == "failed" and outcome.error == "strength must be between 0.05 and 10"
    assert (await store.get_job(bad.job_id)).error == outcome.error
    good = await service.submit(job(), ALICE)
    assert (await service.run(good.job_id, good.spec)).status == "done"


async def test_a_crashed_worker_fails_its_job_and_the_next_one_runs(service, store):
    crash = await service.submit(job(steps=3, crash_at=2), ALICE)
    outcome = await service.run(crash.job_id, crash.spec)
    assert outcome.status == "failed" and "stopped unexpectedly" in outcome.error
    assert (await store.get_job(crash.job_id)).status == "failed"
    after = await service.submit(job(), ALICE)
    assert (await service.run(after.job_id, after.spec)).status == "done"


async def test_cancel_by_command_stops_a_running_job(service, store):
    admitted = await service.submit(job(steps=50, sleep=0.1), ALICE)
    running = asyncio.create_task(service.run(admitted.job_id, admitted.spec))
    while not service.executor.running():
        await asyncio.sleep(0.05)
    other = Requester("bob")
    assert "no job" in await service.answer(parse_command(f"!cancel {admitted.job_id}"), other)
    assert await service.answer(parse_command("!cancel"), ALICE) == f"job {admitted.job_id} cancelled"
    outcome = await asyncio.wait_for(running, 30)
    assert outcome.status == "cancelled"
    assert (await store.get_job(admitted.job_id)).status == "cancelled"


async def test_shutdown_puts_running_jobs_back_and_a_restart_runs_them(store, tmp_path):
    async with LocalProcessExecutor(workers=1, runner_factory=FAKE, shutdown_timeout=2) as executor:
        service = DreamService(store=store, executor=executor, results_dir=tmp_path / "results")
        admitted = await service.submit(job(steps=100, sleep=0.1), ALICE)
        running = asyncio.create_task(service.run(admitted.job_id, admitted.spec))
        while not executor.running():
            await asyncio.sleep(0.05)
    outcome = await asyncio.wait_for(running, 30)
    assert outcome.status == "interrupted"
    assert (await store.get_job(admitted.job_id)).status == "queued"

    async with LocalProcessExecutor(workers=1, runner_factory=FAKE) as executor:
        service = DreamService(store=store, executor=executor, results_dir=tmp_path / "results")
        recovered = await service.recover()
        assert [r.id for r in recovered] == [admitted.job_id]
        fast = recovered[0].to_spec()
        outcome = await service.run(admitted.job_id, type(fast)(fast.kind, {"steps": 1}, fast.image, fast.guide, fast.seed))
        assert outcome.status == "done"


async def test_recovery_requeues_running_jobs_and_fails_jobs_without_input(service, store):
    running = await service.submit(job(), ALICE)
    await store.mark_running(running.job_id)  # as if the process died mid-job
    lost = await store.create_job(JobSpec("dream"), user_id="carol")
    recovered = await service.recover()
    assert [r.id for r in recovered] == [running.job_id]
    assert (await store.get_job(running.job_id)).status == "queued"
    assert "send it again" in (await store.get_job(lost)).error


async def test_answers_are_one_clear_text(service):
    for text in ["!help", "!help dream", "!models", "!layers googlenet", "!classes fish", "!queue", "!quota", "!stats", "!gallery"]:
        reply = await service.answer(parse_command(text), ALICE)
        assert reply and "Traceback" not in reply
    assert "unknown model" in await service.answer(parse_command("!layers nonet"), ALICE)
    assert "anemone fish (393)" in await service.answer(parse_command("!classes fish"), ALICE)
