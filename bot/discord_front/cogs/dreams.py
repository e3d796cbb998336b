"""!dream, !visualize and !zoom."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import discord
from discord.ext import commands

if TYPE_CHECKING:
    from ..client import DreamBot


class Dreams(commands.Cog):
    def __init__(self, bot: DreamBot):
        self.bot = bot

    @commands.hybrid_command(name="dream")
    async def dream(
        self,
        ctx: commands.Context,
        image: Optional[discord.Attachment] = None,
        guide: Optional[discord.Attachment] = None,
        *,
        options: str = "",
    ) -> None:
        """Dream on a photo: attach it (a second one guides), e.g. !dream layer:deep strength:2"""
        attachments = [a for a in (image, guide) if a is not None]
        if ctx.interaction is None:
            attachments = list(ctx.message.attachments)  # all of them, in the order they were attached
        await self.bot.presenter.from_context(ctx, "dream", options, attachments)

    @commands.hybrid_command(name="visualize", aliases=["visualise"])
    async def visualize(self, ctx: commands.Context, *, target: str = "") -> None:
        """Render an ImageNet class from noise, e.g. !visualize anemone fish"""
        await self.bot.presenter.from_context(ctx, "visualize", target, [])

    @commands.hybrid_command(name="zoom")
    async def zoom(self, ctx: commands.Context, image: Optional[discord.Attachment] = None, *, options: str = "") -> None:
        """An endless-zoom GIF of a photo (or noise), e.g. !zoom frames:12 zoom:1.1"""
        attachments = [image] if image is not None else []
        if ctx.interaction is None:
            attachments = list(ctx.message.attachments)
        await self.bot.presenter.from_context(ctx, "zoom", options, attachments)


async def setup(bot: DreamBot) -> None:
    await bot.add_cog(Dreams(bot))
