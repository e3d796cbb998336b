"""The workers' lives, which every backend shares (`_workers.WorkerPool`): started warm, replaced when
they die, stopped when a cancel is ignored (terminate, then kill), shut down last.

The first tests run on each backend against fake runners; the rest drive the pool over scripted
worker handles (tests/bot/executor/scripted.py), which need no process, to pin down what the pool
does at each report of a worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

import pytest

from bot.executor import ExecutorClosed, LocalProcessExecutor, PoolExecutor, WorkerCrashed, WorkerStartFailed
from bot.executor import _workers
from bot.executor._wire import WorkerConfig
from bot.executor._workers import AUTO_MAX_BATCH_CUDA
from core.errors import InvalidParameter, JobCancelled, ModelUnavailable
from tests.bot.executor.running import FAKE, Pool, first_progress, process_exists, spec, submit
from tests.bot.executor.scripted import ScriptedPool
from tests.bot.waiting import LIMIT, until

pytestmark = pytest.mark.timeout(300)  # only stops a hung test: Ray's start can take a minute on a busy machine


# -- on each backend ----------------------------------------------------------------------------------


async def test_killed_worker_fails_only_its_job_and_is_replaced(pool: Pool) -> None:
    async with asyncio.timeout(LIMIT), pool(workers=2) as ex:
        seen, on_progress = first_progress()
        doomed = asyncio.create_task(submit(ex, "doomed", spec(steps=200, sleep=0.05), on_progress))
        bystander = asyncio.create_task(submit(ex, "bystander", spec(steps=5, sleep=0.1)))
        await seen.wait()
        victim = ex.worker_pid("doomed")
        assert victim is not None and victim != ex.worker_pid("bystander")
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(WorkerCrashed, match="stopped unexpectedly; please try again"):
            await doomed
        assert (await bystander).data == b"ok:dream"
        await until(lambda: len(ex.worker_pids()) == 2, "a replacement worker")
        assert victim not in ex.worker_pids()
        results = await asyncio.gather(submit(ex, "next-1", spec()), submit(ex, "next-2", spec()))
    assert all(r.data == b"ok:dream" for r in results)


async def test_worker_exiting_mid_job_is_a_crash_and_the_next_job_succeeds(executor: PoolExecutor) -> None:
    (before,) = executor.worker_pids()
    async with asyncio.timeout(LIMIT):
        with pytest.raises(WorkerCrashed):
            await submit(executor, "a", spec(steps=3, crash_at=2))
        result = await submit(executor, "b", spec())
    assert result.metadata["pid"] != before and result.metadata["warmed"] == ["inception"]


async def test_cancel_of_a_job_that_ignores_it_replaces_the_worker(pool: Pool) -> None:
    async with asyncio.timeout(LIMIT), pool(cancel_grace=0.3) as ex:
        (pid,) = ex.worker_pids()
        job = asyncio.create_task(submit(ex, "stubborn", spec(steps=1, sleep=30, ignore_cancel=True)))
        await until(lambda: ex.running() == ("stubborn",), "the job running")
        assert await ex.cancel("stubborn") is True
        with pytest.raises(JobCancelled):
            await job
        result = await submit(ex, "next", spec())
    assert result.metadata["pid"] != pid


async def test_close_fails_pending_jobs_instead_of_hanging(pool: Pool) -> None:
    ex = pool(shutdown_timeout=0.5)
    async with asyncio.timeout(LIMIT):
        await ex.start()
        (pid,) = ex.worker_pids()
        running = asyncio.create_task(submit(ex, "running", spec(steps=1, sleep=30, ignore_cancel=True)))
        waiting = asyncio.create_task(submit(ex, "waiting", spec()))
        await until(lambda: ex.queued() == ("waiting",) and ex.running() == ("running",), "one running, one queued")
        started = time.monotonic()
        await ex.close()
        assert time.monotonic() - started < 5.0  # the stubborn worker was terminated, not waited for
        for task in (running, waiting):
            with pytest.raises(ExecutorClosed, match="shutting down"):
                await task
        with pytest.raises(ExecutorClosed):
            await submit(ex, "late", spec())
    # A local worker is gone when close() returns; Ray reaps a killed actor's process a moment later.
    await until(lambda: not process_exists(pid), "the worker's process to end", limit=5.0)


async def test_start_fails_clearly_when_a_worker_cannot_warm_its_models(pool: Pool) -> None:
    ex = pool(runner_factory="tests.bot.fake_runners:UnwarmableRunner", warm_models=("inception",))
    async with asyncio.timeout(LIMIT):
        with pytest.raises(WorkerStartFailed, match="weights for inception cannot be found") as failure:
            await ex.start()
        assert isinstance(failure.value.__cause__, ModelUnavailable)
        with pytest.raises(ExecutorClosed):
            await submit(ex, "a", spec())


async def test_start_fails_clearly_for_a_runner_factory_that_does_not_exist(pool: Pool) -> None:
    ex = pool(runner_factory="tests.bot.fake_runners:NoSuchRunner")
    async with asyncio.timeout(LIMIT):
        with pytest.raises(WorkerStartFailed, match="NoSuchRunner"):
            await ex.start()


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        LocalProcessExecutor(max_batch=0)


# -- over scripted workers ------------------------------------------------------------------------------


@pytest.fixture
def quick_kill(monkeypatch: pytest.MonkeyPatch) -> float:
    """Seconds between terminating a worker and killing it, cut short for the test."""
    monkeypatch.setattr(_workers, "_KILL_AFTER", 0.05)
    return 0.05


async def settle() -> None:
    """Let the loop run what the scripted workers have scheduled (their reports are call_soon callbacks)."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_the_pool_refuses_a_negative_worker_count_or_a_factory_that_is_not_module_colon_name() -> None:
    with pytest.raises(ValueError, match="workers must be 0"):
        LocalProcessExecutor(workers=-1)
    with pytest.raises(ValueError, match="package.module:Callable"):
        LocalProcessExecutor(runner_factory="core.runner.JobRunner")


async def test_start_returns_once_every_worker_has_reported_ready_and_each_gets_the_pools_config() -> None:
    ex = ScriptedPool(["cpu", "cpu"], warm_models=("inception",), runner_options={"precision": "fp16"}, threads_per_worker=3)
    ex.start_with = None
    async with asyncio.timeout(LIMIT):
        starting = asyncio.create_task(ex.start())
        await until(lambda: len(ex.handles) == 2, "both workers spawned")
        first, second = ex.handles
        first.ready()
        await settle()
        assert not starting.done() and ex.live_workers() == 1, "one worker is not warm yet"
        second.ready()
        await starting
        assert ex.live_workers() == 2 and ex.threads_per_worker() == 3
        assert [h.config for h in ex.handles] == [WorkerConfig(FAKE, "cpu", {"precision": "fp16"}, ("inception",), 3)] * 2
        await ex.start()  # already started: nothing more
        assert len(ex.handles) == 2
        await ex.close()
        with pytest.raises(ExecutorClosed, match="takes no new jobs"):
            await ex.start()
    assert len(ex.handles) == 2


async def test_cuda_workers_batch_by_default_and_cpu_workers_do_not() -> None:
    async with asyncio.timeout(LIMIT):
        async with ScriptedPool(["cuda:0", "cpu"]) as auto:
            assert auto.devices() == ("cuda:0", "cpu") and auto.batch_limits() == (AUTO_MAX_BATCH_CUDA, 1)
        async with ScriptedPool(["cuda:0", "cpu"], max_batch=3) as fixed:
            assert fixed.batch_limits() == (3, 3)


async def test_a_worker_that_exits_before_it_is_ready_fails_start_and_the_others_are_stopped() -> None:
    ex = ScriptedPool(["cpu", "cpu"])
    ex.start_with = None
    async with asyncio.timeout(LIMIT):
        starting = asyncio.create_task(ex.start())
        await until(lambda: len(ex.handles) == 2, "both workers spawned")
        ex.handles[0].ready()
        ex.handles[1].exit(3)
        with pytest.raises(WorkerStartFailed, match="a dream worker on cpu exited with code 3 before it was ready"):
            await starting
    assert "stop" in ex.handles[0].calls and ex.handles[0].exited
    assert len(ex.handles) == 2, "no worker was started again"
    with pytest.raises(ExecutorClosed):
        ex.enqueue("a", spec())


async def test_a_start_failure_keeps_a_dream_error_as_its_cause_and_logs_any_other(caplog: pytest.LogCaptureFixture) -> None:
    unwarmable = ScriptedPool()
    unwarmable.start_with = ModelUnavailable("weights for inception cannot be found")
    buggy = ScriptedPool()
    buggy.start_with = RuntimeError("the runner's constructor has a bug")
    async with asyncio.timeout(LIMIT):
        with pytest.raises(WorkerStartFailed, match="on cpu could not start: weights for inception cannot be found") as failure:
            await unwarmable.start()
        assert type(failure.value.__cause__) is ModelUnavailable
        with caplog.at_level(logging.ERROR, logger="bot.executor._workers"):
            with pytest.raises(WorkerStartFailed, match="could not start: the runner's constructor has a bug") as failure:
                await buggy.start()
    assert failure.value.__cause__ is None
    assert "worker start failed with builtins.RuntimeError" in caplog.text


async def test_a_worker_lost_mid_job_fails_only_its_jobs_and_its_slot_gets_a_new_worker() -> None:
    async with asyncio.timeout(LIMIT), ScriptedPool(["cpu", "cuda:1"]) as ex:
        doomed = asyncio.create_task(submit(ex, "doomed", spec()))
        bystander = asyncio.create_task(submit(ex, "bystander", spec()))
        waiting = asyncio.create_task(submit(ex, "waiting", spec(steps=2)))
        await until(lambda: ex.running() == ("doomed", "bystander") and ex.queued() == ("waiting",), "two running, one queued")
        lost, other = ex.handles
        assert ex.worker_pid("doomed") == lost.pid and ex.worker_pid("waiting") is None
        lost.exit(-9)
        with pytest.raises(WorkerCrashed, match="stopped unexpectedly; please try again"):
            await doomed
        assert "release" in lost.calls
        await until(lambda: len(ex.handles) == 3, "a replacement worker")
        replacement = ex.handles[2]
        assert (replacement.slot, replacement.device) == (0, "cpu") and replacement.config == lost.config
        await until(lambda: ex.running() == ("waiting", "bystander"), "the queued job on the replacement")
        assert ex.handle_of("waiting") is replacement and ex.worker_pids() == (replacement.pid, other.pid)
        other.result("bystander", b"b")
        replacement.result("waiting", b"w")
        assert (await bystander).data == b"b" and (await waiting).data == b"w"
        assert ex.live_workers() == 2


async def test_a_worker_that_exits_while_idle_is_replaced() -> None:
    async with asyncio.timeout(LIMIT), ScriptedPool() as ex:
        (first,) = ex.handles
        first.exit(0)
        await until(lambda: ex.live_workers() == 1 and len(ex.handles) == 2, "a replacement worker")
        job = asyncio.create_task(submit(ex, "a", spec()))
        await until(lambda: ex.running() == ("a",), "the job running")
        ex.handles[1].result("a")
        assert (await job).data == b"done" and first.sent == []


async def test_a_job_cancelled_before_its_worker_died_ends_cancelled_not_crashed() -> None:
    async with asyncio.timeout(LIMIT), ScriptedPool(cancel_grace=LIMIT) as ex:
        job = asyncio.create_task(submit(ex, "a", spec()))
        await until(lambda: ex.running() == ("a",), "the job running")
        assert await ex.cancel("a") is True
        (worker,) = ex.handles
        assert worker.cancels == [0]
        worker.exit(-9)
        with pytest.raises(JobCancelled, match="the job was cancelled"):
            await job


async def test_a_replacement_that_cannot_start_leaves_its_slot_empty_instead_of_starting_again() -> None:
    async with asyncio.timeout(LIMIT), ScriptedPool() as ex:
        running = asyncio.create_task(submit(ex, "running", spec()))
        waiting = asyncio.create_task(submit(ex, "waiting", spec()))
        await until(lambda: ex.queued() == ("waiting",), "one running, one queued")
        ex.start_with = ModelUnavailable("weights for inception cannot be found")  # the next worker cannot start
        ex.handles[0].exit(-9)
        with pytest.raises(WorkerCrashed):
            await running
        with pytest.raises(WorkerStartFailed, match="could not start: weights for inception cannot be found"):
            await waiting
        await settle()
        assert len(ex.handles) == 2, "one replacement, not a loop of them"
        assert ex.live_workers() == 0 and ex.handles[1].exited
        with pytest.raises(WorkerStartFailed, match="weights for inception cannot be found"):
            ex.enqueue("late", spec())


async def test_a_slot_that_cannot_restart_leaves_the_queue_to_the_other_workers() -> None:
    async with asyncio.timeout(LIMIT), ScriptedPool(["cpu", "cpu"]) as ex:
        lost_job = asyncio.create_task(submit(ex, "lost", spec()))
        kept_job = asyncio.create_task(submit(ex, "kept", spec()))
        waiting = asyncio.create_task(submit(ex, "waiting", spec()))
        await until(lambda: ex.queued() == ("waiting",), "two running, one queued")
        ex.start_with = ModelUnavailable("weights for inception cannot be found")
        lost, kept = ex.handles
        lost.exit(-9)
        with pytest.raises(WorkerCrashed):
            await lost_job
        await until(lambda: len(ex.handles) == 3 and ex.handles[2].exited, "the replacement to fail")
        await settle()
        assert ex.queued() == ("waiting",) and not waiting.done(), "the other worker can still run it"
        kept.result("kept")
        await until(lambda: ex.running() == ("waiting",), "the queued job on the remaining worker")
        kept.result("waiting")
        assert (await kept_job).data == (await waiting).data == b"done"
        assert len(ex.handles) == 3 and ex.live_workers() == 1


async def test_a_cancel_the_job_ignores_terminates_its_worker_after_the_grace_then_kills_it(quick_kill: float) -> None:
    grace = 0.05
    ex = ScriptedPool(cancel_grace=grace)
    ex.obeys = ("stop", "kill")  # a worker stuck in native code: SIGTERM does not end it
    async with asyncio.timeout(LIMIT), ex:
        job = asyncio.create_task(submit(ex, "stubborn", spec()))
        await until(lambda: ex.running() == ("stubborn",), "the job running")
        (stuck,) = ex.handles
        ex.obeys = ("stop", "terminate", "kill")
        asked = asyncio.get_running_loop().time()
        assert await ex.cancel("stubborn") is True
        assert stuck.cancels == [0] and "terminate" not in stuck.calls, "first the job is asked to stop"
        with pytest.raises(JobCancelled, match="the job was cancelled"):
            await job
        assert stuck.calls[-3:] == ["terminate", "kill", "release"]
        assert stuck.call_times["terminate"] - asked >= grace - 1e-3, "terminated only after the grace"
        assert stuck.call_times["kill"] - stuck.call_times["terminate"] >= quick_kill - 1e-3, "killed only after the terminate had its time"
        await until(lambda: ex.live_workers() == 1, "a replacement worker")
        following = asyncio.create_task(submit(ex, "next", spec()))
        await until(lambda: ex.running() == ("next",), "the next job running")
        ex.handle_of("next").result("next")
        assert (await following).data == b"done" and ex.handle_of("next") is not stuck


async def test_a_job_that_honours_its_cancel_in_time_keeps_its_worker(quick_kill: float) -> None:
    grace = 0.05
    async with asyncio.timeout(LIMIT), ScriptedPool(cancel_grace=grace) as ex:
        job = asyncio.create_task(submit(ex, "a", spec()))
        await until(lambda: ex.running() == ("a",), "the job running")
        (worker,) = ex.handles
        await ex.cancel("a")
        worker.error("a", JobCancelled("cancelled"))
        with pytest.raises(JobCancelled):
            await job
        later = asyncio.create_task(submit(ex, "b", spec()))
        await until(lambda: ex.running() == ("b",), "the next job running")
        # Event order, not a window: the loop fires timers by deadline, so a stale escalation set at the cancel
        # (due at `grace`) has run before this later sleep returns, however slow the machine.
        await asyncio.sleep(4 * grace)
        worker.result("b")
        assert (await later).data == b"done"
        assert not {"terminate", "kill"} & set(worker.calls) and len(ex.handles) == 1


async def test_only_a_batch_whose_jobs_are_all_cancelled_is_escalated(quick_kill: float) -> None:
    grace = 0.05
    async with asyncio.timeout(LIMIT), ScriptedPool(max_batch=2, cancel_grace=grace) as ex:
        first = asyncio.create_task(submit(ex, "first", spec()))
        await until(lambda: ex.running() == ("first",), "the first job running")
        a, b = (asyncio.create_task(submit(ex, name, spec(seed=seed))) for seed, name in enumerate("ab"))
        await until(lambda: ex.queued() == ("a", "b"), "two jobs queued")
        (worker,) = ex.handles
        worker.result("first")
        await first
        await until(lambda: ex.running() == ("a", "b"), "a and b running as one batch")
        assert worker.sent[-1] == [("a", spec(seed=0)), ("b", spec(seed=1))]
        await ex.cancel("b")
        with pytest.raises(JobCancelled):
            await b  # at once: the batch goes on for a
        assert worker.cancels == [1]
        await asyncio.sleep(4 * grace)  # fires after any escalation timer set at the cancel (timers run by deadline)
        assert "terminate" not in worker.calls, "a's run is not cut short for b's cancel"
        await ex.cancel("a")
        assert worker.cancels == [1, 0]
        with pytest.raises(JobCancelled):
            await a
        await until(lambda: "terminate" in worker.calls, "the worker to be terminated")


async def test_close_fails_every_job_and_escalates_for_workers_that_do_not_exit(quick_kill: float) -> None:
    ex = ScriptedPool(["cpu", "cpu", "cpu"], shutdown_timeout=0.05)
    async with asyncio.timeout(LIMIT):
        await ex.start()
        polite, stubborn, deaf = ex.handles
        stubborn.obeys = {"terminate"}
        deaf.obeys = set()  # not even a kill is seen to work: close must still return
        jobs = [asyncio.create_task(submit(ex, name, spec())) for name in ("p", "s", "d", "queued")]
        await until(lambda: len(ex.running()) == 3 and ex.queued() == ("queued",), "three running, one queued")
        await ex.close()
        for job in jobs:
            with pytest.raises(ExecutorClosed, match="shutting down"):
                await job
    assert polite.calls == ["start", "stop", "release", "join_threads"]
    assert stubborn.calls == ["start", "stop", "terminate", "release", "join_threads"]
    assert deaf.calls == ["start", "stop", "terminate", "kill", "release", "join_threads"]
    assert len(ex.handles) == 3, "workers that exit on close are not replaced"
    with pytest.raises(ExecutorClosed, match="takes no new jobs"):
        ex.enqueue("late", spec())


async def test_a_second_close_returns_once_the_first_is_done(quick_kill: float) -> None:
    ex = ScriptedPool(shutdown_timeout=0.05)
    ex.obeys = ("kill",)
    async with asyncio.timeout(LIMIT):
        await ex.start()
        first = asyncio.create_task(ex.close())
        second = asyncio.create_task(ex.close())
        await second
        assert first.done()
    assert ex.handles[0].calls.count("stop") == 1


async def test_a_report_after_close_or_for_a_job_sent_elsewhere_is_ignored() -> None:
    async with asyncio.timeout(LIMIT):
        async with ScriptedPool(["cpu", "cpu"]) as ex:
            job = asyncio.create_task(submit(ex, "a", spec()))
            await until(lambda: ex.running() == ("a",), "the job running")
            owner = ex.handle_of("a")
            stranger = next(handle for handle in ex.handles if handle is not owner)
            stranger.result("a", b"not yours")
            stranger.error("a", InvalidParameter("not yours"))
            await settle()
            assert ex.running() == ("a",)
            owner.result("a", b"mine")
            assert (await job).data == b"mine"
        owner.result("a", b"too late")
        owner.ready()
        await settle()
