"""The informational commands, answered by the same service as the console."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from ...commands import HELP, CommandError, command_summaries, parse_command
from ..presenter import requester_of

if TYPE_CHECKING:
    from ..client import DreamBot

DISCORD_MESSAGE_LIMIT = 2000


class Info(commands.Cog):
    def __init__(self, bot: DreamBot):
        self.bot = bot

    async def _answer(self, ctx: commands.Context, name: str, text: str = "") -> None:
        prefix = self.bot.prefix_in(ctx.guild)
        try:
            request = parse_command(f"{prefix}{name} {text}".strip(), prefix)
        except CommandError as exc:
            await ctx.send(str(exc))
            return
        assert request is not None
        reply = await self.bot.service.answer(request, requester_of(ctx.author, ctx.channel))
        if len(reply) > DISCORD_MESSAGE_LIMIT:
            reply = reply[: DISCORD_MESSAGE_LIMIT - 1] + "…"
        await ctx.send(reply)

    @commands.hybrid_command(name="models", description=HELP["models"].summary)
    async def models(self, ctx: commands.Context) -> None:
        """List the networks you can dream with"""
        await self._answer(ctx, "models")

    @commands.hybrid_command(name="layers", description=HELP["layers"].summary)
    async def layers(self, ctx: commands.Context, model: str = "") -> None:
        """List a network's layers and presets, e.g. !layers googlenet"""
        await self._answer(ctx, "layers", model)

    @commands.hybrid_command(name="classes", description=HELP["classes"].summary)
    async def classes(self, ctx: commands.Context, *, search: str = "") -> None:
        """Search the ImageNet classes for !visualize, e.g. !classes fish"""
        await self._answer(ctx, "classes", search)

    @commands.hybrid_command(name="queue", description=HELP["queue"].summary)
    async def queue(self, ctx: commands.Context) -> None:
        """Show the jobs waiting and running"""
        await self._answer(ctx, "queue")

    @commands.hybrid_command(name="cancel", description=HELP["cancel"].summary)
    async def cancel(self, ctx: commands.Context, job: str = "") -> None:
        """Cancel one of your jobs (your latest without an id), e.g. !cancel 12"""
        await self._answer(ctx, "cancel", job)

    @commands.hybrid_command(name="quota", description=HELP["quota"].summary)
    async def quota(self, ctx: commands.Context) -> None:
        """Show how many jobs you can start now"""
        await self._answer(ctx, "quota")

    @commands.hybrid_command(name="gallery", description=HELP["gallery"].summary)
    async def gallery(self, ctx: commands.Context, order: str = "recent") -> None:
        """This server's gallery, newest or most liked, e.g. !gallery top"""
        await self._answer(ctx, "gallery", order)

    @commands.hybrid_command(name="stats", description=HELP["stats"].summary)
    async def stats(self, ctx: commands.Context) -> None:
        """This server's numbers"""
        await self._answer(ctx, "stats")

    @commands.hybrid_command(name="help", description=HELP["help"].summary)
    async def help(self, ctx: commands.Context, command: str = "") -> None:
        """Help on all commands or one, e.g. !help dream"""
        if command:
            await self._answer(ctx, "help", command)  # one command's options, a line each
            return
        await ctx.send(embed=self._help_embed(self.bot.prefix_in(ctx.guild)))

    @staticmethod
    def _help_embed(prefix: str) -> discord.Embed:
        """Every command in a field of its own, with an example; the slash commands take the same options."""
        embed = discord.Embed(
            title="DeepDream bot",
            description=f"Type a command with `{prefix}` or `/`. On a message with a photo: Apps > Dream this "
                        f"(or Dream deeper); on a person: Apps > Dream avatar. `{prefix}help dream` lists a command's options.",
        )
        for name, what, example in command_summaries(prefix):
            embed.add_field(name=f"{prefix}{name}", value=f"{what}\n`{example}`" if example else what, inline=False)
        return embed


async def setup(bot: DreamBot) -> None:
    await bot.add_cog(Info(bot))
