"""The executor contract, on each backend (local worker processes, Ray actors), against fake runners."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.executor import (
    Executor,
    ExecutorClosed,
    JobFailed,
    PoolExecutor,
    WorkerCrashed,
    WorkerStartFailed,
    resolve_devices,
)
from core.errors import InvalidParameter, JobCancelled, ModelUnavailable, UnknownModel
from core.jobs import JobSpec, ProgressEvent
from tests.bot.executor.running import submit
from tests.bot.fake_runners import fake_spec
from tests.bot.waiting import LIMIT, until

pytestmark = pytest.mark.timeout(30)

FAKE = "tests.bot.fake_runners:FakeRunner"


def spec(**params: Any) -> JobSpec:
    return fake_spec("dream", **params)


Pool = Callable[..., PoolExecutor]


@pytest.fixture
def pool(make_executor: Pool) -> Pool:
    """A not yet started executor of the backend under test, with fake runners and short timeouts."""

    def build(workers: int = 1, **kwargs: Any) -> PoolExecutor:
        kwargs.setdefault("cancel_grace", 1.0)
        kwargs.setdefault("shutdown_timeout", 2.0)
        kwargs.setdefault("runner_factory", FAKE)
        return make_executor(workers=workers, **kwargs)

    return build


@pytest.fixture
async def executor(pool: Pool) -> AsyncIterator[PoolExecutor]:
    async with asyncio.timeout(LIMIT):
        await (ex := pool(warm_models=("inception",))).start()
    try:
        yield ex
    finally:
        async with asyncio.timeout(LIMIT):
            await ex.close()



def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def first_progress() -> tuple[asyncio.Event, Any]:
    seen = asyncio.Event()
    return seen, lambda event: seen.set()


async def test_job_returns_result_and_progress_in_order(executor: PoolExecutor) -> None:
    assert isinstance(executor, Executor)
    events: list[ProgressEvent] = []
    async with asyncio.timeout(LIMIT):
        result = await submit(executor, "a", spec(steps=5, sleep=0.01), events.append)
    assert result.data == b"ok:dream" and result.mime_type == "image/png"
    assert result.metadata["warmed"] == ["inception"] and result.metadata["device"] == "cpu"
    assert result.metadata["pid"] in executor.worker_pids()
    # First "start" when a worker takes the job, then the runner's own events.
    assert [(e.stage, e.step, e.total) for e in events] == [("start", 0, 1)] + [("step", i, 5) for i in range(1, 6)]
    assert executor.queued() == () and executor.running() == ()


async def test_async_progress_callback_is_awaited_in_order_and_its_errors_do_not_fail_the_job(executor: PoolExecutor) -> None:
    steps: list[int] = []

    async def on_progress(event: ProgressEvent) -> None:
        await asyncio.sleep(0.02)  # slower than the job: events must still come one at a time, in order
        steps.append(event.step)
        if event.step == 2:
            raise RuntimeError("the progress message could not be edited")

    async with asyncio.timeout(LIMIT):
        result = await submit(executor, "a", spec(steps=4), on_progress)
    assert steps == [0, 1, 2, 3, 4] and result.data == b"ok:dream"  # 0: the "start" event


async def test_two_workers_run_two_jobs_concurrently(pool: Pool) -> None:
    async with asyncio.timeout(LIMIT), pool(workers=2) as ex:
        assert len(ex.worker_pids()) == 2 and ex.devices() == ("cpu", "cpu")
        first = asyncio.create_task(submit(ex, "a", spec(steps=4, sleep=0.15)))
        second = asyncio.create_task(submit(ex, "b", spec(steps=4, sleep=0.15)))
        await until(lambda: len(ex.running()) == 2, "both jobs running")
        a, b = await asyncio.gather(first, second)
    assert a.metadata["pid"] != b.metadata["pid"]
    # Each job's run overlaps the other's: they ran side by side, not one after the other.
    assert a.metadata["started"] < b.metadata["finished"] and b.metadata["started"] < a.metadata["finished"]


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


async def test_dream_errors_keep_their_class_message_and_attributes(executor: PoolExecutor) -> None:
    (pid,) = executor.worker_pids()
    async with asyncio.timeout(LIMIT):
        with pytest.raises(InvalidParameter) as invalid:
            await submit(executor, "a", spec(fail="strength must be between 0.05 and 10"))
        with pytest.raises(UnknownModel) as unknown:
            await submit(executor, "b", spec(unknown_model="incepshun"))
        with pytest.raises(JobFailed) as bug:
            await submit(executor, "c", spec(bug="index out of range"))
        after = await submit(executor, "d", spec())
    assert type(invalid.value) is InvalidParameter and str(invalid.value) == "strength must be between 0.05 and 10"
    assert str(unknown.value) == "unknown model 'incepshun'; closest: inception"
    assert unknown.value.name == "incepshun" and unknown.value.suggestions == ["inception"]
    assert bug.value.remote_type == "builtins.RuntimeError" and "index out of range" in bug.value.remote_traceback
    assert "index out of range" not in str(bug.value)  # details go to the log, not to the user
    assert after.metadata["pid"] == pid  # errors do not cost the worker


async def test_cancel_queued_job(executor: PoolExecutor) -> None:
    async with asyncio.timeout(LIMIT):
        running = asyncio.create_task(submit(executor, "running", spec(steps=10, sleep=0.05)))
        waiting = asyncio.create_task(submit(executor, "waiting", spec()))
        await until(lambda: executor.queued() == ("waiting",), "the second job queued")
        assert await executor.cancel("waiting") is True
        with pytest.raises(JobCancelled, match="before it started"):
            await waiting
        assert executor.queued() == ()
        assert (await running).data == b"ok:dream"
    assert await executor.cancel("waiting") is False
    assert await executor.cancel("never-submitted") is False


async def test_cancel_running_job_stops_it_at_its_next_step(executor: PoolExecutor) -> None:
    (pid,) = executor.worker_pids()
    seen, on_progress = first_progress()
    async with asyncio.timeout(LIMIT):
        job = asyncio.create_task(submit(executor, "a", spec(steps=200, sleep=0.05), on_progress))
        await seen.wait()
        started = time.monotonic()
        assert await executor.cancel("a") is True
        with pytest.raises(JobCancelled):
            await job
        assert time.monotonic() - started < 0.9  # well inside cancel_grace: the runner stopped by itself
        assert (await submit(executor, "b", spec())).metadata["pid"] == pid


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


async def test_cancelling_the_awaiting_task_cancels_the_job(executor: PoolExecutor) -> None:
    async with asyncio.timeout(LIMIT):
        blocker = asyncio.create_task(submit(executor, "blocker", spec(steps=5, sleep=0.05)))
        waiting = asyncio.create_task(submit(executor, "waiting", spec()))
        await until(lambda: executor.queued() == ("waiting",), "the second job queued")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert executor.queued() == ()
        await blocker


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


async def test_event_loop_stays_responsive_while_a_job_runs(executor: PoolExecutor) -> None:
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    try:
        async with asyncio.timeout(LIMIT):
            await submit(executor, "a", spec(steps=10, sleep=0.08))
    finally:
        ticking.cancel()
    assert len(gaps) > 30 and max(gaps) < 0.25


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


async def test_enqueue_before_start_is_a_programming_error(pool: Pool) -> None:
    with pytest.raises(RuntimeError, match="start the executor first"):
        pool().enqueue("a", spec())


def test_devices_one_worker_per_gpu_or_one_on_cpu() -> None:
    assert resolve_devices(0, "cpu", cuda_device_count=lambda: 0) == ["cpu"]
    assert resolve_devices(0, "cpu", cuda_device_count=lambda: 2) == ["cuda:0", "cuda:1"]
    assert resolve_devices(3, "cuda", cuda_device_count=lambda: 2) == ["cuda:0", "cuda:1", "cuda:0"]
    assert resolve_devices(2, "auto", cuda_device_count=lambda: 0) == ["cpu", "cpu"]
    assert resolve_devices(2, "cuda:1", cuda_device_count=lambda: 2) == ["cuda:1", "cuda:1"]
    with pytest.raises(ValueError):
        resolve_devices(-1, "cpu")
