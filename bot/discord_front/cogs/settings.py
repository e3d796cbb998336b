"""The settings family: `!settings` shows a server's settings to its admins and changes them.

Names, ranges and the reading of values are bot.guild_settings'; the chat parser splits the
options; this cog only looks roles and channels up on Discord.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from discord.ext import commands

from core.errors import quoted

from ...commands import HELP, CommandError, parse_words, split_words
from ...guild_settings import SETTINGS, GuildSettings, RateLimits, SettingError, parse_setting
from ...service.gallery import gallery_page_url
from ..client import error_line

if TYPE_CHECKING:
    from ..client import DreamBot

__all__ = ["Settings", "settings_words"]


class Settings(commands.Cog):
    def __init__(self, bot: DreamBot):
        self.bot = bot

    async def cog_command_error(self, ctx: commands.Context, error: commands.CommandError) -> None:
        await ctx.send(error_line(error))

    @commands.hybrid_command(name="settings", description=HELP["settings"].summary)
    @commands.guild_only()
    @commands.has_permissions(manage_guild=True)
    async def settings(self, ctx: commands.Context, *, options: str = "") -> None:
        """Server admins: show or change this server's settings (`!help settings` lists the keys)."""
        assert ctx.guild is not None
        guilds, guild_id = self.bot.service.guilds, str(ctx.guild.id)
        try:
            given = parse_words("settings", split_words(options) if options else [], self.bot.prefix_in(ctx.guild)).params
            changes = {SETTINGS[name].field: await self._value(ctx, name, text) for name, text in given.items()}
            current = await guilds.change(guild_id, **changes) if changes else await guilds.get(guild_id)
        except (CommandError, SettingError) as exc:
            await ctx.send(str(exc))
            return
        if "prefix" in changes:
            self.bot.prefixes[ctx.guild.id] = str(changes["prefix"])
        await ctx.send(settings_words(current, guilds.limits_of(current), guilds.cap_of(current),
                                      prefix=current.prefix or self.bot.settings.command_prefix, web=self._web_summary(current)))

    async def _value(self, ctx: commands.Context, name: str, text: str) -> Any:
        """A setting's value: parsed by its rules, and a role or channel looked up on this server."""
        value = parse_setting(name, text)
        kind = SETTINGS[name].kind
        if kind == "role":
            role = await _looked_up(commands.RoleConverter(), ctx, value, "role")
            current = (await self.bot.service.guilds.get(str(ctx.guild.id))).exempt_role_ids  # type: ignore[union-attr]
            return tuple(dict.fromkeys(current + (str(role.id),)))
        if kind == "channel":
            return str((await _looked_up(commands.TextChannelConverter(), ctx, value, "text channel")).id)
        return value

    def _web_summary(self, current: GuildSettings) -> str:
        if not current.public_gallery:
            return "web gallery: off"
        public_url = self.bot.settings.public_url
        where = f" at <{gallery_page_url(public_url, current.guild_id)}>" if public_url else ""
        return f"web gallery: on{where}, {'with' if current.public_names else 'without'} who asked"


def settings_words(current: GuildSettings, limits: RateLimits, cap: float, *, prefix: str, web: str) -> str:
    """What `!settings` answers: a server's settings as they apply (overrides over the bot's defaults)."""
    channel = f"<#{current.gallery_channel_id}>" if current.gallery_channel_id else "none"
    return (f"prefix {prefix}; per user {limits.user_burst} jobs, one more every {limits.user_refill_seconds:g} s, "
            f"{limits.max_active_jobs} at once; {limits.guild_jobs_per_hour} per hour for the server; jobs up to "
            f"{cap:g} s; exempt roles: {len(current.exempt_role_ids)}; gallery channel: {channel}, featured at "
            f"{current.like_threshold or 'no'} likes; {web}")


async def _looked_up(converter: Any, ctx: commands.Context, value: str, what: str) -> Any:
    """A role or channel named as an admin typed it; one short line when the server has none such
    (discord.py's own message repeats the whole argument)."""
    try:
        return await converter.convert(ctx, value)
    except commands.BadArgument:
        raise SettingError(f"this server has no {what} {quoted(value)}") from None


async def setup(bot: DreamBot) -> None:
    await bot.add_cog(Settings(bot))
