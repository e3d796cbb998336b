"""The Bot subclass: resources are injected, cogs loaded in `setup_hook`, no globals.

`make_bot` picks the plain bot, or its sharded twin when SHARD_COUNT is set.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp
import discord
from discord.ext import commands

from ..commands import CommandError, parse_command
from ..service import DreamService
from ..settings import Settings
from .attachments import CDN_HOSTS
from .sharding import shard_of

if TYPE_CHECKING:
    from .cogs.community import Community
    from .cogs.dreams import Dreams

__all__ = ["DreamBot", "ShardedDreamBot", "EXTENSIONS", "make_bot"]

log = logging.getLogger(__name__)

EXTENSIONS = ("bot.discord_front.cogs.dreams", "bot.discord_front.cogs.info", "bot.discord_front.cogs.community")


class DreamBot(commands.Bot):
    def __init__(
        self,
        *,
        service: DreamService,
        settings: Settings,
        http_session: aiohttp.ClientSession,
        cdn_hosts: tuple[str, ...] = CDN_HOSTS,
        progress_interval: float = 2.0,
        delivery_interval: float = 15.0,
        **options,
    ):
        intents = discord.Intents.default()
        intents.message_content = True  # prefix commands read the text of messages
        super().__init__(
            command_prefix=self._prefix_for,
            intents=intents,
            help_command=None,
            # Nothing the bot echoes can ping anyone: no @everyone, @here, roles or users.
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.service, self.settings = service, settings
        self.http_session = http_session
        self.cdn_hosts = cdn_hosts
        self.max_input_bytes = settings.max_input_bytes
        self.progress_interval = progress_interval
        self.delivery_interval = delivery_interval  # seconds between sweeps for results still to post
        self.prefixes: dict[int, str] = {}  # guild id -> prefix, filled from the store on demand
        self._background: set[asyncio.Task] = set()

    async def _prefix_for(self, bot: commands.Bot, message: discord.Message) -> list[str]:
        prefix = self.settings.command_prefix
        if message.guild is not None:
            if message.guild.id not in self.prefixes:
                guild = await self.service.guild_settings(str(message.guild.id))
                self.prefixes[message.guild.id] = guild.prefix or self.settings.command_prefix
            prefix = self.prefixes[message.guild.id]
        return commands.when_mentioned_or(prefix)(bot, message)

    def holds_guild(self, guild_id: int | None) -> bool:
        """Whether this process receives the events of `guild_id` (None: DMs); unsharded, it receives all."""
        return True

    def prefix_in(self, guild: discord.abc.Snowflake | None) -> str:
        return self.prefixes.get(guild.id, self.settings.command_prefix) if guild else self.settings.command_prefix

    # Typed accessors to the cogs, None when one failed to load. (Extensions are imported by
    # discord.py itself, so their classes are not compared here: a module imported twice has two.)
    @property
    def community(self) -> Community | None:
        return self.get_cog("Community")  # type: ignore[return-value]

    @property
    def dreams(self) -> Dreams | None:
        return self.get_cog("Dreams")  # type: ignore[return-value]

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            try:
                await self.load_extension(extension)
            except commands.ExtensionError:
                # One broken cog must not take the others down.
                log.exception("could not load %s", extension)

    def spawn(self, coroutine) -> asyncio.Task:
        """A background task the bot keeps a reference to (and cancels on close)."""
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def on_command_error(self, ctx: commands.Context, error: commands.CommandError) -> None:
        """Every failure becomes one line for the user; only unexpected ones reach the log."""
        if isinstance(error, commands.HybridCommandError):
            error = error.original  # type: ignore[assignment]
        if isinstance(error, commands.CommandNotFound):
            # The parser knows the commands and suggests the closest one.
            try:
                parse_command(ctx.message.content, self.prefix_in(ctx.guild))
            except CommandError as exc:
                await ctx.send(str(exc))
            return
        if isinstance(error, (commands.MissingPermissions, discord.app_commands.MissingPermissions)):
            text = "you need the Manage Server permission for that"
        elif isinstance(error, commands.NoPrivateMessage):
            text = "that works on servers only"
        elif isinstance(error, commands.UserInputError):
            text = str(error).splitlines()[0] if str(error) else "I could not read that command"
        else:
            log.error("command %s failed", ctx.command, exc_info=error)
            text = "something went wrong on our side; it was logged"
        try:
            await ctx.send(text)
        except (discord.HTTPException, aiohttp.ClientError, RuntimeError) as exc:  # e.g. while shutting down
            log.warning("could not report an error to the user: %s", exc)

    async def close(self) -> None:
        # Cancelled job tasks leave their jobs recorded as unfinished: the next start runs them.
        tasks = [t for t in self._background if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await super().close()


class ShardedDreamBot(DreamBot, commands.AutoShardedBot):
    """DreamBot on discord.py's sharded client: shards SHARD_IDS (default all) of SHARD_COUNT.

    DreamBot's own methods come first; below them AutoShardedBot replaces Bot's single gateway
    connection with one per shard. Several processes, each with its own SHARD_IDS, share the store.
    """

    def __init__(self, *, settings: Settings, **kwargs):
        assert settings.shard_count is not None, "a sharded bot needs SHARD_COUNT; make_bot picks the class from settings"
        shard_ids = list(settings.shard_ids) if settings.shard_ids is not None else None
        super().__init__(settings=settings, shard_count=settings.shard_count, shard_ids=shard_ids, **kwargs)

    def holds_guild(self, guild_id: int | None) -> bool:
        assert self.shard_count is not None, "set in __init__ from SHARD_COUNT"
        return self.shard_ids is None or shard_of(guild_id, self.shard_count) in self.shard_ids


def make_bot(*, service: DreamService, settings: Settings, http_session: aiohttp.ClientSession, **options) -> DreamBot:
    """The bot `settings` ask for: sharded when SHARD_COUNT is set, else one plain gateway connection."""
    kind = DreamBot if settings.shard_count is None else ShardedDreamBot
    return kind(service=service, settings=settings, http_session=http_session, **options)
