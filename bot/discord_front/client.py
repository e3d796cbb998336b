"""The Bot: resources are injected, cogs loaded by name in `setup_hook`, no globals; and the small
helpers every cog uses (who asked, where a result may go, how big an upload may be, one line per error).

`make_bot` picks the plain bot, or its sharded twin when SHARD_COUNT is set.
"""

from __future__ import annotations

import logging

import aiohttp
import discord
from discord.ext import commands

from ..commands import CommandError, parse_command
from ..service import Requester, Service
from ..settings import Settings
from ..store import JobRecord
from .sharding import shard_of

__all__ = ["DreamBot", "ShardedDreamBot", "EXTENSIONS", "CDN_HOSTS", "make_bot", "requester_of", "reply_reference", "post_nonce",
           "upload_limit", "error_line"]

log = logging.getLogger(__name__)

# One cog per family, loaded by name (a broken one is logged, the others still load).
EXTENSIONS = ("bot.discord_front.cogs.dreams", "bot.discord_front.cogs.gallery", "bot.discord_front.cogs.settings",
              "bot.discord_front.cogs.info")
CDN_HOSTS = ("cdn.discordapp.com", "media.discordapp.net")  # where a photo may be downloaded from
DM_UPLOAD_LIMIT = 10 * 1024 * 1024  # bytes a message may carry outside a server


class DreamBot(commands.Bot):
    """service: every part of the bot's work; settings: the deployment's; http_session: for downloads.
    progress_interval: seconds between edits of a job's progress; delivery_interval: seconds between
    sweeps for results still to post."""

    def __init__(self, *, service: Service, settings: Settings, http_session: aiohttp.ClientSession,
                 cdn_hosts: tuple[str, ...] = CDN_HOSTS, progress_interval: float = 2.0, delivery_interval: float = 15.0,
                 **options):
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
        self.progress_interval = progress_interval
        self.delivery_interval = delivery_interval
        self.prefixes: dict[int, str] = {}  # guild id -> prefix, read from the store once per guild

    async def _prefix_for(self, bot: commands.Bot, message: discord.Message) -> list[str]:
        prefix = self.settings.command_prefix
        if message.guild is not None:
            if message.guild.id not in self.prefixes:
                guild = await self.service.guilds.get(str(message.guild.id))
                self.prefixes[message.guild.id] = guild.prefix or self.settings.command_prefix
            prefix = self.prefixes[message.guild.id]
        return commands.when_mentioned_or(prefix)(bot, message)

    def prefix_in(self, guild: discord.abc.Snowflake | None) -> str:
        return self.prefixes.get(guild.id, self.settings.command_prefix) if guild else self.settings.command_prefix

    def holds_guild(self, guild_id: int | None) -> bool:
        """Whether this process receives the events of `guild_id` (None: DMs); unsharded, it receives all."""
        return True

    def takes_back(self, record: JobRecord) -> bool:
        """Whether this process recovers or re-posts a job: a Discord job of one of its guilds. With
        several sharded processes, a guild's jobs go back to the process holding its shard (shard 0
        for DMs): the one that has its channels and hears its commands and buttons."""
        guild_id = int(record.guild_id) if record.guild_id is not None else None
        return record.front == "discord" and record.channel_id is not None and self.holds_guild(guild_id)

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            try:
                await self.load_extension(extension)
            except commands.ExtensionError:
                log.exception("could not load %s", extension)  # one broken cog must not take the others down

    async def on_command_error(self, ctx: commands.Context, error: commands.CommandError) -> None:
        """An unknown command gets the parser's suggestion; errors of a cog with its own handler are its."""
        if ctx.cog is not None and ctx.cog.has_error_handler():
            return
        if isinstance(error, commands.CommandNotFound):
            try:
                parse_command(ctx.message.content, self.prefix_in(ctx.guild))  # it knows the commands and suggests one
            except CommandError as exc:
                await _say(ctx, str(exc))
            return
        await _say(ctx, error_line(error))


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


def make_bot(*, service: Service, settings: Settings, http_session: aiohttp.ClientSession, **options) -> DreamBot:
    """The bot `settings` ask for: sharded when SHARD_COUNT is set, else one plain gateway connection."""
    kind = DreamBot if settings.shard_count is None else ShardedDreamBot
    return kind(service=service, settings=settings, http_session=http_session, **options)


# -- what every cog needs ----------------------------------------------------------------------------


def requester_of(user: discord.abc.User, channel: discord.abc.Messageable | None,
                 message: discord.Message | None = None) -> Requester:
    """Who asked and where, for the service; `message`: the one that asked, which the result answers."""
    guild = getattr(user, "guild", None)
    roles = tuple(str(role.id) for role in getattr(user, "roles", ()) if not role.is_default())
    moderator = isinstance(user, discord.Member) and isinstance(channel, discord.abc.GuildChannel) \
        and channel.permissions_for(user).manage_messages
    return Requester(
        user_id=str(user.id), guild_id=str(guild.id) if guild else None,
        channel_id=str(channel.id) if channel is not None and hasattr(channel, "id") else None, roles=roles,
        is_moderator=moderator, message_id=str(message.id) if message is not None else None, front="discord",
    )


def reply_reference(record: JobRecord) -> discord.MessageReference | None:
    """A reply to the message a job's result answers, which stays a plain message if that was deleted."""
    if record.reply_to is None or record.channel_id is None:
        return None
    return discord.MessageReference(message_id=int(record.reply_to), channel_id=int(record.channel_id),
                                    fail_if_not_exists=False)


def upload_limit(channel: object, interaction: discord.Interaction | None = None) -> int:
    """The bytes a message in `channel` may carry, known before any upload: what Discord told the
    `interaction` that asked (its attachment_size_limit, the most exact), else the server's limit
    from its boost tier; 10 MiB outside servers. A 413 remains the fallback for a limit unannounced."""
    if interaction is not None:
        return interaction.filesize_limit
    guild = getattr(channel, "guild", None)
    return guild.filesize_limit if guild is not None else DM_UPLOAD_LIMIT


def error_line(error: commands.CommandError) -> str:
    """One line for a command that failed; the unexpected ones also go to the log."""
    if isinstance(error, commands.HybridCommandError):
        error = error.original  # type: ignore[assignment]
    if isinstance(error, (commands.MissingPermissions, discord.app_commands.MissingPermissions)):
        return "you need the Manage Server permission for that"
    if isinstance(error, commands.NoPrivateMessage):
        return "that works on servers only"
    if isinstance(error, commands.UserInputError):
        return str(error).splitlines()[0][:200] if str(error) else "I could not read that command"
    log.error("command failed", exc_info=error)
    return "something went wrong on our side; it was logged"


async def _say(ctx: commands.Context, text: str) -> None:
    try:
        await ctx.send(text)
    except (discord.HTTPException, aiohttp.ClientError, RuntimeError) as exc:  # e.g. while shutting down
        log.warning("could not report an error to the user: %s", exc)


def post_nonce(job_id: int) -> str:
    """The nonce of every post of a job's result (at most 25 characters, as Discord allows): the
    same for each try, so Discord (enforce_nonce) answers a repeated post with the message it
    already made, should a process die after Discord took its post and before the store heard."""
    return f"dreambot-job-{job_id}"
