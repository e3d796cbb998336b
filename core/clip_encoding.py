"""Video clips out: MP4 (H.264, yuv420p, fast start, the source's audio kept), GIF or WebP, within a byte budget.

An MP4 over its budget is encoded again at a lower bitrate, down to a floor below which the
picture falls apart, and then at a smaller size. H.264 in yuv420p plays everywhere (Discord shows
it inline); fast start puts the index before the data, so playback starts before the download ends.
"""

from __future__ import annotations

import io
import math
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from .clips import decode_clip, decoder_errors, open_container, probe_clip
from .zoom import encode_gif

__all__ = ["CLIP_FORMATS", "CLIP_MIME_TYPES", "ClipReport", "encode_clip", "refit_mp4"]

CLIP_FORMATS = ("mp4", "gif", "webp")
CLIP_MIME_TYPES = {"mp4": "video/mp4", "gif": "image/gif", "webp": "image/webp"}

# x264's constant quality (lower is better; 18 looks like the source): a dreamt frame is all fine
# detail, which lower settings smear. Below the floor's bits per pixel per frame H.264 turns the
# detail into blocks, and a smaller picture looks better.
_QUALITY_CRF = 18
_FLOOR_BITS_PER_PIXEL = 0.05
_AUDIO_BITRATE = 64_000  # AAC; voices and music stay recognisable
_MIN_AUDIO_BITRATE = 16_000  # a small budget's sound: still there, if thin
_AUDIO_SHARE = 0.25  # sound takes at most this share of a small budget; the picture is the point
_CONTAINER_SHARE = 0.95  # of the budget, for the MP4's index and headers
_MIN_SIDE = 32
_WEBP_QUALITIES = (80, 60, 40, 25)


@dataclass(frozen=True)
class ClipReport:
    format: str
    frames: int
    size: tuple[int, int]
    fps: float
    bytes: int
    audio: bool
    bitrate: int | None = None  # the MP4's video bitrate in bits per second


def _even_scaled(size: tuple[int, int], ratio: float) -> tuple[int, int]:
    return max(2, 2 * round(size[0] * ratio / 2)), max(2, 2 * round(size[1] * ratio / 2))


def _resized(frames: list[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    return [np.asarray(Image.fromarray(f).resize(size, Image.LANCZOS)) for f in frames]


def _add_audio_stream(output: av.container.OutputContainer, source: av.container.InputContainer, bitrate: int):
    audio = source.streams.audio[0]
    layout = audio.layout.name if audio.layout.name in ("mono", "stereo") else "stereo"
    stream = output.add_stream("aac", rate=audio.rate or 44100, layout=layout)
    stream.bit_rate = bitrate
    return stream


def _copy_audio(output, stream, source, seconds: float) -> None:
    """Transcode the source's first audio track into `stream`, cut at the video's end."""
    for frame in source.decode(source.streams.audio[0]):
        if frame.time is not None and frame.time >= seconds:
            break
        frame.pts = None  # the encoder numbers its own frames
        for packet in stream.encode(frame):
            output.mux(packet)
    for packet in stream.encode():
        output.mux(packet)


def _mp4(frames: list[np.ndarray], fps: float, bitrate: int | None, audio_source: bytes | None, audio_bitrate: int) -> bytes:
    """One MP4 at `bitrate` bits per second, or at constant quality (_QUALITY_CRF) when None."""
    height, width = frames[0].shape[:2]
    with tempfile.TemporaryDirectory(prefix="dreambot-clip-") as folder:
        # Fast start rewrites the file once it is complete, which FFmpeg does on a real file only.
        path = Path(folder) / "out.mp4"
        with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as output:
            options = {"preset": "veryfast"} | ({"crf": str(_QUALITY_CRF)} if bitrate is None else {})
            video = output.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001), options=options)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            if bitrate is not None:
                video.bit_rate = bitrate
            source = open_container(audio_source) if audio_source is not None else None
            try:
                audio = _add_audio_stream(output, source, audio_bitrate) if source is not None else None
                for frame in frames:
                    for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                        output.mux(packet)
                for packet in video.encode():
                    output.mux(packet)
                if audio is not None:
                    _copy_audio(output, audio, source, len(frames) / fps)
            finally:
                if source is not None:
                    source.close()
        return path.read_bytes()


def _encode_mp4(frames: list[np.ndarray], fps: float, max_bytes: int, audio_source: bytes | None) -> tuple[bytes, ClipReport]:
    seconds = len(frames) / fps
    audio_bitrate = int(max(_MIN_AUDIO_BITRATE, min(_AUDIO_BITRATE, _AUDIO_SHARE * max_bytes * 8 / seconds)))
    audio_bits = audio_bitrate * seconds if audio_source is not None else 0.0
    size = (frames[0].shape[1], frames[0].shape[0])
    pixels_per_second = size[0] * size[1] * fps
    budget = (max_bytes * 8 * _CONTAINER_SHARE - audio_bits) / seconds
    bitrate: int | None = None  # constant quality first: most clips fit at it
    current = frames
    while True:
        data = _mp4(current, fps, bitrate, audio_source, audio_bitrate)
        report = ClipReport("mp4", len(current), size, fps, len(data), audio_source is not None, bitrate)
        if len(data) <= max_bytes:
            return data, report
        floor = int(_FLOOR_BITS_PER_PIXEL * pixels_per_second)
        if bitrate is None:
            bitrate = int(max(floor, budget))  # constant quality took more than the budget: aim at the budget
            continue
        if bitrate > floor:
            # The encoder misses its target on short clips; aim below it by the overshoot.
            bitrate = max(floor, int(bitrate * 0.9 * max_bytes / len(data)))
            continue
        ratio = min(0.9, math.sqrt(max_bytes / len(data)))
        size = _even_scaled(size, ratio)
        if min(size) < _MIN_SIDE:
            return data, report  # as small as it goes; the caller's upload step may refuse it
        current = _resized(frames, size)
        pixels_per_second = size[0] * size[1] * fps
        bitrate = int(max(_FLOOR_BITS_PER_PIXEL * pixels_per_second, budget))


def _webp(frames: list[np.ndarray], fps: float, quality: int) -> bytes:
    images = [Image.fromarray(f) for f in frames]
    out = io.BytesIO()
    images[0].save(out, "WEBP", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0, quality=quality)
    return out.getvalue()


def _encode_webp(frames: list[np.ndarray], fps: float, max_bytes: int) -> tuple[bytes, ClipReport]:
    current = frames
    while True:
        size = (current[0].shape[1], current[0].shape[0])
        for quality in _WEBP_QUALITIES:
            data = _webp(current, fps, quality)
            if len(data) <= max_bytes:
                return data, ClipReport("webp", len(current), size, fps, len(data), False)
        size = _even_scaled(size, min(0.9, math.sqrt(max_bytes / len(data))))
        if min(size) < _MIN_SIDE:
            return data, ClipReport("webp", len(current), size, fps, len(data), False)
        current = _resized(frames, size)


def encode_clip(
    frames: list[np.ndarray], fps: float, fmt: str, max_bytes: int, *, audio_source: bytes | None = None
) -> tuple[bytes, str, ClipReport]:
    """Encode (H, W, 3) uint8 frames as `fmt` ("mp4", "gif" or "webp") within `max_bytes`.

    audio_source: a clip whose first audio track goes into the MP4 (cut at the video's end); GIF
    and WebP have no sound. Returns (bytes, mime type, report). An MP4 that cannot fit even at the
    smallest size is returned as it is.
    """
    assert fmt in CLIP_FORMATS, f"encode_clip takes {CLIP_FORMATS}, got {fmt!r}; compile_job checks the format"
    if fmt == "gif":
        data, gif = encode_gif([Image.fromarray(f) for f in frames], max_bytes, max(20, round(1000 / fps)))
        report = ClipReport("gif", gif.frames, gif.size, fps, gif.bytes, False)
    elif fmt == "webp":
        data, report = _encode_webp(frames, fps, max_bytes)
    else:
        with decoder_errors():  # the audio source is the user's file
            data, report = _encode_mp4(frames, fps, max_bytes, audio_source)
    return data, CLIP_MIME_TYPES[fmt], report


def refit_mp4(data: bytes, max_bytes: int) -> tuple[bytes, ClipReport]:
    """An MP4 (one of `encode_clip`'s) encoded again within a smaller budget, say a channel's upload limit."""
    clip = decode_clip(data, max_side=max(probe_clip(data).size))  # at its own size: encode_clip shrinks it if it must
    data_out, _, report = encode_clip(clip.frames, clip.info.fps, "mp4", max_bytes, audio_source=data if clip.info.has_audio else None)
    return data_out, report
