"""Nothing lost across outages and restarts: results Discord refused are posted again, and jobs a
stopped process left unfinished are run again and followed here.

Once the bot is ready, and then every `bot.delivery_interval` seconds, the sweep posts the results
still to post (service.delivery) of this process's guilds: in their channel as a reply to their
request, or, when the channel is gone, to the requester by DM; when their DMs are closed too, the
job is recorded as undeliverable with the reason. Jobs adopted from a dead process (at start, or
whenever one dies) are announced in their channel and followed like any other.
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import discord

from core.clip_encoding import shrink_to_fit
from core.jobs import FILE_EXTENSIONS

from ....store import JobRecord
from ...client import DM_UPLOAD_LIMIT, post_nonce, reply_reference, upload_limit

if TYPE_CHECKING:
    from ...client import DreamBot

__all__ = ["Redelivery"]

log = logging.getLogger(__name__)

_POSTING_FAILED = (discord.HTTPException, aiohttp.ClientError)


class _Dreams(Protocol):
    """What redelivery needs of the Dreams cog: its bot, and how it words, posts and follows a job."""

    bot: DreamBot

    async def result_text(self, job_id: int, user_id: int, guild: discord.Guild | None, command: str | None,
                          extra: str = "") -> str: ...

    async def post_result(self, job_id: int, kind: str, content: str, data: bytes, mime_type: str, send: Any,
                          limit: int) -> discord.Message: ...

    def follow_job(self, job_id: int, kind: str, ack: discord.Message, send: Any, limit: int, user_id: int) -> None: ...

    async def unbroken(self, delivery: Any) -> Any: ...

    @staticmethod
    def refusal_text(error: Exception) -> str: ...


class Redelivery:
    def __init__(self, cog: _Dreams):
        self.cog = cog
        self.bot = cog.bot

    async def run(self) -> None:
        """Once ready: take back this process's unfinished jobs, then sweep for results to post, forever."""
        bot = self.bot
        await bot.wait_until_ready()
        await self.rerun(await bot.service.leases.recover(bot.takes_back, on_adopted=self.rerun))
        while True:
            try:
                await self.sweep()
            except Exception:  # the store or Discord may be briefly away: the next sweep tries again
                log.exception("delivery sweep failed; trying again in %g s", bot.delivery_interval)
            await asyncio.sleep(bot.delivery_interval)

    async def sweep(self) -> None:
        for record in await self.bot.service.delivery.due(self.bot.takes_back):
            await self.deliver(record)

    async def deliver(self, record: JobRecord) -> None:
        """One more try at posting `record`'s result in its channel, or by DM when the channel is gone;
        the claim `due` took on it is held until the try is over, which a stopping bot waits for."""
        await self.cog.unbroken(self._deliver_held(record))

    async def _deliver_held(self, record: JobRecord) -> None:
        async with self.bot.service.jobs.posting.holding(record.id):
            await self._deliver(record)

    async def _deliver(self, record: JobRecord) -> None:
        bot, delivery = self.bot, self.bot.service.delivery
        found = await delivery.result(record)
        if found is None:
            await delivery.ended(record.id, by_dm=False, reason="its result file is gone")
            return
        data, mime_type = found
        assert record.channel_id is not None, "only jobs with a channel are pending delivery"
        try:
            channel = bot.get_channel(int(record.channel_id)) or await bot.fetch_channel(int(record.channel_id))
        except (discord.NotFound, discord.Forbidden):
            await self._send_by_dm(record, data, mime_type, "its channel is gone")
            return
        except _POSTING_FAILED as exc:
            await self._failed(record, exc)
            return
        content = await self.cog.result_text(record.id, int(record.user_id), getattr(channel, "guild", None), record.command)
        reference = reply_reference(record)  # a reply to what asked for it, as the first post was

        async def send(text: str, file: discord.File, view: discord.ui.View, nonce: str) -> discord.Message:
            return await channel.send(text, file=file, view=view, reference=reference, mention_author=False,  # type: ignore[union-attr,arg-type]
                                      nonce=nonce)

        try:
            await self.cog.post_result(record.id, record.kind, content, data, mime_type, send, upload_limit(channel))
        except (discord.NotFound, discord.Forbidden):  # deleted, or the bot lost access, since
            await self._send_by_dm(record, data, mime_type, "its channel is gone")
        except _POSTING_FAILED as exc:
            await self._failed(record, exc)
        else:
            log.info("posted job %s on try %d", record.id, record.delivery_attempts)

    async def _send_by_dm(self, record: JobRecord, data: bytes, mime_type: str, why: str) -> None:
        text = f"Your job #{record.id} ({record.kind}) finished, but I could not post it: {why}. Here it is."
        note = ""
        if len(data) + 1024 > DM_UPLOAD_LIMIT:
            data, mime_type, note = await asyncio.to_thread(shrink_to_fit, data, mime_type, DM_UPLOAD_LIMIT - 1024)
        file = discord.File(io.BytesIO(data), filename=f"{record.kind}-{record.id}.{FILE_EXTENSIONS[mime_type]}")
        try:
            user = await self.bot.fetch_user(int(record.user_id))
            await user.send(text + (f"\n_{note}_" if note else ""), file=file, nonce=post_nonce(record.id))
        except (discord.NotFound, discord.Forbidden):  # the user is gone, or takes no DMs from the bot
            await self.bot.service.delivery.ended(record.id, by_dm=False, reason=f"{why}, and the requester's DMs are closed")
            return
        except _POSTING_FAILED as exc:
            await self._failed(record, exc)
            return
        await self.bot.service.delivery.ended(record.id, by_dm=True, reason=why)

    async def _failed(self, record: JobRecord, error: Exception) -> None:
        retry_in = await self.bot.service.delivery.failed(record.id, self.cog.refusal_text(error))
        log.warning("could not post job %s on try %d (%s); trying again in %.0f s",
                    record.id, record.delivery_attempts, error, retry_in)

    async def rerun(self, records: list[JobRecord]) -> None:
        """Announce and follow jobs this process adopted (at start, or when the process holding them died)."""
        for record in records:
            await self._rerun(record)

    async def _rerun(self, record: JobRecord) -> None:
        bot = self.bot
        assert record.channel_id is not None, "takes_back keeps only jobs with a channel"
        channel = bot.get_channel(int(record.channel_id))
        if channel is None:
            try:
                channel = await bot.fetch_channel(int(record.channel_id))
            except discord.HTTPException:
                await bot.service.jobs.give_up(record.id, "its channel is gone")
                return
        # Replies to what asked for it, as before the restart; plain messages if that is deleted.
        reference = reply_reference(record)
        if record.status == "failed":  # adopted, but refused under its server's settings as they are now
            await channel.send(  # type: ignore[union-attr]
                f"❌ <@{record.user_id}>, job #{record.id} ({record.kind}) was interrupted by a restart and cannot run "
                f"again: {record.error}", reference=reference, mention_author=False)  # type: ignore[arg-type]
            return
        ack = await channel.send(  # type: ignore[union-attr]
            f"🔁 <@{record.user_id}>, job #{record.id} ({record.kind}) was interrupted by a restart; running it again",
            reference=reference, mention_author=False)  # type: ignore[arg-type]

        async def send(content: str, file: discord.File, view: discord.ui.View, nonce: str) -> discord.Message:
            return await channel.send(content, file=file, view=view, reference=reference, mention_author=False,  # type: ignore[union-attr,arg-type]
                                      nonce=nonce)

        self.cog.follow_job(record.id, record.kind, ack, send, upload_limit(channel), int(record.user_id))
