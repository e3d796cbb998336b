"""`dreambot run`: open the resources, start the bot, shut down cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AbstractAsyncContextManager, nullcontext

import aiohttp

from core.errors import InvalidParameter

from ..service import Service
from ..settings import Settings
from ..wiring import open_service
from .client import make_bot

__all__ = ["run_bot"]

log = logging.getLogger(__name__)


async def run_bot(settings: Settings, *, sync_commands: bool = False, web: bool = False) -> int:
    """Run the bot until SIGTERM or SIGINT; with `web`, the web gallery too, on WEB_HOST:WEB_PORT."""
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        raise InvalidParameter("DISCORD_TOKEN is not set; put it in the environment or a .env file (see the README)")
    token = settings.discord_token.get_secret_value()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    async with aiohttp.ClientSession() as session, open_service(settings) as service, \
            _web_beside(service, settings, web):
        bot = make_bot(service=service, settings=settings, http_session=session)
        loop = asyncio.get_running_loop()
        closing: list[asyncio.Task] = []  # keeps the close task referenced until it ends

        def stop() -> None:
            if not bot.is_closed() and not closing:
                closing.append(asyncio.create_task(bot.close()))

        for sig in (signal.SIGTERM, signal.SIGINT):
            # Closing the bot, then the workers, puts unfinished jobs back in the store; the next
            # start re-runs them, so a restart loses nothing.
            loop.add_signal_handler(sig, stop)
        try:
            async with bot:
                if sync_commands:
                    @bot.event
                    async def on_ready() -> None:  # sync once, on request, not on every start
                        synced = await bot.tree.sync()
                        log.info("synced %d slash commands", len(synced))
                await bot.start(token)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    log.info("stopped cleanly")
    return 0


def _web_beside(service: Service, settings: Settings, wanted: bool) -> AbstractAsyncContextManager[object]:
    """The web gallery over the bot's own store and metrics (its health check then judges the workers too)."""
    if not wanted:
        return nullcontext()
    from ..web import gallery_app, serving

    return serving(gallery_app(service.public, service.metrics, settings), settings.web_host, settings.web_port)
