"""Fitting a result into a byte limit (an upload limit): an animation stays itself, smaller; a still becomes a JPEG."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from core.clip_encoding import encode_clip, shrink_to_fit
from core.clips import probe_clip
from tests.clip_making import encode_video, pan_and_zoom


def test_an_mp4_over_the_limit_is_encoded_again_smaller_with_every_frame(photo_path):
    clip = encode_video(pan_and_zoom(photo_path("chelsea.png"), 12, (128, 96)), fps=12, audio_seconds=1.0)
    limit = len(clip) // 2
    data, mime, note = shrink_to_fit(clip, "video/mp4", limit)
    assert len(data) <= limit and mime == "video/mp4" and "fit the upload limit" in note
    assert probe_clip(data).frames == 12


def test_a_webp_over_the_limit_stays_an_animated_webp():
    frames = [Image.effect_noise((96, 96), 60 + 10 * i).convert("RGB") for i in range(6)]
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0, quality=95)
    limit = len(out.getvalue()) // 2
    data, mime, note = shrink_to_fit(out.getvalue(), "image/webp", limit)
    assert len(data) <= limit and mime == "image/webp" and "fit the upload limit" in note
    shrunk = Image.open(io.BytesIO(data))
    assert shrunk.format == "WEBP" and shrunk.n_frames == 6


def test_a_still_over_the_limit_becomes_a_jpeg_that_fits(photo_bytes):
    png = photo_bytes("astronaut.png")
    limit = len(png) // 8
    data, mime, note = shrink_to_fit(png, "image/png", limit)
    assert len(data) <= limit and mime == "image/jpeg" and "JPEG" in note
    assert Image.open(io.BytesIO(data)).format == "JPEG"


def test_a_gif_keeps_its_frames_as_long_as_colours_and_size_can_give():
    frames = [np.asarray(Image.effect_noise((64, 64), 40 + 8 * i).convert("RGB")) for i in range(5)]
    gif, _, _ = encode_clip(frames, 10.0, "gif", 10 << 20)
    data, mime, note = shrink_to_fit(gif, "image/gif", len(gif) // 2)
    assert len(data) <= len(gif) // 2 and mime == "image/gif" and "frames" in note
