"""The gallery family: likes (the Like button and ⭐ reactions), results featured in the gallery
channel once well liked, results leaving the gallery when their message is deleted, `!gallery`, and
each server's name and icon kept for the web gallery."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from ...commands import HELP, CommandError, parse_words
from ...service import Denied
from ..client import error_line, requester_of

if TYPE_CHECKING:
    from ..client import DreamBot

__all__ = ["Gallery", "STAR"]

log = logging.getLogger(__name__)

STAR = "\N{WHITE MEDIUM STAR}"  # the reaction that counts as a like


class Gallery(commands.Cog):
    def __init__(self, bot: DreamBot):
        self.bot = bot

    async def cog_command_error(self, ctx: commands.Context, error: commands.CommandError) -> None:
        await ctx.send(error_line(error))

    @commands.hybrid_command(name="gallery", description=HELP["gallery"].summary)
    async def gallery(self, ctx: commands.Context, order: str = "recent") -> None:
        """This server's gallery, newest or most liked, e.g. !gallery top"""
        try:
            request = parse_words("gallery", [order], self.bot.prefix_in(ctx.guild))
        except CommandError as exc:
            await ctx.send(str(exc))
            return
        await ctx.send(await self.bot.service.answers.gallery(requester_of(ctx.author, ctx.channel), request.params["order"]))

    async def like_button(self, interaction: discord.Interaction, job_id: int) -> None:
        """A result's Like button: one like per member, answered privately."""
        if interaction.guild is None or interaction.message is None:
            await interaction.response.send_message("likes count on servers only", ephemeral=True)
            return
        liked = await self.bot.service.gallery.like(job_id, interaction.message.jump_url, channel_id=str(interaction.channel_id),
                                                    user_id=str(interaction.user.id))
        if isinstance(liked, Denied):
            await interaction.response.send_message(liked.reason, ephemeral=True)
            return
        text = f"⭐ liked ({liked.likes} likes)" if liked.added else f"you already liked this ({liked.likes} likes)"
        await interaction.response.send_message(text, ephemeral=True)
        if liked.added:
            await self.maybe_feature(interaction.guild, interaction.message, liked.likes)

    # -- ⭐ reactions: a like by another way, under the Like button's rules ------------------------

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        # Raw events: results posted before a restart are not in the message cache.
        assert self.bot.user is not None, "reactions arrive once the bot is logged in"
        if payload.message_author_id != self.bot.user.id or (job_id := await self._starred_result(payload)) is None:
            return
        liked = await self.bot.service.gallery.like(job_id, _message_link(payload), channel_id=str(payload.channel_id),
                                                    user_id=str(payload.user_id))
        guild = self.bot.get_guild(payload.guild_id or 0)
        if isinstance(liked, Denied) or not liked.added or guild is None:
            return  # a reaction cannot be answered privately: refusals stay silent
        channel = guild.get_channel_or_thread(payload.channel_id)
        if isinstance(channel, discord.abc.Messageable):
            await self.maybe_feature(guild, await channel.fetch_message(payload.message_id), liked.likes)

    @commands.Cog.listener()
    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        if (job_id := await self._starred_result(payload)) is not None:
            await self.bot.service.gallery.unlike(job_id, str(payload.user_id))

    async def _starred_result(self, payload: discord.RawReactionActionEvent) -> int | None:
        """The job of the result someone else than the bot starred on a server, else None."""
        assert self.bot.user is not None, "reactions arrive once the bot is logged in"
        if str(payload.emoji) != STAR or payload.guild_id is None or payload.user_id == self.bot.user.id:
            return None
        return await self.bot.service.gallery.job_posted_in(_message_link(payload))

    async def maybe_feature(self, guild: discord.Guild, message: discord.Message, likes: int) -> None:
        """Repost a result to the gallery channel the moment it reaches the like threshold (once,
        though likes, buttons and ⭐ reactions together, may be taken back and given again)."""
        settings = await self.bot.service.guilds.get(str(guild.id))
        if not settings.gallery_channel_id or not settings.like_threshold or likes < settings.like_threshold:
            return
        channel = guild.get_channel(int(settings.gallery_channel_id))
        if not isinstance(channel, discord.abc.Messageable) or not await self.bot.service.gallery.claim_feature(message.jump_url):
            return
        files = [await a.to_file() for a in message.attachments[:1]]
        try:
            await channel.send(f"⭐ {likes} likes: {message.jump_url}", files=files)
        except discord.HTTPException as exc:
            log.warning("could not feature %s: %s", message.jump_url, exc)

    # -- deleted results leave the gallery, on Discord and on the web ----------------------------------

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        # Raw: the message may not be cached.
        await self._withdraw(payload.guild_id, payload.channel_id, [payload.message_id])

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        await self._withdraw(payload.guild_id, payload.channel_id, sorted(payload.message_ids))

    async def _withdraw(self, guild_id: int | None, channel_id: int, message_ids: list[int]) -> None:
        if guild_id is None:  # only results posted on servers enter a gallery
            return
        # The links as discord.py writes a message's jump_url, which is what the gallery recorded.
        links = [discord.MessageReference(message_id=m, channel_id=channel_id, guild_id=guild_id).jump_url for m in message_ids]
        removed = await self.bot.service.gallery.withdraw(links)
        if removed:
            log.info("%d deleted result(s) left the gallery of server %s", removed, guild_id)


    # -- the server's name and icon, for the web gallery's pages ----------------------------------------

    @commands.Cog.listener()
    async def on_guild_available(self, guild: discord.Guild) -> None:  # at every start, and after an outage
        await self._seen(guild)

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self._seen(guild)

    @commands.Cog.listener()
    async def on_guild_update(self, before: discord.Guild, after: discord.Guild) -> None:
        await self._seen(after)

    async def _seen(self, guild: discord.Guild) -> None:
        icon = guild.icon.with_size(128).url if guild.icon is not None else None
        try:
            await self.bot.service.guilds.seen(str(guild.id), guild.name, icon)
        except Exception as exc:  # the store may be briefly away: the next sighting writes it
            log.warning("could not record the name of server %s: %s", guild.id, exc)


def _message_link(payload: discord.RawReactionActionEvent) -> str:
    """The message's link as discord.py writes `Message.jump_url`, which is what the store recorded."""
    return discord.MessageReference(message_id=payload.message_id, channel_id=payload.channel_id,
                                    guild_id=payload.guild_id).jump_url


async def setup(bot: DreamBot) -> None:
    await bot.add_cog(Gallery(bot))
