"""The Discord front: discord.py cogs over the same service the console uses."""

from __future__ import annotations

from .client import DreamBot, ShardedDreamBot, make_bot
from .sharding import shard_of

__all__ = ["DreamBot", "ShardedDreamBot", "make_bot", "shard_of"]
