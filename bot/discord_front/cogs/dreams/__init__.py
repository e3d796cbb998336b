"""The dreams family: !dream, !visualize and !zoom, their slash twins and context menus, the
buttons under their results, and results posted again after outages and restarts.

    cog.py       the Dreams cog: a job from the request to the posted result
    inputs.py    attachments and CDN links, checked from metadata and downloaded with caps
    slash.py     the typed slash commands, built from core/params.py
    buttons.py   asking again: result buttons and context menus
    delivery.py  results refused by Discord, and jobs adopted after a restart
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .buttons import DYNAMIC_ITEMS
from .cog import Dreams

if TYPE_CHECKING:
    from ...client import DreamBot

__all__ = ["Dreams", "setup"]


async def setup(bot: DreamBot) -> None:
    bot.add_dynamic_items(*DYNAMIC_ITEMS)  # buttons encode their job in custom_id: they work after a restart
    await bot.add_cog(Dreams(bot))


async def teardown(bot: DreamBot) -> None:
    bot.remove_dynamic_items(*DYNAMIC_ITEMS)
