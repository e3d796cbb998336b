"""The service between every chat front and the engine: admit -> record -> execute -> store the result.

Fronts (console, Discord) parse text with bot.commands, call `submit` to get a job admitted and
recorded, then `run` to execute it with progress; `answer` replies to the informational commands.
Nothing here decodes images or runs a model: that happens in the executor's workers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Literal

from core.errors import DreamError, InvalidImage, JobCancelled
from core.jobs import JobResult, JobSpec, ProgressEvent

from .commands import SEED_MAX, CommandError, Request, command_help
from .executor import Executor, ExecutorClosed
from .store import JobRecord, NotFound, Store, wait_text

__all__ = ["Requester", "Accepted", "Denied", "JobOutcome", "DreamService", "ProgressSink"]

log = logging.getLogger(__name__)

ProgressSink = Callable[[ProgressEvent], Awaitable[None] | None]


@dataclass(frozen=True)
class Requester:
    """Who asked, and where. Ids are strings so console names and Discord snowflakes both fit."""

    user_id: str
    guild_id: str | None = None
    channel_id: str | None = None
    roles: tuple[str, ...] = ()
    is_moderator: bool = False


@dataclass(frozen=True)
class Accepted:
    job_id: int
    spec: JobSpec
    ahead: int  # jobs waiting or running in the executor before this one


@dataclass(frozen=True)
class Denied:
    reason: str  # one line for the user
    retry_after: float = 0.0


@dataclass(frozen=True)
class JobOutcome:
    job_id: int
    status: Literal["done", "failed", "cancelled", "interrupted"]
    result: JobResult | None = None
    result_path: Path | None = None
    error: str | None = None  # one line for the user when not done


class DreamService:
    def __init__(self, *, store: Store, executor: Executor, results_dir: Path, prefix: str = "!"):
        self.store = store
        self.executor = executor
        self.results_dir = Path(results_dir)
        self.prefix = prefix
        self.results_dir.mkdir(parents=True, exist_ok=True)
        self._rng = random.Random()

    # -- jobs ---------------------------------------------------------------------------------

    async def submit(
        self, request: Request, requester: Requester, *, image: bytes | None = None, guide: bytes | None = None
    ) -> Accepted | Denied:
        """Admit and record a job atomically; the caller then awaits `run`."""
        assert request.is_job, f"submit takes job commands, not {request.name}; use answer()"
        if request.name == "dream" and image is None:
            return Denied(f"{self.prefix}dream needs a photo: attach one (or give its path in the console)")
        seed = request.seed if request.seed is not None else self._rng.randint(0, SEED_MAX)
        spec = JobSpec(kind=request.name, params=dict(request.params), image=image, guide=guide, seed=seed)  # type: ignore[arg-type]
        admission = await self.store.admit_and_create_job(
            spec,
            user_id=requester.user_id,
            guild_id=requester.guild_id,
            channel_id=requester.channel_id,
            roles=requester.roles,
        )
        if not admission.allowed:
            return Denied(admission.reason, admission.retry_after)
        assert admission.job_id is not None
        # What this process's workers will run first: the honest wait for the requester.
        ahead = len(self.executor.queued()) + len(self.executor.running())
        return Accepted(admission.job_id, spec, ahead)

    async def run(self, job_id: int, spec: JobSpec, on_progress: ProgressSink | None = None) -> JobOutcome:
        """Execute a recorded job and record how it ended; never raises for a job's own failure."""
        if not await self.store.mark_running(job_id):
            record = await self.store.get_job(job_id)
            status = record.status if record else "missing"
            return JobOutcome(job_id, "cancelled", error=f"job {job_id} was {status} before it started")
        try:
            result = await self.executor.submit(str(job_id), spec, on_progress)
        except ExecutorClosed:
            # Shutting down: put the job back so the next start runs it; nothing is lost.
            await self.store.requeue_job(job_id)
            return JobOutcome(job_id, "interrupted", error="the bot is stopping; the job will run when it is back")
        except JobCancelled:
            await self.store.cancel_job(job_id)
            return JobOutcome(job_id, "cancelled", error=f"job {job_id} was cancelled")
        except DreamError as exc:
            await self.store.fail_job(job_id, str(exc))
            return JobOutcome(job_id, "failed", error=str(exc))
        except asyncio.CancelledError:
            # The front is shutting down: leave the job "running" so the next start re-runs it.
            raise
        except Exception as exc:  # a bug, not the user's fault: log it, tell them briefly
            log.exception("job %s failed unexpectedly", job_id)
            await self.store.fail_job(job_id, f"internal error ({type(exc).__name__})")
            return JobOutcome(job_id, "failed", error="something went wrong on our side; the error was logged")
        path = await asyncio.to_thread(self._save, job_id, result)
        if not await self.store.finish_job(job_id, result.timings, str(path)):
            return JobOutcome(job_id, "cancelled", error=f"job {job_id} was cancelled")
        return JobOutcome(job_id, "done", result=result, result_path=path)

    def _save(self, job_id: int, result: JobResult) -> Path:
        path = self.results_dir / f"job-{job_id}.{result.extension}"
        fd, tmp = tempfile.mkstemp(dir=self.results_dir, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(result.data)
        os.replace(tmp, path)  # never a half-written result
        return path

    async def cancel(self, job_id: int, requester: Requester) -> str:
        record = await self.store.get_job(job_id)
        if record is None or (record.user_id != requester.user_id and not requester.is_moderator):
            return f"you have no job {job_id}"
        if record.status not in ("queued", "running"):
            return f"job {job_id} is already {record.status}"
        await self.store.cancel_job(job_id)
        await self.executor.cancel(str(job_id))
        return f"job {job_id} cancelled"

    async def recover(self) -> list[JobRecord]:
        """Jobs left queued or running by the last process, put back to queued for `run`.

        The caller re-runs each (`run(record.id, record.to_spec())`) and tells its requester;
        jobs whose inputs are gone are failed with a reason instead.
        """
        records = []
        for record in await self.store.jobs_to_recover():
            if record.kind == "dream" and record.image is None:
                await self.store.fail_job(record.id, "its input was lost in a restart; please send it again")
                continue
            if record.status == "running":
                await self.store.requeue_job(record.id)
            records.append(record)
        return records

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
            return f"no ImageNet class contains {request.params['search']!r}"
        shown = ", ".join(f"{name} ({index})" for index, name in matches[:25])
        more = f" and {len(matches) - 25} more" if len(matches) > 25 else ""
        return f"{len(matches)} classes: {shown}{more}"

    async def _answer_queue(self, request: Request, requester: Requester) -> str:
        queued, running = self.executor.queued(), self.executor.running()
        mine = await self.store.active_jobs(requester.user_id)
        lines = [f"{len(running)} running, {len(queued)} waiting"]
        for job in mine:
            position = await self.store.queue_position(job.id)
            where = "running" if position == 0 else f"{position} ahead"
            lines.append(f"your job {job.id}: {job.kind}, {where}")
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
        if q.exempt:
            return "you are exempt from the limits here"
        parts = []
        if q.user_available is not None:
            refill = f", one more in {wait_text(q.user_next_in)}" if q.user_next_in > 0 else ""
            parts.append(f"you can start {q.user_available} of {q.user_burst} jobs now{refill}")
        if q.guild_available is not None:
            parts.append(f"this server has {q.guild_available} left this hour")
        if q.max_active_jobs:
            parts.append(f"{q.active_jobs} of your {q.max_active_jobs} job slots are busy")
        return "; ".join(parts) or "no limits apply"

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


def describe_error(exc: BaseException) -> str:
    """One line for a user from any exception a front might catch."""
    if isinstance(exc, (CommandError, DreamError, InvalidImage)):
        return str(exc)
    return "something went wrong on our side; the error was logged"
