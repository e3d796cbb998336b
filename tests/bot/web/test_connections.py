"""Connections to the served gallery, over raw sockets: malformed requests get a short 400 and one
quiet log line, a head dripped too slowly is cut off, and the caps hold, per address and in all."""

from __future__ import annotations

import asyncio
import logging

from bot.web import ConnectionLimits
from bot.web.connections import ConnectionGuard
from bot.web.safety import CONTENT_SECURITY_POLICY, NO_STORE
from tests.bot.web.raw_http import WAIT, closed_by_server, connect, exchange, get

MALFORMED = {
    "bad method": [b"FOO\x01 / HTTP/1.1\r\nHost: x\r\n\r\n"],
    "100 KB request line": [b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"],
    "NUL in the target": [b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n"],
    "malformed header": [b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n"],
    "bad method after a good request": [b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"FOO\x01 / HTTP/1.1\r\nHost: x\r\n\r\n"],
}


async def test_a_malformed_request_gets_a_short_400_in_the_gallerys_words_and_at_most_one_quiet_log_line(serve, caplog):
    served = await serve()
    caplog.set_level(logging.DEBUG)
    rounds = 3
    for _ in range(rounds):
        for name, parts in MALFORMED.items():
            answer = await exchange(served.port, *parts)
            last = answer.raw[answer.raw.rfind(b"HTTP/1."):]  # after the good request's answer, if any
            rejected = type(answer)(last)
            assert rejected.status == 400, (name, answer.raw[:200])
            headers = rejected.headers
            assert headers["server"] == "dreambot", name
            assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, name
            assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == NO_STORE, name
            assert rejected.body == b"400 Bad Request\n", ("nothing of the request is echoed", name, rejected.body[:100])
            assert b"aiohttp" not in answer.raw and b"Python" not in answer.raw, name
    records = [r for r in caplog.records if r.name.startswith(("aiohttp", "bot.web"))]
    assert len(records) <= rounds * len(MALFORMED) + rounds, "one line a request at most (and the good requests' access lines)"
    for record in records:
        assert record.levelno <= logging.WARNING and record.exc_info is None, record.getMessage()
        assert "\n" not in record.getMessage() and "FOO" not in record.getMessage() and "aaaa" not in record.getMessage()
    assert (await exchange(served.port, get("/healthz"))).status == 200


async def test_a_head_dripped_slower_than_the_header_timeout_is_cut_off_while_others_are_served(serve):
    served = await serve(connections=ConnectionLimits(header_timeout=0.5, keepalive_timeout=600))
    slow = [await connect(served.port, source="127.0.0.2") for _ in range(5)]
    for _, writer in slow:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    dripping = [asyncio.create_task(closed_by_server(r, w, drip=b"X-Drip: 1\r\n")) for r, w in slow]
    assert (await exchange(served.port, get("/"))).status == 200, "a whole request meanwhile is served"
    assert await asyncio.gather(*dripping) == [b""] * 5, "each was closed, with nothing sent"
    # A kept-alive connection gets no longer for its next request's head than a new one.
    reader, writer = await connect(served.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"GET / HTTP/1.1\r\n")
    received = await closed_by_server(reader, writer, drip=b"X-Drip: 1\r\n")
    assert b"HTTP/1.1" not in received, "closed without an answer to the unfinished head"
    assert served.guard.open_connections <= 1


async def test_a_client_past_its_connection_cap_is_refused_while_another_address_is_served(serve):
    served = await serve(connections=ConnectionLimits(max_per_client=3, header_timeout=WAIT * 2))
    held = [await connect(served.port) for _ in range(3)]
    await _until(lambda: served.guard.held("127.0.0.1") == 3)
    refused = await exchange(served.port, b"")
    assert refused.status == 503 and refused.headers["retry-after"] == "5" and refused.headers["server"] == "dreambot"
    assert (await exchange(served.port, get("/healthz"), source="127.0.0.2")).status == 200
    held.pop()[1].close()
    await _until(lambda: served.guard.held("127.0.0.1") == 2)
    assert (await exchange(served.port, get("/healthz"))).status == 200, "a place given back is taken again"
    for _, writer in held:
        writer.close()


async def test_past_the_total_cap_every_address_is_refused(serve):
    served = await serve(connections=ConnectionLimits(max_connections=4, max_per_client=4, header_timeout=WAIT * 2))
    held = [await connect(served.port, source=f"127.0.0.{i}") for i in range(2, 6)]
    await _until(lambda: served.guard.open_connections == 4)
    assert (await exchange(served.port, get("/healthz"), source="127.0.0.9")).status == 503
    for _, writer in held:
        writer.close()
    await _until(lambda: served.guard.open_connections == 0)
    assert (await exchange(served.port, get("/healthz"), source="127.0.0.9")).status == 200


def test_the_guard_counts_direct_connections_per_address_and_a_proxys_only_in_all():
    guard = ConnectionGuard(ConnectionLimits(max_connections=5, max_per_client=2), is_proxy=lambda peer: peer == "10.0.0.1")
    assert [guard.connect("192.0.2.1") for _ in range(3)] == [True, True, False]
    assert [guard.connect("10.0.0.1") for _ in range(4)] == [True, True, True, False], "5 in all"
    assert (guard.held("192.0.2.1"), guard.held("10.0.0.1"), guard.open_connections) == (2, 0, 5)
    for _ in range(2):
        guard.disconnect("192.0.2.1")
    assert guard.held("192.0.2.1") == 0 and guard.open_connections == 3
    assert [guard.hold("203.0.113.7") for _ in range(3)] == [True, True, False], "a proxied client's requests, capped"


async def _until(condition) -> None:
    """Wait for the server to have seen what the client did (a connection opened or closed)."""
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), WAIT)
