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

Another process can be pointed at a running fake through its ``base_url`` (``patch_discord_urls``
takes the URL as well as the fake), and name itself with ``client_label`` so the fake can tell
which process sent what.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from ._rest import API_PREFIX, CLIENT_LABEL

if TYPE_CHECKING:
    import discord

    from ._server import FakeDiscord

__all__ = ["patch_discord_urls", "running_bot"]


@contextlib.contextmanager
def patch_discord_urls(fake: FakeDiscord | str, *, client_label: str | None = None) -> Iterator[None]:
    """Point discord.py's REST base, default gateway and asset CDN at ``fake`` (or the ``base_url``
    of a fake elsewhere) while inside.

    client_label: one word naming this client. Every discord.py HTTP client created inside puts it
    in its User-Agent, which goes with its REST requests and its gateway connections; the fake
    records it (``RequestRecord.client``, ``sent_by``, ``GatewayConnection.client``).
    """
    import yarl
    from discord.asset import Asset
    from discord.gateway import DiscordWebSocket
    from discord.http import HTTPClient, Route

    base_url = fake if isinstance(fake, str) else fake.base_url
    base_url = base_url.rstrip("/")
    assert base_url.startswith("http://"), f"a fake Discord's base URL looks like http://127.0.0.1:PORT, not {base_url!r}"
    assert client_label is None or (client_label and not client_label.split()[1:]), "client_label is one word"
    saved = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY, Asset.BASE, HTTPClient.__init__)
    Route.BASE = base_url + API_PREFIX
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL("ws://" + base_url.removeprefix("http://") + "/gateway")
    Asset.BASE = base_url
    if client_label is not None:
        HTTPClient.__init__ = _labelled(HTTPClient.__init__, client_label)  # type: ignore[method-assign]
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY, Asset.BASE, HTTPClient.__init__ = saved  # type: ignore[method-assign]


def _labelled(init: Callable[..., None], label: str) -> Callable[..., None]:
    # discord.py sets the User-Agent per HTTPClient in __init__ and sends it with every request.
    @functools.wraps(init)
    def labelled_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.user_agent = f"{self.user_agent} {CLIENT_LABEL}{label}"

    return labelled_init


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
