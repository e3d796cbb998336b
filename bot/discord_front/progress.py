"""One progress message per job, edited at a bounded rate."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import discord

from core.jobs import ProgressEvent

__all__ = ["ProgressMessage", "progress_bar"]

log = logging.getLogger(__name__)


def progress_bar(step: int, total: int, width: int = 16) -> str:
    filled = width * step // max(1, total)
    return "█" * filled + "░" * (width - filled) + f" {100 * step // max(1, total)}%"


class ProgressMessage:
    """Edits `message` with the latest progress at most once every `interval` seconds.

    Events arrive faster than Discord allows edits; the latest one wins and the rest are dropped,
    so the bot never queues edits behind the job.
    """

    def __init__(self, message: discord.Message, title: str, *, interval: float = 2.0):
        self.message, self.title, self.interval = message, title, interval
        self._last_edit = 0.0
        self._pending: ProgressEvent | None = None
        self._flusher: asyncio.Task | None = None
        self.edits = 0

    async def update(self, event: ProgressEvent) -> None:
        self._pending = event
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        wait = self._last_edit + self.interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        event, self._pending = self._pending, None
        if event is None:
            return
        text = f"{self.title}\n`{progress_bar(event.step, event.total)}` {event.stage}"
        if event.stage == "encode":
            text = f"{self.title}\nencoding the result…"
        self._last_edit = time.monotonic()
        try:
            await self.message.edit(content=text)
            self.edits += 1
        except (discord.HTTPException, aiohttp.ClientError, RuntimeError) as exc:
            # A failed progress edit (or one during shutdown) must never fail the job.
            log.warning("progress edit failed: %s", exc)

    def stop(self) -> None:
        """Drop any pending edit (the job ended, or the bot is closing)."""
        if self._flusher is not None:
            self._flusher.cancel()

    async def finish(self, text: str) -> None:
        self.stop()
        try:
            await self.message.edit(content=text)
        except (discord.HTTPException, aiohttp.ClientError, RuntimeError) as exc:
            log.warning("final progress edit failed: %s", exc)
