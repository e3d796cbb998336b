"""How a job looks on Discord: the acknowledgement, its live progress, and the result post.

The presenter only presents: the cogs gather inputs and ask the service; whatever started a job
(a command, a button, restart recovery) hands the presenter a `Post` and the job id, and every
path looks the same. Records change only through the service.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

import aiohttp
import discord

from ..commands import reproduce_command
from ..public import result_page_url
from ..service import Accepted, JobOutcome, Requester
from ..store import JobRecord, wait_text
from .progress import ProgressMessage
from .upload import send_fitted

if TYPE_CHECKING:
    from .client import DreamBot

__all__ = ["JobPresenter", "Post", "requester_of", "reply_reference", "result_words", "what_came_out", "upload_limit",
           "refusal_text", "SendResult"]

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # outside a guild (DMs)
SendResult = Callable[[str, discord.File, discord.ui.View], Awaitable[discord.Message]]
ViewFactory = Callable[[int, str], discord.ui.View]


def requester_of(user: discord.abc.User, channel: discord.abc.Messageable | None,
                 message: discord.Message | None = None) -> Requester:
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
        message_id=str(message.id) if message is not None else None,
    )


def refusal_text(error: Exception) -> str:
    """Why Discord refused a post, in a few words: 'HTTP 503' or the connection error's name."""
    return f"HTTP {error.status}" if isinstance(error, discord.HTTPException) else type(error).__name__


def what_came_out(kind: str, metadata: dict) -> str:
    """' — seen as banana with p=0.998' or ' — 24 frames as WEBP': the line of a result's text that
    says how it turned out, from its metadata ("" when there is nothing to say)."""
    if "probability" in metadata:
        return f" — seen as {metadata['class_name']} with p={metadata['probability']:.3f}"
    if kind == "zoom" and "format" in metadata:
        loop = ", a seamless loop" if metadata.get("loop") == "seamless" else ""
        return f" — {metadata['frames']} frames as {metadata['format'].upper()}{loop}"
    return ""


def result_words(job_id: int, user_id: int, command: str | None, extra: str = "", page: str = "") -> str:
    """A result post's text: who asked, the job and how it came out, the command that makes it
    again, and the line of its web page ("" for none)."""
    command_line = f"\n`{command}`" if command else ""
    return f"<@{user_id}> job #{job_id}{extra}{command_line}{page}"


def reply_reference(record: JobRecord) -> discord.MessageReference | None:
    """A reply to the message a job's result answers, which stays a plain message if that was deleted."""
    if record.reply_to is None or record.channel_id is None:
        return None
    return discord.MessageReference(message_id=int(record.reply_to), channel_id=int(record.channel_id),
                                    fail_if_not_exists=False)


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
        guild = getattr(post.ack, "guild", None)
        command = reproduce_command(outcome.spec, self.bot.prefix_in(guild)) if outcome.spec is not None else None
        content = await self.result_text(job_id, post.user_id, guild, command, what_came_out(kind, result.metadata))
        try:
            await self.post_result(job_id, kind, content, result.data, result.mime_type, post.send, post.upload_limit)
        except (discord.HTTPException, aiohttp.ClientError) as exc:
            # Kept as finished, not posted: the Dreams cog's delivery sweep posts it later.
            retry_in = await self.bot.service.delivery_failed(job_id, refusal_text(exc))
            log.warning("could not post job %s (%s); trying again in %.0f s", job_id, exc, retry_in)
            await progress.finish(f"⚠️ job #{job_id} finished, but Discord refused the result ({refusal_text(exc)}); "
                                  f"I will post it again in about {wait_text(retry_in)}")
            return outcome
        await progress.finish(f"✅ job #{job_id} done in {result.timings.get('total', 0):.1f} s")
        return outcome

    async def result_text(self, job_id: int, user_id: int, guild: discord.Guild | None, command: str | None,
                          extra: str = "") -> str:
        """The words of a result post: who asked, the job, the command that reproduces it, its web page."""
        return result_words(job_id, user_id, command, extra, await self._web_page(job_id, guild))

    async def post_result(self, job_id: int, kind: str, content: str, data: bytes, mime_type: str, send: SendResult,
                          limit: int) -> discord.Message:
        """Post a result with its buttons, fitted to `limit`, and record where it went.

        Raises discord.HTTPException or aiohttp.ClientError when Discord refuses it.
        """
        view = self.result_view(job_id, kind)

        async def send_file(file: discord.File, note: str) -> discord.Message:
            return await send(content + (f"\n_{note}_" if note else ""), file, view)

        message, _ = await send_fitted(send_file, data, mime_type, f"{kind}-{job_id}", limit,
                                       on_retry=self.bot.service.metrics.upload_retried)
        await self.bot.service.record_post(job_id, message.jump_url, channel_id=str(message.channel.id),
                                           in_guild=message.guild is not None)
        return message

    async def _web_page(self, job_id: int, guild: discord.Guild | None) -> str:
        """A line with the result's page on the web gallery, when there is one to link: PUBLIC_URL is
        set and the server publishes its gallery (elsewhere the page would be a 404)."""
        public_url = self.bot.settings.public_url
        if public_url is None or guild is None or not (await self.bot.service.guild_settings(str(guild.id))).public_gallery:
            return ""
        return f"\n<{result_page_url(public_url, job_id)}>"  # in <>: no preview under the result
