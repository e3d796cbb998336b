"""A local worker process, both its ends: the bot-side handle (the process, its two pipes, and
the threads that use them) and the worker's own loop (`serve`: build one runner, warm its models,
then run jobs or batches of jobs until told to stop). `LocalProcessExecutor` is the pool of them.

Each pipe has one writer and one reader, so a worker killed in the middle of a message can corrupt
nothing but its own pipe (a shared multiprocessing.Queue could be left locked for everyone). The
blocking reads and writes happen in two small threads per worker; the event loop only ever receives
whole messages through `call_soon_threadsafe`. Workers are spawned, never forked: the bot process
may hold threads (and torch may hold CUDA state) a fork would copy half-alive. A Ray actor runs the
same `serve` loop in a thread (`_ray_actor`).
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import threading
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext
from typing import Any, Callable

from core.jobs import JobResult, JobSpec, ProgressEvent

from ._devices import resolve_devices, threads_per_worker
from ._pool import PoolExecutor
from ._wire import BatchTask, ErrorInfo, WorkerConfig

__all__ = ["LocalProcessExecutor", "WorkerProcess", "serve", "load_factory"]


class LocalProcessExecutor(PoolExecutor):
    """Runs jobs in `workers` spawned processes on this machine; the arguments are `PoolExecutor`'s."""

    async def _open_backend(self) -> list[str]:
        devices = resolve_devices(self._requested_workers, self._device)
        # Together, no more threads than cores: two workers each using every core slow down 20-40x.
        self._threads_per_worker = self._requested_threads or threads_per_worker(len(devices))
        return devices

    def _new_worker(self, slot: int, config: WorkerConfig, max_batch: int) -> WorkerProcess:
        return WorkerProcess(multiprocessing.get_context("spawn"), name=f"dreambot-worker-{slot}", config=config, max_batch=max_batch)


# -- the bot's side ------------------------------------------------------------------------------------

_STOP_WRITER = object()


class WorkerProcess:
    """Start with `start()`; `on_message(msg)` and, last, `on_exit(exitcode)` are then called on `loop`."""

    def __init__(
        self,
        ctx: SpawnContext,
        *,
        name: str,
        config: WorkerConfig,
        max_batch: int = 1,
    ):
        self.device = config.device
        self.max_batch = max_batch
        self._task_reader, self._task_writer = ctx.Pipe(duplex=False)
        self._result_reader, self._result_writer = ctx.Pipe(duplex=False)
        # One flag per job of a batch. Lock-free: a worker killed mid-read cannot leave it locked.
        self._cancel_flags = ctx.RawArray("b", max(1, max_batch))
        self._process = ctx.Process(
            target=worker_main,
            name=name,
            args=(config, self._task_reader, self._result_writer, self._cancel_flags),
            daemon=True,  # killed with the bot process should it exit without closing the executor
        )
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self.pid: int | None = None

    def start(self, loop: asyncio.AbstractEventLoop, on_message: Callable[[tuple[Any, ...]], None], on_exit: Callable[[int | None], None]) -> None:
        try:
            self._process.start()
        finally:
            # The child has its own copies now; without ours, each side sees end-of-file when the other dies.
            self._task_reader.close()
            self._result_writer.close()
        self.pid = self._process.pid
        name = self._process.name
        self._threads = [
            threading.Thread(target=self._read_loop, args=(loop, on_message, on_exit), name=f"{name}-reader", daemon=True),
            threading.Thread(target=self._write_loop, name=f"{name}-writer", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def send_job(self, job_id: str, spec: JobSpec) -> None:
        self._set_flags(0)  # before the job is sent, so the worker can never see a stale request
        self._outbox.put((job_id, spec))

    def send_batch(self, jobs: list[tuple[str, JobSpec]]) -> None:
        """Send (job_id, spec) pairs to run together; job i is cancelled with `request_cancel(i)`."""
        assert 1 <= len(jobs) <= len(self._cancel_flags), f"a batch holds 1 to {len(self._cancel_flags)} jobs (max_batch), not {len(jobs)}"
        if len(jobs) == 1:
            self.send_job(*jobs[0])
            return
        self._set_flags(0)
        self._outbox.put(BatchTask(tuple(jobs)))

    def request_cancel(self, index: int = 0) -> None:
        self._cancel_flags[index] = 1

    def stop(self) -> None:
        """Ask the worker to exit once its current job (or batch) ends."""
        self._set_flags(1)
        self._outbox.put(None)

    def _set_flags(self, value: int) -> None:
        for index in range(len(self._cancel_flags)):
            self._cancel_flags[index] = value

    def terminate(self) -> None:
        self._process.terminate()

    def kill(self) -> None:
        self._process.kill()

    def release(self) -> None:
        """Let the writer thread end; call once the worker has exited."""
        self._outbox.put(_STOP_WRITER)

    def join_threads(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def _write_loop(self) -> None:
        try:
            while (message := self._outbox.get()) is not _STOP_WRITER:
                try:
                    self._task_writer.send(message)
                except OSError:
                    return  # the worker is gone; the reader reports its exit
                if message is None:
                    return
        finally:
            self._task_writer.close()

    def _read_loop(self, loop: asyncio.AbstractEventLoop, on_message: Callable[[tuple[Any, ...]], None], on_exit: Callable[[int | None], None]) -> None:
        conn, sentinel = self._result_reader, self._process.sentinel
        try:
            while True:
                ready = multiprocessing.connection.wait([conn, sentinel])
                if conn not in ready:
                    break  # exited, and everything it sent has been read
                try:
                    message = conn.recv()
                except (EOFError, OSError):  # OSError: killed halfway through writing a message
                    break
                if not _post(loop, on_message, message):
                    return
            self._process.join()
        finally:
            conn.close()
        _post(loop, on_exit, self._process.exitcode)


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> bool:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed: nobody is listening any more
        return False
    return True


# -- the worker's side ---------------------------------------------------------------------------------

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def load_factory(path: str) -> Callable[..., Any]:
    """Resolve a "package.module:attribute" string to the object it names."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"runner factory must look like 'package.module:Callable', not {path!r}")
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


def worker_main(
    config: WorkerConfig,
    tasks: Connection,
    results: Connection,
    cancel_flags: Any,  # shared bytes (multiprocessing RawArray): the parent sets flag i to stop job i of a batch
) -> None:
    """The worker process's entry point: `serve` over the two pipes."""
    # Ctrl-C in a terminal reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    serve(config, tasks, results, cancel_flags)


def serve(config: WorkerConfig, tasks: Any, results: Any, cancel_flags: Any) -> None:
    """Build the runner, report ("ready",) or ("start_failed", ...), then run tasks until None comes.

    tasks: `recv()` returns the next task of `_wire` (or None), raising EOFError once the bot is gone.
    results: `send(message)` pickles the message before delivering it, raising BrokenPipeError once
        the bot is gone.
    cancel_flags: `cancel_flags[i]` is true once job i of the current task should stop.
    """
    limit_threads = not any(name in os.environ for name in _THREAD_VARIABLES)  # an explicit setting wins
    if limit_threads:
        # Read by torch's thread pools when torch is imported, which may happen lazily inside the runner.
        os.environ["OMP_NUM_THREADS"] = str(config.num_threads)
    try:
        try:
            runner = load_factory(config.runner_factory)(device=config.device, **config.runner_options)
            if limit_threads and "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(config.num_threads)
            for name in config.warm_models:
                runner.warm(name)
        except Exception as exc:
            results.send(("start_failed", ErrorInfo.from_exception(exc)))
            return
        results.send(("ready",))
        while (task := tasks.recv()) is not None:
            if isinstance(task, BatchTask):
                _run_batch(runner, task.jobs, results, cancel_flags)
            else:
                job_id, spec = task
                _run_job(runner, job_id, spec, results, _flag(cancel_flags, 0))
    except (EOFError, BrokenPipeError):
        return  # the bot process went away: nobody is left to report to


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when the bot process dies, even by SIGKILL.

    Otherwise an orphaned worker would finish its job for nobody while another bot process, having
    adopted the job once the dead one's lease ran out, runs it again. (Linux sends the signal when
    the spawning thread ends: the event loop's, which lives as long as the bot.) Elsewhere the
    worker still exits when it next reads its closed pipe.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


def _flag(cancel_flags: Any, index: int) -> Callable[[], bool]:
    return lambda: bool(cancel_flags[index])


def _progress(results: Connection, job_id: str) -> Callable[[ProgressEvent], None]:
    return lambda event: results.send(("progress", job_id, event))


def _run_job(runner: Any, job_id: str, spec: JobSpec, results: Connection, should_cancel: Callable[[], bool]) -> None:
    try:
        outcome = runner.run(spec, progress=_progress(results, job_id), should_cancel=should_cancel)
    except BrokenPipeError:
        raise
    except Exception as exc:
        outcome = exc
    _send_outcome(results, job_id, outcome)


def _run_batch(runner: Any, jobs: tuple[tuple[str, JobSpec], ...], results: Connection, cancel_flags: Any) -> None:
    """Run `jobs` through `runner.run_batch` and send each job's outcome as soon as it is known.

    A runner without `run_batch` runs them one after the other. Whatever happens short of the
    process dying, every job gets its one "result" or "error": the parent waits for all of them.
    """
    run_batch = getattr(runner, "run_batch", None)
    if run_batch is None:
        for index, (job_id, spec) in enumerate(jobs):
            _run_job(runner, job_id, spec, results, _flag(cancel_flags, index))
        return
    sent = [False] * len(jobs)

    def report(index: int, outcome: JobResult | BaseException) -> None:
        if not sent[index]:
            sent[index] = True
            _send_outcome(results, jobs[index][0], outcome)

    try:
        outcomes: list[Any] = list(run_batch(
            [spec for _, spec in jobs],
            [_progress(results, job_id) for job_id, _ in jobs],
            [_flag(cancel_flags, index) for index in range(len(jobs))],
            on_outcome=report,
        ))
    except BrokenPipeError:
        raise
    except Exception as exc:
        outcomes = [exc] * len(jobs)
    for index in range(len(jobs)):
        if index < len(outcomes):
            report(index, outcomes[index])
        else:
            report(index, RuntimeError(f"the runner's run_batch returned {len(outcomes)} outcomes for {len(jobs)} jobs"))


def _send_outcome(results: Connection, job_id: str, outcome: JobResult | BaseException) -> None:
    if isinstance(outcome, BaseException):
        results.send(("error", job_id, ErrorInfo.from_exception(outcome)))
        return
    try:
        results.send(("result", job_id, outcome))
    except BrokenPipeError:
        raise
    except Exception as exc:  # the result did not pickle; send() pickles before writing, so the pipe is intact
        results.send(("error", job_id, ErrorInfo.from_exception(exc)))
