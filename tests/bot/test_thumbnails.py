"""Thumbnails for the web gallery's cards (bot/thumbnails.py): a small WebP still of any result."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bot.thumbnails import THUMBNAIL_SIDE, make_thumbnail
from core.clip_encoding import encode_clip


def _still(thumbnail: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(thumbnail))
    assert image.format == "WEBP" and getattr(image, "n_frames", 1) == 1, "a WebP still"
    return image


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_a_still_is_scaled_to_the_side_keeping_its_shape_and_is_far_smaller(photo_path):
    photo = Image.open(photo_path("astronaut.png")).convert("RGB").resize((1024, 768))
    data = _png(photo)
    thumbnail = make_thumbnail(data, "image/png")
    still = _still(thumbnail)
    assert still.size == (THUMBNAIL_SIDE, 240)
    assert len(thumbnail) < len(data) / 20
    small = np.asarray(photo.resize(still.size, Image.Resampling.LANCZOS), dtype=float)
    assert np.abs(np.asarray(still.convert("RGB"), dtype=float) - small).mean() < 6, "the same picture"
    assert _still(make_thumbnail(_png(photo.resize((200, 100))), "image/png")).size == (200, 100), "never enlarged"


def test_a_transparent_render_keeps_its_alpha():
    rgba = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (16, 16, 48, 48))
    still = _still(make_thumbnail(_png(rgba), "image/png"))
    assert still.mode == "RGBA" and still.getpixel((0, 0))[3] == 0 and still.getpixel((32, 32))[3] == 255


@pytest.mark.parametrize("fmt", ["gif", "webp", "mp4"])
def test_an_animation_or_a_clip_gives_its_first_frame(fmt):
    # Frames of one flat colour each: the first is red, the others are not.
    colours = [(220, 30, 30), (30, 220, 30), (30, 30, 220)]
    frames = [np.full((96, 128, 3), colour, dtype=np.uint8) for colour in colours]
    data, mime, _ = encode_clip(frames, 8, fmt, 1 << 20)
    still = _still(make_thumbnail(data, mime)).convert("RGB")
    assert still.size == (128, 96)
    mean = np.asarray(still, dtype=float).reshape(-1, 3).mean(axis=0)
    assert mean[0] > 150 and mean[1] < 90 and mean[2] < 90, f"the first frame, red: {mean}"


def test_bytes_that_are_no_picture_raise_a_value_or_os_error():
    with pytest.raises((OSError, ValueError)):
        make_thumbnail(b"not a picture", "image/png")
