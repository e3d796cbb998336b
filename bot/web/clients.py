"""Who is asking: a client's address, believed from X-Forwarded-For only when the request came
through a reverse proxy the operator trusts (TRUSTED_PROXIES), and address lists (METRICS_ALLOW).

Without a trusted proxy the client is the socket's peer, whatever the headers say: anyone may send
an X-Forwarded-For. Through one, the header's hops are read from the right (the proxy appends the
address it saw), skipping the trusted proxies of a chain; the first address that is not one of
them is the client. A hop that is not an address stops the walk at the last trusted one, so a
garbled header can only make a client look like its proxy, never like someone else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

if TYPE_CHECKING:
    from .connections import ConnectionGuard

__all__ = ["LOOPBACK", "Address", "ClientAddresses", "Network", "client_address", "parse_address", "within"]

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
LOOPBACK: tuple[Network, ...] = (ip_network("127.0.0.0/8"), ip_network("::1/128"))


def parse_address(text: str) -> Address | None:
    """An address as a socket or a proxy writes it ("192.0.2.1", "192.0.2.1:4711", "[2001:db8::1]:80",
    "::ffff:192.0.2.1" from a dual-stack socket); None for anything else ("unknown", garbage)."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def within(address: Address | None, networks: Iterable[Network]) -> bool:
    return address is not None and any(address in network for network in networks)


class ClientAddresses:
    """`client(peer, forwarded_for)`: the address a request is counted under (rate limit, per-client cap)."""

    def __init__(self, trusted_proxies: Sequence[Network] = ()) -> None:
        self.trusted_proxies = tuple(trusted_proxies)

    def is_proxy(self, peer: str | None) -> bool:
        return within(parse_address(peer or ""), self.trusted_proxies)

    def client(self, peer: str | None, forwarded_for: Iterable[str] = ()) -> str:
        """The client's address as text; `forwarded_for` holds every X-Forwarded-For line, in order.
        A peer that is no trusted proxy is the client itself; "unknown" when there is no peer."""
        address = parse_address(peer or "")
        if address is None:
            return peer or "unknown"
        if not within(address, self.trusted_proxies):
            return str(address)
        # Several header lines are one list, joined by commas, in the order they came.
        hops = [hop for line in forwarded_for for hop in line.split(",")]
        for hop in reversed(hops):
            found = parse_address(hop)
            if found is None:
                break
            address = found
            if not within(found, self.trusted_proxies):
                break
        return str(address)


def client_address(clients: ClientAddresses, guard: ConnectionGuard) -> Middleware:
    """Middleware: the handlers (and the rate limit) see the client as `request.remote`. A request
    through a trusted proxy holds a place for its client while it runs, as a direct client's
    connection does (`ConnectionGuard`); beyond the cap it is a 503."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote  # aiohttp's: the socket's peer
        if not clients.is_proxy(peer):
            client = clients.client(peer)
            return await handler(request if client == peer else request.clone(remote=client))
        client = clients.client(peer, request.headers.getall("X-Forwarded-For", ()))
        if not guard.hold(client):
            raise web.HTTPServiceUnavailable(reason="Too many requests at once", headers={"Retry-After": "5"})
        try:
            return await handler(request.clone(remote=client))
        finally:
            guard.release(client)

    return middleware
