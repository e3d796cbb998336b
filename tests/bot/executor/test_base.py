"""The boundary the service talks to (`base`): the `Executor` protocol, which both backends satisfy
method for method, and what `predict` and `place` (a `QueuePlace`) promise."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from dataclasses import replace

import pytest

from bot.executor import Executor, LocalProcessExecutor, PoolExecutor, QueuePlace, RayExecutor
from core.cost import DEFAULT_RATES, RateMeter
from core.errors import JobCancelled
from core.jobs import JobCost
from tests.bot.executor.running import spec, submit
from tests.bot.executor.scripted import ScriptedPool
from tests.bot.waiting import LIMIT, until

pytestmark = pytest.mark.timeout(300)  # only stops a hung test: Ray's start can take a minute on a busy machine

CPU = DEFAULT_RATES["cpu"]
COST = JobCost(network=10 * CPU.gflops_per_second, passes=10, decode=0.0, encode=0.0)


def protocol_methods() -> list[str]:
    return [name for name, value in vars(Executor).items()
            if inspect.isfunction(value) and (not name.startswith("_") or name in ("__aenter__", "__aexit__"))]


def test_the_protocol_names_what_every_front_may_call() -> None:
    assert sorted(protocol_methods()) == sorted([
        "start", "close", "__aenter__", "__aexit__", "enqueue", "wait", "predict", "place", "cancel", "queued",
        "running", "live_workers",
    ])


def test_both_backends_are_executors_before_they_start() -> None:
    for executor in (LocalProcessExecutor(), RayExecutor(), ScriptedPool()):
        assert isinstance(executor, Executor), type(executor).__name__

    class NoPlace:  # every method but one
        pass

    for name in protocol_methods():
        if name != "place":
            setattr(NoPlace, name, getattr(PoolExecutor, name))
    assert not isinstance(NoPlace(), Executor)


@pytest.mark.parametrize("name", protocol_methods())
def test_the_pool_implements_each_method_as_the_protocol_declares_it(name: str) -> None:
    declared, implemented = getattr(Executor, name), getattr(PoolExecutor, name)
    assert inspect.iscoroutinefunction(implemented) == inspect.iscoroutinefunction(declared), "awaitable exactly where declared so"

    def shape(function: object) -> list[tuple[str, object, object]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]

    assert shape(implemented) == shape(declared)


def test_a_queue_place_is_a_frozen_value() -> None:
    place = QueuePlace(2, 30.0)
    assert place == QueuePlace(2, 30.0) and place != QueuePlace(1, 30.0) and len({place, QueuePlace(2, 30.0)}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        place.position = 1  # type: ignore[misc]


async def test_predict_prices_a_job_at_the_built_in_rates_of_the_workers_device_until_it_measures_its_own() -> None:
    priced = replace(spec(), cost=COST)
    async with asyncio.timeout(LIMIT):
        async with ScriptedPool(["cpu"]) as cpu:
            assert cpu.predict(spec()) == 0.0, "a job without a cost is not priced"
            assert cpu.predict(priced) == pytest.approx(RateMeter().predict(COST, "cpu"))
        async with ScriptedPool(["cpu", "cuda:0"]) as gpu:
            assert gpu.predict(priced) == pytest.approx(RateMeter().predict(COST, "cuda"))
    assert RateMeter().predict(COST, "cuda") < RateMeter().predict(COST, "cpu")


async def test_place_is_zero_while_a_job_runs_then_its_turn_and_wait_in_the_queue_and_none_once_it_ended() -> None:
    priced = replace(spec(), cost=COST)
    async with asyncio.timeout(LIMIT), ScriptedPool(["cpu", "cpu"]) as ex:
        each = ex.predict(priced)
        jobs = {name: asyncio.create_task(submit(ex, name, job, user=name))
                for name, job in (("a", spec()), ("b", spec()), ("c", priced), ("d", priced), ("e", priced))}
        await until(lambda: ex.queued() == ("c", "d", "e"), "two running, three queued")
        assert ex.place("a") == ex.place("b") == QueuePlace(0, 0.0)
        # The running jobs are unpriced, so the wait is the priced jobs ahead, shared by the two workers.
        assert ex.place("c") == QueuePlace(1, 0.0)
        assert ex.place("d") == QueuePlace(2, pytest.approx(each / 2))
        assert ex.place("e") == QueuePlace(3, pytest.approx((each + each) / 2))
        ex.handle_of("a").result("a")
        assert (await jobs["a"]).data == b"done"
        assert ex.place("a") is None and ex.place("c") == QueuePlace(0, 0.0)
        remaining = ex.place("d")
        assert remaining.position == 1 and 0.0 <= remaining.wait_seconds <= each / 2, "what is left of c's run, shared"
        await ex.cancel("e")
        assert ex.place("e") is None and ex.place("never-enqueued") is None
        for name in ("b", "c"):
            ex.handle_of(name).result(name)
        await until(lambda: ex.running() == ("d",), "d running")
        ex.handle_of("d").result("d")
        await asyncio.gather(jobs["b"], jobs["c"], jobs["d"])
        with pytest.raises(JobCancelled):
            await jobs["e"]
