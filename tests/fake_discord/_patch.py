"""Pointing discord.py at a ``FakeDiscord`` at run time, and running a bot against it.

discord.py reads three module-level addresses (none is on disk; all are restored on exit):

- ``discord.http.Route.BASE``: every REST call, the interaction callback and webhook followups
  (``discord.webhook.async_`` builds its routes with the same ``Route``), read when a Route is made.
- ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``: where a plain ``Client``/``Bot`` opens the
  gateway. It does NOT ask ``GET /gateway/bot`` (only ``AutoShardedClient`` does), and it falls back
  to this URL after an INVALIDATE_SESSION; RESUMEs go to READY's ``resume_gateway_url``.
- ``discord.asset.Asset.BASE``: avatar/icon URLs, so an ``await avatar.read()`` hits the fake (an
  unknown route, recorded) rather than cdn.discordapp.com.

Attachment URLs need no patch: they are whatever URL the fake put in the payload.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import discord

    from ._server import FakeDiscord

__all__ = ["patch_discord_urls", "running_bot"]


@contextlib.contextmanager
def patch_discord_urls(fake: FakeDiscord) -> Iterator[None]:
    """Point discord.py's REST base, default gateway and asset CDN at ``fake`` while inside."""
    import yarl
    from discord.asset import Asset
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY, Asset.BASE)
    Route.BASE = fake.api_url
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.ws_url)
    Asset.BASE = fake.base_url
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY, Asset.BASE = saved


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeDiscord, client: discord.Client, *, token: str | None = None, timeout: float = 10.0,
) -> AsyncIterator[asyncio.Task[None]]:
    """Start ``client`` against ``fake``, wait until it is ready, and close it on exit.

    Yields the task running ``client.start``. Fails fast (with the client's own exception) when
    login or the gateway handshake fails, rather than waiting out ``timeout``.
    """
    with patch_discord_urls(fake):
        identified = len(fake.identifies)
        task = asyncio.create_task(client.start(token or fake.token or "fake-token"), name="fake-discord-bot")
        try:
            await _until_ready(fake, client, task, identified, timeout)
            yield task
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), timeout)
            if not task.done():
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(task), timeout)
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def _until_ready(fake: FakeDiscord, client: discord.Client, task: asyncio.Task[None], identified: int,
                       timeout: float) -> None:
    async def ready() -> None:
        # client._ready only exists after login, and login is done once the client IDENTIFYs.
        await fake.wait_for(lambda: len(fake.identifies) > identified, timeout, what="IDENTIFY")
        await client.wait_until_ready()

    waiter = asyncio.ensure_future(ready())
    try:
        done, _ = await asyncio.wait({waiter, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(BaseException):
                await waiter
    if waiter in done:
        waiter.result()
        return
    if task in done:
        exc = task.exception()
        raise RuntimeError("the bot stopped before it became ready") from exc
    raise TimeoutError(f"the bot did not become ready within {timeout:.1f}s")
