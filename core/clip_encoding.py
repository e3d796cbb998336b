"""Animations out, for video dreams and zooms alike: MP4 (H.264, yuv420p, fast start, the source's
audio kept), WebP or GIF, within a byte budget; and `auto`, the one that looks best within it.

An MP4 over its budget is encoded again at a lower bitrate, down to a floor below which the
picture falls apart, and then at a smaller size. H.264 in yuv420p plays everywhere (Discord shows
it inline); fast start puts the index before the data, so playback starts before the download ends.
A WebP over its budget is encoded at lower qualities, then smaller; a GIF with fewer colours, then
smaller, then with every other frame.
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
from PIL import Image, ImageSequence

from .clips import ClipLimits, decode_clip, decoder_errors, open_container, probe_clip

__all__ = ["CLIP_FORMATS", "CLIP_MIME_TYPES", "ClipReport", "encode_clip", "auto_tries_webp", "LONG_CLIP_SECONDS", "refit_clip",
           "shrink_to_fit"]

CLIP_FORMATS = ("mp4", "gif", "webp")
CLIP_MIME_TYPES = {"mp4": "video/mp4", "gif": "image/gif", "webp": "image/webp"}

# `auto`, measured on 24-96 frame zooms of a photo at 320 px (benchmarks/zooms.py): at its top
# quality a WebP is truer to the frames than H.264 at _QUALITY_CRF (PSNR 30 against 28.5 dB) and,
# like a GIF, it plays and loops inline as an image; H.264 takes 40% fewer bytes than a WebP as
# true (quality 80) and 75% fewer than a GIF, and a long animation is better watched in a player
# that can seek. GIF never wins: twice a WebP's bytes, for 256 dithered colours.
LONG_CLIP_SECONDS = 5.0

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
_WEBP_QUALITIES = (90, 80, 60, 40, 25)
# GIF: every frame is mapped, with Floyd-Steinberg dithering, onto one palette made from a sample of
# the frames (a median cut refined by a k-means pass). Dithering is what keeps smooth tones from
# banding, and one palette keeps colours from flickering between frames; quantising each frame on
# its own, without dithering, measured 8-9 dB worse on tones (4x4 means) and took over 10x as long.
_GIF_COLORS = (256, 128, 64, 32, 16)
_PALETTE_FRAMES = 8
_PALETTE_FRAME_PIXELS = 4096  # of each sampled frame; every n-th pixel, so no colour is averaged away


@dataclass(frozen=True)
class ClipReport:
    format: str
    frames: int
    size: tuple[int, int]
    fps: float
    bytes: int
    audio: bool
    bitrate: int | None = None  # the MP4's video bitrate in bits per second
    colors: int | None = None  # the GIF's palette size


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
    height, width = frames[0].shape[:2]
    if height % 2 or width % 2:  # yuv420p halves the colour planes: H.264 takes even sides only
        frames = [f[: height - height % 2, : width - width % 2] for f in frames]
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


def _gif_palette(frames: list[np.ndarray], colors: int) -> Image.Image:
    """One palette of `colors` for all `frames`, from every n-th pixel of a few frames spread over them."""
    picks = frames[:: max(1, len(frames) // _PALETTE_FRAMES)][:_PALETTE_FRAMES]
    step = max(1, math.ceil(math.sqrt(picks[0].shape[0] * picks[0].shape[1] / _PALETTE_FRAME_PIXELS)))
    sample = np.concatenate([f[::step, ::step] for f in picks], axis=0)
    return Image.fromarray(sample).quantize(colors, method=Image.Quantize.MEDIANCUT, kmeans=1)


def _gif(frames: list[np.ndarray], frame_ms: int, colors: int) -> bytes:
    palette = _gif_palette(frames, colors)
    paletted = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG) for f in frames]
    out = io.BytesIO()
    paletted[0].save(out, "GIF", save_all=True, append_images=paletted[1:], duration=frame_ms, loop=0, optimize=False, disposal=1)
    return out.getvalue()


def _encode_gif(frames: list[np.ndarray], fps: float, max_bytes: int) -> tuple[bytes, ClipReport]:
    """Never fails: as a last resort it returns one small frame (a few KiB, within any budget the
    parameters allow)."""
    frame_ms = max(20, round(1000 / fps))  # browsers show shorter GIF frames at 100 ms
    current = frames
    while True:
        size = (current[0].shape[1], current[0].shape[0])
        for colors in _GIF_COLORS:
            data = _gif(current, frame_ms, colors)
            if len(data) <= max_bytes:
                return data, ClipReport("gif", len(current), size, fps, len(data), False, colors=colors)
        # Shrink by the square root of the overshoot (bytes grow with area), at least by 10%.
        ratio = min(0.9, math.sqrt(max_bytes / len(data)) * 0.95)
        if min(size) * ratio >= _MIN_SIDE:
            scaled = (max(1, round(size[0] * ratio)), max(1, round(size[1] * ratio)))
            current = _resized(frames, scaled)  # frames are dropped only once it is this small
        elif len(current) > 1:
            current = current[::2]  # keep every other frame: the loop stays smooth, just faster
        else:
            return data, ClipReport("gif", 1, size, fps, len(data), False, colors=_GIF_COLORS[-1])


def auto_tries_webp(frames: int, fps: float) -> bool:
    """Whether `auto` tries a WebP before the MP4: for animations up to LONG_CLIP_SECONDS."""
    return frames / fps <= LONG_CLIP_SECONDS


def encode_clip(
    frames: list[np.ndarray], fps: float, fmt: str, max_bytes: int, *, audio_source: bytes | None = None
) -> tuple[bytes, str, ClipReport]:
    """Encode (H, W, 3) uint8 frames as `fmt` ("mp4", "gif", "webp" or "auto") within `max_bytes`.

    auto: a short animation (`auto_tries_webp`) as a WebP at its top quality when that fits
    `max_bytes`, else an MP4. audio_source: a clip whose first audio track goes into the MP4 (cut
    at the video's end); GIF and WebP have no sound. Returns (bytes, mime type, report). An MP4
    that cannot fit even at the smallest size is returned as it is; an MP4's odd side loses its
    last row or column.
    """
    assert fmt in CLIP_FORMATS + ("auto",), f"encode_clip takes {CLIP_FORMATS} or auto, got {fmt!r}; compile_job checks the format"
    if fmt == "auto":
        if auto_tries_webp(len(frames), fps):
            data = _webp(frames, fps, _WEBP_QUALITIES[0])  # only at its best: a squeezed WebP looks worse than the MP4
            if len(data) <= max_bytes:
                size = (frames[0].shape[1], frames[0].shape[0])
                return data, CLIP_MIME_TYPES["webp"], ClipReport("webp", len(frames), size, fps, len(data), False)
        fmt = "mp4"
    if fmt == "gif":
        data, report = _encode_gif(frames, fps, max_bytes)
    elif fmt == "webp":
        data, report = _encode_webp(frames, fps, max_bytes)
    else:
        with decoder_errors():  # the audio source is the user's file
            data, report = _encode_mp4(frames, fps, max_bytes, audio_source)
    return data, CLIP_MIME_TYPES[fmt], report


# An animation of our own is trusted: however long a zoom runs, it can be encoded again.
_OWN_CLIPS = ClipLimits(max_seconds=math.inf, max_frames=1 << 20, max_frame_pixels=1 << 40, max_total_pixels=1 << 50)


def refit_clip(data: bytes, mime_type: str, max_bytes: int) -> tuple[bytes, ClipReport]:
    """An animation of `encode_clip`'s encoded again in its own format within a smaller budget, say
    a channel's upload limit."""
    fmt = next(f for f, mime in CLIP_MIME_TYPES.items() if mime == mime_type)
    if fmt == "mp4":
        clip = decode_clip(data, max_side=max(probe_clip(data, limits=_OWN_CLIPS).size), limits=_OWN_CLIPS)
        frames, fps, audio = clip.frames, clip.info.fps, data if clip.info.has_audio else None
    else:  # read here, not by decode_clip: a one-frame GIF or WebP is no clip to it
        image = Image.open(io.BytesIO(data))
        image.load()  # a WebP's frame duration is known once a frame is
        fps, audio = 1000 / max(1, image.info.get("duration") or 80), None
        frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]
    refitted, _, report = encode_clip(frames, fps, fmt, max_bytes, audio_source=audio)
    return refitted, report


def shrink_to_fit(data: bytes, mime_type: str, max_bytes: int) -> tuple[bytes, str, str]:
    """A result made to fit `max_bytes` (say, a channel's upload limit): an animation encoded again
    in its own format, a still as a JPEG of falling quality, then size. Returns the bytes, their
    media type and one line saying how it was changed."""
    if mime_type in CLIP_MIME_TYPES.values():
        shrunk, clip = refit_clip(data, mime_type, max_bytes)
        how = f" at {clip.bitrate // 1000} kb/s" if clip.bitrate else f", {clip.frames} frames" if clip.format == "gif" else ""
        return shrunk, mime_type, f"re-encoded as {clip.size[0]}x{clip.size[1]}{how} to fit the upload limit"
    rgb = Image.open(io.BytesIO(data)).convert("RGB")
    quality, scale = 90, 1.0
    while True:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        out = io.BytesIO()
        rgb.resize(size, Image.LANCZOS).save(out, "JPEG", quality=quality, optimize=True)
        if out.tell() <= max_bytes or size[0] <= 64:
            return out.getvalue(), "image/jpeg", f"re-encoded as {size[0]}x{size[1]} JPEG to fit the upload limit"
        if quality > 60:
            quality -= 15
        else:
            scale *= 0.75
