"""Who is asking: X-Forwarded-For believed only from a trusted proxy, for the rate limit, the
per-client cap and /metrics."""

from __future__ import annotations

import asyncio
from ipaddress import ip_network

import pytest

from bot.web import ClientLimit, ConnectionLimits
from bot.web.clients import ClientAddresses, parse_address
from tests.bot.web.raw_http import exchange, get

PROXY = [ip_network("127.0.0.1/32")]  # the tests' reverse proxy; 127.0.0.2 is a client reaching the app directly


@pytest.mark.parametrize(("peer", "forwarded", "client"), [
    ("127.0.0.2", ["6.6.6.6"], "127.0.0.2"),  # not a proxy: the header is anyone's to write
    ("127.0.0.1", ["203.0.113.7"], "203.0.113.7"),
    ("127.0.0.1", ["6.6.6.6, 203.0.113.7"], "203.0.113.7"),  # what the client wrote comes first; the proxy appends
    ("127.0.0.1", ["6.6.6.6", "203.0.113.7"], "203.0.113.7"),  # two header lines are one list
    ("127.0.0.1", ["203.0.113.7, 127.0.0.1"], "203.0.113.7"),  # a chain of trusted proxies is skipped
    ("127.0.0.1", ["203.0.113.7, garbage"], "127.0.0.1"),  # unreadable: the last trusted hop, never a guess
    ("127.0.0.1", [], "127.0.0.1"),
    ("127.0.0.1", ["[2001:db8::1]:4711"], "2001:db8::1"),
    ("::ffff:127.0.0.1", ["198.51.100.4:80"], "198.51.100.4"),
])
def test_the_client_is_the_rightmost_hop_a_trusted_proxy_did_not_add(peer, forwarded, client):
    assert ClientAddresses(PROXY).client(peer, forwarded) == client


def test_addresses_are_read_as_sockets_and_proxies_write_them():
    assert str(parse_address("::ffff:192.0.2.1")) == "192.0.2.1"
    assert [parse_address(text) for text in ("unknown", "", "_hidden", "1.2.3.4.5", "[::1")] == [None] * 5
    assert ClientAddresses().client(None) == "unknown"


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored_by_the_rate_limit(serve):
    served = await serve(limit=ClientLimit(burst=2, per_second=0.001), trusted_proxies=PROXY)
    statuses = [(await exchange(served.port, get("/", f"X-Forwarded-For: 198.51.100.{i}"), source="127.0.0.2")).status
                for i in range(3)]
    assert statuses == [200, 200, 429], "three requests from one address, whatever they claim"


async def test_through_a_trusted_proxy_each_client_has_its_own_rate_limit(serve):
    served = await serve(limit=ClientLimit(burst=2, per_second=0.001), trusted_proxies=PROXY)
    others = [(await exchange(served.port, get("/", f"X-Forwarded-For: 198.51.100.{i}"))).status for i in range(4)]
    assert others == [200] * 4, "four clients behind one proxy"
    same = [(await exchange(served.port, get("/", "X-Forwarded-For: 203.0.113.7"))).status for _ in range(3)]
    assert same == [200, 200, 429]
    spoofed = await exchange(served.port, get("/", "X-Forwarded-For: 203.0.113.7", "X-Forwarded-For: 198.51.100.99"))
    assert spoofed.status == 200, "the proxy's own (rightmost) hop counts, not what the client prepended"


class Waiting:
    """A monitor whose health check waits until let go, to keep requests in progress."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.waiting = 0

    async def exposition(self) -> tuple[bytes, str]:
        return b"", "text/plain; version=0.0.4"

    async def health(self) -> tuple[bool, dict[str, str]]:
        self.waiting += 1
        await self.go.wait()
        return True, {}


async def test_through_a_trusted_proxy_the_per_client_cap_counts_each_clients_requests(serve):
    monitor = Waiting()
    served = await serve(monitor=monitor, trusted_proxies=PROXY, connections=ConnectionLimits(max_per_client=2))
    busy = [asyncio.create_task(exchange(served.port, get("/healthz", "X-Forwarded-For: 203.0.113.7"))) for _ in range(2)]
    other = asyncio.create_task(exchange(served.port, get("/healthz", "X-Forwarded-For: 198.51.100.4")))
    while monitor.waiting < 3:
        await asyncio.sleep(0.01)  # three requests in progress on three of the proxy's connections
    refused = await exchange(served.port, get("/", "X-Forwarded-For: 203.0.113.7"))
    assert refused.status == 503 and refused.headers["retry-after"] == "5"
    assert (await exchange(served.port, get("/", "X-Forwarded-For: 198.51.100.5"))).status == 200
    monitor.go.set()
    assert [answer.status for answer in await asyncio.gather(*busy, other)] == [200, 200, 200]
    assert (await exchange(served.port, get("/", "X-Forwarded-For: 203.0.113.7"))).status == 200, "places given back"


async def test_metrics_are_only_for_the_addresses_allowed(serve):
    default = await serve(trusted_proxies=PROXY)
    assert (await exchange(default.port, get("/metrics"), source="127.0.0.2")).status == 200, "loopback by default"
    proxied = await exchange(default.port, get("/metrics", "X-Forwarded-For: 203.0.113.7"))
    assert proxied.status == 403, "a visitor through a proxy on this machine is not this machine"
    assert proxied.headers["cache-control"] == "no-store" and b"dreambot_" not in proxied.body
    assert (await exchange(default.port, get("/healthz", "X-Forwarded-For: 203.0.113.7"))).status == 200, "health stays public"
    only = await serve(metrics_allow=[ip_network("127.0.0.2/32")])
    assert (await exchange(only.port, get("/metrics"))).status == 403
    allowed = await exchange(only.port, get("/metrics"), source="127.0.0.2")
    assert allowed.status == 200 and b"dreambot_queue_length" in allowed.body
