"""Thumbnails for the web gallery's cards: a small still WebP of a result, so that a page of 24
results loads a few hundred kilobytes, not the full files (up to Discord's upload limit each).

A still is scaled down; an animation (GIF, WebP) or a clip (MP4) gives its first frame. Made from
the result's bytes by whichever front asks first, then kept beside the result (bot/results.py).
"""

from __future__ import annotations

import io

from PIL import Image

__all__ = ["make_thumbnail", "THUMBNAIL_SIDE", "THUMBNAIL_TYPE"]

THUMBNAIL_SIDE = 320  # pixels on the longest side: a card's width on a wide screen, at 1.5x
THUMBNAIL_TYPE = "image/webp"
_QUALITY = 80  # WebP's lossy quality: about 10-25 KB for a dream at this size


def make_thumbnail(data: bytes, media_type: str, *, side: int = THUMBNAIL_SIDE) -> bytes:
    """A WebP still of the result `data` (of `media_type`), `side` pixels on its longest side at most."""
    first = _first_frame_of_clip(data) if media_type.startswith("video/") else _first_frame(data)
    first.thumbnail((side, side), Image.Resampling.LANCZOS)  # keeps the aspect; never enlarges
    out = io.BytesIO()
    first.save(out, "WEBP", quality=_QUALITY, method=4)
    return out.getvalue()


def _first_frame(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:  # a GIF or WebP opens at its first frame
        return image.convert("RGBA" if _has_alpha(image) else "RGB")


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def _first_frame_of_clip(data: bytes) -> Image.Image:
    from core.clips import open_container

    with open_container(data) as container:
        for frame in container.decode(video=0):
            return frame.to_image()
    raise ValueError("the clip has no video frame")
