"""Asking again from a result or a photo: the buttons under a result (re-roll, dream deeper, like,
delete) and the context menus (Apps > Dream this, Dream deeper, Dream avatar).

A button's custom_id names its job (`dream:reroll:12`), and each is a DynamicItem of that
pattern, so buttons keep working after a restart and nothing is kept in memory per message.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol

import discord
from discord import app_commands
from discord.ext import commands

from core.params import DreamParams

from ....commands import Request, job_request
from ....store import JobRecord
from ...client import requester_of
from .inputs import ImageSource, first_photo_of

if TYPE_CHECKING:
    from ...client import DreamBot

__all__ = ["BUTTON_ID", "RESULT_BUTTONS", "DYNAMIC_ITEMS", "Menus", "again"]

BUTTON_ID = "dream:{action}:{job}"  # a result button's custom_id
MOST_ITERATIONS = int(DreamParams.__dataclass_fields__["iterations"].metadata["hi"])  # core/params.py holds the range


class _Dreams(Protocol):
    """What asking again needs of the Dreams cog."""

    bot: DreamBot

    async def ask(self, ctx: commands.Context, request: Request, sources: list[ImageSource]) -> None: ...

    async def ask_again(self, interaction: discord.Interaction, request: Request, images: list[bytes]) -> None: ...


class _Likes(Protocol):
    """What the Like button needs of the Gallery cog (cogs/gallery.py)."""

    async def like_button(self, interaction: discord.Interaction, job_id: int) -> None: ...


def _dreams(interaction: discord.Interaction) -> _Dreams:
    cog = interaction.client.get_cog("Dreams")  # type: ignore[attr-defined]
    assert cog is not None, "the result buttons are registered by the Dreams cog, so it is loaded"
    return cog


async def again(cog: _Dreams, interaction: discord.Interaction, record: JobRecord, *, deeper: bool) -> None:
    """Re-roll a result with a new seed, or dream one iteration deeper (on a render: dream on it)."""
    if deeper and record.kind == "dream":
        # The same job with one more pass, seed included: its params and command stay true to what
        # was run (`!dream iterations:N+1 seed:S` on the photo), at the price of redoing earlier passes.
        iterations = int(record.params.get("iterations", 1)) + 1
        if iterations > MOST_ITERATIONS:
            await interaction.response.send_message(
                f"that dream is already {MOST_ITERATIONS} iterations deep, the most there is; try a zoom to go on", ephemeral=True)
            return
        images = [i for i in (record.image, record.guide) if i is not None]
        request = Request("dream", dict(record.params) | {"iterations": iterations}, seed=record.seed)
    elif deeper:
        if record.result_removed == "expired":
            await interaction.response.send_message(
                f"result #{record.id} has expired: its file was deleted after the bot's retention period, so I cannot "
                "dream deeper on it; Re-roll makes a new one", ephemeral=True)
            return
        found = await cog.bot.service.delivery.result(record)
        if found is None:
            await interaction.response.send_message("that result is no longer stored, so I cannot dream deeper", ephemeral=True)
            return
        images, request = [found[0]], Request("dream", {"model": record.params.get("model")})
    else:
        images = [i for i in (record.image, record.guide) if i is not None]
        # Users ask for a dream on a clip; the compiler makes it a "video" job again from the clip.
        request = Request("dream" if record.kind == "video" else record.kind, dict(record.params))
    await cog.ask_again(interaction, request, images)


class _ResultButton:
    """What the result buttons share (each is also a DynamicItem with its own template): the job
    they belong to is in their custom_id."""

    item: discord.ui.Button

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /) -> Any:
        return cls(item)

    @property
    def job_id(self) -> int:
        return int(str(self.item.custom_id).rsplit(":", 1)[1])

    async def _record(self, interaction: discord.Interaction) -> JobRecord | None:
        record = await _dreams(interaction).bot.service.jobs.record(self.job_id)
        if record is None:
            await interaction.response.send_message("that job is no longer known", ephemeral=True)
        return record


def _template(action: str) -> str:
    return re.escape(BUTTON_ID.format(action=action, job="JOB")).replace("JOB", r"(?P<job>\d+)")


class Reroll(_ResultButton, discord.ui.DynamicItem[discord.ui.Button], template=_template("reroll")):
    async def callback(self, interaction: discord.Interaction) -> None:
        if (record := await self._record(interaction)) is not None:
            await again(_dreams(interaction), interaction, record, deeper=False)


class Deeper(_ResultButton, discord.ui.DynamicItem[discord.ui.Button], template=_template("deeper")):
    async def callback(self, interaction: discord.Interaction) -> None:
        if (record := await self._record(interaction)) is not None:
            await again(_dreams(interaction), interaction, record, deeper=True)


class Like(_ResultButton, discord.ui.DynamicItem[discord.ui.Button], template=_template("like")):
    async def callback(self, interaction: discord.Interaction) -> None:
        # Cogs are found by name, not class: discord.py imports each extension afresh, so a class
        # imported here would not be the loaded cog's.
        gallery: _Likes | None = interaction.client.get_cog("Gallery")  # type: ignore[attr-defined]
        if gallery is None:
            await interaction.response.send_message("likes are not counted right now", ephemeral=True)
            return
        await gallery.like_button(interaction, self.job_id)


class Delete(_ResultButton, discord.ui.DynamicItem[discord.ui.Button], template=_template("delete")):
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


# (action, class, label, emoji, style) of the buttons under a result, in order; "Dream deeper"
# only under dreams and renders.
RESULT_BUTTONS = (
    ("reroll", Reroll, "Re-roll", "🎲", discord.ButtonStyle.secondary),
    ("deeper", Deeper, "Dream deeper", "🌀", discord.ButtonStyle.primary),
    ("like", Like, "Like", "⭐", discord.ButtonStyle.success),
    ("delete", Delete, "Delete", "🗑️", discord.ButtonStyle.danger),
)
DYNAMIC_ITEMS = tuple(entry[1] for entry in RESULT_BUTTONS)


class Menus:
    """Right-click > Apps. Context menus cannot be declared in a cog's body, so they are made here."""

    def __init__(self, cog: _Dreams):
        self.cog = cog
        self.commands = (
            app_commands.ContextMenu(name="Dream this", callback=self.dream_this),
            app_commands.ContextMenu(name="Dream deeper", callback=self.dream_deeper),
            app_commands.ContextMenu(name="Dream avatar", callback=self.dream_avatar),
        )

    async def dream_this(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """The default dream on the first photo of a message."""
        await self._dream(interaction, first_photo_of(message), {})

    async def dream_deeper(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """On a result: what its Dream deeper button does. On any other photo: a dream with the deep preset."""
        service = self.cog.bot.service
        # The link as the store recorded it (a resolved message may not know its guild).
        link = discord.MessageReference(message_id=message.id, channel_id=message.channel.id,
                                        guild_id=interaction.guild_id).jump_url
        job_id = await service.gallery.job_posted_in(link)
        record = await service.jobs.record(job_id) if job_id is not None else None
        if record is not None and record.kind in ("dream", "visualize"):
            await again(self.cog, interaction, record, deeper=True)
            return
        await self._dream(interaction, first_photo_of(message), {"layer": "deep"})

    async def dream_avatar(self, interaction: discord.Interaction, user: discord.User | discord.Member) -> None:
        """The default dream on someone's avatar (as shown on this server)."""
        avatar = user.display_avatar.replace(format="png", size=512)
        await self._dream(interaction, [ImageSource(avatar.url, f"{user.name}-avatar.png", None, "image/png")], {})

    async def _dream(self, interaction: discord.Interaction, sources: list[ImageSource], options: dict[str, Any]) -> None:
        ctx = await commands.Context.from_interaction(interaction)
        if not sources:
            await ctx.send("that message has no photo to dream on", ephemeral=True)
            return
        bot = self.cog.bot
        await self.cog.ask(ctx, job_request("dream", options, bot.prefix_in(ctx.guild), defaults={"model": bot.settings.dream_model}),
                           sources)
