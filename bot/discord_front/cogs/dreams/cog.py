"""!dream, !visualize and !zoom and their slash twins: a job from the request to the posted result.

`ask` takes a request the way every path makes it (a prefix command, a slash command, a context
menu, a result's button): it checks the options and the inputs the kind takes before anything is
downloaded, downloads them with a cap and a timeout (inputs.py), has the service compile, price,
admit and queue the job, and acknowledges it. `follow` then edits the acknowledgement with the
job's progress and posts the result, fitted to the channel's upload limit, with its buttons
(buttons.py). A result Discord refuses stays to be posted later (delivery.py).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import discord
from discord.ext import commands

from core.clip_encoding import shrink_to_fit
from core.jobs import FILE_EXTENSIONS, ProgressEvent

from ....commands import HELP, JOB_COMMANDS, CommandError, Request, job_request, parse_words, split_words, wait_text
from ....service import Accepted, Denied, JobOutcome
from ....service.gallery import result_page_url
from ...client import error_line, post_nonce, requester_of, upload_limit
from .buttons import BUTTON_ID, RESULT_BUTTONS, Menus
from .delivery import Redelivery
from .inputs import ImageSource, InputRefused, check_attachment, download, find_image_urls, first_photo_of
from .slash import job_commands

if TYPE_CHECKING:
    from ...client import DreamBot

__all__ = ["Dreams", "Post", "refusal_line", "result_words", "what_came_out"]

log = logging.getLogger(__name__)

_UPLOAD_MARGIN = 1024  # bytes of a multipart upload that are not the file
_UPLOAD_TRIES = 3  # a 413 halves the limit and tries again, up to this many uploads
# Seconds a stopping bot waits for posts under way: within a service manager's usual stop timeout (90 s).
DELIVERY_DRAIN_SECONDS = 30.0
T = TypeVar("T")
# (content, file, view, nonce) -> the message; the nonce makes a repeated post return the first one
SendResult = Callable[[str, discord.File, discord.ui.View, str], Awaitable[discord.Message]]


@dataclass
class Post:
    """Where a job's messages go: `ack` is edited with progress, `send` posts the result."""

    ack: discord.Message
    send: SendResult
    upload_limit: int
    user_id: int  # mentioned in the result


class Dreams(commands.Cog):
    def __init__(self, bot: DreamBot):
        self.bot = bot
        self.redelivery = Redelivery(self)
        self.menus = Menus(self)
        self._tasks: set[asyncio.Task] = set()  # following jobs and the delivery sweep; cancelled on unload
        self._deliveries: set[asyncio.Task] = set()  # posts under way; finished on unload (see `unbroken`)

    async def cog_load(self) -> None:
        # The slash twins of !dream, !visualize and !zoom, typed option by option from core/params.py.
        self._slash = job_commands({kind: HELP[kind].summary for kind in JOB_COMMANDS}, self.run_typed)
        for command in (*self._slash, *self.menus.commands):
            self.bot.tree.add_command(command, override=True)
        self.spawn(self.redelivery.run())

    async def cog_unload(self) -> None:
        for command in self._slash:
            self.bot.tree.remove_command(command.name)
        for menu in self.menus.commands:
            self.bot.tree.remove_command(menu.name, type=menu.type)
        # Cancelled following leaves the jobs themselves to the service (they run on, or go back to the store).
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._deliveries:  # a post under way is finished and recorded, within a bound
            done, late = await asyncio.wait(self._deliveries, timeout=DELIVERY_DRAIN_SECONDS)
            for task in done:  # its caller was cancelled: nobody else sees how it ended
                if not task.cancelled() and task.exception() is not None:
                    log.error("a post under way when the bot stopped failed", exc_info=task.exception())
            for task in late:
                log.warning("stopped before a post finished; it will be posted again after a restart")
                task.cancel()

    async def unbroken(self, delivery: Awaitable[T]) -> T:
        """Await `delivery` (posting a result and recording where it went) to its end even when the
        caller is cancelled because the cog unloads: a result posted but not recorded would be posted
        again by the next process's sweep."""
        task = asyncio.ensure_future(delivery)
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)
        return await asyncio.shield(task)

    async def cog_command_error(self, ctx: commands.Context, error: commands.CommandError) -> None:
        await ctx.send(error_line(error))

    def spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task:
        """A task the cog keeps a reference to, and cancels when it unloads."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @commands.command(name="dream")
    async def dream(self, ctx: commands.Context, *, options: str = "") -> None:
        """Dream on a photo: attach it (a second one guides), e.g. !dream layer:deep strength:2"""
        await self._from_text(ctx, "dream", options, list(ctx.message.attachments))

    @commands.command(name="visualize", aliases=["visualise"])
    async def visualize(self, ctx: commands.Context, *, target: str = "") -> None:
        """Render an ImageNet class from noise, e.g. !visualize anemone fish"""
        await self._from_text(ctx, "visualize", target, [])

    @commands.command(name="zoom")
    async def zoom(self, ctx: commands.Context, *, options: str = "") -> None:
        """An endless zoom into a photo (or noise), e.g. !zoom frames:12 loop:seamless format:mp4"""
        await self._from_text(ctx, "zoom", options, list(ctx.message.attachments))

    async def _from_text(self, ctx: commands.Context, kind: str, options: str, attachments: list[discord.Attachment]) -> None:
        bot = self.bot
        try:
            rest, linked = find_image_urls(split_words(options) if options else [], bot.cdn_hosts)
            request = parse_words(kind, rest, bot.prefix_in(ctx.guild), defaults={"model": bot.settings.dream_model})
            sources = [check_attachment(a, bot.settings.max_input_bytes) for a in attachments] + linked
            if not sources and ctx.message.reference is not None:
                sources = first_photo_of(ctx.message.reference.resolved)
        except (CommandError, InputRefused) as exc:
            await ctx.reply(str(exc), mention_author=False)
            return
        await self.ask(ctx, request, sources)

    async def run_typed(self, interaction: discord.Interaction, kind: str, options: dict[str, Any],
                        attachments: list[discord.Attachment]) -> None:
        """A typed slash command: its options become the request the parser would have made."""
        ctx = await commands.Context.from_interaction(interaction)
        try:
            request = job_request(kind, options, self.bot.prefix_in(ctx.guild), defaults={"model": self.bot.settings.dream_model})
            sources = [check_attachment(a, self.bot.settings.max_input_bytes) for a in attachments]
        except (CommandError, InputRefused) as exc:
            await ctx.send(str(exc), ephemeral=True)
            return
        await self.ask(ctx, request, sources)

    async def ask(self, ctx: commands.Context, request: Request, sources: list[ImageSource]) -> None:
        """Check, download, admit and queue a job, acknowledge it, and follow it to its result."""
        bot = self.bot
        refused = bot.service.jobs.check(request, inputs=len(sources))
        if refused is not None:  # before anything is downloaded
            if refused.why == "missing_input":
                refused = Denied(f"attach a photo (or reply to one, or give a Discord image link); "
                                 f"e.g. {bot.prefix_in(ctx.guild)}dream layer:deep")
            await ctx.reply(refused.reason, mention_author=False)
            return
        if ctx.interaction is not None:
            await ctx.defer()  # downloading may take longer than an interaction's 3 s
        try:
            images = [await download(bot.http_session, s, max_bytes=bot.settings.max_input_bytes) for s in sources]
        except InputRefused as exc:
            await ctx.send(str(exc))
            return
        asked_in = ctx.message if ctx.interaction is None else None  # a slash command has no message of its own
        admitted = await bot.service.jobs.submit(request, requester_of(ctx.author, ctx.channel, asked_in), images=images)
        if not isinstance(admitted, Accepted):
            await ctx.send(refusal_line(admitted))
            return
        ack = await ctx.send(queued_words(admitted))
        if asked_in is None:
            await bot.service.jobs.answered_in(admitted.job_id, str(ack.id))
        # A reply that stays a plain message should the request be deleted meanwhile.
        reference = asked_in.to_reference(fail_if_not_exists=False) if asked_in is not None else None

        async def send(content: str, file: discord.File, view: discord.ui.View, nonce: str) -> discord.Message:
            if reference is not None:
                return await ctx.channel.send(content, file=file, view=view, reference=reference, mention_author=False,
                                              nonce=nonce)
            return await ctx.send(content, file=file, view=view, nonce=nonce)

        # "video" when the input was a clip: the kind the job runs as
        self.follow_job(admitted.job_id, admitted.spec.kind, ack, send, upload_limit(ctx.channel, ctx.interaction),
                        ctx.author.id)

    async def ask_again(self, interaction: discord.Interaction, request: Request, images: list[bytes]) -> None:
        """A job asked for from a button: admitted, acknowledged and followed as its answer."""
        admitted = await self.bot.service.jobs.submit(request, requester_of(interaction.user, interaction.channel), images=images)
        if not isinstance(admitted, Accepted):
            await interaction.response.send_message(refusal_line(admitted), ephemeral=True)
            return
        await interaction.response.send_message(queued_words(admitted))
        ack = await interaction.original_response()
        await self.bot.service.jobs.answered_in(admitted.job_id, str(ack.id))

        async def send(content: str, file: discord.File, view: discord.ui.View, nonce: str) -> discord.Message:
            # A followup takes no nonce; the delivery hold alone keeps it from being posted twice.
            return await interaction.followup.send(content, file=file, view=view, wait=True)

        self.follow_job(admitted.job_id, admitted.spec.kind, ack, send, upload_limit(interaction.channel, interaction),
                        interaction.user.id)

    def follow_job(self, job_id: int, kind: str, ack: discord.Message, send: SendResult, limit: int, user_id: int) -> None:
        """Follow a job in the background (the cog's task; the job itself is the service's)."""
        self.spawn(self.follow(job_id, kind, Post(ack, send, limit, user_id)))

    async def follow(self, job_id: int, kind: str, post: Post) -> None:
        """Edit the acknowledgement with progress until the job ends, then post its result or its error."""
        progress = ProgressMessage(post.ack, f"🌀 job #{job_id} ({kind})", interval=self.bot.progress_interval)
        try:
            outcome = await self.bot.service.jobs.follow(job_id, progress.update)
        finally:
            progress.stop()
        if outcome.status != "done" or outcome.result is None:
            await progress.finish(f"❌ job #{job_id}: {outcome.error}")
            return
        await self.unbroken(self._deliver(job_id, kind, outcome, post, progress))

    async def _deliver(self, job_id: int, kind: str, outcome: JobOutcome, post: Post, progress: ProgressMessage) -> None:
        """Post a finished job's result as a reply, and say on its acknowledgement how that went."""
        result = outcome.result
        assert result is not None, "only a job with a result is delivered"
        content = await self.result_text(job_id, post.user_id, getattr(post.ack, "guild", None), outcome.command,
                                         what_came_out(kind, result.metadata))
        try:
            async with self.bot.service.jobs.posting.holding(job_id):  # finishing took the hold; kept while posting
                await self.post_result(job_id, kind, content, result.data, result.mime_type, post.send, post.upload_limit)
        except (discord.HTTPException, aiohttp.ClientError) as exc:
            # Kept as finished, not posted: the delivery sweep posts it later.
            retry_in = await self.bot.service.delivery.failed(job_id, self.refusal_text(exc))
            log.warning("could not post job %s (%s); trying again in %.0f s", job_id, exc, retry_in)
            await progress.finish(f"⚠️ job #{job_id} finished, but Discord refused the result ({self.refusal_text(exc)}); "
                                  f"I will post it again in about {wait_text(retry_in)}")
            return
        await progress.finish(f"✅ job #{job_id} done in {result.timings.get('total', 0):.1f} s")

    async def post_result(self, job_id: int, kind: str, content: str, data: bytes, mime_type: str, send: SendResult,
                          limit: int) -> discord.Message:
        """Post a result with its buttons, within `limit` bytes, and record where it went. A result
        over the limit is re-encoded smaller; on HTTP 413 the limit halves and it is tried again.
        Raises discord.HTTPException or aiohttp.ClientError when Discord refuses it."""
        view = result_view(job_id, kind)
        for attempt in range(_UPLOAD_TRIES):
            fitted, fitted_type, note = data, mime_type, ""
            if len(data) + _UPLOAD_MARGIN > limit:
                fitted, fitted_type, note = await asyncio.to_thread(shrink_to_fit, data, mime_type, limit - _UPLOAD_MARGIN)
            file = discord.File(io.BytesIO(fitted), filename=f"{kind}-{job_id}.{FILE_EXTENSIONS[fitted_type]}")
            try:
                message = await send(content + (f"\n_{note}_" if note else ""), file, view, post_nonce(job_id))
                break
            except discord.HTTPException as exc:
                if exc.status != 413 or attempt == _UPLOAD_TRIES - 1:
                    raise
                limit = min(limit, len(fitted)) // 2
                self.bot.service.metrics.uploads_retried.inc()
        await self.bot.service.jobs.posted(job_id, message.jump_url, channel_id=str(message.channel.id),
                                           in_guild=message.guild is not None)
        return message

    async def result_text(self, job_id: int, user_id: int, guild: discord.Guild | None, command: str | None,
                          extra: str = "") -> str:
        """A result post's words (result_words) with the server's prefix, and the line of its page on
        the web gallery when there is one to link: PUBLIC_URL is set and the server publishes its
        gallery (elsewhere the page would be a 404)."""
        page, public_url = "", self.bot.settings.public_url
        if public_url is not None and guild is not None and (await self.bot.service.guilds.get(str(guild.id))).public_gallery:
            page = f"\n<{result_page_url(public_url, job_id)}>"  # in <>: no preview under the result
        return result_words(job_id, user_id, self.bot.prefix_in(guild) + command if command else None, extra, page)

    @staticmethod
    def refusal_text(error: Exception) -> str:
        """Why Discord refused a post, in a few words: 'HTTP 503' or the connection error's name."""
        return f"HTTP {error.status}" if isinstance(error, discord.HTTPException) else type(error).__name__


class ProgressMessage:
    """Edits `message` with the latest progress at most once every `interval` seconds: events
    arrive faster than Discord allows edits, so the latest wins and the bot never queues edits."""

    def __init__(self, message: discord.Message, title: str, *, interval: float = 2.0):
        self.message, self.title, self.interval = message, title, interval
        self._last_edit = 0.0
        self._pending: ProgressEvent | None = None
        self._flusher: asyncio.Task | None = None

    async def update(self, event: ProgressEvent) -> None:
        self._pending = event
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        wait = self._last_edit + self.interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        event, self._pending = self._pending, None
        if event is None:
            return
        self._last_edit = time.monotonic()
        await self._edit(f"{self.title}\nencoding the result…" if event.stage == "encode"
                         else f"{self.title}\n`{progress_bar(event.fraction)}` {event.stage}")

    def stop(self) -> None:
        """Drop any pending edit (the job ended, or the bot is closing)."""
        if self._flusher is not None:
            self._flusher.cancel()

    async def finish(self, text: str) -> None:
        self.stop()
        await self._edit(text)

    async def _edit(self, text: str) -> None:
        try:
            await self.message.edit(content=text)
        except (discord.HTTPException, aiohttp.ClientError, RuntimeError) as exc:
            log.warning("progress edit failed: %s", exc)  # a failed edit (or one while closing) never fails the job


def progress_bar(fraction: float, width: int = 16) -> str:
    """'████████░░░░░░░░ 50%' for the job's whole fraction."""
    percent = min(100, int(100 * fraction))
    filled = width * percent // 100
    return "█" * filled + "░" * (width - filled) + f" {percent}%"


def result_view(job_id: int, kind: str) -> discord.ui.View:
    """The buttons under a result: each a DynamicItem whose custom_id names the job, so they work
    after a restart and no view is kept in memory per message."""
    view = discord.ui.View(timeout=None)
    for action, item, label, emoji, style in RESULT_BUTTONS:
        if action != "deeper" or kind in ("dream", "visualize"):
            button = discord.ui.Button(custom_id=BUTTON_ID.format(action=action, job=job_id), label=label, emoji=emoji, style=style)
            view.add_item(item(button))
    return view


def queued_words(admitted: Accepted) -> str:
    return f"🌀 job #{admitted.job_id} ({admitted.spec.kind}) queued: {admitted.summary}"


def refusal_line(denied: Denied) -> str:
    """A refused job's one line: marked as a wait only when waiting lets the same request through."""
    return f"⏳ {denied.reason}" if denied.passes_with_time else denied.reason


def what_came_out(kind: str, metadata: dict) -> str:
    """' — seen as banana with p=0.998' or ' — 24 frames as WEBP': how a result turned out ("" for nothing to say)."""
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
