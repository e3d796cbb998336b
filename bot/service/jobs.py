"""Jobs, for every front: compile -> price and admit -> queue -> follow -> keep the result.

A front hands `submit` what the user asked for and its inputs. The job is compiled once
(core.spec), priced by the workers' measured rates, and checked against the asker's time cap and
rate limits while it is recorded, all in one transaction (store.jobs.admit); then it is queued
in the executor's fair order. `follow` delivers its progress, with an ETA, and its outcome. The
service drives every job to its end whether or not a front follows it, stops a job that overruns
its time limit, and keeps the result in the result store. Nothing here decodes an image or runs a
model: that happens in the executor's workers.

Several bot processes may share one database: this process holds its jobs through leases that
service.leases renews; finishing checks the owner, so a job is never finished, hence never posted,
by two processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

from core.errors import DreamError, JobCancelled, MissingImage
from core.jobs import JobSpec, ProgressEvent
from core.spec import check_inputs, check_options, compile_job, restore_job

from ..commands import Request, ordinal, reproduce_command, wait_text
from ..executor import Executor, ExecutorClosed
from ..results import ResultStore
from ..store import Admission, Asker, JobRecord, Store
from ..store.jobs import time_cap
from .metrics import Metrics
from .outcomes import JobOutcome, lost_outcome, recorded_outcome
from .refusals import Denied, refusal_words

__all__ = ["Requester", "Accepted", "JobOutcome", "JobService", "Posting", "ProgressSink", "Compiler", "Restorer", "Describer"]

log = logging.getLogger(__name__)

ProgressSink = Callable[[ProgressEvent], Awaitable[None] | None]
Compiler = Callable[..., JobSpec]  # core.spec.compile_job's signature
Restorer = Callable[..., JobSpec]  # core.spec.restore_job's signature
Describer = Callable[[JobSpec], str]  # the command that makes a spec again, without the prefix


def _command(spec: JobSpec) -> str:
    return reproduce_command(spec, "")

_STOPPING = "the bot is stopping; the job will run when it is back"


@dataclass(frozen=True)
class Requester:
    """Who asked, where, and through which front. Ids are strings, so console names and Discord
    snowflakes both fit."""

    user_id: str
    guild_id: str | None = None
    channel_id: str | None = None
    roles: tuple[str, ...] = ()
    is_moderator: bool = False
    message_id: str | None = None  # the message that asked (a prefix command), which the result answers
    front: str = "console"  # "discord" or "console": the front that recovers its jobs after a restart


@dataclass(frozen=True)
class Accepted:
    job_id: int
    spec: JobSpec
    command: str  # what makes the same result again, without the prefix: "dream layer:deep seed:7"
    predicted: float  # seconds the job should run on the device in use
    position: int  # 1: next to start; 0: a worker has it already
    wait: float  # seconds until it should start

    @property
    def summary(self) -> str:
        """'takes about 12 s; starts now' or 'takes about 12 s; 3rd in line, starts in about 40 s'."""
        when = "starts now" if self.position == 0 else f"{ordinal(self.position)} in line, starts in about {wait_text(self.wait)}"
        return f"takes about {wait_text(self.predicted)}; {when}"


@dataclass(eq=False)
class _Tracked:
    """A job this process queued: who follows its progress, and how it ends."""

    spec: JobSpec
    command: str
    predicted: float
    cap: float
    outcome: asyncio.Future[JobOutcome]
    sinks: list[ProgressSink] = field(default_factory=list)
    started: float | None = None  # time.monotonic() when a worker took it
    timer: asyncio.TimerHandle | None = None
    timed_out: bool = False
    shutting_down: bool = False
    lost: bool = False  # the store says this process no longer holds it: cancelled elsewhere, or adopted
    task: asyncio.Task | None = None


class Posting:
    """The jobs whose result this process is posting now. Finishing a job (or claiming it for another
    try, `Delivery.due`) took its lease; the lease heartbeat renews it while `holding`, so another
    process sweeping meanwhile never posts the same result beside a slow first post."""

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}  # job id -> posts of it under way in this process

    def ids(self) -> list[int]:
        return list(self._counts)

    @asynccontextmanager
    async def holding(self, job_id: int) -> AsyncIterator[None]:
        self._counts[job_id] = self._counts.get(job_id, 0) + 1
        try:
            yield
        finally:
            self._counts[job_id] -= 1
            if not self._counts[job_id]:
                del self._counts[job_id]


class JobService:
    """submit, follow, cancel and the end of every job this process queued.

    max_job_seconds: the bot's cap on a job's predicted seconds (MAX_JOB_SECONDS); servers may set
    a lower one. owner: this process's name in job leases. compile, restore, describe: core.spec's
    `compile_job` and `restore_job` and bot.commands' `reproduce_command` (without a prefix), or
    stand-ins with their signatures (tests).
    """

    def __init__(self, *, store: Store, executor: Executor, results: ResultStore, metrics: Metrics, owner: str,
                 prefix: str = "!", max_job_seconds: float = 120.0, compile: Compiler = compile_job,
                 restore: Restorer = restore_job, describe: Describer = _command) -> None:
        self.store, self.executor, self.results, self.metrics = store, executor, results, metrics
        self.owner = owner
        self.prefix = prefix
        self.max_job_seconds = max_job_seconds
        self._compile, self._restore, self._describe = compile, restore, describe
        self._tracked: dict[int, _Tracked] = {}
        self.posting = Posting()
        self.closing = False

    async def submit(self, request: Request, requester: Requester, *, images: Sequence[bytes] = ()) -> Accepted | Denied:
        """Compile, price, admit and record a job, and queue it; `follow` then reports on it.

        A mistake or a job over its time cap is refused before admission: no token, no job row.
        """
        assert request.is_job, f"submit takes job commands, not {request.name}; see service.answers"
        if self.closing:
            return self._refuse("stopping", "the bot is stopping; try again in a minute")
        try:
            # Reads image headers only; off the event loop all the same, as a hostile header may be slow.
            spec = await asyncio.to_thread(self._compile, request.name, request.params, images=list(images), seed=request.seed)
        except DreamError as exc:
            return self._refuse("invalid_request", f"{exc}; see {self.prefix}help {request.name}")
        predicted = self.executor.predict(spec)
        command = self._describe(spec)
        asker = Asker(requester.user_id, requester.guild_id, requester.channel_id, requester.roles, requester.front,
                      requester.message_id)
        admission = await self.store.jobs.admit(spec, asker, predicted=predicted, max_seconds=self.max_job_seconds,
                                                owner=self.owner, command=command)
        if not admission.allowed:
            return self._refuse(admission.refusal, refusal_words(admission, spec, predicted), admission.retry_after)
        assert admission.job_id is not None, "an admitted job has an id"
        self._start(admission.job_id, spec, command, requester.user_id, requester.guild_id, admission.limit, predicted)
        place = self.executor.place(str(admission.job_id))
        position, wait = (place.position, place.wait_seconds) if place is not None else (0, 0.0)
        return Accepted(admission.job_id, spec, command, predicted, position, wait)

    def check(self, request: Request, *, inputs: int | None = None) -> Denied | None:
        """Refuse a job whose options, or number of `inputs`, are wrong before its inputs are
        fetched (None: they look right). `submit` checks everything again with the inputs; this
        spares a front the download. A missing input is refused as "missing_input"."""
        try:
            check_options(request.name, request.params, seed=request.seed)
            if inputs is not None:
                check_inputs(request.name, inputs)
        except MissingImage as exc:
            return Denied(f"{exc}; see {self.prefix}help {request.name}", why="missing_input")
        except DreamError as exc:
            return self._refuse("invalid_request", f"{exc}; see {self.prefix}help {request.name}")
        return None

    def _refuse(self, why: str, reason: str, retry_after: float = 0.0) -> Denied:
        self.metrics.refusals.labels(why).inc()
        return Denied(reason, retry_after, why)

    async def follow(self, job_id: int, on_progress: ProgressSink | None = None) -> JobOutcome:
        """Progress events (with an ETA) of a job this process queued, then how it ended.

        Never raises for the job's own failure. Cancelling the caller does not cancel the job.
        """
        tracked = self._tracked.get(job_id)
        if tracked is None:
            return await recorded_outcome(self.store, self.results, job_id)
        if on_progress is not None:
            tracked.sinks.append(on_progress)
        try:
            return await asyncio.shield(tracked.outcome)
        finally:
            if on_progress is not None and on_progress in tracked.sinks:
                tracked.sinks.remove(on_progress)

    async def record(self, job_id: int) -> JobRecord | None:
        """A job as the store keeps it, inputs included (for asking again); None when there is none."""
        return await self.store.jobs.get(job_id)

    async def cancel(self, job_id: int, requester: Requester) -> str:
        """Cancel one of the requester's jobs (a moderator: anyone's); one line saying what happened."""
        record = await self.store.jobs.get(job_id)
        if record is None or (record.user_id != requester.user_id and not requester.is_moderator):
            return f"you have no job {job_id}"
        if record.status not in ("queued", "running"):
            return f"job {job_id} is already {record.status}"
        await self.store.jobs.cancel(job_id)
        await self.executor.cancel(str(job_id))
        return f"job {job_id} cancelled"

    async def posted(self, job_id: int, message_link: str, *, channel_id: str | None, in_guild: bool) -> None:
        """The result was posted in this message: its delivery is over, and on a server it enters the gallery."""
        await self.store.jobs.posted(job_id, message_link, channel_id=channel_id, in_guild=in_guild)

    async def answered_in(self, job_id: int, message_id: str) -> None:
        """A job asked for without a message of its own (a slash command, button or menu) was
        acknowledged in this message: a result posted later answers it."""
        await self.store.jobs.answered_in(job_id, message_id)

    async def give_up(self, job_id: int, reason: str) -> None:
        """Stop a job nobody can receive any more (its channel is gone) and record why."""
        await self.store.jobs.fail(job_id, reason, owner=self.owner)
        await self.executor.cancel(str(job_id))

    # -- the jobs this process holds, for service.leases ---------------------------------------------

    def held(self) -> list[int]:
        """The jobs this process runs or whose result it is posting."""
        return [*self._tracked, *self.posting.ids()]

    async def lost(self, job_id: int) -> None:
        """The store says this process no longer holds the job (cancelled elsewhere, or adopted): stop it."""
        tracked = self._tracked.get(job_id)
        if tracked is not None and not tracked.outcome.done():
            tracked.lost = True
            await self.executor.cancel(str(job_id))

    async def resume(self, record: JobRecord) -> bool:
        """Queue again a job this process adopted (its inputs loaded); False, with the job failed
        and the reason recorded, when it cannot run any more.

        It is priced again and held to its server's time cap as it stands now (the server may have
        lowered it, the workers may have slowed): over it, it fails with the line a new request
        would get; a job its asker's exempt role let past the server's cap keeps the bot's own."""
        if record.kind in ("dream", "video") and record.image is None:
            await self.store.jobs.fail(record.id, "its input was lost in a restart; please send it again", owner=self.owner)
            return False
        try:
            spec = await asyncio.to_thread(self._restore, record.kind, record.params, seed=record.seed,
                                           image=record.image, guide=record.guide)
        except DreamError as exc:  # say, a model this version no longer has
            await self.store.jobs.fail(record.id, f"it cannot run again after the restart: {exc}", owner=self.owner)
            return False
        predicted = self.executor.predict(spec)
        settings = await self.store.guilds.get(record.guild_id) if record.guild_id is not None else None
        cap = time_cap(settings, self.max_job_seconds, exempt=record.exempt)
        if predicted > cap:
            refused = self._refuse("over_time_cap", refusal_words(Admission(False, refusal="over_time_cap", limit=cap),
                                                                   spec, predicted))
            await self.store.jobs.fail(record.id, refused.reason, owner=self.owner)
            return False
        self._start(record.id, spec, record.command or "", record.user_id, record.guild_id, cap, predicted)
        return True

    async def close(self) -> None:
        """Stop every job this process queued and give it back in the store, for another process or the next start."""
        self.closing = True
        for job_id, tracked in list(self._tracked.items()):
            tracked.shutting_down = True
            await self.executor.cancel(str(job_id))
        await self.drain()

    async def drain(self) -> None:
        """Wait until every job this process queued has been recorded (as ended, or put back)."""
        await asyncio.gather(*(t.task for t in self._tracked.values() if t.task is not None), return_exceptions=True)

    # -- driving one job to its end ------------------------------------------------------------------

    def _start(self, job_id: int, spec: JobSpec, command: str, user_id: str, guild_id: str | None, cap: float,
               predicted: float) -> None:
        tracked = _Tracked(spec, command, predicted, cap, asyncio.get_running_loop().create_future())
        self.executor.enqueue(str(job_id), spec, user=user_id, guild=guild_id)  # in the queue from this moment
        self._tracked[job_id] = tracked
        tracked.task = asyncio.create_task(self._drive(job_id, tracked), name=f"job-{job_id}")

    async def _drive(self, job_id: int, tracked: _Tracked) -> None:
        try:
            outcome = await self._execute(job_id, tracked)
        except BaseException as exc:
            outcome = JobOutcome(job_id, "interrupted", error=_STOPPING)
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("job %s could not be recorded", job_id)
        finally:
            if tracked.timer is not None:
                tracked.timer.cancel()
            self._tracked.pop(job_id, None)
        if not tracked.outcome.done():
            tracked.outcome.set_result(outcome)

    async def _execute(self, job_id: int, tracked: _Tracked) -> JobOutcome:
        async def on_event(event: ProgressEvent) -> None:
            if event.stage == "start":
                await self._on_start(job_id, tracked)
                return
            event = replace(event, eta=_eta(tracked, event.fraction))
            for sink in list(tracked.sinks):
                maybe = sink(event)
                if maybe is not None:
                    await maybe

        try:
            result = await self.executor.wait(str(job_id), on_event)
        except (ExecutorClosed, JobCancelled) as exc:
            return await self._stopped(job_id, tracked, closed=isinstance(exc, ExecutorClosed))
        except DreamError as exc:
            await self.store.jobs.fail(job_id, str(exc), owner=self.owner)
            return JobOutcome(job_id, "failed", error=str(exc))
        except Exception as exc:  # a bug, not the user's fault: log it, tell them briefly
            log.exception("job %s failed unexpectedly", job_id)
            await self.store.jobs.fail(job_id, f"internal error ({type(exc).__name__})", owner=self.owner)
            return JobOutcome(job_id, "failed", error="something went wrong on our side; the error was logged")
        location = await self.results.save(job_id, result.data, result.mime_type)
        if not await self.store.jobs.finish(job_id, result.timings, location, result.mime_type, owner=self.owner):
            return await lost_outcome(self.store, self.owner, job_id)
        self.metrics.job_seconds.labels(tracked.spec.kind).observe(time.monotonic() - (tracked.started or time.monotonic()))
        return JobOutcome(job_id, "done", result=result, command=tracked.command, location=location,
                          where=self.results.describe(location))

    async def _stopped(self, job_id: int, tracked: _Tracked, *, closed: bool) -> JobOutcome:
        """How a job that stopped before its end ended: given back (shutting down), lost, over time, or cancelled."""
        if closed or tracked.shutting_down:
            # Give the job back so another process or the next start runs it; nothing is lost.
            await self.store.leases.release(job_id, self.owner)
            return JobOutcome(job_id, "interrupted", error=_STOPPING)
        if tracked.lost:
            return await lost_outcome(self.store, self.owner, job_id)
        if tracked.timed_out:
            ran = time.monotonic() - (tracked.started or time.monotonic())
            error = (f"stopped after {wait_text(ran)}: it ran far past its expected {wait_text(tracked.predicted)} "
                     f"and the {wait_text(tracked.cap)} limit")
            await self.store.jobs.fail(job_id, error, owner=self.owner)
            return JobOutcome(job_id, "failed", error=error)
        await self.store.jobs.cancel(job_id)
        return JobOutcome(job_id, "cancelled", error=f"job {job_id} was cancelled")

    async def _on_start(self, job_id: int, tracked: _Tracked) -> None:
        tracked.started = time.monotonic()
        # Stopped only when far off both its prediction and its cap: a job slower than predicted
        # but within its cap is the prediction's fault, not the user's.
        limit = max(2 * tracked.predicted, tracked.cap)
        tracked.timer = asyncio.get_running_loop().call_later(limit, self._overrun, job_id, tracked)
        if not await self.store.jobs.mark_running(job_id, owner=self.owner):
            tracked.lost = True  # cancelled (or ended, or adopted elsewhere) meanwhile
            await self.executor.cancel(str(job_id))

    def _overrun(self, job_id: int, tracked: _Tracked) -> None:
        log.warning("job %s ran past its time limit; stopping it", job_id)
        tracked.timed_out = True
        tracked.timer = None
        asyncio.ensure_future(self.executor.cancel(str(job_id)))


def _eta(tracked: _Tracked, fraction: float) -> float | None:
    """Seconds left: the prediction at first, then more and more what the job's own pace says."""
    if tracked.started is None:
        return None
    elapsed = time.monotonic() - tracked.started
    by_prediction = max(0.0, tracked.predicted - elapsed)
    if fraction <= 0:
        return by_prediction
    by_pace = elapsed * (1 - fraction) / fraction
    return (1 - fraction) * by_prediction + fraction * by_pace
