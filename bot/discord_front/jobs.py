"""Running a job for Discord: inputs -> admission -> acknowledgement -> progress -> result post.

`JobPresenter` is shared by the commands, the buttons and restart recovery, so every path posts
the same way. Buttons carry their job id in `custom_id` (DynamicItem), so they survive restarts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable

import discord
from discord.ext import commands

from core.jobs import JobSpec
from core.params import PARAMS_BY_KIND, as_dict

from ..commands import SEED_MAX, CommandError, Request, parse_command
from ..service import Accepted, JobOutcome, Requester
from ..store import JobRecord
from .attachments import ImageSource, InputRefused, check_attachment, download, find_image_urls
from .progress import ProgressMessage
from .upload import send_fitted

if TYPE_CHECKING:
    from .client import DreamBot

__all__ = ["JobPresenter", "button_classes", "requester_of", "reproduce_command"]

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # outside a guild (DMs)
Send = Callable[..., Awaitable[discord.Message]]


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


def reproduce_command(kind: str, params: dict, seed: int, prefix: str) -> str:
    """The shortest command that gives the same result: non-default options plus the seed."""
    defaults = as_dict(PARAMS_BY_KIND[kind]())
    parts = [f"{prefix}{kind}"]
    for key, value in params.items():
        if key == "target":
            continue
        if defaults.get(key) != value:
            shown = ",".join(map(str, value)) if isinstance(value, list) else value
            parts.append(f"{key}:{shlex.quote(str(shown))}")
    if kind == "visualize":
        parts.insert(1, str(params["target"]))
    parts.append(f"seed:{seed}")
    return " ".join(parts)


@dataclass
class _Post:
    """Where a job's messages go: `ack` is edited with progress, `send` posts the result."""

    ack: discord.Message
    send: Send
    upload_limit: int


class JobPresenter:
    def __init__(self, bot: DreamBot):
        self.bot = bot

    # -- from a command ----------------------------------------------------------------------------

    async def from_context(self, ctx: commands.Context, kind: str, options: str, attachments: list[discord.Attachment]) -> None:
        prefix = self.bot.prefix_in(ctx.guild)
        try:
            words = shlex.split(options) if options else []
        except ValueError:
            words = options.split()
        try:
            rest, url_sources = find_image_urls(words, self.bot.cdn_hosts)
            request = parse_command(" ".join([prefix + kind] + [shlex.quote(w) for w in rest]), prefix,
                                    defaults={"model": self.bot.settings.dream_model})
            sources = [check_attachment(a, self.bot.max_input_bytes) for a in attachments] + url_sources
            if not sources and ctx.message.reference is not None:
                sources = self._sources_of_reply(ctx.message.reference.resolved)
        except (CommandError, InputRefused) as exc:
            await ctx.reply(str(exc), mention_author=False)
            return
        assert request is not None and request.is_job
        if kind == "dream" and not sources:
            await ctx.reply(f"attach a photo (or reply to one, or give a Discord image link); e.g. {prefix}dream layer:deep",
                            mention_author=False)
            return
        if len(sources) > (2 if kind == "dream" else 1 if kind == "zoom" else 0):
            await ctx.reply(f"too many images for {prefix}{kind}", mention_author=False)
            return
        if ctx.interaction is not None:
            await ctx.defer()  # downloading may take longer than an interaction's 3 s
        try:
            inputs = [await download(self.bot.http_session, s, max_bytes=self.bot.max_input_bytes) for s in sources]
        except InputRefused as exc:
            await ctx.send(str(exc))
            return
        image, guide = (inputs + [None, None])[:2]
        requester = requester_of(ctx.author, ctx.channel)
        admitted = await self.bot.service.submit(request, requester, image=image, guide=guide)
        if not isinstance(admitted, Accepted):
            await ctx.send(f"⏳ {admitted.reason}")
            return
        ack = await ctx.send(self._queued_text(admitted))
        reference = ctx.message if ctx.interaction is None else None

        async def send(content: str, file: discord.File, view: discord.ui.View) -> discord.Message:
            if reference is not None:
                return await ctx.channel.send(content, file=file, view=view, reference=reference, mention_author=False)
            return await ctx.send(content, file=file, view=view)

        # A task the bot owns: closing the bot cancels it, which leaves the job for the next start.
        await self.bot.spawn(self._run(admitted.job_id, admitted.spec, _Post(ack, send, self._limit(ctx.channel)), ctx.author.id))

    @staticmethod
    def _sources_of_reply(message: object) -> list[ImageSource]:
        if not isinstance(message, discord.Message):
            return []
        return [ImageSource(a.url, a.filename, a.size, a.content_type) for a in message.attachments
                if (a.content_type or "").startswith("image/")][:1]

    # -- from a button -----------------------------------------------------------------------------

    async def from_button(self, interaction: discord.Interaction, record: JobRecord, *, deeper: bool) -> None:
        if deeper:
            if not record.result_location or not Path(record.result_location).is_file():
                await interaction.response.send_message("that result is no longer stored, so I cannot dream deeper", ephemeral=True)
                return
            image = await asyncio.to_thread(Path(record.result_location).read_bytes)
            params = dict(record.params) if record.kind == "dream" else {"model": record.params.get("model")}
            request = Request("dream", params, seed=random.randint(0, SEED_MAX))
            guide = None
        else:
            image, guide = record.image, record.guide
            request = Request(record.kind, dict(record.params), seed=random.randint(0, SEED_MAX))
        requester = requester_of(interaction.user, interaction.channel)
        admitted = await self.bot.service.submit(request, requester, image=image, guide=guide)
        if not isinstance(admitted, Accepted):
            await interaction.response.send_message(f"⏳ {admitted.reason}", ephemeral=True)
            return
        await interaction.response.send_message(self._queued_text(admitted))
        ack = await interaction.original_response()

        async def send(content: str, file: discord.File, view: discord.ui.View) -> discord.Message:
            return await interaction.followup.send(content, file=file, view=view, wait=True)

        post = _Post(ack, send, self._limit(interaction.channel))
        await self.bot.spawn(self._run(admitted.job_id, admitted.spec, post, interaction.user.id))

    # -- after a restart ---------------------------------------------------------------------------

    async def recover(self) -> None:
        """Re-run Discord jobs that the last process left unfinished and tell their channel."""
        for record in await self.bot.service.recover():
            if record.user_id.startswith("console:") or record.channel_id is None:
                continue
            channel = self.bot.get_channel(int(record.channel_id))
            if channel is None:
                try:
                    channel = await self.bot.fetch_channel(int(record.channel_id))
                except discord.HTTPException:
                    await self.bot.store.fail_job(record.id, "its channel is gone")
                    continue
            ack = await channel.send(f"🔁 <@{record.user_id}>, job #{record.id} ({record.kind}) was interrupted by a restart; running it again")

            async def send(content: str, file: discord.File, view: discord.ui.View, channel=channel) -> discord.Message:
                return await channel.send(content, file=file, view=view)

            self.bot.spawn(self._run(record.id, record.to_spec(), _Post(ack, send, self._limit(channel)), int(record.user_id)))

    # -- shared ------------------------------------------------------------------------------------

    @staticmethod
    def _queued_text(admitted: Accepted) -> str:
        ahead = f", {admitted.ahead} ahead of it" if admitted.ahead else ""
        return f"🌀 job #{admitted.job_id} ({admitted.spec.kind}) queued{ahead}"

    @staticmethod
    def _limit(channel: object) -> int:
        guild = getattr(channel, "guild", None)
        return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT

    async def _run(self, job_id: int, spec: JobSpec, post: _Post, user_id: int) -> JobOutcome:
        title = f"🌀 job #{job_id} ({spec.kind})"
        progress = ProgressMessage(post.ack, title, interval=self.bot.progress_interval)
        try:
            outcome = await self.bot.service.run(job_id, spec, progress.update)
        finally:
            progress.stop()
        if outcome.status != "done" or outcome.result is None:
            await progress.finish(f"❌ job #{job_id}: {outcome.error}")
            return outcome
        result = outcome.result
        prefix = self.bot.prefix_in(getattr(post.ack, "guild", None))
        command = reproduce_command(spec.kind, result.metadata["params"], spec.seed, prefix)
        extra = ""
        if "probability" in result.metadata:
            extra = f" — seen as {result.metadata['class_name']} with p={result.metadata['probability']:.3f}"
        content = f"<@{user_id}> job #{job_id}{extra}\n`{command}`"
        view = result_view(job_id, spec.kind)

        async def send(file: discord.File, note: str) -> discord.Message:
            return await post.send(content + (f"\n_{note}_" if note else ""), file, view)

        try:
            message, _ = await send_fitted(send, result.data, result.mime_type, f"{spec.kind}-{job_id}", post.upload_limit)
        except discord.HTTPException as exc:
            log.warning("could not post job %s: %s", job_id, exc)
            await progress.finish(f"❌ job #{job_id} finished but Discord refused the upload (HTTP {exc.status})")
            return outcome
        await self.bot.store.set_result_message_link(job_id, message.jump_url)
        if message.guild is not None:
            await self.bot.store.add_gallery_entry(job_id, message.jump_url, channel_id=str(message.channel.id))
        await progress.finish(f"✅ job #{job_id} done in {result.timings.get('total', 0):.1f} s")
        return outcome


# -- buttons ---------------------------------------------------------------------------------------


def result_view(job_id: int, kind: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(RerollButton(job_id))
    if kind in ("dream", "visualize"):
        view.add_item(DeeperButton(job_id))
    view.add_item(LikeButton(job_id))
    view.add_item(DeleteButton(job_id))
    return view


class _JobButton:
    """Shared parts of the result buttons; each subclass is also a DynamicItem with a template."""

    action = ""

    def __init__(self, job_id: int, **button):
        super().__init__(discord.ui.Button(custom_id=f"dream:{self.action}:{job_id}", **button))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /):
        return cls(int(match["job"]))

    async def _record(self, interaction: discord.Interaction) -> JobRecord | None:
        record = await interaction.client.store.get_job(self.job_id)  # type: ignore[attr-defined]
        if record is None:
            await interaction.response.send_message("that job is no longer known", ephemeral=True)
        return record


class RerollButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button], template=r"dream:reroll:(?P<job>\d+)"):
    action = "reroll"

    def __init__(self, job_id: int):
        super().__init__(job_id, label="Re-roll", emoji="🎲", style=discord.ButtonStyle.secondary)

    async def callback(self, interaction: discord.Interaction) -> None:
        if (record := await self._record(interaction)) is not None:
            await interaction.client.presenter.from_button(interaction, record, deeper=False)  # type: ignore[attr-defined]


class DeeperButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button], template=r"dream:deeper:(?P<job>\d+)"):
    action = "deeper"

    def __init__(self, job_id: int):
        super().__init__(job_id, label="Dream deeper", emoji="🌀", style=discord.ButtonStyle.primary)

    async def callback(self, interaction: discord.Interaction) -> None:
        if (record := await self._record(interaction)) is not None:
            await interaction.client.presenter.from_button(interaction, record, deeper=True)  # type: ignore[attr-defined]


class LikeButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button], template=r"dream:like:(?P<job>\d+)"):
    action = "like"

    def __init__(self, job_id: int):
        super().__init__(job_id, label="Like", emoji="⭐", style=discord.ButtonStyle.success)

    async def callback(self, interaction: discord.Interaction) -> None:
        bot = interaction.client
        if interaction.guild is None or interaction.message is None:
            await interaction.response.send_message("likes count on servers only", ephemeral=True)
            return
        entry_id = await bot.store.add_gallery_entry(  # type: ignore[attr-defined]
            self.job_id, interaction.message.jump_url, channel_id=str(interaction.channel_id)
        )
        liked = await bot.store.like(entry_id, str(interaction.user.id))  # type: ignore[attr-defined]
        text = f"⭐ liked ({liked.likes} likes)" if liked.added else f"you already liked this ({liked.likes} likes)"
        await interaction.response.send_message(text, ephemeral=True)
        if liked.added:
            await bot.get_cog("Community").maybe_feature(interaction.guild, interaction.message, liked.likes)  # type: ignore[union-attr]


class DeleteButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button], template=r"dream:delete:(?P<job>\d+)"):
    action = "delete"

    def __init__(self, job_id: int):
        super().__init__(job_id, label="Delete", emoji="🗑️", style=discord.ButtonStyle.danger)

    async def callback(self, interaction: discord.Interaction) -> None:
        record = await self._record(interaction)
        if record is None:
            return
        requester = requester_of(interaction.user, interaction.channel)
        if record.user_id != requester.user_id and not requester.is_moderator:
            await interaction.response.send_message("only the person who asked, or a moderator, can delete this", ephemeral=True)
            return
        await interaction.response.defer()
        if interaction.message is not None:
            await interaction.message.delete()


def button_classes() -> tuple[type[discord.ui.DynamicItem], ...]:
    return (RerollButton, DeeperButton, LikeButton, DeleteButton)
