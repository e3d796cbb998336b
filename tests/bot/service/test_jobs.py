"""The service's jobs part: pricing, admission, the fair queue, time limits, outcomes, restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.commands import Request, parse_command
from bot.executor import LocalProcessExecutor
from bot.results import LocalResults
from bot.service import Accepted, Denied, Requester, Service
from bot.store import Asker, RateLimits, Store
from core.jobs import JobSpec
from core.params import validate_params
from core.spec import compile_job
from tests.bot.fake_runners import fake_compile, fake_describe, fake_restore
from tests.bot.rows import add_job
from tests.bot.waiting import LIMIT, until

FAKE = "tests.bot.fake_runners:FakeRunner"
ALICE = Requester("alice", guild_id="g1", channel_id="c1")


@pytest.fixture
async def store(tmp_path):
    async with Store.open(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", limits=RateLimits(user_burst=2, max_active_jobs=2), upgrade=True) as s:
        yield s


@pytest.fixture
async def executor():
    async with LocalProcessExecutor(workers=1, runner_factory=FAKE, cancel_grace=1.0, shutdown_timeout=2.0) as pool:
        yield pool


@asynccontextmanager
async def opened(store: Store, executor: Any, folder: Path, **options: Any) -> AsyncIterator[Service]:
    async with Service.open(store=store, executor=executor, results=LocalResults(folder), **options) as service:
        yield service


@pytest.fixture
async def service(store, executor, tmp_path):
    async with opened(store, executor, tmp_path / "results", compile=fake_compile, restore=fake_restore, describe=fake_describe) as service:
        yield service


@pytest.fixture
async def real_service(store, executor, tmp_path):
    """Real compile and pricing (core.spec), fake workers: what admission decides is the point here."""
    async with opened(store, executor, tmp_path / "results") as service:
        yield service


def job(**params) -> Request:
    return Request("zoom", params, seed=3)


async def test_a_job_is_admitted_recorded_run_and_its_result_saved(service, store):
    admitted = await service.jobs.submit(job(steps=2), ALICE)
    assert isinstance(admitted, Accepted) and admitted.spec.seed == 3
    events = []
    outcome = await service.jobs.follow(admitted.job_id, events.append)
    assert outcome.status == "done" and [e.step for e in events] == [1, 2]
    assert all(e.eta is not None and e.eta >= 0 for e in events), "every event carries an ETA"
    assert Path(outcome.where).read_bytes() == b"ok:zoom"
    record = await store.jobs.get(admitted.job_id)
    assert record.status == "done" and record.result_location == outcome.location and record.result_type == "image/png"
    assert record.command == admitted.command == "zoom steps:2 seed:3", "the command that makes it again is stored"


async def test_the_limit_denies_with_a_reason_and_nothing_is_recorded(service, store):
    for _ in range(2):
        assert isinstance(await service.jobs.submit(job(), ALICE), Accepted)
    denied = await service.jobs.submit(job(), ALICE)
    assert isinstance(denied, Denied) and denied.reason and "\n" not in denied.reason
    assert (await store.gallery.stats()).jobs == 2


async def test_a_job_over_its_time_cap_is_refused_before_admission(real_service, store):
    before = await store.guilds.quota("alice", "g1")
    huge = parse_command("!zoom frames:240 size:1024 steps:50 octaves:6")
    denied = await real_service.jobs.submit(huge, ALICE)
    assert isinstance(denied, Denied)
    assert denied.reason.startswith("this zoom would take about ") and "over the 2 min limit" in denied.reason
    assert denied.reason.endswith("ask for fewer frames or a smaller size") and "\n" not in denied.reason
    assert await store.guilds.quota("alice", "g1") == before, "a refused job spends no token"
    assert (await store.gallery.stats()).jobs == 0, "and leaves no job row"
    small = await real_service.jobs.submit(parse_command("!zoom frames:2 size:64 steps:1 octaves:1"), ALICE)
    assert isinstance(small, Accepted) and 0 < small.predicted < 120


async def test_a_server_cap_is_lower_and_exempt_roles_may_go_up_to_the_bots(real_service, store):
    await real_service.guilds.change("g1", max_job_seconds=1, exempt_role_ids=["vip"])
    medium = parse_command("!zoom frames:12 size:256")  # seconds on a CPU: over 1 s, under 2 min
    denied = await real_service.jobs.submit(medium, ALICE)
    assert isinstance(denied, Denied) and "over the 1 s limit" in denied.reason
    assert isinstance(await real_service.jobs.submit(medium, Requester("vip-user", "g1", "c1", roles=("vip",))), Accepted)
    with pytest.raises(ValueError, match="at most 120"):
        await real_service.guilds.change("g1", max_job_seconds=500)


async def test_a_typo_is_refused_with_a_suggestion_and_spends_nothing(real_service, store, photo_bytes):
    before = await store.guilds.quota("alice", "g1")
    denied = await real_service.jobs.submit(parse_command("!dream layer:blok8"), ALICE, images=[photo_bytes("chelsea.png", (64, 48))])
    assert isinstance(denied, Denied)
    assert denied.reason == "unknown layer 'blok8' for efficientnet-lite0; closest: block8, block9, block7; see !help dream"
    assert await store.guilds.quota("alice", "g1") == before and (await store.gallery.stats()).jobs == 0
    denied = await real_service.jobs.submit(parse_command("!dream"), ALICE, images=[b"not an image at all"])
    assert isinstance(denied, Denied) and "not an image" in denied.reason and (await store.gallery.stats()).jobs == 0


async def test_a_job_over_its_time_limit_is_stopped_and_the_next_one_runs(store, executor, tmp_path):
    async with opened(store, executor, tmp_path / "r", compile=fake_compile, restore=fake_restore, describe=fake_describe, max_job_seconds=3.0) as service:
        slow = await service.jobs.submit(job(steps=400, sleep=0.05), ALICE)  # 20 s, predicted far less
        after = await service.jobs.submit(job(steps=1), ALICE)
        outcome = await asyncio.wait_for(service.jobs.follow(slow.job_id), LIMIT)
        assert outcome.status == "failed" and "limit" in outcome.error and "\n" not in outcome.error
        record = await store.jobs.get(slow.job_id)
        assert record.status == "failed" and record.error == outcome.error
        assert (await asyncio.wait_for(service.jobs.follow(after.job_id), LIMIT)).status == "done"


class Priced(LocalProcessExecutor):
    """Fake workers with a prediction per job (by its seed), recording the cancels asked of them in order."""

    def __init__(self, predictions: dict[int, float], **options: Any):
        super().__init__(**options)
        self.predictions = predictions
        self.cancels: list[str] = []

    def predict(self, spec: JobSpec) -> float:
        return self.predictions[spec.seed]

    async def cancel(self, job_id: str) -> bool:
        self.cancels.append(job_id)
        return await super().cancel(job_id)


async def test_a_job_is_stopped_at_twice_its_prediction_not_at_its_cap(store, tmp_path):
    cap, endless = 3.0, {"steps": 10**6, "sleep": 0.05}
    # Seed 1 is predicted at the cap, so it may run twice that; seed 2 is predicted to take nothing: the cap.
    # The second starts a few store writes after the first, far less than the cap that separates their limits.
    executor = Priced({1: cap, 2: 0.0}, workers=2, runner_factory=FAKE, cancel_grace=LIMIT, shutdown_timeout=2.0)
    async with executor, opened(store, executor, tmp_path / "r", compile=fake_compile, restore=fake_restore,
                                describe=fake_describe, max_job_seconds=cap) as service:
        slow = await service.jobs.submit(Request("zoom", endless, seed=1), ALICE)
        async with asyncio.timeout(LIMIT):  # running: its time limit is set
            while (await store.jobs.get(slow.job_id)).status != "running":
                await asyncio.sleep(0.01)
        capped = await service.jobs.submit(Request("zoom", endless, seed=2), ALICE)
        await until(lambda: str(capped.job_id) in executor.cancels, "the job predicted to take nothing stopped at the cap")
        # Order, not time: the first job started earlier, so it is past the cap too, yet under twice its prediction.
        assert str(slow.job_id) not in executor.cancels, "a job within twice its prediction runs on past the cap"
        outcomes = [await asyncio.wait_for(service.jobs.follow(job.job_id), LIMIT) for job in (capped, slow)]
    assert executor.cancels == [str(capped.job_id), str(slow.job_id)]
    assert [outcome.status for outcome in outcomes] == ["failed", "failed"]
    # (an expected time shows as at least 1 s)
    assert outcomes[0].error.endswith("far past its expected 1 s and the 3 s limit"), outcomes[0].error
    assert outcomes[1].error.endswith("far past its expected 3 s and the 3 s limit"), outcomes[1].error
    assert all("\n" not in outcome.error for outcome in outcomes)


async def test_jobs_are_served_round_robin_across_users(store, executor, tmp_path):
    """A queues 2 jobs, C 2, B 1: B's job runs before C's second, not last."""
    unlimited = RateLimits(user_burst=0, guild_jobs_per_hour=0, max_active_jobs=0)
    store.jobs.limits = unlimited
    finished: list[str] = []
    async with opened(store, executor, tmp_path / "r", compile=fake_compile, restore=fake_restore, describe=fake_describe) as service:
        arrivals = [("A", 0.3), ("A", 0.1), ("C", 0.1), ("C", 0.1), ("B", 0.1)]
        admitted = []
        for user, sleep in arrivals:
            accepted = await service.jobs.submit(job(steps=1, sleep=sleep), Requester(user, guild_id="g1"))
            assert isinstance(accepted, Accepted)
            admitted.append((user, accepted))
        # Positions follow the fair order, counting the job just queued.
        assert [a.position for _, a in admitted] == [0, 1, 1, 3, 2]  # 0: the idle worker took it at once

        async def track(user: str, job_id: int) -> None:
            await service.jobs.follow(job_id)
            finished.append(f"{user}{job_id}")

        await asyncio.wait_for(asyncio.gather(*(track(user, a.job_id) for user, a in admitted)), LIMIT)
    assert finished == ["A1", "C3", "B5", "A2", "C4"]


async def test_the_queue_counts_a_job_right_after_it_is_queued(service):
    first = await service.jobs.submit(job(steps=40, sleep=0.05), ALICE)
    second = await service.jobs.submit(job(steps=1), ALICE)
    reply = await service.answers.answer(parse_command("!queue"), ALICE)
    lines = reply.splitlines()
    assert lines[0] == "1 running, 1 waiting"  # the idle worker took the first job the moment it was queued
    assert f"your job {first.job_id}: zoom, running" in lines
    assert any(line.startswith(f"your job {second.job_id}: zoom, 1st in line, starts in about") for line in lines), reply
    assert second.position == 1 and "1st in line" in second.summary
    await service.jobs.follow(first.job_id)


async def test_engine_errors_fail_only_their_job(service, store):
    bad = await service.jobs.submit(job(fail="strength must be between 0.05 and 10"), ALICE)
    outcome = await service.jobs.follow(bad.job_id)
    assert outcome.status == "failed" and outcome.error == "strength must be between 0.05 and 10"
    assert (await store.jobs.get(bad.job_id)).error == outcome.error
    good = await service.jobs.submit(job(), ALICE)
    assert (await service.jobs.follow(good.job_id)).status == "done"


async def test_a_crashed_worker_fails_its_job_and_the_next_one_runs(service, store):
    crash = await service.jobs.submit(job(steps=3, crash_at=2), ALICE)
    outcome = await service.jobs.follow(crash.job_id)
    assert outcome.status == "failed" and "stopped unexpectedly" in outcome.error
    assert (await store.jobs.get(crash.job_id)).status == "failed"
    after = await service.jobs.submit(job(), ALICE)
    assert (await service.jobs.follow(after.job_id)).status == "done"


async def test_cancel_by_command_stops_a_running_job(service, store, executor):
    admitted = await service.jobs.submit(job(steps=50, sleep=0.1), ALICE)
    await until(lambda: executor.running(), "the job to start")
    other = Requester("bob")
    assert "no job" in await service.answers.answer(parse_command(f"!cancel {admitted.job_id}"), other)
    assert await service.answers.answer(parse_command("!cancel"), ALICE) == f"job {admitted.job_id} cancelled"
    outcome = await asyncio.wait_for(service.jobs.follow(admitted.job_id), 30)
    assert outcome.status == "cancelled"
    assert (await store.jobs.get(admitted.job_id)).status == "cancelled"


async def test_shutdown_puts_running_jobs_back_and_a_restart_runs_them(store, tmp_path):
    async with LocalProcessExecutor(workers=1, runner_factory=FAKE, shutdown_timeout=2) as executor, \
            opened(store, executor, tmp_path / "results", compile=fake_compile, restore=fake_restore, describe=fake_describe) as service:
        admitted = await service.jobs.submit(job(steps=100, sleep=0.1), ALICE)
        following = asyncio.create_task(service.jobs.follow(admitted.job_id))
        await until(lambda: executor.running(), "the job to start")
        await executor.close()  # the workers stop under the running job, as at a shutdown
    outcome = await asyncio.wait_for(following, 30)
    assert outcome.status == "interrupted"
    assert (await store.jobs.get(admitted.job_id)).status == "queued"

    async with LocalProcessExecutor(workers=1, runner_factory=FAKE) as executor, \
            opened(store, executor, tmp_path / "results", compile=fake_compile, restore=fake_restore, describe=fake_describe) as service:
        recovered = await service.leases.recover()
        assert [r.id for r in recovered] == [admitted.job_id]
        outcome = await asyncio.wait_for(service.jobs.follow(admitted.job_id), 30)
        assert outcome.status == "done"


async def test_recovery_requeues_running_jobs_and_fails_jobs_without_input(real_service, store):
    spec = JobSpec("zoom", validate_params("zoom", {"frames": 1, "size": 64, "steps": 1, "octaves": 1}), seed=1)
    running = await add_job(store, spec, user_id="alice")
    await store.jobs.mark_running(running)  # as if the process died mid-job
    lost = await add_job(store, JobSpec("dream", validate_params("dream")), user_id="carol")
    recovered = await real_service.leases.recover()
    assert [(r.id, r.status) for r in recovered] == [(running, "queued"), (lost, "failed")], \
        "the one that cannot run again is handed over too, for its front to tell its requester"
    assert "send it again" in (await store.jobs.get(lost)).error
    assert (await asyncio.wait_for(real_service.jobs.follow(running), LIMIT)).status == "done"


async def test_a_recovered_job_over_its_servers_cap_as_it_is_now_fails_with_the_refusal_a_new_request_gets(real_service, store):
    medium = parse_command("!zoom frames:12 size:256")  # seconds on a CPU: over 1 s, under the bot's 2 min
    small = parse_command("!zoom frames:1 size:64 steps:1 octaves:1")
    specs = [compile_job(r.name, r.params, seed=r.seed) for r in (medium, small)]
    # Admitted under the old settings by a process that died; the server has lowered its cap since.
    over, under = [await add_job(store, spec, user_id="alice", guild_id="g1", channel_id="c1") for spec in specs]
    await real_service.guilds.change("g1", max_job_seconds=1)
    new_request = await real_service.jobs.submit(medium, ALICE)
    assert isinstance(new_request, Denied)
    recovered = await real_service.leases.recover()
    assert [(r.id, r.status) for r in recovered] == [(over, "failed"), (under, "queued")]
    assert recovered[0].error == new_request.reason and "over the 1 s limit" in new_request.reason
    assert real_service.jobs.held() == [under], "the job over the cap is not queued"
    assert (await asyncio.wait_for(real_service.jobs.follow(under), LIMIT)).status == "done"


async def test_a_recovered_job_an_exempt_role_let_past_the_servers_cap_keeps_the_bots_cap(real_service, store):
    medium = parse_command("!zoom frames:12 size:256")  # seconds on a CPU: over 1 s, under the bot's 2 min
    spec = compile_job(medium.name, medium.params, seed=medium.seed)
    await real_service.guilds.change("g1", max_job_seconds=1, exempt_role_ids=["vip"])
    # Admitted to a moderator, and to a member, by a process that died before running them.
    asked = [await store.jobs.admit(spec, Asker(user, "g1", "c1", roles=roles), predicted=5.0,
                                    max_seconds=real_service.max_job_seconds)
             for user, roles in (("mod", ("vip",)), ("alice", ()))]
    assert [a.allowed for a in asked] == [True, False], "the member's job was over the cap when asked"
    moderators = asked[0].job_id
    assert (await store.jobs.get(moderators)).exempt
    recovered = await real_service.leases.recover()
    assert [(r.id, r.status) for r in recovered] == [(moderators, "queued")], "held to the bot's own cap, as when asked"
    assert (await asyncio.wait_for(real_service.jobs.follow(moderators), LIMIT)).status == "done"
