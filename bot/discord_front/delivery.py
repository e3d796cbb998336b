"""Results never lost: posting again the finished results that Discord refused.

A result whose post failed stays "finished, not posted" in the store (see DreamService's delivery
methods). `ResultDelivery` sweeps for them when the bot is ready (so a restart posts what the last
run could not) and then every `bot.delivery_interval` seconds, and posts each that is due. When
its channel is gone, the requester gets the result by DM; when their DMs are closed too, the job
is recorded as undeliverable with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import discord

from core.jobs import MIME_TYPES

from ..commands import reproduce_stored_command
from ..store import JobRecord
from .presenter import DEFAULT_UPLOAD_LIMIT, JobPresenter, refusal_text, reply_reference, upload_limit
from .upload import send_fitted

if TYPE_CHECKING:
    from .client import DreamBot

__all__ = ["ResultDelivery"]

log = logging.getLogger(__name__)

_POSTING_FAILED = (discord.HTTPException, aiohttp.ClientError)


class ResultDelivery:
    """Posts the pending results of the jobs `owns` accepts (this process's guilds)."""

    def __init__(self, bot: DreamBot, presenter: JobPresenter, owns: Callable[[JobRecord], bool]):
        self.bot = bot
        self.presenter = presenter
        self.owns = owns

    async def run_forever(self) -> None:
        await self.bot.wait_until_ready()
        while True:
            try:
                await self.sweep()
            except Exception:  # the store or Discord may be briefly away: the next sweep tries again
                log.exception("delivery sweep failed; trying again in %g s", self.bot.delivery_interval)
            await asyncio.sleep(self.bot.delivery_interval)

    async def sweep(self) -> None:
        for record in await self.bot.service.deliveries_due(self.owns):
            await self.deliver(record)

    async def deliver(self, record: JobRecord) -> None:
        """One more try at posting `record`'s result in its channel, or by DM when the channel is gone."""
        service = self.bot.service
        path = Path(record.result_location) if record.result_location else None
        if path is None or not await asyncio.to_thread(path.is_file):
            await service.end_delivery(record.id, by_dm=False, reason="its result file is gone")
            return
        data = await asyncio.to_thread(path.read_bytes)
        mime_type = MIME_TYPES.get(path.suffix.lstrip(".").lower(), "image/png")  # as the service named the file
        assert record.channel_id is not None, "only jobs with a channel are pending delivery"
        try:
            channel = self.bot.get_channel(int(record.channel_id)) or await self.bot.fetch_channel(int(record.channel_id))
        except (discord.NotFound, discord.Forbidden):
            await self._send_by_dm(record, data, mime_type, "its channel is gone")
            return
        except _POSTING_FAILED as exc:
            await self._failed(record, exc)
            return
        guild = getattr(channel, "guild", None)
        command = reproduce_stored_command(record.kind, record.params, record.seed, self.bot.prefix_in(guild))
        content = await self.presenter.result_text(record.id, int(record.user_id), guild, command)

        # A reply to what asked for it, as the first post was; a plain message if that is deleted.
        reference = reply_reference(record)

        async def send(text: str, file: discord.File, view: discord.ui.View) -> discord.Message:
            return await channel.send(text, file=file, view=view, reference=reference,  # type: ignore[union-attr,arg-type]
                                      mention_author=False)

        try:
            await self.presenter.post_result(record.id, record.kind, content, data, mime_type, send, upload_limit(channel))
        except (discord.NotFound, discord.Forbidden):  # deleted, or the bot lost access, since
            await self._send_by_dm(record, data, mime_type, "its channel is gone")
        except _POSTING_FAILED as exc:
            await self._failed(record, exc)
        else:
            log.info("posted job %s on try %d", record.id, record.delivery_attempts)

    async def _send_by_dm(self, record: JobRecord, data: bytes, mime_type: str, why: str) -> None:
        text = f"Your job #{record.id} ({record.kind}) finished, but I could not post it: {why}. Here it is."

        async def send(file: discord.File, note: str) -> discord.Message:
            return await user.send(text + (f"\n_{note}_" if note else ""), file=file)

        try:
            user = await self.bot.fetch_user(int(record.user_id))
            await send_fitted(send, data, mime_type, f"{record.kind}-{record.id}", DEFAULT_UPLOAD_LIMIT)
        except (discord.NotFound, discord.Forbidden):  # the user is gone, or takes no DMs from the bot
            await self.bot.service.end_delivery(record.id, by_dm=False, reason=f"{why}, and the requester's DMs are closed")
            return
        except _POSTING_FAILED as exc:
            await self._failed(record, exc)
            return
        await self.bot.service.end_delivery(record.id, by_dm=True, reason=why)

    async def _failed(self, record: JobRecord, error: Exception) -> None:
        retry_in = await self.bot.service.delivery_failed(record.id, refusal_text(error))
        log.warning("could not post job %s on try %d (%s); trying again in %.0f s",
                    record.id, record.delivery_attempts, error, retry_in)
