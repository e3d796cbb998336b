"""Local worker processes (`_process`): the worker's `serve` loop (run here in the test process over
stand-in pipes), and the bot-side `WorkerProcess` around a spawned worker: its two pipes, its two
threads, its exit reported after its last message, its death with the bot process; and how many
torch threads each local worker gets."""

from __future__ import annotations

import asyncio
import fcntl
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from bot.executor import LocalProcessExecutor, _devices
from bot.executor._process import WorkerProcess, load_factory, serve
from bot.executor._wire import BatchTask, ErrorInfo, WorkerConfig
from core.errors import InvalidParameter, JobCancelled, ModelUnavailable
from core.jobs import JobResult, ProgressEvent
from tests.bot.executor.conftest import FakeTorch
from tests.bot.executor.running import FAKE, spec, submit
from tests.bot.executor.runners import UNPICKLABLE_SEED
from tests.bot.fake_runners import FakeRunner
from tests.bot.waiting import LIMIT, until

pytestmark = pytest.mark.timeout(300)  # only stops a hung test: Ray's start can take a minute on a busy machine

REPO_ROOT = Path(__file__).resolve().parents[3]
RUNNERS = "tests.bot.executor.runners"


def config(factory: str = FAKE, *, device: str = "cpu", warm: tuple[str, ...] = (), threads: int = 1, **options: Any) -> WorkerConfig:
    return WorkerConfig(factory, device, options, warm, threads)


class Tasks:
    """The worker's end of the task pipe: hands out `tasks` in order, then EOFError (the bot is gone)."""

    def __init__(self, *tasks: Any):
        self.left = list(tasks)

    def recv(self) -> Any:
        if not self.left:
            raise EOFError
        return self.left.pop(0)


class Results:
    """The worker's end of the result pipe: pickles each message as a pipe does (a message that cannot
    be pickled fails in `send` and is not sent), and breaks after `breaks_after` messages if given."""

    def __init__(self, breaks_after: int | None = None):
        self.messages: list[tuple[Any, ...]] = []
        self.breaks_after = breaks_after

    def send(self, message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message)
        if self.breaks_after is not None and len(self.messages) >= self.breaks_after:
            raise BrokenPipeError("the bot is gone")
        self.messages.append(pickle.loads(data))

    def outcomes(self) -> list[tuple[str, str, Any]]:
        """(job_id, "result" or "error", the result or the error's class name), in the order sent."""
        return [(m[1], m[0], m[2] if m[0] == "result" else m[2].qualname) for m in self.messages if m[0] in ("result", "error")]


def run_serve(cfg: WorkerConfig, *tasks: Any, flags: list[int] | None = None, results: Results | None = None) -> Results:
    results = results if results is not None else Results()
    serve(cfg, Tasks(*tasks), results, flags if flags is not None else [0] * 8)
    return results


# -- the worker's loop ------------------------------------------------------------------------------------


def test_serve_builds_its_runner_reports_ready_and_answers_each_job_once_until_told_to_stop(fake_torch: FakeTorch) -> None:
    tasks = Tasks(("a", spec(steps=2)), ("b", spec(fail="strength must be positive")), None, ("never", spec()))
    results = Results()
    serve(config(device="cuda:3", warm=("inception",), precision="fp16"), tasks, results, [0])
    ready, first, second, result, error = results.messages
    assert ready == ("ready",)
    assert [first[:2], second[:2]] == [("progress", "a")] * 2
    assert [(e.stage, e.step, e.total) for e in (first[2], second[2])] == [("step", 1, 2), ("step", 2, 2)]
    assert result[:2] == ("result", "a") and isinstance(result[2], JobResult)
    assert (result[2].metadata["device"], result[2].metadata["options"], result[2].metadata["warmed"]) == \
        ("cuda:3", {"precision": "fp16"}, ["inception"]), "the runner is built as factory(device=..., **runner_options) and warmed"
    assert error[:2] == ("error", "b") and type(error[2].rebuild()) is InvalidParameter
    assert tasks.left == [("never", spec())], "nothing is read after the stop"


@pytest.mark.parametrize(("factory", "error"), [
    ("tests.bot.fake_runners:UnwarmableRunner", "ModelUnavailable"),
    ("tests.bot.fake_runners:NoSuchRunner", "AttributeError"),
    ("tests.bot.fake_runners.FakeRunner", "ValueError"),
], ids=["cannot-warm", "no-such-runner", "not-module-colon-name"])
def test_serve_reports_start_failed_and_reads_no_task_when_its_runner_cannot_be_made(fake_torch: FakeTorch, factory: str, error: str) -> None:
    tasks = Tasks(("a", spec()), None)
    results = Results()
    serve(config(factory, warm=("inception",)), tasks, results, [0])
    [(kind, info)] = results.messages
    assert kind == "start_failed" and isinstance(info, ErrorInfo) and info.qualname == error
    assert len(tasks.left) == 2


def test_serve_returns_quietly_once_the_bot_is_gone(fake_torch: FakeTorch) -> None:
    # The task pipe ends: the bot closed its end or died.
    ended = run_serve(config(), ("a", spec()))
    assert [m[0] for m in ended.messages] == ["ready", "progress", "result"]
    # The result pipe breaks mid-job: the job and the tasks after it are dropped, without an error.
    tasks = Tasks(("a", spec(steps=3)), ("b", spec()), None)
    broken = Results(breaks_after=2)  # "ready" and one progress event get through
    serve(config(), tasks, broken, [0])
    assert [m[0] for m in broken.messages] == ["ready", "progress"] and tasks.left == [("b", spec()), None]


def test_each_job_reads_its_own_cancel_flag(fake_torch: FakeTorch) -> None:
    lone = run_serve(config(), ("a", spec(steps=3)), None, flags=[1, 0])
    assert lone.outcomes() == [("a", "error", "JobCancelled")], "a lone job's flag is flag 0"
    batch = BatchTask((("a", spec(steps=3)), ("b", spec(seed=1, steps=3)), ("c", spec(seed=2, steps=3))))
    results = run_serve(config(), batch, None, flags=[0, 1, 0])
    outcomes = {job_id: (kind, detail) for job_id, kind, detail in results.outcomes()}
    assert outcomes["b"] == ("error", "JobCancelled")
    assert outcomes["a"][0] == outcomes["c"][0] == "result" and outcomes["a"][1].metadata["batch_cancelled"] == 1


def test_a_result_that_cannot_be_pickled_becomes_that_jobs_error_and_the_worker_goes_on(fake_torch: FakeTorch) -> None:
    results = run_serve(config(f"{RUNNERS}:UnpicklableResultRunner"), ("a", spec(seed=UNPICKLABLE_SEED)), ("b", spec()),
                        BatchTask((("c", spec(seed=UNPICKLABLE_SEED)), ("d", spec(seed=1)))), None)
    outcomes = results.outcomes()
    assert [(job_id, kind) for job_id, kind, _ in outcomes] == [("a", "error"), ("b", "result"), ("c", "error"), ("d", "result")]
    a_error = next(m[2] for m in results.messages if m[:2] == ("error", "a"))
    assert a_error.module in ("builtins", "_pickle", "pickle") and "lock" in a_error.message


def test_a_runner_without_run_batch_runs_a_batch_one_job_at_a_time_each_with_its_own_flag(fake_torch: FakeTorch) -> None:
    batch = BatchTask((("a", spec(steps=2)), ("b", spec(seed=1, steps=2)), ("c", spec(seed=2, steps=2))))
    results = run_serve(config(f"{RUNNERS}:OneByOneRunner"), batch, None, flags=[0, 1, 0])
    outcomes = results.outcomes()
    assert [(job_id, kind) for job_id, kind, _ in outcomes] == [("a", "result"), ("b", "error"), ("c", "result")]
    assert outcomes[1][2] == "JobCancelled"
    assert [outcomes[0][2].metadata["call"], outcomes[2][2].metadata["call"]] == [1, 3], "three calls of run, in order"
    assert all(outcome.metadata["via"] == "run" for _, kind, outcome in outcomes if kind == "result")


def test_a_batch_whose_runner_fails_or_comes_back_short_still_answers_every_job_exactly_once(fake_torch: FakeTorch) -> None:
    batch = BatchTask((("a", spec()), ("b", spec(seed=1)), ("c", spec(seed=2))))
    broken = run_serve(config(f"{RUNNERS}:BrokenBatchRunner"), batch, None)
    assert [(job_id, kind) for job_id, kind, _ in broken.outcomes()] == [("a", "result"), ("b", "error"), ("c", "error")], \
        "a job settled before the runner failed keeps its result, and is not answered twice"
    assert {m[2].message for m in broken.messages if m[0] == "error"} == {"the batch fell over"}
    short = run_serve(config(f"{RUNNERS}:ShortBatchRunner"), batch, None)
    assert [(job_id, kind) for job_id, kind, _ in short.outcomes()] == [("a", "result"), ("b", "error"), ("c", "error")]
    assert {m[2].message for m in short.messages if m[0] == "error"} == {"the runner's run_batch returned 1 outcomes for 3 jobs"}


def test_serve_gives_torch_the_workers_share_of_threads(fake_torch: FakeTorch) -> None:
    run_serve(config(threads=3), None)
    assert os.environ["OMP_NUM_THREADS"] == "3" and fake_torch.threads == [3]


def test_a_thread_setting_in_the_environment_wins(fake_torch: FakeTorch, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MKL_NUM_THREADS", "2")
    run_serve(config(threads=3), None)
    assert "OMP_NUM_THREADS" not in os.environ and fake_torch.threads == []


def test_load_factory_resolves_module_colon_attribute_paths() -> None:
    assert load_factory(FAKE) is FakeRunner
    from tests.bot.executor.test_wire import Outer

    assert load_factory("tests.bot.executor.test_wire:Outer.NestedError") is Outer.NestedError
    for path in ("tests.bot.fake_runners.FakeRunner", ":FakeRunner", "tests.bot.fake_runners:"):
        with pytest.raises(ValueError, match="package.module:Callable"):
            load_factory(path)
    with pytest.raises(ModuleNotFoundError):
        load_factory("tests.bot.no_such_module:Runner")


# -- a spawned worker, from the bot's side ----------------------------------------------------------------


class Reports:
    """What a WorkerProcess reports on the loop: its messages, then its exit."""

    def __init__(self) -> None:
        self.messages: list[tuple[Any, ...]] = []
        self.exit_code: int | None = None
        self.messages_before_exit: int | None = None
        self.exited = asyncio.Event()

    def on_message(self, message: tuple[Any, ...]) -> None:
        assert not self.exited.is_set(), f"{message!r} came after the exit"
        self.messages.append(message)

    def on_exit(self, code: int | None) -> None:
        self.exit_code, self.messages_before_exit = code, len(self.messages)
        self.exited.set()

    def outcome(self, job_id: str) -> tuple[Any, ...] | None:
        return next((m for m in self.messages if m[0] in ("result", "error") and m[1] == job_id), None)

    async def wait_for(self, condition: Any, what: str) -> None:
        await until(condition, what, limit=2 * LIMIT)


def worker_threads(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(f"{name}-")]


async def spawn(name: str, *, max_batch: int = 1, **kwargs: Any) -> tuple[WorkerProcess, Reports]:
    reports = Reports()
    worker = WorkerProcess(multiprocessing.get_context("spawn"), name=name, config=config(**kwargs), max_batch=max_batch)
    worker.start(asyncio.get_running_loop(), reports.on_message, reports.on_exit)
    return worker, reports


async def finish(worker: WorkerProcess, reports: Reports) -> None:
    """Kill the worker if a failed test left it running, and let go of its threads."""
    if not reports.exited.is_set():
        worker.kill()
        await asyncio.wait_for(reports.exited.wait(), 2 * LIMIT)
    worker.release()
    await asyncio.to_thread(worker.join_threads, LIMIT)


async def test_a_worker_process_sends_its_messages_in_order_through_its_pipes_and_reports_its_exit_last() -> None:
    worker, reports = await spawn("pipes-worker", max_batch=2)
    try:
        await reports.wait_for(lambda: reports.messages, "the worker to start")
        assert reports.messages == [("ready",)] and worker.pid is not None and worker.pid != os.getpid()
        assert sorted(t.name for t in worker_threads("pipes-worker")) == ["pipes-worker-reader", "pipes-worker-writer"]
        worker.request_cancel(0)  # a stale request, before the job: sending the job clears it
        worker.send_job("a", spec(steps=2))
        await reports.wait_for(lambda: reports.outcome("a"), "a's outcome")
        worker.send_batch([("b", spec(steps=200, sleep=0.02)), ("c", spec(seed=1, steps=200, sleep=0.02))])
        await reports.wait_for(lambda: any(m[:2] == ("progress", "c") for m in reports.messages), "the batch running")
        worker.request_cancel(1)
        worker.request_cancel(0)
        await reports.wait_for(lambda: reports.outcome("b") and reports.outcome("c"), "the batch's outcomes")
        worker.stop()
        await asyncio.wait_for(reports.exited.wait(), 2 * LIMIT)
    finally:
        await finish(worker, reports)
    assert reports.exit_code == 0 and reports.messages_before_exit == len(reports.messages)
    assert [m[1] for m in reports.messages if m[0] == "progress" and m[1] == "a"] == ["a", "a"]
    assert reports.outcome("a")[0] == "result", "the cancel asked before the job was sent did not reach it"
    assert [reports.outcome(job)[2].qualname for job in "bc"] == ["JobCancelled", "JobCancelled"]
    assert worker_threads("pipes-worker") == [], "both threads end once the worker is gone and released"


async def test_a_worker_process_killed_mid_job_reports_the_signal_after_the_messages_it_sent() -> None:
    worker, reports = await spawn("killed-worker")
    try:
        await reports.wait_for(lambda: reports.messages, "the worker to start")
        worker.send_job("doomed", spec(steps=500, sleep=0.02))
        await reports.wait_for(lambda: len(reports.messages) >= 3, "two progress events")
        os.kill(worker.pid, signal.SIGKILL)
        await asyncio.wait_for(reports.exited.wait(), 2 * LIMIT)
    finally:
        await finish(worker, reports)
    assert reports.exit_code == -signal.SIGKILL and reports.outcome("doomed") is None
    assert reports.messages_before_exit == len(reports.messages) >= 3
    assert worker_threads("killed-worker") == []


async def test_a_worker_process_exits_by_itself_once_the_bot_side_of_its_task_pipe_closes() -> None:
    worker, reports = await spawn("abandoned-worker")
    try:
        await reports.wait_for(lambda: reports.messages, "the worker to start")
        worker.release()  # the writer thread closes the task pipe, as when the bot process dies
        await asyncio.wait_for(reports.exited.wait(), 2 * LIMIT)
    finally:
        await finish(worker, reports)
    assert reports.exit_code == 0 and reports.messages == [("ready",)]


_BOT_PROCESS = """
import asyncio, multiprocessing, sys
from bot.executor._process import WorkerProcess
from bot.executor._wire import WorkerConfig
from tests.bot.fake_runners import fake_spec

async def main():
    ready = asyncio.Event()
    config = WorkerConfig("tests.bot.executor.runners:BusyRunner", "cpu", {"lock_file": sys.argv[1]}, (), 1)
    worker = WorkerProcess(multiprocessing.get_context("spawn"), name="orphan", config=config)
    worker.start(asyncio.get_running_loop(), lambda message: ready.set(), lambda code: None)
    await ready.wait()
    worker.send_job("busy", fake_spec())
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def held(lock_file: Path) -> bool:
    """Whether a process holds `lock_file`'s lock (the system releases it once that process has ended)."""
    if not lock_file.exists():
        return False
    with lock_file.open("a") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(probe, fcntl.LOCK_UN)
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's; elsewhere a worker ends at its next read")
async def test_a_busy_worker_dies_with_the_bot_process_even_when_that_is_killed(tmp_path: Path) -> None:
    """Else it would finish its job for nobody while another bot process, having adopted the job, runs it again."""
    lock_file = tmp_path / "busy.lock"
    with (tmp_path / "stderr").open("w") as stderr:
        bot = await asyncio.create_subprocess_exec(sys.executable, "-c", _BOT_PROCESS, str(lock_file), cwd=REPO_ROOT,
                                                   env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, stdin=asyncio.subprocess.DEVNULL,
                                                   stdout=asyncio.subprocess.DEVNULL, stderr=stderr)
    try:
        await until(lambda: held(lock_file) or bot.returncode is not None, "the worker to start its job", limit=3 * LIMIT)
        assert bot.returncode is None, (tmp_path / "stderr").read_text()
        bot.kill()
        await bot.wait()
        await until(lambda: not held(lock_file), "the orphaned worker to die")
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()


# -- the local pool ---------------------------------------------------------------------------------------


async def test_local_workers_share_the_cores_unless_told_how_many_threads_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_devices, "available_cores", lambda: 16)
    for workers, threads in ((1, 16), (2, 8), (3, 5), (32, 1)):
        ex = LocalProcessExecutor(workers=workers)
        assert await ex._open_backend() == ["cpu"] * workers
        assert ex.threads_per_worker() == threads, f"{workers} workers on 16 cores"
    told = LocalProcessExecutor(workers=2, threads_per_worker=3)
    await told._open_backend()
    assert told.threads_per_worker() == 3


async def test_each_local_worker_runs_torch_with_its_share_of_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # the workers inherit this environment
        monkeypatch.delenv(name, raising=False)
    ex = LocalProcessExecutor(workers=1, runner_factory=f"{RUNNERS}:ThreadsRunner", threads_per_worker=2, shutdown_timeout=5.0)
    async with asyncio.timeout(3 * LIMIT), ex:
        result = await submit(ex, "a", spec())
    assert (result.metadata["omp_num_threads"], result.metadata["torch_threads"]) == ("2", 2)
