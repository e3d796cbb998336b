"""The scheduling every backend shares: one fair queue of jobs, dispatched in batches to idle warm workers.

A backend only supplies the workers. `PoolExecutor` subclasses say which devices the pool has
(`_open_backend`) and build the bot-side handle of one worker (`_new_worker`): a local process
(`_process.WorkerProcess`) or a Ray actor (`_ray_handle.RayWorkerHandle`). Every handle reports
the messages of `_wire` and, last, its exit; everything below reacts to those alone.

Each worker builds one runner and keeps its models warm across jobs. Jobs wait in one fair queue
(round-robin across users and servers, see `_fair.FairQueue`) and go to whichever worker is idle. A
worker that dies mid-job fails only that job (or batch) and is replaced; a running job is cancelled
through a flag the runner polls at each step, and its worker is stopped and replaced if it does not
stop within `cancel_grace` seconds.

Batching: when a worker takes a dream (without a guide) from the head of the queue, it also takes up
to `max_batch - 1` queued dreams with the same parameters (any seed and photo), and its runner's
`run_batch` dreams those of one size in shared passes. Each job keeps its own progress, result and
cancel flag; the jobs it passed over keep their order.

Pricing: each finished job's stage timings feed a moving average of the workers' rates
(`core.cost.RateMeter`), from which `predict` and `place` tell how long a job and its wait will take.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Self

from core.cost import RateMeter
from core.errors import JobCancelled
from core.jobs import JobResult, JobSpec, ProgressEvent

from ._fair import FairQueue
from ._wire import ErrorInfo, WorkerConfig
from .base import ProgressHandler, QueuePlace
from .errors import ExecutorClosed, JobFailed, WorkerCrashed, WorkerStartFailed

__all__ = ["PoolExecutor", "WorkerHandle"]

logger = logging.getLogger(__name__)

_CRASHED = "the worker running this job stopped unexpectedly; please try again"
_CANCELLED_QUEUED = "the job was cancelled before it started"
_CANCELLED_RUNNING = "the job was cancelled"
_CLOSED_JOB = "the dream engine is shutting down; this job was not finished, please try again later"
_CLOSED = "the dream engine is shut down and takes no new jobs"
_FAILED = "something went wrong while running this job ({}); the details are in the log"
_KILL_AFTER = 3.0  # seconds between asking a worker to terminate and killing it
AUTO_MAX_BATCH_CUDA = 8  # max_batch=None: batch up to this many jobs on a CUDA worker, none on CPU


class _State(enum.Enum):
    STARTING = "starting"  # building the runner and warming models
    IDLE = "idle"
    BUSY = "busy"
    STOPPING = "stopping"  # told to exit, or terminated after ignoring a cancel
    DEAD = "dead"


@dataclass(eq=False)
class _Job:
    job_id: str
    spec: JobSpec
    # Progress events for the awaiting `submit`, ended by None once `outcome` is set.
    events: asyncio.Queue[ProgressEvent | None] = field(default_factory=asyncio.Queue)
    outcome: JobResult | BaseException | None = None
    done: bool = False
    worker: _Worker | None = None
    index: int = 0  # its place in the batch it was sent in: the index of its cancel flag
    cancel_requested: bool = False
    started_at: float | None = None  # time.monotonic() when a worker took it

    @property
    def batch_key(self) -> object:
        return self.spec.batch_key  # jobs with equal keys may run as one batch; None: always alone


@dataclass(eq=False)
class _Worker:
    slot: int
    handle: WorkerHandle
    state: _State = _State.STARTING
    # The jobs sent to it that it has not reported on yet (a batch, or one job); busy while any is left.
    jobs: dict[str, _Job] = field(default_factory=dict)
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


class PoolExecutor:
    """Runs jobs on `workers` workers, each holding one runner built by `runner_factory`; a subclass
    supplies the workers (`_open_backend`, `_new_worker`, `_close_backend`).

    workers: 0 for one per CUDA GPU (or one on CPU without a GPU); see `resolve_devices` for `device`.
    runner_factory: "module:callable", called in each worker as `factory(device=..., **runner_options)`;
        the result needs `warm(model_name)` and `run(spec, progress=, should_cancel=) -> JobResult`
        (core.runner.JobRunner). runner_options: plain data, e.g. precision, allow_download, max_pixels.
    warm_models: models each worker loads before it reports ready.
    max_batch: the most jobs a worker runs as one batch, through the runner's
        `run_batch(specs, progresses, should_cancels, on_outcome=)` (a runner without it runs them one
        by one). None: 8 on CUDA workers, 1 on CPU ones. With 1 every job runs alone through `run`,
        so the same seed gives the same bytes; a batched dream equals its lone run up to float rounding.
    cancel_grace: seconds a running job has to honour a cancel before its worker is terminated.
    shutdown_timeout: seconds `close()` waits for workers to exit before terminating them.
    """

    def __init__(
        self,
        workers: int = 1,
        device: str = "cpu",
        runner_factory: str = "core.runner:JobRunner",
        warm_models: tuple[str, ...] = (),
        *,
        max_batch: int | None = None,
        cancel_grace: float = 10.0,
        shutdown_timeout: float = 10.0,
        runner_options: dict[str, Any] | None = None,
    ):
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
        self._threads_per_worker = 1  # CPU threads for each worker's torch; `_open_backend` may set it
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[_Worker] = []
        self._jobs: dict[str, _Job] = {}  # unfinished jobs
        self._handles: dict[str, _Job] = {}  # enqueued jobs whose `wait` has not returned yet, finished or not
        self._queue: FairQueue[_Job] = FairQueue()
        self._meter = RateMeter()
        self._device_kind = "cpu"  # the device type whose rates price jobs: "cuda" once a GPU worker exists
        self._closing = False
        self._closed = asyncio.Event()
        self._broken: WorkerStartFailed | None = None  # set when no worker is left that could run a job

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
            raise ExecutorClosed(_CLOSED)
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
                raise ExecutorClosed(_CLOSED)
            for worker in self._workers:
                if worker.start_failure is not None:
                    raise worker.start_failure
        except BaseException:
            await self.close()
            raise
        logger.info("executor ready: %d worker(s) on %s", len(devices), ", ".join(devices))

    async def close(self) -> None:
        """Fail queued and running jobs with `ExecutorClosed`, then stop every worker (terminating stragglers)."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        try:
            for job in self._queue.ordered():
                self._queue.remove(job)
                self._finish(job, ExecutorClosed(_CLOSED_JOB))
            for worker in self._workers:
                self._cancel_timer(worker)
                for job in worker.jobs.values():
                    self._finish(job, ExecutorClosed(_CLOSED_JOB))
                worker.jobs = {}
                if worker.state is not _State.DEAD:
                    worker.state = _State.STOPPING
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

    # -- the Executor protocol -------------------------------------------------------------------

    def enqueue(self, job_id: str, spec: JobSpec, *, user: str = "", guild: str | None = None) -> None:
        """Put `spec` in the fair queue at once, as `user` in `guild`; `wait` then follows it.

        Raises `ExecutorClosed`, `WorkerStartFailed` when no worker is left, or ValueError for an
        id that is already queued or running.
        """
        if self._closing:
            raise ExecutorClosed(_CLOSED)
        if self._loop is None:
            raise RuntimeError("start the executor first: `await executor.start()` or `async with executor:`")
        if self._broken is not None:
            raise WorkerStartFailed(str(self._broken))
        if job_id in self._jobs:
            raise ValueError(f"job id {job_id!r} is already queued or running")
        job = _Job(job_id, spec)
        self._jobs[job_id] = self._handles[job_id] = job
        self._queue.push(job, user=user, guild=guild)
        self._dispatch()

    async def wait(self, job_id: str, on_progress: ProgressHandler | None = None) -> JobResult:
        """Deliver the progress events of an enqueued job to `on_progress` in order, and return its result.

        The first event, stage "start", comes when a worker takes the job. Raises the runner's
        DreamError (same class and message), `JobCancelled`, `WorkerCrashed`, `ExecutorClosed`,
        `WorkerStartFailed` when no worker is left, or `JobFailed` for an unexpected exception in
        the worker. Cancelling the awaiting task cancels the job.
        """
        job = self._handles.get(job_id)
        if job is None:
            raise KeyError(f"no job {job_id!r} is waiting to be followed; enqueue it first")
        try:
            while (event := await job.events.get()) is not None:
                if on_progress is not None:
                    await _report(on_progress, event, job_id)
        except asyncio.CancelledError:
            self._cancel(job)
            raise
        finally:
            if job.done:
                self._handles.pop(job_id, None)
        if isinstance(job.outcome, BaseException):
            raise job.outcome
        assert job.outcome is not None, "a finished job always has an outcome; see _finish"
        return job.outcome

    async def submit(
        self, job_id: str, spec: JobSpec, on_progress: ProgressHandler | None = None, *, user: str = "", guild: str | None = None
    ) -> JobResult:
        """`enqueue` then `wait`: queue `spec`, deliver its progress events, and return its result."""
        self.enqueue(job_id, spec, user=user, guild=guild)
        return await self.wait(job_id, on_progress)

    def predict(self, spec: JobSpec) -> float:
        """Seconds `spec` should take on this executor's workers, from the rates measured so far."""
        return self._meter.predict(spec.cost, self._device_kind) if spec.cost is not None else 0.0

    def place(self, job_id: str) -> QueuePlace | None:
        """Where an unfinished job stands: running, or its place in the fair order and the expected wait."""
        job = self._jobs.get(job_id)
        if job is None:
            return None
        now = time.monotonic()
        running = [j for worker in self._workers for j in worker.jobs.values() if not j.done]
        if job in running:
            return QueuePlace(0, 0.0)
        # Work still to do before this job can start, shared by the workers that will do it.
        busy = sum(max(0.0, self.predict(j.spec) - (now - (j.started_at or now))) for j in running)
        ahead = self._queue.ordered()
        position = ahead.index(job)
        busy += sum(self.predict(j.spec) for j in ahead[:position])
        workers = max(1, sum(1 for worker in self._workers if worker.state is not _State.DEAD))
        return QueuePlace(position + 1, busy / workers)

    async def cancel(self, job_id: str) -> bool:
        """See `Executor.cancel`. A job running in a batch whose other jobs go on is failed with
        `JobCancelled` at once; the batch drops its result."""
        job = self._jobs.get(job_id)
        if job is None:
            return False
        self._cancel(job)
        return True

    def queued(self) -> tuple[str, ...]:
        return tuple(job.job_id for job in self._queue.ordered())

    def running(self) -> tuple[str, ...]:
        return tuple(job.job_id for worker in self._workers for job in worker.jobs.values() if not job.done)

    # -- introspection ---------------------------------------------------------------------------

    def live_workers(self) -> int:
        """Workers that are up and able to take a job (idle or busy), not starting, stopping or dead."""
        return sum(1 for worker in self._workers if worker.state in (_State.IDLE, _State.BUSY))

    def worker_pids(self) -> tuple[int, ...]:
        """Process ids of the live workers (each on its own machine), in slot order."""
        return tuple(worker.handle.pid for worker in self._workers if worker.state is not _State.DEAD and worker.handle.pid)

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

    # -- what a backend supplies ----------------------------------------------------------------

    async def _open_backend(self) -> list[str]:
        """Make the backend ready and return one device per worker slot."""
        raise NotImplementedError

    def _new_worker(self, slot: int, config: WorkerConfig, max_batch: int) -> WorkerHandle:
        """The handle of a new, not yet started worker for `slot`."""
        raise NotImplementedError

    async def _close_backend(self) -> None:
        """Release what `_open_backend` took; called once every worker has exited (or was left behind)."""

    # -- internals (all run on the event loop) ---------------------------------------------------

    def _spawn(self, slot: int, device: str) -> _Worker:
        assert self._loop is not None, "workers are spawned only after start() has captured the loop"
        max_batch = self._max_batch if self._max_batch is not None else (AUTO_MAX_BATCH_CUDA if device.startswith("cuda") else 1)
        config = WorkerConfig(self._runner_factory, device, self._runner_options, self._warm_models, self._threads_per_worker)
        handle = self._new_worker(slot, config, max_batch)
        worker = _Worker(slot, handle)
        handle.start(
            self._loop,
            on_message=lambda message: self._on_message(worker, message),
            on_exit=lambda exitcode: self._on_exit(worker, exitcode),
        )
        logger.debug("started worker %d (pid %s) on %s", slot, handle.pid, device)
        return worker

    def _dispatch(self) -> None:
        if self._closing:
            return
        for worker in self._workers:
            if not self._queue:
                return
            if worker.state is _State.IDLE:
                batch = self._queue.take_batch(worker.handle.max_batch, lambda job: job.batch_key)
                worker.state, worker.jobs = _State.BUSY, {job.job_id: job for job in batch}
                for index, job in enumerate(batch):
                    job.worker, job.index, job.started_at = worker, index, time.monotonic()
                    job.events.put_nowait(ProgressEvent("start", 0, 1, 0.0))
                worker.handle.send_batch([(job.job_id, job.spec) for job in batch])

    def _on_message(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            if worker.state is _State.STARTING:
                worker.state = _State.IDLE
                worker.settled.set()
                self._dispatch()
            return
        if kind == "start_failed":
            worker.start_error = message[1]
            return
        job = worker.jobs.get(message[1])
        if job is None:
            return  # not sent to this worker, or failed by close() already
        if kind == "progress":
            if not job.done:
                job.events.put_nowait(message[2])
            return
        del worker.jobs[job.job_id]
        if not job.done:
            # Once cancel() has said yes, the caller is told "cancelled" whatever the runner managed to do.
            outcome = message[2] if kind == "result" else _remote_error(message[2], job.job_id)
            if isinstance(outcome, JobResult) and job.spec.cost is not None:
                self._meter.observe(job.spec.cost, outcome.timings, self._device_kind)
            self._finish(job, JobCancelled(_CANCELLED_RUNNING) if job.cancel_requested else outcome)
        if worker.jobs:
            self._watch_cancel(worker)  # the rest of a batch may be all cancelled now
            return
        self._cancel_timer(worker)
        if worker.state is _State.BUSY:
            worker.state = _State.IDLE
        self._dispatch()

    def _on_exit(self, worker: _Worker, exitcode: int | None) -> None:
        previous, worker.state = worker.state, _State.DEAD
        self._cancel_timer(worker)
        worker.exited.set()
        jobs, worker.jobs = worker.jobs, {}
        for job in jobs.values():
            if job.cancel_requested:
                self._finish(job, JobCancelled(_CANCELLED_RUNNING))
            elif not job.done:
                logger.warning("worker pid %s exited with code %s while running job %s", worker.handle.pid, exitcode, job.job_id)
                self._finish(job, WorkerCrashed(_CRASHED))
        if previous is _State.STARTING:
            worker.start_failure = _start_failure(worker, exitcode)
            worker.settled.set()
        if self._closing:
            return
        worker.handle.release()
        if previous is not _State.STARTING:
            self._workers[worker.slot] = self._spawn(worker.slot, worker.handle.device)
            return
        # A worker that cannot start would fail the same way again: leave its slot empty, not a respawn loop.
        logger.error("worker %d could not start: %s", worker.slot, worker.start_failure)
        if all(other.state is _State.DEAD for other in self._workers):
            self._broken = worker.start_failure
            for job in self._queue.ordered():
                self._queue.remove(job)
                self._finish(job, WorkerStartFailed(str(worker.start_failure)))

    def _cancel(self, job: _Job) -> None:
        if job.done:
            return
        if job.worker is None:
            self._queue.remove(job)
            self._finish(job, JobCancelled(_CANCELLED_QUEUED))
            return
        if job.cancel_requested:
            return
        job.cancel_requested = True
        worker = job.worker
        worker.handle.request_cancel(job.index)
        if not self._watch_cancel(worker):
            # The rest of its batch runs on: tell the caller now rather than when the batch ends.
            self._finish(job, JobCancelled(_CANCELLED_RUNNING))

    def _watch_cancel(self, worker: _Worker) -> bool:
        """Once every job left on `worker` is cancelled, give it `cancel_grace` seconds to stop; returns whether all are."""
        if not worker.jobs or not all(job.cancel_requested for job in worker.jobs.values()):
            return False
        if worker.timer is None:
            assert self._loop is not None, "a running job implies a started executor"
            worker.timer = self._loop.call_later(self._cancel_grace, self._escalate, worker, worker.jobs, "terminate")
        return True

    def _escalate(self, worker: _Worker, jobs: dict[str, _Job], how: str) -> None:
        worker.timer = None
        if worker.jobs is not jobs or not jobs or worker.state is _State.DEAD:
            return
        if how == "terminate":
            logger.warning("job(s) %s ignored their cancel for %.1f s; terminating worker pid %s",
                           ", ".join(jobs), self._cancel_grace, worker.handle.pid)
            worker.state = _State.STOPPING
            worker.handle.terminate()
            assert self._loop is not None, "a running job implies a started executor"
            worker.timer = self._loop.call_later(_KILL_AFTER, self._escalate, worker, jobs, "kill")
        else:
            worker.handle.kill()

    def _cancel_timer(self, worker: _Worker) -> None:
        if worker.timer is not None:
            worker.timer.cancel()
            worker.timer = None

    def _finish(self, job: _Job, outcome: JobResult | BaseException) -> None:
        if job.done:
            return
        job.done, job.outcome = True, outcome
        self._jobs.pop(job.job_id, None)
        if job.worker is not None:
            self._queue.finished(job)  # its user's later jobs move up a round
        job.events.put_nowait(None)

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


async def _report(on_progress: ProgressHandler, event: ProgressEvent, job_id: str) -> None:
    # A failing progress display (say, a Discord edit that errors) must not fail the job itself.
    try:
        maybe = on_progress(event)
        if inspect.isawaitable(maybe):
            await maybe
    except Exception:
        logger.exception("progress callback for job %s failed", job_id)


def _remote_error(info: ErrorInfo, job_id: str) -> BaseException:
    error = info.rebuild()
    if error is not None:
        return error
    logger.error("job %s failed in its worker with %s:\n%s", job_id, info.type_name, info.traceback)
    return JobFailed(_FAILED.format(info.qualname), remote_type=info.type_name, remote_traceback=info.traceback)


def _start_failure(worker: _Worker, exitcode: int | None) -> WorkerStartFailed:
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
