"""The served gallery under a few hundred random and mangled requests (seeded): never a 500, never
a traceback in the log, and still healthy afterwards; the operator's settings reach the app."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from ipaddress import ip_network

from bot.settings import load_settings
from bot.web import ConnectionLimits, gallery_app
from bot.web.app import CONNECTION_GUARD
from tests.bot.web.conftest import PRIVATE, PUBLIC
from tests.bot.web.raw_http import exchange, get

REQUESTS = 300
TARGETS = [
    "/", f"/servers/{PUBLIC}", f"/servers/{PUBLIC}?order=top&page=2", f"/api/servers/{PUBLIC}?page=\u00b2",
    f"/servers/{PUBLIC}?page=\u2460", f"/api/servers/{PUBLIC}?page=" + "7" * 5000, f"/servers/{PRIVATE}", "/results/1",
    "/results/2/file", "/api/results/3", "/static/gallery.css", "/favicon.ico", "/healthz", "/metrics",
    "/results/../store.db", "/static/%2e%2e/store.db", f"/servers/{PUBLIC}?order=%ff%fe&page=%00", "/results/1?x=" + "%" * 50,
]
METHODS = ["GET", "HEAD", "POST", "OPTIONS", "DELETE", "TRACE", "CONNECT", "PRI", "G\u00c9T", "get", ""]
HEADERS = ["Host: gallery.test", "Connection: close", "Accept: */*", "Range: bytes=0-10", "Range: bytes=99999999-",
           "If-None-Match: *", "If-Modified-Since: yesterday", "Content-Length: 5", "Content-Length: -1",
           "Transfer-Encoding: chunked", "Transfer-Encoding: gzip, chunked", "Expect: 100-continue", "X-Forwarded-For: ::::",
           "Cookie: " + "a" * 9000, "Accept-Encoding: br;q=\u00b2", "Upgrade: websocket", "Host:", ": empty name"]


def mangled(rng: random.Random) -> bytes:
    """A request that is right (with a junk query now and then), a little wrong or nothing like one."""
    target = rng.choice(TARGETS)
    kind = rng.random()
    if kind < 0.45:  # well formed
        return get(target, *rng.sample(["Accept: */*", "Range: bytes=0-10", "If-None-Match: *"], rng.randint(0, 2)))
    method = rng.choice(METHODS)
    version = rng.choice(["HTTP/1.1"] * 6 + ["HTTP/1.0", "HTTP/2.0", "HTTP/1.1.1", "HTTPS/1.1", ""])
    headers = ["Connection: close", *rng.sample(HEADERS, rng.randint(0, 3))]
    data = bytearray(f"{method} {target} {version}\r\n".encode() + "".join(f"{h}\r\n" for h in headers).encode()
                     + b"\r\n" + (b"hello" if rng.random() < 0.2 else b""))
    if kind < 0.8:  # flip, insert or drop a few bytes
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            choice = rng.random()
            if choice < 0.4:
                data[at] = rng.randrange(256)
            elif choice < 0.7:
                data[at:at] = bytes([rng.choice(b"\x00\r\n :%/.\\\xff\x7f\t")])
            else:
                del data[at]
    elif kind < 0.9:
        data = bytearray(rng.randbytes(rng.randint(1, 300)))
    else:
        data = data[: rng.randrange(1, len(data))] + b"\r\n\r\n"  # cut short, then ended
    return bytes(data)


async def test_hundreds_of_mangled_requests_never_get_a_500_or_a_traceback(serve, caplog):
    caplog.set_level(logging.INFO)
    served = await serve(connections=ConnectionLimits(header_timeout=0.5, keepalive_timeout=0.5, linger=0.5, max_per_client=64))
    rng = random.Random(23)
    requests = [mangled(rng) for _ in range(REQUESTS)]
    room = asyncio.Semaphore(32)

    async def send(data: bytes) -> int | None:
        async with room:
            return (await exchange(served.port, data)).status

    statuses = Counter(await asyncio.gather(*(send(data) for data in requests)))
    assert statuses[500] == 0, statuses
    assert statuses[200] > 30 and statuses[400] > 50, f"the mix reached the pages and the parser: {statuses}"
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert tracebacks == []
    assert (await exchange(served.port, get("/healthz"))).status == 200
    assert served.guard.open_connections <= 1, "every connection was closed"


def test_the_operators_settings_reach_the_app(published):
    from bot.service import Metrics

    settings = load_settings(_env_file=None, web_header_timeout=3, web_max_connections=40, web_max_connections_per_client=4,
                             trusted_proxies="10.0.0.0/8", metrics_allow="192.0.2.1")
    app = gallery_app(published.gallery, Metrics(published.store), settings)
    limits = app[CONNECTION_GUARD].limits
    assert (limits.header_timeout, limits.max_connections, limits.max_per_client) == (3, 40, 4)
    assert limits.keepalive_timeout < 75, "far below aiohttp's hour"
    assert settings.trusted_proxies == (ip_network("10.0.0.0/8"),) and settings.metrics_allow == (ip_network("192.0.2.1"),)
