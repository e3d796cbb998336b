"""The bot's handle of one Ray actor (`_ray_handle`), on the session's real local Ray: its pull loop
delivers the worker's messages in order and its exit last; a death is reported with the error's
first line; stop, kill and release do what the pool expects; an actor Ray cannot place in time
says why and exits."""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.executor._ray_handle import RayWorkerHandle, _first_line, demand, never_fits
from bot.executor._wire import WorkerConfig
from tests.bot.executor.running import FAKE, process_exists, spec
from tests.bot.waiting import LIMIT, until

pytestmark = pytest.mark.timeout(120)

LOGGER = "bot.executor._ray_handle"


class Watched:
    """A started handle and what it reported: its messages, and whether (and when) it exited."""

    def __init__(self, handle: RayWorkerHandle):
        self.handle = handle
        self.messages: list[tuple[Any, ...]] = []
        self.exits: list[int | None] = []
        self.messages_before_exit = -1

    def on_message(self, message: tuple[Any, ...]) -> None:
        assert not self.exits, f"a message after the exit: {message}"
        self.messages.append(message)

    def on_exit(self, code: int | None) -> None:
        self.messages_before_exit = len(self.messages)
        self.exits.append(code)

    def kinds(self) -> list[str]:
        return [message[0] for message in self.messages]

    def outcome(self, job_id: str) -> tuple[Any, ...] | None:
        return next((m for m in self.messages if m[0] in ("result", "error") and m[1] == job_id), None)


@pytest.fixture
async def watch(ray_instance: None) -> AsyncIterator[Callable[..., Watched]]:
    started: list[Watched] = []

    def start(resources: dict[str, float] | None = None, *, place_timeout: float | None = None) -> Watched:
        config = WorkerConfig(FAKE, "cpu", {}, ("inception",), 1)
        handle = RayWorkerHandle(name=f"test-handle-{len(started)}", config=config, max_batch=2,
                                 resources=resources or {"num_cpus": 1}, place_timeout=place_timeout)
        watched = Watched(handle)
        handle.start(asyncio.get_running_loop(), watched.on_message, watched.on_exit)
        started.append(watched)
        return watched

    yield start
    for watched in started:  # free the session's CPUs for the next test
        if not watched.exits:
            watched.handle.kill()
            if watched.handle._puller is not None and not watched.handle._puller.done():  # not released
                await until(lambda: watched.exits, "a killed actor's exit")
        watched.handle.release()


async def test_messages_arrive_in_order_and_the_exit_comes_last(watch: Callable[..., Watched]) -> None:
    worker = watch()
    await until(lambda: worker.kinds() == ["ready"], "the worker to be ready")
    assert worker.handle.pid is not None and process_exists(worker.handle.pid)
    worker.handle.send_batch([("a", spec(steps=5))])
    await until(lambda: worker.outcome("a"), "a's result")
    assert worker.kinds() == ["ready"] + ["progress"] * 5 + ["result"]
    assert [m[2].step for m in worker.messages[1:6]] == [1, 2, 3, 4, 5]
    worker.handle.send_batch([("b", spec(steps=1)), ("c", spec(seed=1, steps=1))])
    await until(lambda: worker.outcome("b") and worker.outcome("c"), "the batch's results")
    pid = worker.handle.pid
    worker.handle.stop()
    await until(lambda: worker.exits, "the stopped worker's exit")
    assert worker.exits == [None] and worker.messages_before_exit == len(worker.messages)
    await until(lambda: not process_exists(pid), "the actor's process to end")


async def test_an_actor_that_dies_reports_its_exit_with_the_errors_first_line(
        watch: Callable[..., Watched], caplog: pytest.LogCaptureFixture) -> None:
    worker = watch()
    await until(lambda: worker.kinds() == ["ready"], "the worker to be ready")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        worker.handle.send_batch([("a", spec(steps=3, crash_at=2))])
        await until(lambda: worker.exits, "the crashed worker's exit")
    assert worker.outcome("a") is None, "a crash delivers no result; the pool fails the job"
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.WARNING
    text = record.getMessage()
    assert text.startswith(f"ray actor test-handle-0 (pid {worker.handle.pid}) is gone: ") and "\n" not in text
    assert len(text) > len(f"ray actor test-handle-0 (pid {worker.handle.pid}) is gone: "), "the error's line is missing"


async def test_kill_ends_a_running_job_quietly_and_the_exit_follows(
        watch: Callable[..., Watched], caplog: pytest.LogCaptureFixture) -> None:
    worker = watch()
    await until(lambda: worker.kinds() == ["ready"], "the worker to be ready")
    worker.handle.send_batch([("long", spec(steps=2000, sleep=0.01))])
    await until(lambda: "progress" in worker.kinds(), "the job to run")
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        worker.handle.kill()
        await until(lambda: worker.exits, "the killed worker's exit")
    assert worker.outcome("long") is None
    assert [r.levelno for r in caplog.records if r.name == LOGGER] == [logging.DEBUG], "a kill of ours is no warning"


async def test_released_handle_delivers_nothing_more(watch: Callable[..., Watched]) -> None:
    worker = watch()
    await until(lambda: worker.kinds() == ["ready"], "the worker to be ready")
    worker.handle.release()
    worker.handle.send_batch([("a", spec(steps=2))])
    # The actor still runs the job: wait until its outbox holds the result, then look at what came here.
    async with asyncio.timeout(LIMIT):
        while True:
            data, _ = await worker.handle._actor.pull.remote(0, 1.0)
            if any(pickle.loads(item)[0] == "result" for item in data):
                break
    assert worker.kinds() == ["ready"] and worker.exits == []


async def test_an_actor_ray_cannot_place_in_time_says_why_and_exits(watch: Callable[..., Watched]) -> None:
    worker = watch({"num_cpus": 3}, place_timeout=0.5)  # the session's Ray has 2 CPUs
    await until(lambda: worker.exits, "the unplaced worker's exit")
    [(kind, info)] = worker.messages
    assert kind == "start_failed" and info.qualname == "WorkerStartFailed"
    assert info.message == ("Ray found no place for the worker within 0.5s: it needs CPU 3, the cluster has CPU 2 "
                            f"({info.message.split('(')[1].split(' ')[0]} free); no node can hold it now")
    assert worker.handle.pid is None


def test_demand_names_what_an_actor_holds_in_rays_terms() -> None:
    assert demand({"num_cpus": 1, "num_gpus": 0.5}) == {"CPU": 1.0, "GPU": 0.5}
    assert demand({"num_cpus": 2, "num_gpus": 0}) == {"CPU": 2.0}, "a CPU worker holds no GPU"


def test_a_request_fits_only_when_one_node_holds_all_of_it() -> None:
    nodes = [{"CPU": 8.0}, {"CPU": 2.0, "GPU": 1.0}]
    assert never_fits({"CPU": 2.0, "GPU": 1.0}, "cuda", nodes) is None
    assert never_fits({"CPU": 4.0, "GPU": 1.0}, "cuda", nodes) == (
        "no node of the Ray cluster can hold a cuda worker, which needs CPU 4, GPU 1 "
        "(its nodes have: CPU 8, GPU 0; CPU 2, GPU 1)"), "the cluster's totals would hold it; no node does"
    assert never_fits({"CPU": 1.0, "GPU": 1.0}, "cuda", [{"CPU": 8.0}]) == \
        "the Ray cluster has no GPU; device cuda needs 1 per worker"
    assert never_fits({"CPU": 0.3 + 0.3 + 0.3}, "cpu", [{"CPU": 0.9}]) is None, "float sums still fit"
    assert never_fits({"CPU": 1.0}, "cpu", []) == "no node of the Ray cluster can hold a cpu worker, which needs CPU 1 (its nodes have: none)"


def test_the_first_line_of_an_error_or_its_name() -> None:
    assert _first_line(RuntimeError("The actor died unexpectedly\n\tpid=12, ip=127.0.0.1")) == "The actor died unexpectedly"
    assert _first_line(RuntimeError("  \n")) == "RuntimeError"
