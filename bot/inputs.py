"""What the bot takes as a job's input, for every front that receives files: the file types it
screens by name or declared type before anything is read, and the one line for a file over the
byte cap (MAX_INPUT_BYTES). What an input really is comes from its bytes (`core.spec.input_kind`).
"""

from __future__ import annotations


__all__ = ["INPUT_TYPES", "WHAT_WE_TAKE", "takes_name", "over_the_limit", "byte_size"]

# File name endings and the media types they stand for: photos, then clips.
INPUT_TYPES: dict[str, str] = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif",
    ".bmp": "image/bmp", ".mp4": "video/mp4", ".webm": "video/webm", ".mov": "video/quicktime",
}
WHAT_WE_TAKE = "a photo (PNG, JPEG, WebP, GIF or BMP) or a video (MP4, WebM or MOV)"

_UNITS = (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))


def takes_name(filename: str) -> bool:
    """Whether a file's name says it is something the bot takes."""
    return filename.lower().endswith(tuple(INPUT_TYPES))


def byte_size(size: int, unit: str | None = None) -> str:
    """'25 MiB', '1.5 KiB': `size` in `unit` (default: the largest it fills), to one decimal."""
    name, scale = next(((u, f) for u, f in _UNITS if u == unit or (unit is None and size >= f)), ("bytes", 1))
    return f"{_trimmed(size / scale, 1)} {name}"


def over_the_limit(name: str, size: int, limit: int) -> str:
    """'huge.png is 25.02 MiB; the limit is 25 MiB': both in the limit's unit, with as many decimals
    as it takes for the size to read larger than the limit (in bytes when even that is too small)."""
    assert size > limit, f"over_the_limit is for sizes over the limit ({size} <= {limit})"
    unit, scale = next(((u, f) for u, f in _UNITS if limit >= f), ("bytes", 1))
    for decimals in range(4):
        if round(size / scale, decimals) > round(limit / scale, decimals):
            return f"{name} is {_trimmed(size / scale, decimals)} {unit}; the limit is {byte_size(limit, unit)}"
    return f"{name} is {size:,} bytes; the limit is {limit:,} bytes"


def _trimmed(value: float, decimals: int) -> str:
    """`value` to `decimals` places without trailing zeros: 25.0 -> '25', 25.02 -> '25.02'."""
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
