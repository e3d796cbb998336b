"""The Discord front: discord.py cogs over the same service the console uses."""

from __future__ import annotations

from .client import DreamBot

__all__ = ["DreamBot"]
