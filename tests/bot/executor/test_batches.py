"""Batching, on each backend: compatible queued dreams go to a worker together, each keeping its own outcome."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, Awaitable, Callable

import pytest

from bot.executor import LocalProcessExecutor, PoolExecutor, WorkerCrashed
from core.errors import InvalidImage, JobCancelled
from core.images import decode_image
from core.jobs import JobCost, JobSpec, ProgressEvent
from core.cost import DEFAULT_RATES, RateMeter
from core.spec import compile_job
from tests.bot.executor.running import submit
from tests.bot.fake_runners import fake_spec
from tests.bot.waiting import LIMIT, until

pytestmark = pytest.mark.timeout(300)  # only stops a hung test: Ray's start or a model's warm-up can take a minute on a busy machine

FAKE = "tests.bot.fake_runners:FakeRunner"


def dream(seed: int = 0, **params: Any) -> JobSpec:
    return fake_spec("dream", seed=seed, **params)


Pool = Callable[..., PoolExecutor]


@pytest.fixture
def pool(make_executor: Pool) -> Pool:
    """A not yet started one-worker executor of the backend under test, with a fake runner."""

    def build(max_batch: int | None = 4, **kwargs: Any) -> PoolExecutor:
        kwargs.setdefault("runner_factory", FAKE)
        kwargs.setdefault("cancel_grace", 1.0)
        return make_executor(workers=1, max_batch=max_batch, shutdown_timeout=2.0, **kwargs)

    return build



async def occupy(ex: PoolExecutor) -> Callable[[], Awaitable[None]]:
    """Keep the only worker busy until the returned coroutine function is awaited, so jobs queue up."""
    blocker = asyncio.create_task(submit(ex, "blocker", dream(steps=400, sleep=0.05)))
    await until(lambda: ex.running() == ("blocker",), "the blocker running")

    async def release() -> None:
        await ex.cancel("blocker")
        with pytest.raises(JobCancelled):
            await blocker

    return release


def submit_all(ex: PoolExecutor, jobs: dict[str, JobSpec], events: dict[str, list[ProgressEvent]] | None = None) -> list[asyncio.Task]:
    return [asyncio.create_task(submit(ex, job_id, spec, events[job_id].append if events else None)) for job_id, spec in jobs.items()]


async def test_compatible_queued_jobs_run_as_one_batch_each_with_its_own_result_and_progress(pool: Pool) -> None:
    async with asyncio.timeout(LIMIT), pool() as ex:
        assert ex.batch_limits() == (4,)
        release = await occupy(ex)
        jobs = {name: dream(seed=seed, steps=3) for seed, name in enumerate("abcd")}
        events: dict[str, list[ProgressEvent]] = {name: [] for name in jobs}
        tasks = submit_all(ex, jobs, events)
        await until(lambda: ex.queued() == tuple(jobs), "four jobs queued")
        await release()
        results = await asyncio.gather(*tasks)
    assert [r.metadata["via"] for r in results] == ["run_batch"] * 4
    assert len({r.metadata["call"] for r in results}) == 1  # one call of the runner ran all four
    assert [r.metadata["batch_size"] for r in results] == [4] * 4
    assert [r.metadata["seed"] for r in results] == [0, 1, 2, 3] and [r.metadata["batch_index"] for r in results] == [0, 1, 2, 3]
    for name in jobs:
        assert [(e.stage, e.step, e.total) for e in events[name]] == [("start", 0, 1), ("step", 1, 3), ("step", 2, 3), ("step", 3, 3)]


async def test_a_batch_takes_at_most_max_batch_jobs(pool: Pool) -> None:
    async with asyncio.timeout(LIMIT), pool(max_batch=3) as ex:
        release = await occupy(ex)
        tasks = submit_all(ex, {f"j{i}": dream(seed=i) for i in range(5)})
        await until(lambda: len(ex.queued()) == 5, "five jobs queued")
        await release()
        results = await asyncio.gather(*tasks)
    assert [r.metadata["batch_size"] for r in results] == [3, 3, 3, 2, 2]
    assert results[0].metadata["call"] < results[3].metadata["call"]


async def test_incompatible_jobs_are_not_batched_and_the_rest_keep_their_order(pool: Pool) -> None:
    jobs = {
        "a": dream(steps=2),
        "b": dream(steps=3),  # other params
        "c": dream(seed=1, steps=2),  # joins a
        "d": fake_spec("visualize", steps=2),
        "e": fake_spec("dream", steps=2, guide=b"guide"),  # a guide: always alone
        "f": dream(seed=2, steps=2),  # joins a
        "g": dream(seed=3, steps=3),  # joins b
    }
    async with asyncio.timeout(LIMIT), pool() as ex:
        release = await occupy(ex)
        tasks = submit_all(ex, jobs)
        await until(lambda: ex.queued() == tuple(jobs), "seven jobs queued")
        await release()
        results = dict(zip(jobs, await asyncio.gather(*tasks)))
    calls = {name: r.metadata["call"] for name, r in results.items()}
    first = calls["a"]
    assert calls == {"a": first, "c": first, "f": first, "b": first + 1, "g": first + 1, "d": first + 2, "e": first + 3}
    assert [results[name].metadata["batch_size"] for name in "acfbg"] == [3, 3, 3, 2, 2]
    assert results["d"].metadata["via"] == results["e"].metadata["via"] == "run"


async def test_a_bad_photo_fails_only_its_own_job_in_a_batch(pool: Pool) -> None:
    async with asyncio.timeout(LIMIT), pool() as ex:
        release = await occupy(ex)
        jobs = {"a": dream(seed=1), "bad": fake_spec("dream", image=b"not an image", seed=2), "c": dream(seed=3)}
        tasks = submit_all(ex, jobs)
        await until(lambda: len(ex.queued()) == 3, "three jobs queued")
        await release()
        a, bad, c = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(bad, InvalidImage) and str(bad) == "the file is not an image"
    assert a.metadata["batch_size"] == c.metadata["batch_size"] == 3 and a.metadata["call"] == c.metadata["call"]


async def test_cancelling_one_job_of_a_batch_ends_it_at_once_and_the_others_finish(pool: Pool) -> None:
    async with asyncio.timeout(LIMIT), pool() as ex:
        release = await occupy(ex)
        seen = asyncio.Event()
        jobs = {name: dream(seed=seed, steps=20, sleep=0.05) for seed, name in enumerate("abc")}
        a = asyncio.create_task(submit(ex, "a", jobs["a"], lambda event: seen.set()))
        b, c = submit_all(ex, {"b": jobs["b"], "c": jobs["c"]})
        await until(lambda: len(ex.queued()) == 3, "three jobs queued")
        await release()
        await seen.wait()
        assert await ex.cancel("b") is True
        with pytest.raises(JobCancelled):
            await b  # at once: not when the batch ends
        assert ex.running() == ("a", "c")
        first, last = await a, await c
    assert first.metadata["batch_size"] == last.metadata["batch_size"] == 3
    assert first.metadata["batch_cancelled"] == last.metadata["batch_cancelled"] == 1  # b's own flag reached the worker


async def test_cancelling_every_job_of_a_batch_stops_it_and_keeps_the_worker(pool: Pool) -> None:
    # No clock: the batch has more steps than the test can wait for, and the grace before the worker is
    # terminated is longer than the test's own limit; so a batch that ends at all, every job cancelled, on
    # a worker that goes on serving, was stopped by its runner, not by the escalation nor by finishing.
    endless = {name: dream(seed=seed, steps=10**6, sleep=0.01) for seed, name in enumerate("abc")}
    async with asyncio.timeout(LIMIT), pool(cancel_grace=10 * LIMIT) as ex:
        (pid,) = ex.worker_pids()
        release = await occupy(ex)
        seen = asyncio.Event()
        a = asyncio.create_task(submit(ex, "a", endless["a"], lambda event: seen.set()))
        b, c = submit_all(ex, {"b": endless["b"], "c": endless["c"]})
        await until(lambda: len(ex.queued()) == 3, "three jobs queued")
        await release()
        await seen.wait()
        for name in "abc":
            assert await ex.cancel(name) is True
        for task in (a, b, c):
            with pytest.raises(JobCancelled):
                await task
        assert ex.worker_pids() == (pid,) and ex.running() == ()
        assert (await submit(ex, "next", dream())).metadata["pid"] == pid


async def test_a_worker_crash_mid_batch_fails_the_whole_batch_and_the_next_job_succeeds(pool: Pool) -> None:
    async with asyncio.timeout(LIMIT), pool() as ex:
        (before,) = ex.worker_pids()
        release = await occupy(ex)
        tasks = submit_all(ex, {name: dream(seed=seed, steps=3, crash_at=2) for seed, name in enumerate("abc")})
        await until(lambda: len(ex.queued()) == 3, "three jobs queued")
        await release()
        for task in tasks:
            with pytest.raises(WorkerCrashed):
                await task
        result = await submit(ex, "next", dream())
    assert result.metadata["pid"] != before


async def test_the_rate_meter_divides_a_batchs_dream_time_among_its_jobs(pool: Pool) -> None:
    """Four equal dreams share their passes, and each reports the batch's one "dream" time: the
    executor must price them as four jobs' network work in that time, not as one job's."""
    cpu = DEFAULT_RATES["cpu"]
    cost = JobCost(network=10 * cpu.gflops_per_second, passes=10, decode=0.0, encode=0.0)  # 10 s of network work alone
    # On a machine twice as fast at network work as the defaults say, four such jobs take 20 s together.
    dream_seconds = 4 * cost.network / (2 * cpu.gflops_per_second) + cost.passes * cpu.seconds_per_pass
    options = {"timings": {"dream": dream_seconds}}
    async with asyncio.timeout(LIMIT), pool(runner_factory="tests.bot.fake_runners:TimedRunner", runner_options=options) as ex:
        priced = replace(dream(steps=1), cost=cost)
        before = ex.predict(priced)
        release = await occupy(ex)  # unpriced: teaches the meter nothing
        tasks = submit_all(ex, {f"j{seed}": replace(priced, seed=seed) for seed in range(4)})
        await until(lambda: len(ex.queued()) == 4, "four jobs queued")
        await release()
        results = await asyncio.gather(*tasks)
        after = ex.predict(priced)
    assert [r.metadata["batch_size"] for r in results] == [4] * 4 and len({r.metadata["call"] for r in results}) == 1
    assert [r.timings["dream"] for r in results] == [dream_seconds] * 4

    def learned(batch: int) -> float:
        meter = RateMeter()
        for _ in results:
            meter.observe(cost, {"dream": dream_seconds}, "cpu", batch=batch)
        return meter.predict(cost, "cpu")

    assert before == pytest.approx(RateMeter().predict(cost, "cpu"))
    # Each job's share (5 s of network work) says the machine is faster than the defaults...
    assert after < 0.8 * before
    assert after == pytest.approx(learned(batch=4), rel=1e-9)
    # ...while taking the batch's 20 s for one job's would say it is twice as slow.
    assert learned(batch=1) > 1.5 * before


@pytest.mark.parametrize("max_batch", [1, None], ids=["max_batch=1", "auto-on-cpu"])
async def test_without_batching_jobs_run_one_at_a_time_as_before(pool: Pool, max_batch: int | None) -> None:
    async with asyncio.timeout(LIMIT), pool(max_batch=max_batch) as ex:
        assert ex.batch_limits() == (1,)
        release = await occupy(ex)
        tasks = submit_all(ex, {name: dream(seed=seed) for seed, name in enumerate("abc")})
        await until(lambda: len(ex.queued()) == 3, "three jobs queued")
        await release()
        results = await asyncio.gather(*tasks)
    assert [r.metadata["via"] for r in results] == ["run"] * 3
    calls = [r.metadata["call"] for r in results]
    assert calls == sorted(calls) and len(set(calls)) == 3


async def test_the_real_runner_batches_tiny_dreams(photo_bytes) -> None:
    photo = photo_bytes("chelsea.png", (80, 60))
    specs = [compile_job("dream", {"steps": 1, "octaves": 1, "max_side": 64}, images=[photo], seed=seed) for seed in range(4)]
    ex = LocalProcessExecutor(workers=1, device="cpu", runner_factory="core.runner:JobRunner", warm_models=("efficientnet-lite0",),
                              max_batch=3, shutdown_timeout=5.0)
    async with asyncio.timeout(240), ex:  # only stops a hang: a cold start loads torch and warms the model
        # The first job goes to the idle worker alone; the other three queue behind it and go together.
        results = await asyncio.gather(*(submit(ex, f"j{i}", spec) for i, spec in enumerate(specs)))
    assert "batch_size" not in results[0].metadata
    assert [r.metadata["batch_size"] for r in results[1:]] == [3, 3, 3]
    assert [r.metadata["seed"] for r in results] == [0, 1, 2, 3]
    for result in results:
        assert decode_image(result.data).rgb.size == (64, 48)
    assert len({r.data for r in results}) == 4
