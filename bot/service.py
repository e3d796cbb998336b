"""The service between every front and the engine: compile -> price -> admit+record -> fair queue -> result.

Fronts (console, Discord) parse text with bot.commands and call `submit` with the inputs: the job
is compiled (core.spec), priced against its time cap, admitted and recorded in one transaction,
and queued at once in the executor's fair queue. `follow` then delivers its progress (with an ETA)
and its outcome. The service drives every job to its end whether or not a front follows it, stops
a job that overruns its time limit, and is the only way a front reaches the store.
Nothing here decodes images or runs a model: that happens in the executor's workers.

Several bot processes may share one database. Each job is held by one process through a lease
(`owner` and an expiry in the store) that a heartbeat renews; a process that dies stops renewing,
and once its leases run out the others (or its own restart) adopt its unfinished jobs. Finishing
checks the owner, so a job is never finished, hence never posted, by two processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Awaitable, Literal

from core.errors import DreamError, JobCancelled, quoted
from core.jobs import JobResult, JobSpec, ProgressEvent
from core.spec import check_options, compile_job, restore_job

from .commands import Request, command_help
from .executor import Executor, ExecutorClosed
from .metrics import Metrics
from .pricing import job_time_cap, over_cap_reason
from .store import GuildSettings, JobRecord, LikeResult, NotFound, RateLimits, Store, wait_text

__all__ = ["Requester", "Accepted", "Denied", "JobOutcome", "DreamService", "ProgressSink"]

log = logging.getLogger(__name__)

ProgressSink = Callable[[ProgressEvent], Awaitable[None] | None]
Compiler = Callable[..., JobSpec]  # core.spec.compile_job's signature
Restorer = Callable[..., JobSpec]  # core.spec.restore_job's signature
Adopter = Callable[[list[JobRecord]], Awaitable[None]]  # a front taking over jobs adopted from a dead process

_JOBS_LISTED = 10  # `!queue` lists this many of the asker's jobs, so its answer fits one message
_DELIVERY_RETRY_MAX = 3600.0  # a result Discord keeps refusing is still tried every hour
_STOPPING = "the bot is stopping; the job will run when it is back"
_TAKEN_OVER = "another bot process took this job over after this one stalled; it posts the result"


def process_owner_id() -> str:
    """A name for this bot process in job leases: host, pid and a random tail (pids are reused)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Requester:
    """Who asked, and where. Ids are strings so console names and Discord snowflakes both fit."""

    user_id: str
    guild_id: str | None = None
    channel_id: str | None = None
    roles: tuple[str, ...] = ()
    is_moderator: bool = False
    message_id: str | None = None  # the message that asked (a prefix command), which the result answers


@dataclass(frozen=True)
class Accepted:
    job_id: int
    spec: JobSpec
    predicted: float  # seconds the job should run on the device in use
    position: int  # 1: next to start; 0: a worker has it already
    wait: float  # seconds until it should start

    @property
    def summary(self) -> str:
        """'about 12 s; starts now' or 'about 12 s; 3rd in line, starts in about 40 s': the same words on every front."""
        when = "starts now" if self.position == 0 else \
            f"{_ordinal(self.position)} in line, starts in about {wait_text(self.wait)}"
        return f"takes about {wait_text(self.predicted)}; {when}"


# Refusals that pass with time (a rate limit refills, a job ends, the bot comes back), as
# `Denied.why` names them; any other refusal stands until the request changes.
_PASS_WITH_TIME = ("active_jobs", "user_rate", "server_rate", "stopping")


@dataclass(frozen=True)
class Denied:
    reason: str  # one line for the user
    retry_after: float = 0.0
    why: str = ""  # which rule refused it (bot.metrics.REFUSAL_REASONS), "" for others

    @property
    def passes_with_time(self) -> bool:
        """Whether waiting alone lets the same request through later (fronts mark those as a wait)."""
        return self.why in _PASS_WITH_TIME


@dataclass(frozen=True)
class JobOutcome:
    job_id: int
    status: Literal["done", "failed", "cancelled", "interrupted"]
    result: JobResult | None = None
    result_path: Path | None = None
    error: str | None = None  # one line for the user when not done
    spec: JobSpec | None = None  # what ran, when done (for the command that reproduces it)


@dataclass(eq=False)
class _Tracked:
    """A job this process queued: who follows its progress, and how it ends."""

    spec: JobSpec
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


class DreamService:
    """compile -> price -> admit -> queue -> run -> record, for every front.

    max_job_seconds: the global cap on a job's predicted seconds (MAX_JOB_SECONDS); servers may
    set a lower one. compile, restore: `core.spec.compile_job` and `restore_job`, or stand-ins
    with their signatures (tests). owner: this process's name in job leases (unique per process
    start); heartbeat_seconds: how often it renews its leases (well under the store's lease_seconds)
    and looks for jobs a dead process left behind. metrics: where refusals and job seconds are
    counted (`self.metrics`; one over this store and executor by default). delivery_retry_seconds:
    the wait before posting a refused result again, doubled at each further refusal up to an hour.
    """

    def __init__(
        self,
        *,
        store: Store,
        executor: Executor,
        results_dir: Path,
        prefix: str = "!",
        max_job_seconds: float = 120.0,
        compile: Compiler = compile_job,
        restore: Restorer = restore_job,
        owner: str | None = None,
        heartbeat_seconds: float = 10.0,
        metrics: Metrics | None = None,
        delivery_retry_seconds: float = 30.0,
    ):
        if not 0 < heartbeat_seconds < store.lease_seconds:
            raise ValueError(f"heartbeat_seconds ({heartbeat_seconds:g}) must be more than 0 and less than "
                             f"the lease ({store.lease_seconds:g} s), or leases lapse between renewals")
        self.store = store
        self.executor = executor
        self.results_dir = Path(results_dir)
        self.prefix = prefix
        self.max_job_seconds = max_job_seconds
        self._compile, self._restore = compile, restore
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self._tracked: dict[int, _Tracked] = {}
        self._closing = False
        self.metrics = metrics or Metrics(store, executor)
        self.owner = owner or process_owner_id()
        self.heartbeat_seconds = heartbeat_seconds
        self._heartbeat: asyncio.Task | None = None
        self._adopting: tuple[Callable[[JobRecord], bool], Adopter] | None = None
        self.delivery_retry_seconds = delivery_retry_seconds

    # -- jobs ---------------------------------------------------------------------------------

    async def submit(self, request: Request, requester: Requester, *, images: Sequence[bytes] = ()) -> Accepted | Denied:
        """Compile, price, admit and record a job, and queue it; `follow` then reports on it.

        A mistake or a job over its time cap is refused before admission: no token, no job row.
        """
        assert request.is_job, f"submit takes job commands, not {request.name}; use answer()"
        if self._closing:
            return self._refuse("stopping", "the bot is stopping; try again in a minute")
        try:
            # Reads image headers only; off the event loop all the same, as a hostile header may be slow.
            spec = await asyncio.to_thread(self._compile, request.name, request.params, images=list(images), seed=request.seed)
        except DreamError as exc:
            return self._refuse("invalid_request", f"{exc}; see {self.prefix}help {request.name}")
        predicted = self.executor.predict(spec)
        cap = await self._time_cap(requester)
        if predicted > cap:
            return self._refuse("over_time_cap", over_cap_reason(spec, predicted, cap))
        admission = await self.store.admit_and_create_job(
            spec, user_id=requester.user_id, guild_id=requester.guild_id, channel_id=requester.channel_id,
            roles=requester.roles, owner=self.owner, reply_to=requester.message_id,
        )
        if not admission.allowed:
            return self._refuse(admission.refusal, admission.reason, admission.retry_after)
        assert admission.job_id is not None
        self._start(admission.job_id, spec, requester.user_id, requester.guild_id, cap, predicted)
        place = self.executor.place(str(admission.job_id))
        position, wait = (place.position, place.wait_seconds) if place is not None else (0, 0.0)
        return Accepted(admission.job_id, spec, predicted, position, wait)

    def _refuse(self, why: str, reason: str, retry_after: float = 0.0) -> Denied:
        self.metrics.admission_refused(why)
        return Denied(reason, retry_after, why)

    def check(self, request: Request) -> Denied | None:
        """Refuse a job whose options are wrong before its inputs are fetched (None: they look right).

        `submit` checks everything again with the inputs; this spares a front the download.
        """
        try:
            check_options(request.name, request.params, seed=request.seed)
        except DreamError as exc:
            return self._refuse("invalid_request", f"{exc}; see {self.prefix}help {request.name}")
        return None

    async def follow(self, job_id: int, on_progress: ProgressSink | None = None) -> JobOutcome:
        """Progress events (with an ETA) of a job this process queued, then how it ended.

        Never raises for the job's own failure. Cancelling the caller does not cancel the job.
        """
        tracked = self._tracked.get(job_id)
        if tracked is None:
            return await self._recorded_outcome(job_id)
        if on_progress is not None:
            tracked.sinks.append(on_progress)
        try:
            return await asyncio.shield(tracked.outcome)
        finally:
            if on_progress is not None and on_progress in tracked.sinks:
                tracked.sinks.remove(on_progress)

    async def _recorded_outcome(self, job_id: int) -> JobOutcome:
        """How a job that is not running here ended, from the store (it may have ended before anyone followed it)."""
        record = await self.store.get_job(job_id)
        if record is None or record.status in ("queued", "running"):
            status = record.status if record else "missing"
            return JobOutcome(job_id, "cancelled", error=f"job {job_id} is {status}, not running here")
        if record.status == "done":
            path = Path(record.result_location) if record.result_location else None
            return JobOutcome(job_id, "done", result_path=path, error=f"job {job_id} had finished already; its result is {path}")
        return JobOutcome(job_id, record.status, error=record.error or f"job {job_id} was {record.status}")  # type: ignore[arg-type]

    async def cancel(self, job_id: int, requester: Requester) -> str:
        record = await self.store.get_job(job_id)
        if record is None or (record.user_id != requester.user_id and not requester.is_moderator):
            return f"you have no job {job_id}"
        if record.status not in ("queued", "running"):
            return f"job {job_id} is already {record.status}"
        await self.store.cancel_job(job_id)
        await self.executor.cancel(str(job_id))
        return f"job {job_id} cancelled"

    async def recover(self, owns: Callable[[JobRecord], bool] = lambda record: True, *,
                      on_adopted: Adopter | None = None) -> list[JobRecord]:
        """Adopt and queue again the unfinished jobs no live process holds, for the front that `owns` them.

        Only jobs whose lease has run out (or that were given back) are taken, so a job another
        live process runs is left to it. The front then `follow`s each and tells its requester; jobs
        whose inputs are gone are failed with a reason instead. With `on_adopted`, every heartbeat
        also adopts jobs whose owner has died since (a crashed process, this one's previous run) and
        hands them to it.
        """
        if on_adopted is not None:
            self._adopting = (owns, on_adopted)
            self._keep_leases()
        return await self._adopt_orphans(owns)

    async def _adopt_orphans(self, owns: Callable[[JobRecord], bool]) -> list[JobRecord]:
        adopted = []
        for orphan in await self.store.orphaned_jobs():
            if self._closing or not owns(orphan):
                continue
            record = await self.store.claim_job(orphan.id, self.owner)
            if record is None:
                continue  # another process adopted it first, or it ended meanwhile
            if record.kind in ("dream", "video") and record.image is None:
                await self.store.fail_job(record.id, "its input was lost in a restart; please send it again", owner=self.owner)
                continue
            try:
                spec = await asyncio.to_thread(self._restore, record.kind, record.params, seed=record.seed,
                                               image=record.image, guide=record.guide)
            except DreamError as exc:  # say, a model this version no longer has
                await self.store.fail_job(record.id, f"it cannot run again after the restart: {exc}", owner=self.owner)
                continue
            self._start(record.id, spec, record.user_id, record.guild_id, self.max_job_seconds, self.executor.predict(spec))
            adopted.append(record)
        return adopted

    def _keep_leases(self) -> None:
        if self._heartbeat is None and not self._closing:
            self._heartbeat = asyncio.create_task(self._renew_forever(), name="lease-heartbeat")

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self._renew_once()
            except Exception:  # the database may be briefly away: leases outlast a few missed beats
                log.exception("lease heartbeat failed; trying again in %g s", self.heartbeat_seconds)

    async def _renew_once(self) -> None:
        """Renew this process's leases, stop jobs it no longer holds, and adopt newly orphaned ones."""
        ids = list(self._tracked)
        held = await self.store.renew_leases(self.owner, ids)
        for job_id in ids:
            tracked = self._tracked.get(job_id)
            if job_id not in held and tracked is not None and not tracked.outcome.done():
                tracked.lost = True
                await self.executor.cancel(str(job_id))
        if self._adopting is not None and not self._closing:
            owns, on_adopted = self._adopting
            adopted = await self._adopt_orphans(owns)
            if adopted:
                # The front may talk to Discord for a while; the next renewal must not wait for it.
                handing_over = asyncio.create_task(on_adopted(adopted), name="hand-over-adopted-jobs")
                handing_over.add_done_callback(_log_failure)

    async def give_up(self, job_id: int, reason: str) -> None:
        """Stop a job nobody can receive any more (its channel is gone) and record why."""
        await self.store.fail_job(job_id, reason, owner=self.owner)
        await self.executor.cancel(str(job_id))

    async def close(self) -> None:
        """Stop every job this process queued and give it back in the store, for another process or the next start."""
        self._closing = True
        for job_id, tracked in list(self._tracked.items()):
            tracked.shutting_down = True
            await self.executor.cancel(str(job_id))
        await self.drain()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until every job this process queued has been recorded (as ended, or put back)."""
        tasks = [t.task for t in self._tracked.values() if t.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, job_id: int, spec: JobSpec, user_id: str, guild_id: str | None, cap: float, predicted: float) -> None:
        loop = asyncio.get_running_loop()
        tracked = _Tracked(spec, predicted, cap, loop.create_future())
        self.executor.enqueue(str(job_id), spec, user=user_id, guild=guild_id)  # in the queue from this moment
        self._tracked[job_id] = tracked
        tracked.task = asyncio.create_task(self._drive(job_id, tracked), name=f"job-{job_id}")
        self._keep_leases()

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
        except ExecutorClosed:
            # Shutting down: give the job back so another process or the next start runs it; nothing is lost.
            await self.store.release_job(job_id, self.owner)
            return JobOutcome(job_id, "interrupted", error=_STOPPING)
        except JobCancelled:
            if tracked.shutting_down:
                await self.store.release_job(job_id, self.owner)
                return JobOutcome(job_id, "interrupted", error=_STOPPING)
            if tracked.lost:
                return await self._lost_outcome(job_id)
            if tracked.timed_out:
                error = (f"stopped after {wait_text(time.monotonic() - (tracked.started or time.monotonic()))}: it ran far past "
                         f"its expected {wait_text(tracked.predicted)} and the {wait_text(tracked.cap)} limit")
                await self.store.fail_job(job_id, error, owner=self.owner)
                return JobOutcome(job_id, "failed", error=error)
            await self.store.cancel_job(job_id)
            return JobOutcome(job_id, "cancelled", error=f"job {job_id} was cancelled")
        except DreamError as exc:
            await self.store.fail_job(job_id, str(exc), owner=self.owner)
            return JobOutcome(job_id, "failed", error=str(exc))
        except Exception as exc:  # a bug, not the user's fault: log it, tell them briefly
            log.exception("job %s failed unexpectedly", job_id)
            await self.store.fail_job(job_id, f"internal error ({type(exc).__name__})", owner=self.owner)
            return JobOutcome(job_id, "failed", error="something went wrong on our side; the error was logged")
        path = await asyncio.to_thread(self._save, job_id, result)
        if not await self.store.finish_job(job_id, result.timings, str(path), owner=self.owner):
            return await self._lost_outcome(job_id)
        self.metrics.job_finished(tracked.spec.kind, time.monotonic() - (tracked.started or time.monotonic()))
        return JobOutcome(job_id, "done", result=result, result_path=path, spec=tracked.spec)

    async def _lost_outcome(self, job_id: int) -> JobOutcome:
        """How a job this process no longer holds ended for it: cancelled (maybe from another process), or taken over."""
        record = await self.store.get_job(job_id)
        if record is None or record.status == "cancelled":
            return JobOutcome(job_id, "cancelled", error=f"job {job_id} was cancelled")
        if record.owner != self.owner:
            return JobOutcome(job_id, "interrupted", error=_TAKEN_OVER)
        return JobOutcome(job_id, "cancelled", error=f"job {job_id} is {record.status}")

    async def _on_start(self, job_id: int, tracked: _Tracked) -> None:
        tracked.started = time.monotonic()
        # Stopped only when far off both its prediction and its cap: a job slower than predicted
        # but within its cap is the prediction's fault, not the user's.
        limit = max(2 * tracked.predicted, tracked.cap)
        tracked.timer = asyncio.get_running_loop().call_later(limit, self._overrun, job_id, tracked)
        if not await self.store.mark_running(job_id, owner=self.owner):
            tracked.lost = True  # cancelled (or ended, or adopted elsewhere) meanwhile
            await self.executor.cancel(str(job_id))

    def _overrun(self, job_id: int, tracked: _Tracked) -> None:
        log.warning("job %s ran past its time limit; stopping it", job_id)
        tracked.timed_out = True
        tracked.timer = None
        asyncio.ensure_future(self.executor.cancel(str(job_id)))

    async def _time_cap(self, requester: Requester) -> float:
        settings = await self.store.get_guild_settings(requester.guild_id) if requester.guild_id else None
        exempt = bool(settings and set(requester.roles) & set(settings.exempt_role_ids))
        return job_time_cap(self.max_job_seconds, settings.max_job_seconds if settings else None, exempt=exempt)

    def _save(self, job_id: int, result: JobResult) -> Path:
        path = self.results_dir / f"job-{job_id}.{result.extension}"
        fd, tmp = tempfile.mkstemp(dir=self.results_dir, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(result.data)
        os.replace(tmp, path)  # never a half-written result
        return path

    # -- records fronts may read and change ------------------------------------------------------

    async def job(self, job_id: int) -> JobRecord | None:
        return await self.store.get_job(job_id)

    async def guild_settings(self, guild_id: str) -> GuildSettings:
        return await self.store.get_guild_settings(guild_id)

    async def update_guild_settings(self, guild_id: str, **changes: object) -> GuildSettings:
        """Change a server's settings; a time cap above the global one is refused (ValueError, one line)."""
        cap = changes.get("max_job_seconds")
        if cap is not None and not 0 < float(cap) <= self.max_job_seconds:  # type: ignore[arg-type]
            raise ValueError(f"max_job_seconds must be more than 0 and at most {self.max_job_seconds:g}, the bot's limit")
        return await self.store.set_guild_settings(guild_id, **changes)

    def limits_of(self, settings: GuildSettings) -> RateLimits:
        """A server's rate limits: the bot's defaults with the server's overrides."""
        return settings.limits(self.store.limits)

    async def acknowledged(self, job_id: int, message_id: str) -> None:
        """A job asked for without a message of its own (a slash command, button or menu) was
        acknowledged in this message: a result posted later answers it."""
        await self.store.set_reply_target(job_id, message_id)

    async def record_post(self, job_id: int, message_link: str, *, channel_id: str | None, in_guild: bool) -> None:
        """Remember where a result was posted; on a server it also enters the gallery."""
        await self.store.set_result_message_link(job_id, message_link)
        if in_guild:
            await self.store.add_gallery_entry(job_id, message_link, channel_id=channel_id)

    # -- delivery: a finished job's result is posted, however long Discord refuses it -------------

    def delivery_retry_delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th try at posting a result before the next one."""
        return min(self.delivery_retry_seconds * 2 ** max(0, attempts - 1), _DELIVERY_RETRY_MAX)

    async def deliveries_due(self, owns: Callable[[JobRecord], bool] = lambda record: True,
                             *, now: float | None = None) -> list[JobRecord]:
        """Finished results still to post whose wait since their last try is over, for the front
        that `owns` them; each is claimed for this process (another sweeping at once skips it), and
        the front tries once more, then calls `record_post`, `delivery_failed` or `end_delivery`.

        Works across restarts: the state is in the store, so a result refused before a restart is
        posted by the next start.
        """
        now = time.time() if now is None else now
        due = []
        for record in await self.store.pending_deliveries():
            waited = now - (record.delivery_tried_at or 0.0)
            if self._closing or not owns(record) or waited < self.delivery_retry_delay(record.delivery_attempts):
                continue
            if await self.store.claim_delivery(record.id, record.delivery_attempts, now=now):
                due.append(replace(record, delivery_attempts=record.delivery_attempts + 1, delivery_tried_at=now))
        return due

    async def delivery_failed(self, job_id: int, reason: str) -> float:
        """A try at posting a result failed (say, Discord answered 503); returns the seconds until the next."""
        return self.delivery_retry_delay(await self.store.delivery_failed(job_id, reason))

    async def end_delivery(self, job_id: int, *, by_dm: bool, reason: str) -> None:
        """A result cannot reach its channel (`reason`): it was sent to its requester by DM, or nowhere."""
        await self.store.end_delivery(job_id, "sent_by_dm" if by_dm else "undeliverable", reason)

    async def withdraw_posts(self, message_links: Sequence[str]) -> int:
        """Results whose Discord messages were deleted leave the gallery, here and on the web; returns how many."""
        return await self.store.remove_gallery_entries(message_links)

    async def like(self, job_id: int, message_link: str, *, channel_id: str | None, user_id: str) -> LikeResult | Denied:
        """A like of a posted result, by its button or a ⭐ reaction: one per user, never the requester's own."""
        entry_id = await self.store.add_gallery_entry(job_id, message_link, channel_id=channel_id)
        item = await self.store.gallery_item(job_id)
        if item is not None and item.user_id == user_id:
            return Denied("you cannot like your own result")
        return await self.store.like(entry_id, user_id)

    async def unlike(self, job_id: int, user_id: str) -> LikeResult | None:
        """Take back a like (a ⭐ reaction removed); None when the result is in no gallery."""
        item = await self.store.gallery_item(job_id)
        return await self.store.unlike(item.id, user_id) if item is not None else None

    async def claim_feature(self, message_link: str) -> bool:
        """Whether to feature the result posted in this message in the gallery channel now: True once per result."""
        return await self.store.claim_feature(message_link)

    async def job_posted_in(self, message_link: str) -> int | None:
        """The job whose result a message carries, None for any other message."""
        return await self.store.job_of_post(message_link)

    # -- informational commands -------------------------------------------------------------------

    async def answer(self, request: Request, requester: Requester) -> str:
        """Text reply to a non-job command; errors become one line, never an exception."""
        handler = getattr(self, f"_answer_{request.name}", None)
        assert handler is not None, f"no answer for {request.name}; add _answer_{request.name}"
        try:
            return await handler(request, requester)
        except (DreamError, NotFound) as exc:
            return str(exc)

    async def _answer_help(self, request: Request, requester: Requester) -> str:
        return "\n".join(command_help(request.params.get("command"), self.prefix))

    async def _answer_models(self, request: Request, requester: Requester) -> str:
        from core.models.registry import MODELS

        return "\n".join(f"{e.name}: {e.description}" for e in MODELS.values())

    async def _answer_layers(self, request: Request, requester: Requester) -> str:
        from core.models.registry import get_entry

        entry = get_entry(request.params.get("model") or "efficientnet-lite0")
        presets = ", ".join(f"{k}={v}" for k, v in entry.presets.items())
        return f"{entry.name} presets: {presets}\nlayers: {', '.join(entry.layers)}"

    async def _answer_classes(self, request: Request, requester: Requester) -> str:
        from core.models.classes import search_classes

        matches = search_classes(request.params["search"])
        if not matches:
            return f"no ImageNet class contains {quoted(request.params['search'])}"
        shown = ", ".join(f"{name} ({index})" for index, name in matches[:25])
        more = f" and {len(matches) - 25} more" if len(matches) > 25 else ""
        return f"{len(matches)} classes: {shown}{more}"

    async def _answer_queue(self, request: Request, requester: Requester) -> str:
        queued, running = self.executor.queued(), self.executor.running()
        mine = await self.store.active_jobs(requester.user_id)
        lines = [f"{len(running)} running, {len(queued)} waiting"]
        for job in mine[:_JOBS_LISTED]:
            place = self.executor.place(str(job.id))
            if place is None:
                where = ("in another bot process's queue" if job.owner is not None and job.owner != self.owner
                         else "waiting for a bot process to pick it up")
            elif place.position == 0:
                where = "running"
            else:
                where = f"{_ordinal(place.position)} in line, starts in about {wait_text(place.wait_seconds)}"
            lines.append(f"your job {job.id}: {job.kind}, {where}")
        if len(mine) > _JOBS_LISTED:
            lines.append(f"and {len(mine) - _JOBS_LISTED} more of yours")
        return "\n".join(lines)

    async def _answer_cancel(self, request: Request, requester: Requester) -> str:
        job_id = request.params.get("job_id")
        if job_id is None:
            mine = await self.store.active_jobs(requester.user_id)
            if not mine:
                return "you have no job to cancel"
            job_id = max(job.id for job in mine)
        return await self.cancel(job_id, requester)

    async def _answer_quota(self, request: Request, requester: Requester) -> str:
        q = await self.store.quota(requester.user_id, requester.guild_id, roles=requester.roles)
        cap = await self._time_cap(requester)
        if q.exempt:
            return f"you are exempt from the rate limits here; jobs may take up to {wait_text(cap)}"
        parts = []
        if q.user_available is not None:
            refill = f", one more in {wait_text(q.user_next_in)}" if q.user_next_in > 0 else ""
            parts.append(f"you can start {q.user_available} of {q.user_burst} jobs now{refill}")
        if q.guild_available is not None:
            parts.append(f"this server has {q.guild_available} left this hour")
        if q.max_active_jobs:
            parts.append(f"{q.active_jobs} of your {q.max_active_jobs} job slots are busy")
        parts.append(f"jobs may take up to {wait_text(cap)}")
        return "; ".join(parts)

    async def _answer_gallery(self, request: Request, requester: Requester) -> str:
        if requester.guild_id is None:
            return "the gallery belongs to a server; use it there"
        items = await self.store.gallery(requester.guild_id, order=request.params.get("order", "recent"), limit=10)
        if not items:
            return "the gallery is empty: results appear here once they are posted"
        return "\n".join(f"#{item.id} {item.kind} ({item.likes} likes): {item.message_link}" for item in items)

    async def _answer_settings(self, request: Request, requester: Requester) -> str:
        return "settings belong to a Discord server; server admins change them there"

    async def _answer_stats(self, request: Request, requester: Requester) -> str:
        s = await self.store.stats(requester.guild_id)
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(s.jobs_by_kind.items())) or "none yet"
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(s.jobs_by_status.items())) or "none yet"
        return f"{s.jobs} jobs ({kinds}; {statuses}) by {s.users} users; {s.gallery_entries} in the gallery, {s.likes} likes"


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("handing adopted jobs to the front failed", exc_info=task.exception())


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


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
