"""A local fake Discord that the real discord.py client stack talks to, for end-to-end bot tests.

One aiohttp server on 127.0.0.1 (ephemeral port) serves the REST API (``/api/v10``), the gateway
websocket (``/gateway``, JSON, honours ``compress=zlib-stream``) and a CDN (``/attachments/...``).
Nothing reaches the internet.

Use it::

    from tests.fake_discord import FakeDiscord, running_bot

    async with FakeDiscord() as fake:
        bot = commands.Bot(command_prefix="!", intents=intents, guild_ready_timeout=0.05)
        async with running_bot(fake, bot):          # patches discord.py's URLs, starts, waits for ready
            await fake.dispatch_message("!ping")   # alice says "!ping" in #general
            reply = await fake.wait_for_message(lambda m: m["content"] == "pong")

or by hand: ``with patch_discord_urls(fake): task = asyncio.create_task(bot.start(fake.token))``.

Notes on discord.py that shape this fake:

- A plain ``Client``/``Bot`` opens the gateway at ``DiscordWebSocket.DEFAULT_GATEWAY`` (it never
  calls ``GET /gateway/bot``), so that class attribute must be patched, not only ``Route.BASE``.
- ``on_ready`` fires ``guild_ready_timeout`` seconds (default 2 s) after the last GUILD_CREATE;
  pass ``guild_ready_timeout=0.05`` to the bot in tests.
- discord.py asks for ``compress=zlib-stream`` (``zstd-stream`` when ``zstandard`` or Python 3.14's
  ``compression.zstd`` is importable) and only decompresses ``bytes`` frames. The fake honours
  zlib-stream, so the real decompression path runs; for anything else it sends text frames.
- REST JSON must be served with Content-Type exactly ``application/json``: discord.py's
  ``json_or_text`` compares the header verbatim and hands ``...; charset=utf-8`` bodies back as str.
- A non-initial IDENTIFY (after ``invalidate_session(resumable=False)``) waits 5 s in
  ``Client.before_identify_hook``; override that hook in tests that re-identify.
- Interactions must get their first callback within ``interaction_timeout`` (3 s, like Discord),
  a second callback gets 400/40060, and followups need an acknowledged interaction.
"""

from __future__ import annotations

from ._gateway import Intents, Op, shard_of
from ._patch import patch_discord_urls, running_bot
from ._records import (
    CdnRequest,
    CommandSync,
    Edit,
    GatewayConnection,
    InteractionResponse,
    Reaction,
    RejectedUpload,
    RequestRecord,
    Typing,
    Upload,
    UploadedFile,
)
from ._server import FakeDiscord
from ._world import Permissions

__all__ = [
    "CdnRequest",
    "CommandSync",
    "Edit",
    "FakeDiscord",
    "GatewayConnection",
    "Intents",
    "InteractionResponse",
    "Op",
    "Permissions",
    "Reaction",
    "RejectedUpload",
    "RequestRecord",
    "Typing",
    "Upload",
    "UploadedFile",
    "patch_discord_urls",
    "running_bot",
    "shard_of",
]
