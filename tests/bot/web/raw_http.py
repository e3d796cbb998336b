"""Exact request bytes over a socket, for what an HTTP client library would not send: targets with
`..` left in (aiohttp's client resolves them first), malformed lines, heads dripped a line at a time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

WAIT = 30.0  # seconds: only stops a hung test


@dataclass
class Answer:
    raw: bytes

    @property
    def status(self) -> int | None:
        """The status code; None when the server closed without answering."""
        parts = self.raw.split(b"\r\n", 1)[0].split(b" ")
        return int(parts[1]) if len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1].isdigit() else None

    @property
    def headers(self) -> dict[str, str]:
        head = self.raw.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
        return {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in head)}

    @property
    def body(self) -> bytes:
        return self.raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in self.raw else b""


def get(target: str | bytes, *headers: str) -> bytes:
    """A GET of `target` exactly as given (text as UTF-8), asking the server to close after answering."""
    if isinstance(target, str):
        target = target.encode()
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: gallery.test", b"Connection: close",
             *(header.encode("latin-1") for header in headers)]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def exchange(port: int, *parts: bytes, source: str = "127.0.0.1") -> Answer:
    """Send `parts` (each after the server has had the one before to itself), then read until the
    server closes. A reset counts as a close: what arrived before it is the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    received = bytearray()
    try:
        for index, part in enumerate(parts):
            if index:
                await asyncio.sleep(0.05)  # a separate read on the server's side
            writer.write(part)
            await writer.drain()
        while chunk := await asyncio.wait_for(reader.read(65536), WAIT):
            received += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        writer.close()
    return Answer(bytes(received))


async def connect(port: int, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def closed_by_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, drip: bytes = b"",
                           every: float = 0.05) -> bytes:
    """Write `drip` every `every` seconds (never ending a request head) until the server closes the
    connection; returns what it sent before closing. Fails the test if it never does."""

    async def until_closed() -> bytes:
        received = bytearray()
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), every)
            except TimeoutError:
                chunk = None
            except ConnectionResetError:
                return bytes(received)
            if chunk == b"":
                return bytes(received)
            if chunk:
                received += chunk
            elif drip:
                try:
                    writer.write(drip)
                    await writer.drain()
                except (ConnectionResetError, BrokenPipeError):
                    return bytes(received)

    try:
        return await asyncio.wait_for(until_closed(), WAIT)
    finally:
        writer.close()
