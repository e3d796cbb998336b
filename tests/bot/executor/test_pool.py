"""The executor contract, on each backend (local worker processes, Ray actors), against fake runners:
PoolExecutor's queue, dispatch, progress and cancels. The workers' lives (start, crashes, escalation,
close) are in test_workers.py, errors crossing from a worker in test_wire.py."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bot.executor import Executor, PoolExecutor, resolve_devices
from core.errors import JobCancelled
from core.jobs import ProgressEvent
from tests.bot.executor.running import Pool, spec, submit
from tests.bot.waiting import LIMIT, until

pytestmark = pytest.mark.timeout(300)  # only stops a hung test: Ray's start alone can take a minute on a busy machine


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


async def test_cancel_running_job_stops_it_at_its_next_step(pool: Pool) -> None:
    # No clock: the job has more steps than the test can wait for, and the grace before the worker is
    # terminated is longer than the test's own limit; so a job that ends at all, cancelled, on a worker
    # that goes on serving, was stopped by its runner, at a step, not by the escalation nor by finishing.
    steps: list[int] = []
    async with asyncio.timeout(LIMIT), pool(cancel_grace=10 * LIMIT) as ex:
        (pid,) = ex.worker_pids()
        job = asyncio.create_task(submit(ex, "a", spec(steps=10**6, sleep=0.01), lambda event: steps.append(event.step)))
        await until(lambda: len(steps) > 1, "the job's first step")
        assert await ex.cancel("a") is True
        with pytest.raises(JobCancelled):
            await job
        assert ex.worker_pids() == (pid,) and ex.running() == ()
        assert (await submit(ex, "b", spec())).metadata["pid"] == pid



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
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    at_event: list[int] = []  # the ticker's count when each of the job's events reached the loop
    ticking = asyncio.create_task(ticker())
    try:
        async with asyncio.timeout(LIMIT):
            await submit(executor, "a", spec(steps=10, sleep=0.08), lambda event: at_event.append(ticks))
    finally:
        ticking.cancel()
    # Order, not time: while a worker runs the job the loop is free, so the ticker runs between the
    # job's events (8 ticks apart on an idle machine). A loop blocked for the job would deliver them all at
    # one count. A busy machine may merge a few (a late read of the pipe, a Ray pull that brings two), so
    # more than half of the 10 gaps, not all, must hold ticks.
    advanced = sum(later > earlier for earlier, later in itertools.pairwise(at_event))
    assert len(at_event) == 11 and advanced > 5, at_event


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
