"""Server settings for admins, the gallery channel where well-liked results are featured, and keeping
the gallery (on Discord and on the web) to results whose messages still exist."""

from __future__ import annotations

import logging
import shlex
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from core.errors import quoted

from ...commands import HELP
from ...public import gallery_page_url

if TYPE_CHECKING:
    from ...store import GuildSettings, RateLimits
    from ..client import DreamBot

log = logging.getLogger(__name__)

_NUMBERS = {"user_burst": int, "user_refill_seconds": float, "guild_jobs_per_hour": int, "max_active_jobs": int,
            "like_threshold": int, "max_job_seconds": float}
_SWITCHES = ("public_gallery", "public_names")
_ON, _OFF = ("on", "yes", "true"), ("off", "no", "false")


class Community(commands.Cog):
    def __init__(self, bot: DreamBot):
        self.bot = bot

    @commands.hybrid_command(name="settings", description=HELP["settings"].summary)
    @commands.guild_only()
    @commands.has_permissions(manage_guild=True)
    async def settings(self, ctx: commands.Context, *, options: str = "") -> None:
        """Server admins: show or change this server's settings (`!help settings` lists the keys)."""
        assert ctx.guild is not None
        changes: dict[str, object] = {}
        try:
            for word in shlex.split(options):
                key, sep, value = word.partition(":")
                key = key.lower().replace("-", "_")
                if not sep or not value:
                    raise ValueError(f"options look like key:value, got {quoted(word)}")
                if key == "prefix":
                    if len(value) > 16 or " " in value:
                        raise ValueError("a prefix is up to 16 characters without spaces")
                    changes["prefix"] = value
                elif key in _NUMBERS:
                    number = _number(key, value)
                    if number < 0:
                        raise ValueError(f"{key} cannot be negative")
                    changes[key] = number
                elif key == "exempt_role":
                    role = await _converted(commands.RoleConverter(), ctx, value, "role")
                    current = (await self.bot.service.guild_settings(str(ctx.guild.id))).exempt_role_ids
                    changes["exempt_role_ids"] = tuple(dict.fromkeys(current + (str(role.id),)))
                elif key == "gallery_channel":
                    channel = await _converted(commands.TextChannelConverter(), ctx, value, "text channel")
                    changes["gallery_channel_id"] = str(channel.id)
                elif key in _SWITCHES:
                    if value.lower() not in _ON + _OFF:
                        raise ValueError(f"{key} is on or off, got {quoted(value)}")
                    changes[key] = value.lower() in _ON
                else:
                    raise ValueError(f"unknown setting {quoted(key)}; see {self.bot.prefix_in(ctx.guild)}help settings")
            current = await self.bot.service.update_guild_settings(str(ctx.guild.id), **changes) if changes else \
                await self.bot.service.guild_settings(str(ctx.guild.id))
        except (ValueError, commands.BadArgument) as exc:
            await ctx.send(str(exc).splitlines()[0])
            return
        if "prefix" in changes:
            self.bot.prefixes[ctx.guild.id] = str(changes["prefix"])
        limits = self.bot.service.limits_of(current)
        cap = current.max_job_seconds or self.bot.service.max_job_seconds
        await ctx.send(settings_words(current, limits, cap, prefix=current.prefix or self.bot.settings.command_prefix,
                                      web=self._web_summary(current)))

    def _web_summary(self, current: GuildSettings) -> str:
        if not current.public_gallery:
            return "web gallery: off"
        public_url = self.bot.settings.public_url
        where = f" at <{gallery_page_url(public_url, current.guild_id)}>" if public_url else ""
        names = "with" if current.public_names else "without"
        return f"web gallery: on{where}, {names} who asked"

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        """A deleted result leaves the gallery, on Discord and on the web (raw: the message may not be cached)."""
        await self._withdraw(payload.guild_id, payload.channel_id, [payload.message_id])

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        await self._withdraw(payload.guild_id, payload.channel_id, sorted(payload.message_ids))

    async def _withdraw(self, guild_id: int | None, channel_id: int, message_ids: list[int]) -> None:
        if guild_id is None:  # only results posted on servers enter a gallery
            return
        # The links as discord.py writes a message's jump_url, which is what the gallery recorded.
        links = [discord.MessageReference(message_id=m, channel_id=channel_id, guild_id=guild_id).jump_url for m in message_ids]
        removed = await self.bot.service.withdraw_posts(links)
        if removed:
            log.info("%d deleted result(s) left the gallery of server %s", removed, guild_id)

    async def maybe_feature(self, guild: discord.Guild, message: discord.Message, likes: int) -> None:
        """Repost a result to the gallery channel the moment it reaches the like threshold (once,
        though likes, buttons and ⭐ reactions together, may be taken back and given again)."""
        settings = await self.bot.service.guild_settings(str(guild.id))
        if not settings.gallery_channel_id or not settings.like_threshold or likes < settings.like_threshold:
            return
        channel = guild.get_channel(int(settings.gallery_channel_id))
        if not isinstance(channel, discord.abc.Messageable) or not await self.bot.service.claim_feature(message.jump_url):
            return
        files = [await a.to_file() for a in message.attachments[:1]]
        try:
            await channel.send(f"⭐ {likes} likes: {message.jump_url}", files=files)
        except discord.HTTPException as exc:
            log.warning("could not feature %s: %s", message.jump_url, exc)


def settings_words(current: GuildSettings, limits: RateLimits, cap: float, *, prefix: str, web: str) -> str:
    """What `!settings` answers: a server's settings as they apply (overrides over the bot's defaults)."""
    channel = f"<#{current.gallery_channel_id}>" if current.gallery_channel_id else "none"
    return (f"prefix {prefix}; per user {limits.user_burst} jobs, one more every {limits.user_refill_seconds:g} s, "
            f"{limits.max_active_jobs} at once; {limits.guild_jobs_per_hour} per hour for the server; jobs up to "
            f"{cap:g} s; exempt roles: {len(current.exempt_role_ids)}; gallery channel: {channel}, featured at "
            f"{current.like_threshold or 'no'} likes; {web}")


def _number(key: str, text: str) -> int | float:
    """A setting's number from what an admin typed; ValueError with one line otherwise."""
    kind = _NUMBERS[key]
    try:
        number = kind(text)
    except ValueError:
        raise ValueError(f"{key} must be {'a whole number' if kind is int else 'a number'}, got {quoted(text)}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{key} must be a number, got {quoted(text)}")
    return number


async def _converted(converter, ctx: commands.Context, value: str, what: str):
    """A role or channel named as an admin typed it; one short line when the server has none such
    (discord.py's own message repeats the whole argument)."""
    try:
        return await converter.convert(ctx, value)
    except commands.BadArgument:
        raise ValueError(f"this server has no {what} {quoted(value)}") from None


async def setup(bot: DreamBot) -> None:
    await bot.add_cog(Community(bot))
