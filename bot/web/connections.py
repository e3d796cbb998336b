"""Connections the web gallery accepts, and how long it waits on them.

aiohttp alone waits for ever on a client that sends its request head a byte at a time, keeps an
idle connection an hour, accepts as many connections as there are file descriptors, and answers a
request its parser rejects in its own words (echoing the request, naming its version) with an
ERROR and a traceback in the log. Here each connection is served by `GuardedHandler`, which:

- refuses a connection beyond `max_connections` in all, or beyond `max_per_client` from one
  address, with a short 503 before reading anything;
- closes one whose request head is not complete `header_timeout` seconds after it began (after
  the connection opened, or after the first byte of a kept-alive connection's next request);
  a running handler or a slow body is never cut;
- answers a malformed request with a short 400 carrying the gallery's headers, and logs it as one
  warning line without the client's bytes (at most `_LOG_BURST` a minute, then a count) in place
  of its access-log line.

Behind a reverse proxy every connection is the proxy's: a trusted proxy (see `clients`) is held
to the total cap only, and its clients' requests in progress to `max_per_client` each, by the
app's middleware through `ConnectionGuard.hold`.

`GuardedSite` listens like aiohttp's TCPSite and builds a `GuardedHandler` per connection, with
the keyword arguments the runner gave (`keepalive_timeout` among them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .safety import NO_STORE, SECURITY_HEADERS

__all__ = ["ConnectionGuard", "ConnectionLimits", "GuardedHandler", "GuardedSite"]

log = logging.getLogger(__name__)

_LOG_BURST = 10  # rejected-request lines a minute, at most


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = 10.0  # seconds for a request's head to arrive whole
    keepalive_timeout: float = 15.0  # an idle kept-alive connection is closed after this (aiohttp: 3630 s)
    max_connections: int = 512  # open at once, in all
    max_per_client: int = 16  # open at once from one address (through a proxy: its requests in progress)
    # After answering, the unread rest of a request's body is read for at most this long, so that the
    # client sees the answer (aiohttp: 10 s, which a client promising a body it never sends would hold).
    linger: float = 2.0


class ConnectionGuard:
    """Counts open connections in all and holds per client address.

    is_proxy: whether a peer is a trusted proxy, whose connections count only towards the total.
    """

    def __init__(self, limits: ConnectionLimits = ConnectionLimits(), *,
                 is_proxy: Callable[[str], bool] = lambda peer: False) -> None:
        assert limits.max_connections >= 1 and limits.max_per_client >= 1, f"limits that admit nobody: {limits}"
        self.limits = limits
        self._is_proxy = is_proxy
        self.open_connections = 0
        self._held: dict[str, int] = {}

    def held(self, client: str) -> int:
        return self._held.get(client, 0)

    def connect(self, peer: str) -> bool:
        """A new connection from `peer`: False (refuse it) beyond a cap; else counted until `disconnect`."""
        if self.open_connections >= self.limits.max_connections:
            return False
        if not self._is_proxy(peer) and not self.hold(peer):
            return False
        self.open_connections += 1
        return True

    def disconnect(self, peer: str) -> None:
        self.open_connections -= 1
        if not self._is_proxy(peer):
            self.release(peer)

    def hold(self, client: str) -> bool:
        """One more place for `client`: False beyond `max_per_client`; else held until `release`."""
        count = self._held.get(client, 0)
        if count >= self.limits.max_per_client:
            return False
        self._held[client] = count + 1
        return True

    def release(self, client: str) -> None:
        count = self._held[client] - 1
        if count:
            self._held[client] = count
        else:
            del self._held[client]  # memory follows the clients connected now, not all ever seen


# Written as they are to a refused connection, before any of its bytes are read.
_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    + b"".join(f"{name}: {value}\r\n".encode() for name, value in SECURITY_HEADERS.items())
    + f"Cache-Control: {NO_STORE}\r\n".encode()
    + b"Retry-After: 5\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 20\r\nConnection: close\r\n\r\n"
    + b"503 too many at once"
)


class _RejectionLog:
    """One warning line per rejected request, at most `burst` a minute; the rest are counted."""

    def __init__(self, burst: int = _LOG_BURST, period: float = 60.0) -> None:
        self.burst, self.period = burst, period
        self._window = -period
        self._written = self._skipped = 0

    def note(self, peer: str | None, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._window >= self.period:
            self._window, self._written = now, 0
        if self._written >= self.burst:
            self._skipped += 1
            return
        self._written += 1
        more = f" ({self._skipped} more since, not logged)" if self._skipped else ""
        self._skipped = 0
        # The exception's name only: its message quotes the client's bytes.
        log.warning("rejected a malformed request from %s: %s%s", peer, type(exc).__name__, more)


class GuardedHandler(web.RequestHandler):
    """aiohttp's handler for one connection, with the caps, the head timeout and a quiet 400 (above)."""

    __slots__ = ("_guard", "_head_timer", "_header_timeout", "_peer", "_rejected", "_rejections")

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, header_timeout: float,
                 rejections: _RejectionLog, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._header_timeout = header_timeout
        self._rejections = rejections
        self._peer: str | None = None  # set while the connection counts towards the guard
        self._head_timer: asyncio.TimerHandle | None = None
        self._rejected = False  # the answer now going out is to a malformed request

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, (tuple, list)) else str(peername)
        if not self._guard.connect(peer):
            transport.write(_REFUSED)  # type: ignore[attr-defined]
            transport.close()  # never registered with aiohttp's server: nothing else to undo
            return
        self._peer = peer
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._peer is None:
            return  # refused
        self._stop_head_timer()
        self._guard.disconnect(self._peer)
        self._peer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._peer is None:
            return
        super().data_received(data)
        if self._messages or self._request_in_progress:
            self._stop_head_timer()  # a whole head arrived
        elif data and self._waiter is not None and not self._waiter.done():
            self._start_head_timer()  # the first bytes of a kept-alive connection's next request

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status < 500 and isinstance(exc, HttpProcessingError):  # the parser refused the request
            self._rejections.note(request.remote, exc)
            self._rejected = True
            if request.writer.output_size > 0:
                raise ConnectionError("an answer was already under way")
            response = web.Response(status=status, text=f"{status} Bad Request\n")
            response.force_close()
        else:  # a handler's own failure: aiohttp logs it with its traceback, as it should
            response = super().handle_error(request, status, exc, message)
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = NO_STORE
        return response

    def log_access(self, request: web.BaseRequest, response: web.StreamResponse, time: float | None) -> None:
        if self._rejected:  # its warning line (or its count) says it already, better than "UNKNOWN / HTTP/1.0"
            self._rejected = False
            return
        super().log_access(request, response, time)

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self._loop.call_later(self._header_timeout, self._head_overdue)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self) -> None:
        self._head_timer = None
        if not (self._messages or self._request_in_progress):
            self.force_close()  # as aiohttp's own keep-alive timer closes an idle connection


class GuardedSite(web.BaseSite):
    """Listens on host:port like web.TCPSite; each connection gets a `GuardedHandler` under `guard`."""

    __slots__ = ("_guard", "_host", "_port", "_rejections")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, guard: ConnectionGuard) -> None:
        super().__init__(runner)
        self._host, self._port = host, port
        self._guard = guard
        self._rejections = _RejectionLog()

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()  # registers the site with its runner
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None, "GuardedSite needs runner.setup() first"
        # What aiohttp's Server would pass its own handler: the runner's keyword arguments.
        options = {**server._kwargs, "guard": self._guard, "header_timeout": self._guard.limits.header_timeout,
                   "rejections": self._rejections}

        def handler() -> GuardedHandler:
            return GuardedHandler(server, loop=loop, **options)

        self._server = await loop.create_server(handler, self._host, self._port, backlog=self._backlog)
