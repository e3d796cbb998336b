"""The pool's workers and their lives: started warm, replaced when they die, stopped when a cancel
is ignored, shut down last. `_pool.PoolExecutor` adds the queue and the dispatching on top.

A backend only supplies the workers: a subclass says which devices the pool has (`_open_backend`)
and builds the bot-side handle of one worker (`_new_worker`): a local process
(`_process.WorkerProcess`) or a Ray actor (`_ray_handle.RayWorkerHandle`). Every handle reports the
messages of `_wire` and, last, its exit; the pool reacts to those alone. A worker that dies mid-job
fails only that job (or batch) and is replaced; a running job that does not honour its cancel
within `cancel_grace` seconds gets its worker terminated, then killed.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Self

from core.errors import JobCancelled
from core.jobs import JobResult, JobSpec, ProgressEvent
from core.cost import RateMeter

from ._wire import ErrorInfo, WorkerConfig
from .errors import ExecutorClosed, WorkerCrashed, WorkerStartFailed

__all__ = ["WorkerPool", "WorkerHandle", "AUTO_MAX_BATCH_CUDA"]

logger = logging.getLogger(__name__)

CRASHED = "the worker running this job stopped unexpectedly; please try again"
CANCELLED_RUNNING = "the job was cancelled"
CLOSED_JOB = "the dream engine is shutting down; this job was not finished, please try again later"
CLOSED = "the dream engine is shut down and takes no new jobs"
_KILL_AFTER = 3.0  # seconds between asking a worker to terminate and killing it
AUTO_MAX_BATCH_CUDA = 8  # max_batch=None: batch up to this many jobs on a CUDA worker, none on CPU


class State(enum.Enum):
    STARTING = "starting"  # building the runner and warming models
    IDLE = "idle"
    BUSY = "busy"
    STOPPING = "stopping"  # told to exit, or terminated after ignoring a cancel
    DEAD = "dead"


@dataclass(eq=False)
class Job:
    """A job in the pool, from `enqueue` until its `wait` returns."""

    job_id: str
    spec: JobSpec
    # Progress events for the awaiting `wait`, ended by None once `outcome` is set.
    events: asyncio.Queue[ProgressEvent | None] = field(default_factory=asyncio.Queue)
    outcome: JobResult | BaseException | None = None
    done: bool = False
    worker: Worker | None = None
    index: int = 0  # its place in the batch it was sent in: the index of its cancel flag
    cancel_requested: bool = False
    started_at: float | None = None  # time.monotonic() when a worker took it


@dataclass(eq=False)
class Worker:
    slot: int
    handle: WorkerHandle
    state: State = State.STARTING
    # The jobs sent to it that it has not reported on yet (a batch, or one job); busy while any is left.
    jobs: dict[str, Job] = field(default_factory=dict)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # ready, or failed to start
    start_error: ErrorInfo | None = None
    start_failure: WorkerStartFailed | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    timer: asyncio.TimerHandle | None = None  # pending escalation of a cancel (terminate, then kill)


class WorkerHandle(Protocol):
    """The bot side of one worker. After `start`, `on_message` gets the worker's messages of `_wire`
    on `loop`, in order, and `on_exit(exitcode)` comes last, once the worker is gone for good
    (exitcode None when the backend cannot tell it)."""

    device: str
    max_batch: int  # the most jobs one `send_batch` may hold
    pid: int | None  # the worker's process id (on its own machine), once known

    def start(self, loop: asyncio.AbstractEventLoop, on_message: Callable[[tuple[Any, ...]], None],
              on_exit: Callable[[int | None], None]) -> None: ...

    def send_batch(self, jobs: list[tuple[str, JobSpec]]) -> None:
        """Run these (job_id, spec) pairs together; job i is cancelled with `request_cancel(i)`."""
        ...

    def request_cancel(self, index: int = 0) -> None: ...

    def stop(self) -> None:
        """Cancel what runs and exit once it has ended."""
        ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def release(self) -> None:
        """Let go of what the handle holds; called once the worker has exited."""
        ...

    def join_threads(self, timeout: float) -> None: ...


class WorkerPool:
    """Workers, each holding one runner built by `runner_factory`, kept alive; see PoolExecutor for the arguments."""

    def __init__(self, workers: int = 1, device: str = "cpu", runner_factory: str = "core.runner:JobRunner",
                 warm_models: tuple[str, ...] = (), *, max_batch: int | None = None, cancel_grace: float = 10.0,
                 shutdown_timeout: float = 10.0, runner_options: dict[str, Any] | None = None,
                 threads_per_worker: int | None = None):
        if workers < 0:
            raise ValueError(f"workers must be 0 (automatic) or a positive count, not {workers}")
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be None (automatic) or a positive count, not {max_batch}")
        if ":" not in runner_factory:
            raise ValueError(f"runner_factory must look like 'package.module:Callable', not {runner_factory!r}")
        self._requested_workers = workers
        self._device = device
        self._runner_factory = runner_factory
        self._warm_models = tuple(warm_models)
        self._max_batch = max_batch
        self._runner_options = dict(runner_options or {})
        self._cancel_grace = cancel_grace
        self._shutdown_timeout = shutdown_timeout
        self._requested_threads = threads_per_worker  # None: each worker's share of the cores
        self._threads_per_worker = 1  # CPU threads for each worker's torch; `_open_backend` sets it
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[Worker] = []
        self._meter = RateMeter()
        self._device_kind = "cpu"  # the device type whose rates price jobs: "cuda" once a GPU worker exists
        self._closing = False
        self._closed = asyncio.Event()
        self._broken: WorkerStartFailed | None = None  # set when no worker is left that could run a job

    # -- what the pool above supplies (see _pool.PoolExecutor) -------------------------------------

    def _fail_waiting(self, error: BaseException) -> None:
        """Fail every job that waits for a worker with `error`."""
        raise NotImplementedError

    def _finish(self, job: Job, outcome: JobResult | BaseException) -> None:
        raise NotImplementedError

    def _dispatch(self) -> None:
        raise NotImplementedError

    def _on_message(self, worker: Worker, message: tuple[Any, ...]) -> None:
        raise NotImplementedError

    # -- what a backend supplies ----------------------------------------------------------------

    async def _open_backend(self) -> list[str]:
        """Make the backend ready and return one device per worker slot (and set `_threads_per_worker`)."""
        raise NotImplementedError

    def _new_worker(self, slot: int, config: WorkerConfig, max_batch: int) -> WorkerHandle:
        """The handle of a new, not yet started worker for `slot`."""
        raise NotImplementedError

    async def _close_backend(self) -> None:
        """Release what `_open_backend` took; called once every worker has exited (or was left behind)."""

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Spawn the workers and wait until each has built its runner and warmed its models.

        Raises `WorkerStartFailed` (with the worker's exception as `__cause__` when it was a
        DreamError) if any worker cannot start; the executor is then closed.
        """
        if self._closing:
            raise ExecutorClosed(CLOSED)
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        try:
            devices = await self._open_backend()
            self._device_kind = "cuda" if any(device.startswith("cuda") for device in devices) else "cpu"
            for slot, device in enumerate(devices):
                self._workers.append(self._spawn(slot, device))
            await asyncio.gather(*(worker.settled.wait() for worker in self._workers))
            if self._closing:
                raise ExecutorClosed(CLOSED)
            for worker in self._workers:
                if worker.start_failure is not None:
                    raise worker.start_failure
        except BaseException:
            await self.close()
            raise
        logger.info("executor ready: %d worker(s) on %s, %d torch thread(s) each", len(devices), ", ".join(devices),
                    self._threads_per_worker)

    async def close(self) -> None:
        """Fail queued and running jobs with `ExecutorClosed`, then stop every worker (terminating stragglers)."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        try:
            self._fail_waiting(ExecutorClosed(CLOSED_JOB))
            for worker in self._workers:
                self._stop_escalating(worker)
                for job in worker.jobs.values():
                    self._finish(job, ExecutorClosed(CLOSED_JOB))
                worker.jobs = {}
                if worker.state is not State.DEAD:
                    worker.state = State.STOPPING
                    worker.handle.stop()
            await self._wait_exited(self._shutdown_timeout)
            for signal_them in ("terminate", "kill"):
                stragglers = [worker for worker in self._workers if not worker.exited.is_set()]
                if not stragglers:
                    break
                logger.warning("%d worker(s) did not exit in time; sending %s", len(stragglers), signal_them)
                for worker in stragglers:
                    getattr(worker.handle, signal_them)()
                await self._wait_exited(_KILL_AFTER)
            for worker in self._workers:
                worker.handle.release()
            await asyncio.to_thread(self._join_threads)
            await self._close_backend()
        finally:
            self._closed.set()

    # -- introspection ---------------------------------------------------------------------------

    def live_workers(self) -> int:
        """Workers that are up and able to take a job (idle or busy), not starting, stopping or dead."""
        return sum(1 for worker in self._workers if worker.state in (State.IDLE, State.BUSY))

    def worker_pids(self) -> tuple[int, ...]:
        """Process ids of the live workers (each on its own machine), in slot order."""
        return tuple(worker.handle.pid for worker in self._workers if worker.state is not State.DEAD and worker.handle.pid)

    def worker_pid(self, job_id: str) -> int | None:
        """Process id of the worker running `job_id`, or None when it is not running."""
        for worker in self._workers:
            job = worker.jobs.get(job_id)
            if job is not None and not job.done:
                return worker.handle.pid
        return None

    def batch_limits(self) -> tuple[int, ...]:
        """The most jobs each worker slot runs as one batch."""
        return tuple(worker.handle.max_batch for worker in self._workers)

    def devices(self) -> tuple[str, ...]:
        """The device of each worker slot."""
        return tuple(worker.handle.device for worker in self._workers)

    def threads_per_worker(self) -> int:
        """CPU threads each worker's torch uses."""
        return self._threads_per_worker

    # -- a worker's life (all on the event loop) ----------------------------------------------------

    def _spawn(self, slot: int, device: str) -> Worker:
        assert self._loop is not None, "workers are spawned only after start() has captured the loop"
        max_batch = self._max_batch if self._max_batch is not None else (AUTO_MAX_BATCH_CUDA if device.startswith("cuda") else 1)
        config = WorkerConfig(self._runner_factory, device, self._runner_options, self._warm_models, self._threads_per_worker)
        handle = self._new_worker(slot, config, max_batch)
        worker = Worker(slot, handle)
        handle.start(
            self._loop,
            on_message=functools.partial(self._on_message, worker),
            on_exit=functools.partial(self._on_exit, worker),
        )
        logger.debug("started worker %d (pid %s) on %s", slot, handle.pid, device)
        return worker

    def _on_exit(self, worker: Worker, exitcode: int | None) -> None:
        previous, worker.state = worker.state, State.DEAD
        self._stop_escalating(worker)
        worker.exited.set()
        jobs, worker.jobs = worker.jobs, {}
        for job in jobs.values():
            if job.cancel_requested:
                self._finish(job, JobCancelled(CANCELLED_RUNNING))
            elif not job.done:
                logger.warning("worker pid %s exited with code %s while running job %s", worker.handle.pid, exitcode, job.job_id)
                self._finish(job, WorkerCrashed(CRASHED))
        if previous is State.STARTING:
            worker.start_failure = _start_failure(worker, exitcode)
            worker.settled.set()
        if self._closing:
            return
        worker.handle.release()
        if previous is not State.STARTING:
            self._workers[worker.slot] = self._spawn(worker.slot, worker.handle.device)
            return
        # A worker that cannot start would fail the same way again: leave its slot empty, not a respawn loop.
        logger.error("worker %d could not start: %s", worker.slot, worker.start_failure)
        if all(other.state is State.DEAD for other in self._workers):
            self._broken = worker.start_failure
            self._fail_waiting(WorkerStartFailed(str(worker.start_failure)))

    def _watch_cancel(self, worker: Worker) -> bool:
        """Once every job left on `worker` is cancelled, give it `cancel_grace` seconds to stop; returns whether all are."""
        if not worker.jobs or not all(job.cancel_requested for job in worker.jobs.values()):
            return False
        if worker.timer is None:
            assert self._loop is not None, "a running job implies a started executor"
            worker.timer = self._loop.call_later(self._cancel_grace, self._escalate, worker, worker.jobs, "terminate")
        return True

    def _escalate(self, worker: Worker, jobs: dict[str, Job], how: str) -> None:
        worker.timer = None
        if worker.jobs is not jobs or not jobs or worker.state is State.DEAD:
            return
        if how == "terminate":
            logger.warning("job(s) %s ignored their cancel for %.1f s; terminating worker pid %s",
                           ", ".join(jobs), self._cancel_grace, worker.handle.pid)
            worker.state = State.STOPPING
            worker.handle.terminate()
            assert self._loop is not None, "a running job implies a started executor"
            worker.timer = self._loop.call_later(_KILL_AFTER, self._escalate, worker, jobs, "kill")
        else:
            worker.handle.kill()

    @staticmethod
    def _stop_escalating(worker: Worker) -> None:
        if worker.timer is not None:
            worker.timer.cancel()
            worker.timer = None

    async def _wait_exited(self, timeout: float) -> None:
        waiters = [asyncio.ensure_future(worker.exited.wait()) for worker in self._workers if not worker.exited.is_set()]
        if not waiters:
            return
        _, pending = await asyncio.wait(waiters, timeout=timeout)
        for waiter in pending:
            waiter.cancel()

    def _join_threads(self) -> None:
        for worker in self._workers:
            worker.handle.join_threads(timeout=2.0)


def _start_failure(worker: Worker, exitcode: int | None) -> WorkerStartFailed:
    info = worker.start_error
    if info is None:
        how = "stopped" if exitcode is None else f"exited with code {exitcode}"
        return WorkerStartFailed(f"a dream worker on {worker.handle.device} {how} before it was ready")
    failure = WorkerStartFailed(f"a dream worker on {worker.handle.device} could not start: {info.message}")
    cause = info.rebuild()
    if cause is None:
        logger.error("worker start failed with %s:\n%s", info.type_name, info.traceback)
    failure.__cause__ = cause
    return failure
