"""The worker's side on Ray (`_ray_actor`), run here without Ray: `RayWorker` serves jobs in a thread
and keeps its messages until the bot confirms it has them; a cancel names its batch, so one that
overtakes its task (Ray keeps no order between a threaded actor's calls) still reaches the right job."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bot.executor._ray_actor import RayWorker, _CancelFlags, _Outbox
from bot.executor._wire import BatchTask, WorkerConfig
from tests.bot.executor.conftest import FakeTorch
from tests.bot.executor.running import FAKE, spec
from tests.bot.executor.runners import UNPICKLABLE_SEED
from tests.bot.waiting import LIMIT

pytestmark = pytest.mark.timeout(300)  # only stops a hung test: Ray's start can take a minute on a busy machine


class Puller:
    """The bot's side of the long poll: pulls, confirming what it has, and keeps every message."""

    def __init__(self, worker: RayWorker):
        self.worker = worker
        self.messages: list[tuple[Any, ...]] = []
        self.over = False

    def until(self, condition: Callable[[list[tuple[Any, ...]]], Any], what: str) -> None:
        deadline = time.monotonic() + LIMIT
        while not condition(self.messages):
            if self.over or time.monotonic() > deadline:
                pytest.fail(f"no more messages (over: {self.over}) while waiting for {what}: {self.messages}")
            data, self.over = self.worker.pull(len(self.messages), 0.05)
            self.messages += [pickle.loads(item) for item in data]

    def outcome(self, job_id: str) -> tuple[str, Any] | None:
        """("result", JobResult) or ("error", the error's class name) for the job, once it came."""
        for message in self.messages:
            if message[0] in ("result", "error") and message[1] == job_id:
                return message[0], message[2] if message[0] == "result" else message[2].qualname
        return None


@pytest.fixture
def actor(fake_torch: FakeTorch) -> Iterator[Callable[..., tuple[RayWorker, Puller]]]:
    made: list[RayWorker] = []

    def make(factory: str = FAKE, *, warm: tuple[str, ...] = ()) -> tuple[RayWorker, Puller]:
        worker = RayWorker(WorkerConfig(factory, "cpu", {}, warm, 1))
        made.append(worker)
        return worker, Puller(worker)

    yield make
    for worker in made:
        worker.stop()
        worker._thread.join(LIMIT)


def test_an_actor_serves_its_jobs_in_a_thread_and_ends_it_when_stopped(actor: Callable[..., tuple[RayWorker, Puller]]) -> None:
    worker, puller = actor(warm=("inception",))
    assert worker.pid() == threading.get_native_id() or worker.pid() > 0
    worker.run(1, ("a", spec(steps=2)))
    puller.until(lambda m: puller.outcome("a"), "a's result")
    assert [m[0] for m in puller.messages] == ["ready", "progress", "progress", "result"]
    kind, result = puller.outcome("a")
    assert kind == "result" and result.metadata["warmed"] == ["inception"]
    assert not puller.over
    worker.stop()
    puller.until(lambda m: puller.over, "the serving thread to end")
    worker._thread.join(LIMIT)
    assert not worker._thread.is_alive()


def test_an_actor_whose_runner_cannot_start_says_so_and_ends(actor: Callable[..., tuple[RayWorker, Puller]]) -> None:
    worker, puller = actor("tests.bot.fake_runners:UnwarmableRunner", warm=("inception",))
    puller.until(lambda m: puller.over, "the serving thread to end")
    [(kind, info)] = puller.messages
    assert kind == "start_failed" and info.qualname == "ModelUnavailable"


def test_a_cancel_that_overtakes_its_task_still_reaches_the_job_it_names(actor: Callable[..., tuple[RayWorker, Puller]]) -> None:
    worker, puller = actor()
    worker.cancel(1, 0)  # arrives before its task
    worker.run(1, ("a", spec(steps=100, sleep=0.01)))
    puller.until(lambda m: puller.outcome("a"), "a's outcome")
    assert puller.outcome("a") == ("error", "JobCancelled")
    worker.cancel(1, 0)  # late: batch 1 is over, and this must not reach batch 2
    worker.run(2, ("b", spec(steps=3)))
    puller.until(lambda m: puller.outcome("b"), "b's outcome")
    assert puller.outcome("b")[0] == "result"
    worker.cancel(3, 1)  # the second job of batch 3 only
    worker.run(3, BatchTask((("c", spec(steps=3)), ("d", spec(seed=1, steps=3)))))
    puller.until(lambda m: puller.outcome("c") and puller.outcome("d"), "the batch's outcomes")
    assert puller.outcome("c")[0] == "result" and puller.outcome("d") == ("error", "JobCancelled")


def test_stop_cancels_the_running_job_before_the_thread_ends(actor: Callable[..., tuple[RayWorker, Puller]]) -> None:
    worker, puller = actor()
    worker.run(1, ("long", spec(steps=2000, sleep=0.01)))
    puller.until(lambda m: any(message[0] == "progress" for message in m), "the job running")
    worker.stop()
    puller.until(lambda m: puller.over, "the serving thread to end")
    assert puller.outcome("long") == ("error", "JobCancelled")


def test_a_result_that_cannot_be_pickled_becomes_that_jobs_error(actor: Callable[..., tuple[RayWorker, Puller]]) -> None:
    worker, puller = actor("tests.bot.executor.runners:UnpicklableResultRunner")
    worker.run(1, ("a", spec(seed=UNPICKLABLE_SEED)))
    worker.run(2, ("b", spec()))
    puller.until(lambda m: puller.outcome("b"), "b's outcome")
    assert puller.outcome("a")[0] == "error" and puller.outcome("b")[0] == "result"


def test_a_pull_whose_answer_was_lost_is_answered_again_and_nothing_is_delivered_twice() -> None:
    outbox = _Outbox()
    for n in range(3):
        outbox.send(("progress", "a", n))
    first, over = outbox.pull(0, 0)
    assert [pickle.loads(m)[2] for m in first] == [0, 1, 2] and not over
    again, _ = outbox.pull(0, 0)  # the bot never got the answer: it asks from 0 again
    assert again == first
    rest, _ = outbox.pull(2, 0)  # it has two: the third comes again, the two are forgotten
    assert [pickle.loads(m)[2] for m in rest] == [2]
    outbox.send(("progress", "a", 3))
    newer, _ = outbox.pull(3, 0)
    assert [pickle.loads(m)[2] for m in newer] == [3]
    assert outbox._messages == [newer[0]], "confirmed messages are not kept"


def test_a_pull_waits_for_a_message_up_to_its_timeout_and_ends_at_once_after_close() -> None:
    outbox = _Outbox()
    assert outbox.pull(0, 0.01) == ([], False)
    got: list[tuple[list[bytes], bool]] = []
    waiting = threading.Thread(target=lambda: got.append(outbox.pull(0, LIMIT)))
    waiting.start()
    outbox.send(("ready",))
    waiting.join(LIMIT)
    assert [[pickle.loads(m) for m in messages] for messages, _ in got] == [[("ready",)]]
    outbox.close()
    assert outbox.pull(1, 3600) == ([], True), "no wait once nothing more can come"


def test_a_message_that_cannot_be_pickled_fails_in_send_and_is_not_kept() -> None:
    outbox = _Outbox()
    with pytest.raises(TypeError):
        outbox.send(("result", "a", threading.Lock()))
    assert outbox.pull(0, 0) == ([], False)


def test_cancel_flags_speak_of_the_batch_being_run() -> None:
    flags = _CancelFlags()
    flags.request(2, 1)
    assert not flags[1], "batch 2 has not begun"
    flags.begin(2)
    assert flags[1] and not flags[0]
    flags.begin(3)
    assert not flags[1]
    flags.stop()
    assert flags[0] and flags[1] and flags[7]
