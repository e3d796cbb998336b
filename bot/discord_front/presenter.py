"""How a job looks on Discord: the acknowledgement, its live progress, and the result post.

The presenter only presents: the cogs gather inputs and ask the service; whatever started a job
(a command, a button, restart recovery) hands the presenter a `Post` and the job id, and every
path looks the same. Records change only through the service.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

import discord

from ..commands import reproduce_command
from ..service import Accepted, JobOutcome, Requester
from .progress import ProgressMessage
from .upload import send_fitted

if TYPE_CHECKING:
    from .client import DreamBot

__all__ = ["JobPresenter", "Post", "requester_of", "upload_limit", "SendResult"]

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # outside a guild (DMs)
SendResult = Callable[[str, discord.File, discord.ui.View], Awaitable[discord.Message]]
ViewFactory = Callable[[int, str], discord.ui.View]


def requester_of(user: discord.abc.User, channel: discord.abc.Messageable | None) -> Requester:
    guild = getattr(user, "guild", None)
    roles = tuple(str(role.id) for role in getattr(user, "roles", ()) if not role.is_default())
    moderator = False
    if isinstance(user, discord.Member) and isinstance(channel, discord.abc.GuildChannel):
        moderator = channel.permissions_for(user).manage_messages
    return Requester(
        user_id=str(user.id),
        guild_id=str(guild.id) if guild else None,
        channel_id=str(channel.id) if channel is not None and hasattr(channel, "id") else None,
        roles=roles,
        is_moderator=moderator,
    )


def upload_limit(channel: object) -> int:
    guild = getattr(channel, "guild", None)
    return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT


@dataclass
class Post:
    """Where a job's messages go: `ack` is edited with progress, `send` posts the result."""

    ack: discord.Message
    send: SendResult
    upload_limit: int
    user_id: int  # mentioned in the result


class JobPresenter:
    """Renders jobs for Discord. `result_view(job_id, kind)` makes the buttons under a result (the Dreams cog's)."""

    def __init__(self, bot: DreamBot, result_view: ViewFactory):
        self.bot = bot
        self.result_view = result_view

    @staticmethod
    def queued_text(admitted: Accepted) -> str:
        return f"🌀 job #{admitted.job_id} ({admitted.spec.kind}) queued: {admitted.summary}"

    async def follow(self, job_id: int, kind: str, post: Post) -> JobOutcome:
        """Edit the acknowledgement with progress until the job ends, then post its result or its error."""
        title = f"🌀 job #{job_id} ({kind})"
        progress = ProgressMessage(post.ack, title, interval=self.bot.progress_interval)
        try:
            outcome = await self.bot.service.follow(job_id, progress.update)
        finally:
            progress.stop()
        if outcome.status != "done" or outcome.result is None:
            await progress.finish(f"❌ job #{job_id}: {outcome.error}")
            return outcome
        result = outcome.result
        prefix = self.bot.prefix_in(getattr(post.ack, "guild", None))
        command = f"\n`{reproduce_command(outcome.spec, prefix)}`" if outcome.spec is not None else ""
        extra = ""
        if "probability" in result.metadata:
            extra = f" — seen as {result.metadata['class_name']} with p={result.metadata['probability']:.3f}"
        content = f"<@{post.user_id}> job #{job_id}{extra}{command}"
        view = self.result_view(job_id, kind)

        async def send(file: discord.File, note: str) -> discord.Message:
            return await post.send(content + (f"\n_{note}_" if note else ""), file, view)

        try:
            message, _ = await send_fitted(send, result.data, result.mime_type, f"{kind}-{job_id}", post.upload_limit,
                                           on_retry=self.bot.service.metrics.upload_retried)
        except discord.HTTPException as exc:
            log.warning("could not post job %s: %s", job_id, exc)
            await progress.finish(f"❌ job #{job_id} finished but Discord refused the upload (HTTP {exc.status})")
            return outcome
        await self.bot.service.record_post(job_id, message.jump_url, channel_id=str(message.channel.id),
                                           in_guild=message.guild is not None)
        await progress.finish(f"✅ job #{job_id} done in {result.timings.get('total', 0):.1f} s")
        return outcome
