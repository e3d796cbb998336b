"""The informational commands' answers, the same words on every front: `models`, `layers`,
`classes`, `queue`, `cancel`, `quota`, `gallery`, `stats`, `settings` and `help`.

Each takes typed arguments; `answer` maps a parsed chat command (bot.commands.Request) onto them,
for fronts that read text. Mistakes (an unknown model, say) come back as one line, never raised.
"""

from __future__ import annotations

from core.errors import DreamError, quoted
from core.models.classes import search_classes
from core.models.registry import MODELS, get_entry

from ..commands import Request, command_help
from ..executor import Executor
from ..store import NotFound, Order, Store
from ..results import ResultStore
from .gallery import servable
from .guilds import Guilds
from ..commands import ordinal, wait_text
from .jobs import JobService, Requester

__all__ = ["Answers"]

_JOBS_LISTED = 10  # `queue` lists this many of the asker's jobs, so its answer fits one message
_CLASSES_LISTED = 25
_GALLERY_LISTED = 10


class Answers:
    def __init__(self, *, store: Store, executor: Executor, jobs: JobService, guilds: Guilds, owner: str,
                 results: ResultStore, prefix: str = "!") -> None:
        self.store, self.executor, self.jobs, self.guilds, self.results = store, executor, jobs, guilds, results
        self.owner, self.prefix = owner, prefix

    async def answer(self, request: Request, requester: Requester) -> str:
        """The answer to a parsed chat command that is not a job."""
        params = request.params
        try:
            match request.name:
                case "help":
                    return self.help(params.get("command"))
                case "models":
                    return self.models()
                case "layers":
                    return self.layers(params.get("model"))
                case "classes":
                    return self.classes(params["search"])
                case "queue":
                    return await self.queue(requester)
                case "cancel":
                    return await self.cancel(requester, params.get("job_id"))
                case "quota":
                    return await self.quota(requester)
                case "gallery":
                    return await self.gallery(requester, params.get("order", "recent"))
                case "stats":
                    return await self.stats(requester)
                case "settings":
                    return "settings belong to a Discord server; server admins change them there"
        except (DreamError, NotFound) as exc:
            return str(exc)
        raise AssertionError(f"no answer for {request.name}; add it to Answers.answer")

    def help(self, command: str | None = None, prefix: str | None = None) -> str:
        return "\n".join(command_help(command, prefix or self.prefix))

    def models(self) -> str:
        return "\n".join(f"{entry.name}: {entry.description}" for entry in MODELS.values())

    def layers(self, model: str | None = None) -> str:
        entry = get_entry(model or "efficientnet-lite0")
        presets = ", ".join(f"{k}={v}" for k, v in entry.presets.items())
        return f"{entry.name} presets: {presets}\nlayers: {', '.join(entry.layers)}"

    def classes(self, search: str) -> str:
        matches = search_classes(search)
        if not matches:
            return f"no ImageNet class contains {quoted(search)}"
        shown = ", ".join(f"{name} ({index})" for index, name in matches[:_CLASSES_LISTED])
        more = f" and {len(matches) - _CLASSES_LISTED} more" if len(matches) > _CLASSES_LISTED else ""
        return f"{len(matches)} classes: {shown}{more}"

    async def queue(self, requester: Requester) -> str:
        queued, running = self.executor.queued(), self.executor.running()
        mine = await self.store.jobs.active(requester.user_id)
        lines = [f"{len(running)} running, {len(queued)} waiting"]
        for job in mine[:_JOBS_LISTED]:
            place = self.executor.place(str(job.id))
            if place is None:
                where = ("in another bot process's queue" if job.owner is not None and job.owner != self.owner
                         else "waiting for a bot process to pick it up")
            elif place.position == 0:
                where = "running"
            else:
                where = f"{ordinal(place.position)} in line, starts in about {wait_text(place.wait_seconds)}"
            lines.append(f"your job {job.id}: {job.kind}, {where}")
        if len(mine) > _JOBS_LISTED:
            lines.append(f"and {len(mine) - _JOBS_LISTED} more of yours")
        return "\n".join(lines)

    async def cancel(self, requester: Requester, job_id: int | None = None) -> str:
        """Cancel one of the requester's jobs; without an id, their latest."""
        if job_id is None:
            mine = await self.store.jobs.active(requester.user_id)
            if not mine:
                return "you have no job to cancel"
            job_id = max(job.id for job in mine)
        return await self.jobs.cancel(job_id, requester)

    async def quota(self, requester: Requester) -> str:
        q = await self.store.guilds.quota(requester.user_id, requester.guild_id, roles=requester.roles)
        settings = await self.store.guilds.get(requester.guild_id) if requester.guild_id else None
        cap = self.guilds.cap_of(settings, exempt=q.exempt)
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

    async def gallery(self, requester: Requester, order: Order = "recent") -> str:
        if requester.guild_id is None:
            return "the gallery belongs to a server; use it there"
        items = await servable(self.store, self.results, requester.guild_id, order, limit=_GALLERY_LISTED)
        if not items:
            return "the gallery is empty: results appear here once they are posted"
        # An expired result's message on Discord still carries it; only the bot's copy is gone.
        return "\n".join(f"#{item.id} {item.kind} ({item.likes} likes{'; expired' if item.result_removed == 'expired' else ''}): "
                         f"{item.message_link}" for item in items)

    async def stats(self, requester: Requester) -> str:
        s = await self.store.gallery.stats(requester.guild_id)
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(s.jobs_by_kind.items())) or "none yet"
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(s.jobs_by_status.items())) or "none yet"
        return f"{s.jobs} jobs ({kinds}; {statuses}) by {s.users} users; {s.gallery_entries} in the gallery, {s.likes} likes"
