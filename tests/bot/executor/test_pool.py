"""The executor contract, on each backend (local worker processes, Ray actors), against fake runners:
PoolExecutor's queue, dispatch, progress and cancels. The workers' lives (start, crashes, escalation,
close) are in test_workers.py, errors crossing from a worker in test_wire.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.executor import Executor, PoolExecutor, resolve_devices
from core.errors import JobCancelled
from core.jobs import ProgressEvent
from tests.bot.executor.running import Pool, first_progress, spec, submit
from tests.bot.waiting import LIMIT, until

pytestmark = pytest.mark.timeout(30)


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
