"""!dream, !visualize and !zoom, the buttons under their results, and re-running jobs after a restart.

The cog gathers a job's inputs (options, attachments, a replied-to photo, CDN links), asks the
service to compile, price and admit it, and hands the presenter the job to show. Buttons carry
their job id in `custom_id` (DynamicItem), so they keep working after a restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from core.params import DreamParams

from ...commands import HELP, JOB_COMMANDS, CommandError, Request, job_request, parse_words, split_words
from ...console import CONSOLE_USER_PREFIX
from ...service import Accepted, Denied
from ...store import JobRecord
from ..attachments import ImageSource, InputRefused, check_attachment, download, find_image_urls
from ..delivery import ResultDelivery
from ..presenter import JobPresenter, Post, reply_reference, requester_of, upload_limit
from ..typed_options import job_commands

if TYPE_CHECKING:
    from ..client import DreamBot

__all__ = ["Dreams", "result_view", "refusal_line"]

log = logging.getLogger(__name__)

# "Dream deeper" adds an iteration up to the most a dream takes (core/params.py holds the range).
MOST_ITERATIONS = int(next(f.metadata["hi"] for f in dataclasses.fields(DreamParams) if f.name == "iterations"))

STAR = "\N{WHITE MEDIUM STAR}"  # the reaction that counts as a like


class Dreams(commands.Cog):
    def __init__(self, bot: DreamBot):
        self.bot = bot
        self.presenter = JobPresenter(bot, result_view)
        self.delivery = ResultDelivery(bot, self.presenter, self._takes_back)
        # Right-click > Apps. Context menus cannot be declared in a cog's body, so they are made here.
        self._menus = (
            app_commands.ContextMenu(name="Dream this", callback=self.dream_this),
            app_commands.ContextMenu(name="Dream deeper", callback=self.dream_deeper),
            app_commands.ContextMenu(name="Dream avatar", callback=self.dream_avatar),
        )

    async def cog_load(self) -> None:
        # Buttons encode their job in custom_id, so they keep working after a restart.
        self.bot.add_dynamic_items(*_BUTTONS)
        self.bot.spawn(self._recover_after_ready())
        self.bot.spawn(self.delivery.run_forever())  # results Discord refused, this run or the last
        # The slash twins of !dream, !visualize and !zoom, typed option by option from core/params.py.
        lines = {kind: HELP[kind].summary for kind in JOB_COMMANDS}
        self._slash = job_commands(lines, self.run_typed)
        for command in (*self._slash, *self._menus):
            self.bot.tree.add_command(command, override=True)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(*_BUTTONS)
        for command in self._slash:
            self.bot.tree.remove_command(command.name)
        for menu in self._menus:
            self.bot.tree.remove_command(menu.name, type=menu.type)

    @commands.command(name="dream")
    async def dream(self, ctx: commands.Context, *, options: str = "") -> None:
        """Dream on a photo: attach it (a second one guides), e.g. !dream layer:deep strength:2"""
        # Prefix only (the slash form is typed_options'): every attachment, in the order attached.
        await self._start(ctx, "dream", options, list(ctx.message.attachments))

    @commands.command(name="visualize", aliases=["visualise"])
    async def visualize(self, ctx: commands.Context, *, target: str = "") -> None:
        """Render an ImageNet class from noise, e.g. !visualize anemone fish"""
        await self._start(ctx, "visualize", target, [])

    @commands.command(name="zoom")
    async def zoom(self, ctx: commands.Context, *, options: str = "") -> None:
        """An endless zoom into a photo (or noise), e.g. !zoom frames:12 loop:seamless format:mp4"""
        await self._start(ctx, kind="zoom", options=options, attachments=list(ctx.message.attachments))

    # -- from a command ------------------------------------------------------------------------------

    async def _start(self, ctx: commands.Context, kind: str, options: str, attachments: list[discord.Attachment]) -> None:
        bot = self.bot
        prefix = bot.prefix_in(ctx.guild)
        try:
            rest, url_sources = find_image_urls(split_words(options) if options else [], bot.cdn_hosts)
            request = parse_words(kind, rest, prefix, defaults={"model": bot.settings.dream_model})
            sources = [check_attachment(a, bot.max_input_bytes) for a in attachments] + url_sources
            if not sources and ctx.message.reference is not None:
                sources = _first_photo_of(ctx.message.reference.resolved)
        except (CommandError, InputRefused) as exc:
            await ctx.reply(str(exc), mention_author=False)
            return
        await self._admit_and_follow(ctx, request, sources)

    async def run_typed(self, interaction: discord.Interaction, kind: str, options: dict[str, Any],
                        attachments: list[discord.Attachment]) -> None:
        """A typed slash command: its options become the request the parser would have made."""
        ctx = await commands.Context.from_interaction(interaction)
        try:
            request = job_request(kind, options, self.bot.prefix_in(ctx.guild), defaults={"model": self.bot.settings.dream_model})
            sources = [check_attachment(a, self.bot.max_input_bytes) for a in attachments]
        except (CommandError, InputRefused) as exc:
            await ctx.send(str(exc), ephemeral=True)
            return
        await self._admit_and_follow(ctx, request, sources)

    # -- from a context menu (Apps) ------------------------------------------------------------------

    async def dream_this(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """The default dream on the first photo of a message."""
        await self._dream_from_menu(interaction, _first_photo_of(message), {})

    async def dream_deeper(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """On a result: what its Dream deeper button does. On any other photo: a dream with the deep preset."""
        # The link as the store recorded it (a resolved message may not know its guild).
        link = discord.MessageReference(message_id=message.id, channel_id=message.channel.id, guild_id=interaction.guild_id).jump_url
        job_id = await self.bot.service.job_posted_in(link)
        record = await self.bot.service.job(job_id) if job_id is not None else None
        if record is not None and record.kind in ("dream", "visualize"):
            await self.again(interaction, record, deeper=True)
            return
        await self._dream_from_menu(interaction, _first_photo_of(message), {"layer": "deep"})

    async def dream_avatar(self, interaction: discord.Interaction, user: discord.User | discord.Member) -> None:
        """The default dream on someone's avatar (as shown on this server)."""
        avatar = user.display_avatar.replace(format="png", size=512)
        await self._dream_from_menu(interaction, [ImageSource(avatar.url, f"{user.name}-avatar.png", None, "image/png")], {})

    async def _dream_from_menu(self, interaction: discord.Interaction, sources: list[ImageSource],
                               options: dict[str, Any]) -> None:
        ctx = await commands.Context.from_interaction(interaction)
        if not sources:
            await ctx.send("that message has no photo to dream on", ephemeral=True)
            return
        request = job_request("dream", options, self.bot.prefix_in(ctx.guild), defaults={"model": self.bot.settings.dream_model})
        await self._admit_and_follow(ctx, request, sources)

    async def _admit_and_follow(self, ctx: commands.Context, request: Request, sources: list[ImageSource]) -> None:
        """Check, download, admit and queue a job, acknowledge it, and follow it to its result."""
        bot = self.bot
        kind, prefix = request.name, bot.prefix_in(ctx.guild)
        if (refused := bot.service.check(request)) is not None:
            await ctx.reply(refused.reason, mention_author=False)  # before anything is downloaded
            return
        if kind == "dream" and not sources:
            await ctx.reply(f"attach a photo (or reply to one, or give a Discord image link); e.g. {prefix}dream layer:deep",
                            mention_author=False)
            return
        if ctx.interaction is not None:
            await ctx.defer()  # downloading may take longer than an interaction's 3 s
        try:
            images = [await download(bot.http_session, s, max_bytes=bot.max_input_bytes) for s in sources]
        except InputRefused as exc:
            await ctx.send(str(exc))
            return
        asked_in = ctx.message if ctx.interaction is None else None  # a slash command has no message of its own
        admitted = await bot.service.submit(request, requester_of(ctx.author, ctx.channel, asked_in), images=images)
        if not isinstance(admitted, Accepted):
            await ctx.send(refusal_line(admitted))
            return
        ack = await ctx.send(self.presenter.queued_text(admitted))
        if asked_in is None:
            await bot.service.acknowledged(admitted.job_id, str(ack.id))
        # A reply that stays a plain message should the request be deleted meanwhile.
        reference = asked_in.to_reference(fail_if_not_exists=False) if asked_in is not None else None

        async def send(content: str, file: discord.File, view: discord.ui.View) -> discord.Message:
            if reference is not None:
                return await ctx.channel.send(content, file=file, view=view, reference=reference, mention_author=False)
            return await ctx.send(content, file=file, view=view)

        # A task the bot owns: closing the bot stops following; the job itself is the service's.
        post = Post(ack, send, upload_limit(ctx.channel), ctx.author.id)
        bot.spawn(self.presenter.follow(admitted.job_id, admitted.spec.kind, post))  # "video" when the input was a clip

    # -- from a button -------------------------------------------------------------------------------

    async def again(self, interaction: discord.Interaction, record: JobRecord, *, deeper: bool) -> None:
        """Re-roll a result with a new seed, or dream one iteration deeper (a render: dream on it)."""
        if deeper and record.kind == "dream":
            # The same job with one more pass, seed included: its params and reproduce command stay
            # true to what was run (`!dream iterations:N+1 seed:S` on the photo), at the price of
            # redoing the earlier passes.
            iterations = int(record.params.get("iterations", 1)) + 1
            if iterations > MOST_ITERATIONS:
                await interaction.response.send_message(
                    f"that dream is already {MOST_ITERATIONS} iterations deep, the most there is; try a zoom to go on", ephemeral=True)
                return
            images = [i for i in (record.image, record.guide) if i is not None]
            request = Request("dream", dict(record.params) | {"iterations": iterations}, seed=record.seed)
        elif deeper:
            if not record.result_location or not Path(record.result_location).is_file():
                await interaction.response.send_message("that result is no longer stored, so I cannot dream deeper", ephemeral=True)
                return
            images = [await asyncio.to_thread(Path(record.result_location).read_bytes)]
            request = Request("dream", {"model": record.params.get("model")})
        else:
            images = [i for i in (record.image, record.guide) if i is not None]
            # Users ask for a dream on a clip; the compiler makes it a "video" job again from the clip.
            request = Request("dream" if record.kind == "video" else record.kind, dict(record.params))
        admitted = await self.bot.service.submit(request, requester_of(interaction.user, interaction.channel), images=images)
        if not isinstance(admitted, Accepted):
            await interaction.response.send_message(refusal_line(admitted), ephemeral=True)
            return
        await interaction.response.send_message(self.presenter.queued_text(admitted))
        ack = await interaction.original_response()
        await self.bot.service.acknowledged(admitted.job_id, str(ack.id))

        async def send(content: str, file: discord.File, view: discord.ui.View) -> discord.Message:
            return await interaction.followup.send(content, file=file, view=view, wait=True)

        post = Post(ack, send, upload_limit(interaction.channel), interaction.user.id)
        self.bot.spawn(self.presenter.follow(admitted.job_id, admitted.spec.kind, post))

    async def like(self, interaction: discord.Interaction, job_id: int) -> None:
        if interaction.guild is None or interaction.message is None:
            await interaction.response.send_message("likes count on servers only", ephemeral=True)
            return
        liked = await self.bot.service.like(job_id, interaction.message.jump_url, channel_id=str(interaction.channel_id),
                                            user_id=str(interaction.user.id))
        if isinstance(liked, Denied):
            await interaction.response.send_message(liked.reason, ephemeral=True)
            return
        text = f"⭐ liked ({liked.likes} likes)" if liked.added else f"you already liked this ({liked.likes} likes)"
        await interaction.response.send_message(text, ephemeral=True)
        community = self.bot.community
        if liked.added and community is not None:
            await community.maybe_feature(interaction.guild, interaction.message, liked.likes)

    # -- ⭐ reactions: a like by another way, under the Like button's rules ------------------------

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        # Raw events: results posted before a restart are not in the message cache.
        assert self.bot.user is not None, "reactions arrive once the bot is logged in"
        if payload.message_author_id != self.bot.user.id or (job_id := await self._starred_result(payload)) is None:
            return
        link = _message_link(payload)
        liked = await self.bot.service.like(job_id, link, channel_id=str(payload.channel_id), user_id=str(payload.user_id))
        guild = self.bot.get_guild(payload.guild_id or 0)
        community = self.bot.community
        if isinstance(liked, Denied) or not liked.added or community is None or guild is None:
            return  # a reaction cannot be answered privately: refusals stay silent
        channel = guild.get_channel_or_thread(payload.channel_id)
        if isinstance(channel, discord.abc.Messageable):
            await community.maybe_feature(guild, await channel.fetch_message(payload.message_id), liked.likes)

    @commands.Cog.listener()
    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        if (job_id := await self._starred_result(payload)) is not None:
            await self.bot.service.unlike(job_id, str(payload.user_id))

    async def _starred_result(self, payload: discord.RawReactionActionEvent) -> int | None:
        """The job of the result someone else than the bot starred on a server, else None."""
        assert self.bot.user is not None, "reactions arrive once the bot is logged in"
        if str(payload.emoji) != STAR or payload.guild_id is None or payload.user_id == self.bot.user.id:
            return None
        return await self.bot.service.job_posted_in(_message_link(payload))

    # -- after a restart -----------------------------------------------------------------------------

    async def _recover_after_ready(self) -> None:
        await self.bot.wait_until_ready()
        await self._rerun_all(await self.bot.service.recover(self._takes_back, on_adopted=self._rerun_all))

    def _takes_back(self, record: JobRecord) -> bool:
        # With several sharded processes, a guild's unfinished jobs go back to the process holding
        # its shard (shard 0 for DMs): the one that has its channels cached and hears its commands
        # and buttons, so each guild is only ever answered by one process.
        guild_id = int(record.guild_id) if record.guild_id is not None else None
        return _is_discord_job(record) and self.bot.holds_guild(guild_id)

    async def _rerun_all(self, records: list[JobRecord]) -> None:
        # Called at start and whenever the service adopts jobs whose process died since.
        for record in records:
            await self._rerun(record)

    async def _rerun(self, record: JobRecord) -> None:
        assert record.channel_id is not None, "_takes_back keeps only jobs with a channel"
        channel = self.bot.get_channel(int(record.channel_id))
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(int(record.channel_id))
            except discord.HTTPException:
                await self.bot.service.give_up(record.id, "its channel is gone")
                return
        # Replies to what asked for it, as before the restart; plain messages if that is deleted.
        reference = reply_reference(record)
        ack = await channel.send(f"🔁 <@{record.user_id}>, job #{record.id} ({record.kind}) was interrupted by a restart; running it again",
                                 reference=reference, mention_author=False)  # type: ignore[arg-type]

        async def send(content: str, file: discord.File, view: discord.ui.View) -> discord.Message:
            return await channel.send(content, file=file, view=view, reference=reference, mention_author=False)  # type: ignore[arg-type]

        self.bot.spawn(self.presenter.follow(record.id, record.kind, Post(ack, send, upload_limit(channel), int(record.user_id))))


def refusal_line(denied: Denied) -> str:
    """A refused job's one line: marked as a wait only when waiting lets the same request through."""
    return f"⏳ {denied.reason}" if denied.passes_with_time else denied.reason


def _message_link(payload: discord.RawReactionActionEvent) -> str:
    """The message's link as discord.py writes `Message.jump_url`, which is what the store recorded."""
    return discord.MessageReference(message_id=payload.message_id, channel_id=payload.channel_id,
                                    guild_id=payload.guild_id).jump_url


def _is_discord_job(record: JobRecord) -> bool:
    return not record.user_id.startswith(CONSOLE_USER_PREFIX) and record.channel_id is not None


def _first_photo_of(message: object) -> list[ImageSource]:
    if not isinstance(message, discord.Message):
        return []
    return [ImageSource(a.url, a.filename, a.size, a.content_type) for a in message.attachments
            if (a.content_type or "").startswith(("image/", "video/"))][:1]


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

    @staticmethod
    def _cog(interaction: discord.Interaction) -> Dreams:
        cog = interaction.client.dreams  # type: ignore[attr-defined]
        assert cog is not None, "the result buttons are registered by the Dreams cog, so it is loaded"
        return cog

    async def _record(self, interaction: discord.Interaction) -> JobRecord | None:
        record = await self._cog(interaction).bot.service.job(self.job_id)
        if record is None:
            await interaction.response.send_message("that job is no longer known", ephemeral=True)
        return record


class RerollButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button], template=r"dream:reroll:(?P<job>\d+)"):
    action = "reroll"

    def __init__(self, job_id: int):
        super().__init__(job_id, label="Re-roll", emoji="🎲", style=discord.ButtonStyle.secondary)

    async def callback(self, interaction: discord.Interaction) -> None:
        if (record := await self._record(interaction)) is not None:
            await self._cog(interaction).again(interaction, record, deeper=False)


class DeeperButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button], template=r"dream:deeper:(?P<job>\d+)"):
    action = "deeper"

    def __init__(self, job_id: int):
        super().__init__(job_id, label="Dream deeper", emoji="🌀", style=discord.ButtonStyle.primary)

    async def callback(self, interaction: discord.Interaction) -> None:
        if (record := await self._record(interaction)) is not None:
            await self._cog(interaction).again(interaction, record, deeper=True)


class LikeButton(_JobButton, discord.ui.DynamicItem[discord.ui.Button], template=r"dream:like:(?P<job>\d+)"):
    action = "like"

    def __init__(self, job_id: int):
        super().__init__(job_id, label="Like", emoji="⭐", style=discord.ButtonStyle.success)

    async def callback(self, interaction: discord.Interaction) -> None:
        await self._cog(interaction).like(interaction, self.job_id)


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


_BUTTONS = (RerollButton, DeeperButton, LikeButton, DeleteButton)


async def setup(bot: DreamBot) -> None:
    await bot.add_cog(Dreams(bot))
