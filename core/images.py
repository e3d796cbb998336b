"""What an input is (a photo or a clip, by its bytes), safe image decoding and encoding, and the
conversions between PIL images and tensors.

Decoding reads the header first and refuses images that declare too many pixels before a single
pixel is decoded (decompression bombs), applies EXIF orientation, and turns every mode (palette,
greyscale, 16-bit, CMYK, alpha) into 8-bit RGB plus an optional alpha mask. Clips themselves are
probed and decoded by core.clips.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageTooLarge, InvalidImage

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DecodedImage",
    "decode_image",
    "probe_image",
    "container_format",
    "animated_image",
    "is_clip",
    "zoom_step",
    "fit_longest_side",
    "to_tensor",
    "to_pil",
    "encode_image",
]

DEFAULT_MAX_PIXELS = 50_000_000  # about 7000 x 7000
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "MPO")
ANIMATED_FORMATS = ("GIF", "WEBP")  # Pillow's formats that hold a clip when they hold several frames


# -- what a file is -----------------------------------------------------------------------------------


def container_format(data: bytes) -> str | None:
    """FFmpeg's demuxer for `data` by its signature: ISO media (MP4, MOV), Matroska/WebM or AVI; else None.

    The demuxer is named, never guessed by FFmpeg: guessing would also accept playlists and other
    formats that make FFmpeg open further files or URLs named inside a hostile upload.
    """
    head = data[:16]
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


def is_container(data: bytes) -> bool:
    return container_format(data) is not None


def animated_image(data: bytes) -> Image.Image | None:
    """The Pillow image when `data` is an animated GIF or WebP, else None (a still or no image at all)."""
    try:
        img = Image.open(io.BytesIO(data))
        return img if img.format in ANIMATED_FORMATS and getattr(img, "is_animated", False) else None
    except Exception:  # noqa: BLE001 - anything Pillow cannot open is not an animated image
        return None


def is_clip(data: bytes) -> bool:
    """Whether `data` is a clip (by content, never by file name): a video container or an animated GIF/WebP.

    A damaged file that starts like a video container counts as a clip, so its error speaks of a video.
    """
    return is_container(data) or animated_image(data) is not None


# -- photos -------------------------------------------------------------------------------------------


@dataclass
class DecodedImage:
    rgb: Image.Image  # mode "RGB", orientation applied
    alpha: Image.Image | None  # mode "L", same size, when the source had transparency
    source_format: str


def _to_rgb_and_alpha(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (or 32-bit integer) greyscale: scale the range down to 8 bits instead of clipping it.
        array = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if array.max() > 255 else 255.0
        img = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "F":
        array = np.asarray(img, dtype=np.float64)
        lo, hi = float(array.min()), float(array.max())
        img = Image.fromarray(((array - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8), "L")
    alpha = None
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        alpha = img.getchannel("A")
        if alpha.getextrema() == (255, 255):
            alpha = None
    return img.convert("RGB"), alpha


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Open `data` reading the header only, and refuse what must not be decoded; the caller catches Pillow's errors."""
    if not data:
        raise InvalidImage("the file is empty")
    img = Image.open(io.BytesIO(data))  # reads the header only
    if img.format not in ACCEPTED_FORMATS:
        raise InvalidImage(f"unsupported image format {img.format}; use JPEG, PNG, WebP, BMP or GIF")
    width, height = img.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} ({width * height / 1e6:.0f} MP); the limit is {max_pixels / 1e6:.0f} MP"
        )
    if width < 1 or height < 1:
        raise InvalidImage("the image has no pixels")
    return img


@contextmanager
def _pillow_errors() -> Iterator[None]:
    """Pillow's many failure types as our two: a damaged file or a decompression bomb."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own limit
            yield
    except UnidentifiedImageError:
        raise InvalidImage("the file is not an image Pillow can read (JPEG, PNG, WebP, BMP or GIF)") from None
    except Image.DecompressionBombError:
        raise ImageTooLarge("the image declares more pixels than allowed") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImage(f"the image is damaged or truncated ({exc})") from None


_SWAPPED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that turn the picture by 90 degrees


def probe_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) as `decode_image` would return it (EXIF orientation applied), from the header alone.

    Cheap enough to price a job before it is admitted; raises what `decode_image` raises for the header.
    """
    with _pillow_errors():
        img = _open_checked(data, max_pixels)
        width, height = img.size
        if img.getexif().get(0x0112) in _SWAPPED_ORIENTATIONS:
            width, height = height, width
        return width, height


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode `data` (JPEG, PNG, WebP, BMP or GIF's first frame); raise InvalidImage or ImageTooLarge."""
    with _pillow_errors():
        img = _open_checked(data, max_pixels)
        source_format = str(img.format)  # exif_transpose returns a copy that has no format
        img.seek(0)  # GIF and other animations: first frame
        img.load()
        img = ImageOps.exif_transpose(img)
        rgb, alpha = _to_rgb_and_alpha(img)
        return DecodedImage(rgb=rgb, alpha=alpha, source_format=source_format)


def fit_longest_side(img: Image.Image, max_side: int) -> Image.Image:
    """Shrink (never enlarge) so the longest side is at most `max_side`, keeping the aspect."""
    width, height = img.size
    scale = max_side / max(width, height)
    if scale >= 1:
        return img
    return img.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.LANCZOS)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> (1, 3, H, W) float32 in [0, 1]."""
    array = np.array(img.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3)
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_pil(tensor: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) in [0, 1] -> PIL RGB, rounded to 8 bits."""
    array = tensor.detach().float().reshape(-1, *tensor.shape[-2:]).clamp(0, 1).mul(255).round()
    return Image.fromarray(array.permute(1, 2, 0).to(torch.uint8).cpu().numpy(), "RGB")


def encode_image(img: Image.Image, fmt: str = "PNG", *, alpha: Image.Image | None = None, quality: int = 92) -> tuple[bytes, str]:
    """Encode to PNG, JPEG or WebP bytes; returns (bytes, mime type). Alpha is kept where the format can."""
    fmt = fmt.upper().replace("JPG", "JPEG")
    out = io.BytesIO()
    if alpha is not None and fmt in ("PNG", "WEBP"):
        img = img.copy()
        img.putalpha(alpha.resize(img.size, Image.LANCZOS))
    if fmt == "JPEG":
        img.convert("RGB").save(out, "JPEG", quality=quality, optimize=True)
    elif fmt == "WEBP":
        img.save(out, "WEBP", quality=quality)
    elif fmt == "PNG":
        img.save(out, "PNG", optimize=False)
    else:
        raise ValueError(f"cannot encode {fmt}")
    return out.getvalue(), {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}[fmt]


def zoom_step(image: torch.Tensor, zoom: float, degrees: float = 0.0) -> torch.Tensor:
    """Enlarge the centre of `image` by `zoom` (and rotate it), keeping the size."""
    if zoom == 1.0 and degrees == 0.0:
        return image
    angle = math.radians(degrees)
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=image.dtype, device=image.device)
    grid = F.affine_grid(theta[None], list(image.shape), align_corners=False)
    return F.grid_sample(image, grid, mode="bicubic", padding_mode="reflection", align_corners=False).clamp(0, 1)
