"""The scheduling every backend shares: one fair queue of jobs, dispatched in batches to idle warm workers.

Jobs wait in one fair queue (`FairQueue`: round-robin across users, and across servers within a
round) and go to whichever worker is idle (`_workers.WorkerPool` keeps the workers). A running job
is cancelled through a flag its runner polls at each step.

Batching: when a worker takes a dream (without a guide) from the head of the queue, it also takes
up to `max_batch - 1` queued dreams with the same parameters (any seed and photo), and its
runner's `run_batch` dreams those of one size in shared passes. Each job keeps its own progress,
result and cancel flag; the jobs it passed over keep their order.

Pricing: each finished job's stage timings feed a moving average of the workers' rates
(`core.cost.RateMeter`, told how many jobs shared the passes), from which `predict` and `place`
tell how long a job and its wait will take.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Generic, Hashable, TypeVar

from core.errors import JobCancelled
from core.jobs import JobResult, JobSpec, ProgressEvent

from ._wire import ErrorInfo
from ._workers import CANCELLED_RUNNING, CLOSED, Job, State, Worker, WorkerPool
from .base import ProgressHandler, QueuePlace
from .errors import ExecutorClosed, JobFailed, WorkerStartFailed

__all__ = ["PoolExecutor", "FairQueue"]

logger = logging.getLogger(__name__)

_CANCELLED_QUEUED = "the job was cancelled before it started"
_FAILED = "something went wrong while running this job ({}); the details are in the log"

T = TypeVar("T")


class PoolExecutor(WorkerPool):
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
    threads_per_worker: CPU threads each worker's torch uses; None: its share of the cores.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._jobs: dict[str, Job] = {}  # unfinished jobs
        self._handles: dict[str, Job] = {}  # enqueued jobs whose `wait` has not returned yet, finished or not
        self._queue: FairQueue[Job] = FairQueue()

    # -- the Executor protocol -------------------------------------------------------------------

    def enqueue(self, job_id: str, spec: JobSpec, *, user: str = "", guild: str | None = None) -> None:
        """Put `spec` in the fair queue at once, as `user` in `guild`; `wait` then follows it.

        Raises `ExecutorClosed`, `WorkerStartFailed` when no worker is left, or ValueError for an
        id that is already queued or running.
        """
        if self._closing:
            raise ExecutorClosed(CLOSED)
        if self._loop is None:
            raise RuntimeError("start the executor first: `await executor.start()` or `async with executor:`")
        if self._broken is not None:
            raise WorkerStartFailed(str(self._broken))
        if job_id in self._jobs:
            raise ValueError(f"job id {job_id!r} is already queued or running")
        job = Job(job_id, spec)
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
        workers = max(1, sum(1 for worker in self._workers if worker.state is not State.DEAD))
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

    # -- scheduling (all on the event loop) -------------------------------------------------------

    def _dispatch(self) -> None:
        if self._closing:
            return
        for worker in self._workers:
            if not self._queue:
                return
            if worker.state is State.IDLE:
                batch = self._queue.take_batch(worker.handle.max_batch, lambda job: job.spec.batch_key)
                worker.state, worker.jobs = State.BUSY, {job.job_id: job for job in batch}
                for index, job in enumerate(batch):
                    job.worker, job.index, job.started_at = worker, index, time.monotonic()
                    job.events.put_nowait(ProgressEvent("start", 0, 1, 0.0))
                worker.handle.send_batch([(job.job_id, job.spec) for job in batch])

    def _on_message(self, worker: Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            if worker.state is State.STARTING:
                worker.state = State.IDLE
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
                # A job that shared its passes reports how many did: its "dream" time is theirs together.
                batch = int(outcome.metadata.get("batch_size", 1))
                self._meter.observe(job.spec.cost, outcome.timings, self._device_kind, batch=batch)
            self._finish(job, JobCancelled(CANCELLED_RUNNING) if job.cancel_requested else outcome)
        if worker.jobs:
            self._watch_cancel(worker)  # the rest of a batch may be all cancelled now
            return
        if worker.timer is not None:  # a cancel's escalation is moot once the worker is free
            worker.timer.cancel()
            worker.timer = None
        if worker.state is State.BUSY:
            worker.state = State.IDLE
        self._dispatch()

    def _cancel(self, job: Job) -> None:
        if job.done:
            return
        if job.worker is None:
            self._queue.remove(job)
            self._finish(job, JobCancelled(_CANCELLED_QUEUED))
            return
        if job.cancel_requested:
            return
        job.cancel_requested = True
        job.worker.handle.request_cancel(job.index)
        if not self._watch_cancel(job.worker):
            # The rest of its batch runs on: tell the caller now rather than when the batch ends.
            self._finish(job, JobCancelled(CANCELLED_RUNNING))

    def _finish(self, job: Job, outcome: JobResult | BaseException) -> None:
        if job.done:
            return
        job.done, job.outcome = True, outcome
        self._jobs.pop(job.job_id, None)
        if job.worker is not None:
            self._queue.finished(job)  # its user's later jobs move up a round
        job.events.put_nowait(None)

    def _fail_waiting(self, error: BaseException) -> None:
        for job in self._queue.ordered():
            self._queue.remove(job)
            self._finish(job, error)


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


# -- the fair order ------------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Entry(Generic[T]):
    item: T
    user: str
    group: tuple[str, str]  # ("guild", id), or ("user", id) for a job without a server
    seq: int
    round: int


class FairQueue(Generic[T]):
    """Waiting items served round-robin across users, and across servers within a round, instead of
    first come first served: one user queueing fifty dreams does not make everybody wait for all fifty.

    Each item gets a round when it is pushed: one more than its user's previous item's, but never
    before the round now being served (a user back after a pause joins the current round without
    credit for the time away). Rounds are served in turn, and within a round:
    - users new to the rounds come first, servers alternating among them (a server's earlier items
      first), so one busy server does not fill a round before a quiet one gets a turn; an item
      without a server (a DM or the console) counts as its user's own server;
    - then the users who started a job in the round before, in the order they started it there;
    - then those whose previous item is still waiting, in that round's order.
    Keeping each round in the order of the one before is what holds the promise: nobody's next
    item waits behind more than one item of any other single user. Items are tracked by identity,
    so two equal items are two jobs. Pure and synchronous: the executor dispatches, this only orders.
    """

    def __init__(self) -> None:
        self._waiting: dict[int, _Entry[T]] = {}
        self._running: dict[int, _Entry[T]] = {}
        self._seq = itertools.count()
        self._serving = 0  # the round of the last item started
        self._next_round: dict[str, int] = {}  # per user: the round their next pushed item gets
        self._starts = itertools.count()
        self._started_in: dict[tuple[str, int], int] = {}  # (user, round) -> when, in start order, it started there
        self._order: list[_Entry[T]] | None = None  # computed lazily: many reads follow one change

    def push(self, item: T, *, user: str, guild: str | None) -> None:
        """Queue `item` for `user`, from server `guild` (None for a DM or the console)."""
        assert id(item) not in self._waiting and id(item) not in self._running, f"{item!r} is already queued; push each job once"
        turn = max(self._serving, self._next_round.get(user, 0))
        self._next_round[user] = turn + 1
        group = ("user", user) if guild is None else ("guild", guild)
        self._waiting[id(item)] = _Entry(item, user, group, next(self._seq), turn)
        self._order = None

    def remove(self, item: T) -> bool:
        """Drop a waiting item (its job was cancelled); False when it is not waiting. Its user's
        later items move up a round: a cancelled job does not cost its owner a turn."""
        entry = self._waiting.pop(id(item), None)
        if entry is None:
            return False
        for other in self._waiting.values():
            if other.user == entry.user and other.round > entry.round:
                other.round -= 1
        self._next_round[entry.user] -= 1
        self._order = None
        return True

    def take_batch(self, limit: int, same: Callable[[T], Hashable | None]) -> list[T]:
        """Start the head and up to `limit - 1` later waiting items that may run with it.

        `same(item)` is the batch key: items join the head when their key equals the head's, scanned
        in service order; a None key runs alone. A user whose later item rode along has used a turn.
        """
        order = self.ordered()
        assert order and limit >= 1, "take_batch needs a waiting item and a limit of at least 1"
        key = same(order[0])
        batch = [order[0]] + ([item for item in order[1:] if same(item) == key][: limit - 1] if key is not None else [])
        for item in batch:
            entry = self._waiting.pop(id(item))
            self._running[id(item)] = entry
            self._serving = max(self._serving, entry.round)
            self._started_in[entry.user, entry.round] = next(self._starts)
        for user, turn in [key for key in self._started_in if key[1] < self._serving - 1]:
            del self._started_in[user, turn]  # only the round before the earliest waiting one is consulted
        self._order = None
        return batch

    def finished(self, item: T) -> None:
        """Forget a started item (its job ended)."""
        del self._running[id(item)]

    def ordered(self) -> list[T]:
        """Waiting items in service order, the next to run first."""
        if self._order is None:
            rounds: dict[int, list[_Entry[T]]] = {}
            for entry in sorted(self._waiting.values(), key=lambda e: e.seq):
                rounds.setdefault(entry.round, []).append(entry)
            self._order, before = [], {}
            for turn in sorted(rounds):
                before = before if turn - 1 in rounds else {}  # the previous round's order, when it has waiting items
                group_turns: Counter[tuple[str, str]] = Counter()
                keyed = []
                for entry in rounds[turn]:
                    started = self._started_in.get((entry.user, turn - 1))
                    if started is not None:
                        key = (1, started)
                    elif entry.user in before:
                        key = (2, before[entry.user])
                    else:  # new to the rounds
                        key = (0, group_turns[entry.group])
                        group_turns[entry.group] += 1
                    keyed.append((key, entry.seq, entry))
                keyed.sort(key=lambda k: k[:2])  # seq is unique, so entries themselves are never compared
                before = {k[2].user: place for place, k in enumerate(keyed)}
                self._order += [k[2] for k in keyed]
        return [entry.item for entry in self._order]

    def __bool__(self) -> bool:
        return bool(self._waiting)
