"""Clips made by the tests from real photos: a pan and zoom over a photo, encoded here with PyAV."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def pan_and_zoom(photo: Path, frames: int = 24, size: tuple[int, int] = (128, 96)) -> list[np.ndarray]:
    """`frames` views (H, W, 3) uint8 of `photo`: the window drifts right and down while it closes in."""
    image = Image.open(photo).convert("RGB")
    width, height = image.size
    views = []
    for index in range(frames):
        progress = index / max(1, frames - 1)
        scale = 0.8 - 0.2 * progress  # window's share of the photo: zooming in
        box_w, box_h = width * scale, height * scale
        left = (width - box_w) * (0.2 + 0.5 * progress)
        top = (height - box_h) * (0.3 + 0.3 * progress)
        view = image.resize(size, Image.BICUBIC, box=(left, top, left + box_w, top + box_h))
        views.append(np.asarray(view))
    return views


def encode_video(frames: list[np.ndarray], fps: int = 24, *, codec: str = "libx264", container: str = "mp4",
                 audio_seconds: float = 0.0, tone_hz: float = 440.0) -> bytes:
    """An MP4 (or WebM with codec libvpx-vp9) of `frames`; with `audio_seconds`, a mono sine tone track."""
    out = io.BytesIO()
    height, width = frames[0].shape[:2]
    with av.open(out, mode="w", format=container) as output:
        video = output.add_stream(codec, rate=Fraction(fps))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": "18"} if codec == "libx264" else {}
        audio = output.add_stream("aac" if container == "mp4" else "libopus", rate=48000, layout="mono") if audio_seconds else None
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                output.mux(packet)
        for packet in video.encode():
            output.mux(packet)
        if audio is not None:
            samples = int(48000 * audio_seconds)
            tone = (0.3 * np.sin(2 * np.pi * tone_hz * np.arange(samples) / 48000)).astype(np.float32)[None]  # (1, N)
            for start in range(0, samples, 960):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 960]), format="flt", layout="mono")
                chunk.sample_rate = 48000
                for packet in audio.encode(chunk):
                    output.mux(packet)
            for packet in audio.encode():
                output.mux(packet)
    return out.getvalue()


def animated(frames: list[np.ndarray], fmt: str = "GIF", frame_ms: int = 40) -> bytes:
    images = [Image.fromarray(f) for f in frames]
    out = io.BytesIO()
    images[0].save(out, fmt, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return out.getvalue()
