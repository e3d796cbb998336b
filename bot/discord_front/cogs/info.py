"""The informational commands (models, layers, classes, queue, cancel, quota, stats, help), answered
by the service's answers part, as the console's are."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from ...commands import HELP, CommandError, Request, command_summaries, parse_words, split_words
from ..client import error_line, requester_of

if TYPE_CHECKING:
    from ..client import DreamBot

__all__ = ["Info"]


class Info(commands.Cog):
    def __init__(self, bot: DreamBot):
        self.bot = bot

    async def cog_command_error(self, ctx: commands.Context, error: commands.CommandError) -> None:
        await ctx.send(error_line(error))

    def _parsed(self, ctx: commands.Context, name: str, text: str) -> dict:
        """The words of a command read by the chat parser's rules (CommandError with one line)."""
        return parse_words(name, split_words(text) if text else [], self.bot.prefix_in(ctx.guild)).params

    async def _say(self, ctx: commands.Context, answer: str) -> None:
        await ctx.send(answer)

    @commands.hybrid_command(name="models", description=HELP["models"].summary)
    async def models(self, ctx: commands.Context) -> None:
        await self._say(ctx, self.bot.service.answers.models())

    @commands.hybrid_command(name="layers", description=HELP["layers"].summary)
    async def layers(self, ctx: commands.Context, model: str = "") -> None:
        await self._say(ctx, await self._answer(ctx, "layers", model))

    @commands.hybrid_command(name="classes", description=HELP["classes"].summary)
    async def classes(self, ctx: commands.Context, *, search: str = "") -> None:
        await self._say(ctx, await self._answer(ctx, "classes", search))

    @commands.hybrid_command(name="queue", description=HELP["queue"].summary)
    async def queue(self, ctx: commands.Context) -> None:
        await self._say(ctx, await self.bot.service.answers.queue(requester_of(ctx.author, ctx.channel)))

    @commands.hybrid_command(name="cancel", description=HELP["cancel"].summary)
    async def cancel(self, ctx: commands.Context, job: str = "") -> None:
        await self._say(ctx, await self._answer(ctx, "cancel", job))

    @commands.hybrid_command(name="quota", description=HELP["quota"].summary)
    async def quota(self, ctx: commands.Context) -> None:
        await self._say(ctx, await self.bot.service.answers.quota(requester_of(ctx.author, ctx.channel)))

    @commands.hybrid_command(name="stats", description=HELP["stats"].summary)
    async def stats(self, ctx: commands.Context) -> None:
        await self._say(ctx, await self.bot.service.answers.stats(requester_of(ctx.author, ctx.channel)))

    @commands.hybrid_command(name="help", description=HELP["help"].summary)
    async def help(self, ctx: commands.Context, command: str = "") -> None:
        if command:  # one command's options, a line each
            await self._say(ctx, await self._answer(ctx, "help", command))
            return
        await ctx.send(embed=help_embed(self.bot.prefix_in(ctx.guild)))

    async def _answer(self, ctx: commands.Context, name: str, text: str) -> str:
        """A command whose words the parser reads (a model, a search, a job id, a topic), answered typed."""
        answers, requester = self.bot.service.answers, requester_of(ctx.author, ctx.channel)
        try:
            params = self._parsed(ctx, name, text)
        except CommandError as exc:
            return str(exc)
        if name == "help":  # in this server's prefix
            return answers.help(params.get("command"), self.bot.prefix_in(ctx.guild))
        return await answers.answer(Request(name, params), requester)


def help_embed(prefix: str) -> discord.Embed:
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
