"""Serving the web gallery: on its own (`dreambot web`) or beside the Discord bot (`dreambot run --web`)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from core.errors import InvalidParameter

from ..service.gallery import PublicGallery
from ..settings import Settings
from .app import CONNECTION_GUARD, Monitor, make_app
from .connections import ConnectionLimits, GuardedSite
from .ratelimit import ClientLimit

__all__ = ["serving", "run_web", "gallery_app"]

log = logging.getLogger(__name__)


@asynccontextmanager
async def serving(app: web.Application, host: str, port: int) -> AsyncIterator[str]:
    """Listen on host:port (port 0: any free one) until the block ends; yields the address served.
    Connections are held to the caps and timeouts `make_app` was given."""
    guard = app[CONNECTION_GUARD]
    # The caller owns SIGTERM and SIGINT.
    runner = web.AppRunner(app, handle_signals=False, keepalive_timeout=guard.limits.keepalive_timeout,
                           lingering_time=guard.limits.linger)
    await runner.setup()
    try:
        site = GuardedSite(runner, host, port, guard=guard)
        try:
            await site.start()
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else str(exc)  # asyncio's own text repeats the address
            raise InvalidParameter(f"the web gallery cannot listen on {host}:{port}: {why}") from None
        bound = runner.addresses[0]  # (host, port) as the operating system gave it
        url = f"http://{host if ':' not in host else f'[{host}]'}:{bound[1]}"
        log.info("web gallery at %s", url)
        yield url
    finally:
        await runner.cleanup()


def gallery_app(gallery: PublicGallery, monitor: Monitor, settings: Settings) -> web.Application:
    """The web gallery with the operator's limits: connections (WEB_*), trusted proxies, who reads /metrics."""
    connections = ConnectionLimits(header_timeout=settings.web_header_timeout, max_connections=settings.web_max_connections,
                                   max_per_client=settings.web_max_connections_per_client)
    return make_app(gallery, monitor, limit=ClientLimit(), connections=connections,
                    trusted_proxies=settings.trusted_proxies, metrics_allow=settings.metrics_allow,
                    public_url=settings.public_url)


async def run_web(settings: Settings, *, host: str | None = None, port: int | None = None) -> int:
    """`dreambot web`: the gallery, health and metrics over the store, until SIGTERM or SIGINT."""
    from ..wiring import open_web

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with open_web(settings) as (gallery, metrics), \
                serving(gallery_app(gallery, metrics, settings), host or settings.web_host,
                        settings.web_port if port is None else port):
            await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("web gallery stopped")
    return 0
