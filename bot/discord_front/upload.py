"""Fitting a result into a channel's upload limit, and re-trying smaller when Discord says 413."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from typing import Awaitable, Callable

import discord
from PIL import Image

from core.jobs import FILE_EXTENSIONS

__all__ = ["FittedFile", "fit_to_limit", "send_fitted"]

_MARGIN = 1024  # multipart overhead


@dataclass(frozen=True)
class FittedFile:
    data: bytes
    filename: str
    note: str = ""  # says how it was shrunk, when it was


def _shrink_image(data: bytes, limit: int, mime: str) -> tuple[bytes, str, str]:
    """A JPEG (or, for an animation, a smaller one in its own format) of `data` that fits `limit`;
    returns (bytes, extension, note)."""
    from core.clip_encoding import CLIP_MIME_TYPES, refit_clip

    if mime in CLIP_MIME_TYPES.values():  # MP4, WebP and GIF results are animations
        shrunk, clip = refit_clip(data, mime, limit)
        how = f" at {clip.bitrate // 1000} kb/s" if clip.bitrate else f", {clip.frames} frames" if clip.format == "gif" else ""
        return shrunk, clip.format, f"re-encoded as {clip.size[0]}x{clip.size[1]}{how} to fit the upload limit"
    img = Image.open(io.BytesIO(data))
    rgb = img.convert("RGB")
    quality, scale = 90, 1.0
    while True:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        out = io.BytesIO()
        rgb.resize(size, Image.LANCZOS).save(out, "JPEG", quality=quality, optimize=True)
        if out.tell() <= limit or size[0] <= 64:
            return out.getvalue(), "jpg", f"re-encoded as {size[0]}x{size[1]} JPEG to fit the upload limit"
        if quality > 60:
            quality -= 15
        else:
            scale *= 0.75


async def fit_to_limit(data: bytes, mime: str, stem: str, limit: int) -> FittedFile:
    """The result as is when it fits `limit` bytes, else re-encoded smaller (off the event loop)."""
    ext = FILE_EXTENSIONS[mime]
    if len(data) + _MARGIN <= limit:
        return FittedFile(data, f"{stem}.{ext}")
    shrunk, ext, note = await asyncio.to_thread(_shrink_image, data, limit - _MARGIN, mime)
    return FittedFile(shrunk, f"{stem}.{ext}", note)


async def send_fitted(
    send: Callable[[discord.File, str], Awaitable[discord.Message]],
    data: bytes,
    mime: str,
    stem: str,
    limit: int,
    *,
    attempts: int = 3,
    on_retry: Callable[[], None] | None = None,
) -> tuple[discord.Message, FittedFile]:
    """Send through `send(file, note)`; on HTTP 413 halve the limit and try again (calling `on_retry`)."""
    for attempt in range(attempts):
        fitted = await fit_to_limit(data, mime, stem, limit)
        try:
            message = await send(discord.File(io.BytesIO(fitted.data), filename=fitted.filename), fitted.note)
            return message, fitted
        except discord.HTTPException as exc:
            if exc.status != 413 or attempt == attempts - 1:
                raise
            limit = min(limit, len(fitted.data)) // 2
            if on_retry is not None:
                on_retry()
    raise AssertionError("unreachable: the loop returns or raises")
