"""Getting a user's image or video safely: checked from metadata first, downloaded with a cap and a timeout.

The metadata only screens out what is plainly something else; the engine tells a photo from a clip
by the bytes themselves (`core.spec.input_kind`).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from urllib.parse import urlparse

import aiohttp
import discord

from core.errors import quoted

from ....inputs import INPUT_TYPES, WHAT_WE_TAKE, byte_size, over_the_limit, takes_name
from ...client import CDN_HOSTS

__all__ = ["ImageSource", "InputRefused", "find_image_urls", "check_attachment", "download", "first_photo_of"]

_URL = re.compile(r"https?://\S+", re.IGNORECASE)


_TAKEN_TYPES = frozenset(INPUT_TYPES.values())


class InputRefused(Exception):
    """An attachment or URL we will not download; str(error) is one line for the user."""


@dataclass(frozen=True)
class ImageSource:
    url: str
    filename: str
    size: int | None  # declared size, when known before downloading
    content_type: str | None


def check_attachment(attachment: discord.Attachment, max_bytes: int) -> ImageSource:
    """Refuse by metadata (type, size) before a single byte is downloaded."""
    kind = (attachment.content_type or "").split(";")[0].strip().lower()
    if kind and kind not in _TAKEN_TYPES:
        raise InputRefused(f"{quoted(attachment.filename)} is {quoted(kind)}, not {WHAT_WE_TAKE}")
    if not kind and not takes_name(attachment.filename):
        raise InputRefused(f"{quoted(attachment.filename)} does not look like {WHAT_WE_TAKE}")
    if attachment.size > max_bytes:
        raise InputRefused(over_the_limit(quoted(attachment.filename), attachment.size, max_bytes))
    return ImageSource(attachment.url, attachment.filename, attachment.size, kind or None)


def find_image_urls(words: list[str], allowed_hosts: tuple[str, ...] = CDN_HOSTS) -> tuple[list[str], list[ImageSource]]:
    """Split free words into (other words, image URLs); URLs off Discord's own CDN are refused."""
    rest, sources = [], []
    for word in words:
        if not _URL.fullmatch(word.strip("<>")):
            rest.append(word)
            continue
        url = word.strip("<>")
        host = (urlparse(url).hostname or "").lower()
        if host not in allowed_hosts:
            raise InputRefused(f"images are taken from Discord's own CDN only ({', '.join(CDN_HOSTS)}), not {quoted(host or url)}")
        sources.append(ImageSource(url, urlparse(url).path.rsplit("/", 1)[-1] or "image", None, None))
    return rest, sources


async def download(session: aiohttp.ClientSession, source: ImageSource, *, max_bytes: int, timeout: float = 20.0) -> bytes:
    """Fetch at most `max_bytes` within `timeout` seconds; larger or slower answers are refused."""
    try:
        async with asyncio.timeout(timeout):
            async with session.get(source.url, allow_redirects=False) as response:
                if response.status != 200:
                    raise InputRefused(f"could not fetch {quoted(source.filename)} (HTTP {response.status})")
                declared = response.content_length
                if declared is not None and declared > max_bytes:
                    raise InputRefused(over_the_limit(quoted(source.filename), declared, max_bytes))
                chunks, total = [], 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    total += len(chunk)
                    if total > max_bytes:
                        raise InputRefused(f"{quoted(source.filename)} is larger than the {byte_size(max_bytes)} limit")
                    chunks.append(chunk)
                return b"".join(chunks)
    except TimeoutError:
        raise InputRefused(f"fetching {quoted(source.filename)} took longer than {timeout:.0f} s") from None
    except aiohttp.ClientError as exc:
        raise InputRefused(f"could not fetch {quoted(source.filename)} ({type(exc).__name__})") from None


def first_photo_of(message: object) -> list[ImageSource]:
    """The first photo or clip attached to a message (one a command replies to, or a menu is used on)."""
    if not isinstance(message, discord.Message):
        return []
    return [ImageSource(a.url, a.filename, a.size, a.content_type) for a in message.attachments
            if (a.content_type or "").startswith(("image/", "video/"))][:1]
