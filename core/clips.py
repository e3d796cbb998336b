"""Video clips in: telling a clip from a photo by its content, and probing and decoding it within limits.

Containers (MP4, MOV, WebM, Matroska) go through PyAV, which ships its own FFmpeg; animated GIF
and WebP go through Pillow, whose decoders know those animations better than FFmpeg's. Every limit
is checked from the container's metadata before a frame is decoded, and again while decoding,
as a hostile file may declare less than it holds. Every failure is an InvalidVideo (or
VideoTooLarge) with one line for the user.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image, ImageSequence

from .errors import InvalidVideo, VideoTooLarge
from .images import animated_image, container_format, is_container

__all__ = ["ClipLimits", "DEFAULT_CLIP_LIMITS", "ClipInfo", "DecodedClip", "probe_clip", "decode_clip", "work_size", "decoder_errors",
           "open_container"]

_GIF_DEFAULT_MS = 100  # browsers show a GIF frame without a duration for about this long


@dataclass(frozen=True)
class ClipLimits:
    """What a clip may hold; the defaults keep a CPU job within minutes."""

    max_seconds: float = 10.0
    max_frames: int = 300
    max_frame_pixels: int = 1920 * 1080
    max_total_pixels: int = 120 * 1920 * 1080  # 5 s of 1080p at 24 fps; smaller frames may run longer


DEFAULT_CLIP_LIMITS = ClipLimits()


@dataclass(frozen=True)
class ClipInfo:
    """What the container says about a clip, read without decoding a frame."""

    width: int
    height: int
    frames: int
    fps: float
    seconds: float
    has_audio: bool
    container: str  # "mp4", "webm", "gif", "webp"...

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


@dataclass
class DecodedClip:
    info: ClipInfo
    frames: list[np.ndarray]  # each (H, W, 3) uint8 RGB, fitted by `work_size`


def open_container(data: bytes) -> av.container.InputContainer:
    """PyAV's reader of a clip in a container (see `core.images.container_format` for why the demuxer is named)."""
    return av.open(io.BytesIO(data), mode="r", format=container_format(data), metadata_errors="ignore")


@contextmanager
def decoder_errors() -> Iterator[None]:
    """FFmpeg's and Pillow's many failures as one line about the clip."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's bomb warnings: our own limits apply
            yield
    except (av.FFmpegError, OSError, EOFError, ValueError, IndexError, KeyError, SyntaxError, ZeroDivisionError,
            OverflowError, UnicodeDecodeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidVideo(f"the video is damaged or truncated ({detail})") from None


def _check(info: ClipInfo, limits: ClipLimits) -> ClipInfo:
    if info.width < 1 or info.height < 1:
        raise InvalidVideo("the video has no picture size")
    pixels = info.width * info.height
    if pixels > limits.max_frame_pixels:
        raise VideoTooLarge(f"the video is {info.width}x{info.height}; frames may have at most "
                            f"{limits.max_frame_pixels / 1e6:.1f} MP")
    if info.seconds > limits.max_seconds:
        raise VideoTooLarge(f"the video is {info.seconds:.1f} s long; the limit is {limits.max_seconds:g} s")
    if info.frames > limits.max_frames:
        raise VideoTooLarge(f"the video has {info.frames} frames; the limit is {limits.max_frames}")
    if info.frames * pixels > limits.max_total_pixels:
        raise VideoTooLarge(f"the video has {info.frames * pixels / 1e6:.0f} MP in all; the limit is "
                            f"{limits.max_total_pixels / 1e6:.0f} MP (fewer frames or smaller ones)")
    return info


def _probe_container(data: bytes) -> ClipInfo:
    with open_container(data) as container:
        if not container.streams.video:
            raise InvalidVideo("the file has no video track")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / av.time_base
        else:
            seconds = 0.0
        frames = stream.frames or round(seconds * fps)
        if frames < 1 or fps <= 0:
            raise InvalidVideo("the video does not say how long it is or how many frames it has")
        if seconds <= 0:
            seconds = frames / fps
        name = (container.format.name or "").split(",")[0]
        container_name = {"mov": "mp4", "matroska": "webm"}.get(name, name)  # what the user would call it
        return ClipInfo(stream.codec_context.width, stream.codec_context.height, frames, fps, seconds,
                        bool(container.streams.audio), container_name)


def _webp_durations(data: bytes, max_frames: int) -> list[int]:
    """Each frame's display time in ms from an animated WebP's ANMF chunks, read without decoding."""
    durations: list[int] = []
    position = 12  # past "RIFF", the size and "WEBP"
    while position + 8 <= len(data) and len(durations) <= max_frames:
        fourcc, size = data[position:position + 4], int.from_bytes(data[position + 4:position + 8], "little")
        if fourcc == b"ANMF":
            payload = data[position + 8:position + 24]
            if len(payload) < 16:
                raise InvalidVideo("the animated WebP is truncated")
            durations.append(int.from_bytes(payload[12:15], "little") or _GIF_DEFAULT_MS)
        position += 8 + size + (size & 1)  # chunks are padded to an even length
    return durations


def _frame_durations(img: Image.Image, data: bytes, max_frames: int) -> list[int]:
    """Each frame's display time in ms, stopping one past `max_frames` (enough to refuse the clip)."""
    if img.format == "WEBP":
        return _webp_durations(data, max_frames)  # Pillow reads a WebP frame's duration only by decoding it
    durations = []
    for frame in ImageSequence.Iterator(img):
        durations.append(int(frame.info.get("duration") or _GIF_DEFAULT_MS))
        if len(durations) > max_frames:
            break
    return durations


def _probe_animation(img: Image.Image, data: bytes, limits: ClipLimits) -> ClipInfo:
    # Pillow reads an animation's frame count and timing by walking its frames' headers; the walk
    # stops past the frame limit, so a hostile file cannot make it long.
    width, height = img.size
    _check(ClipInfo(width, height, 1, 1.0, 0.0, False, str(img.format).lower()), limits)  # size before walking
    durations = _frame_durations(img, data, limits.max_frames)
    if not durations:
        raise InvalidVideo("the animation has no frames")
    seconds = sum(durations) / 1000
    return ClipInfo(width, height, len(durations), len(durations) / seconds, seconds, False, str(img.format).lower())


def probe_clip(data: bytes, *, limits: ClipLimits = DEFAULT_CLIP_LIMITS) -> ClipInfo:
    """What a clip holds, checked against `limits` before any frame is decoded.

    Raises InvalidVideo (damaged, truncated, no video track, not a clip) or VideoTooLarge (one limit
    exceeded), each with one line for the user.
    """
    if not data:
        raise InvalidVideo("the file is empty")
    with decoder_errors():
        animation = animated_image(data)
        if animation is not None:
            return _check(_probe_animation(animation, data, limits), limits)
        if not is_container(data):
            raise InvalidVideo("the file is not a video (MP4, WebM or MOV) nor an animated GIF or WebP")
        return _check(_probe_container(data), limits)


def work_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The size frames are dreamt and encoded at: the longest side at most `max_side`, both sides even.

    Even sides because H.264 in yuv420p halves the colour planes; never enlarged (beyond the one pixel that rounding to even may add).
    """
    width, height = size
    scale = min(1.0, max_side / max(width, height))
    return max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))


def _too_many(limits: ClipLimits, count: int, size: tuple[int, int]) -> VideoTooLarge:
    return VideoTooLarge(f"the video holds more frames than it declares (over {min(count, limits.max_frames)}); "
                         f"the limit is {limits.max_frames} frames of {size[0]}x{size[1]}")


def _decode_container(data: bytes, info: ClipInfo, size: tuple[int, int], limits: ClipLimits) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    allowed = min(limits.max_frames, limits.max_total_pixels // (info.width * info.height))
    with open_container(data) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if (frame.width, frame.height) != (info.width, info.height):
                raise InvalidVideo("the video changes its picture size mid-stream")
            if len(frames) >= allowed:
                raise _too_many(limits, len(frames) + 1, info.size)
            rgb = frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA")
            frames.append(rgb.to_ndarray())
    return frames


def _decode_animation(data: bytes, size: tuple[int, int], limits: ClipLimits) -> list[np.ndarray]:
    frames = []
    for frame in ImageSequence.Iterator(Image.open(io.BytesIO(data))):
        if len(frames) >= limits.max_frames:
            raise _too_many(limits, len(frames) + 1, frame.size)
        frames.append(np.asarray(frame.convert("RGB").resize(size, Image.LANCZOS)))
    return frames


def decode_clip(data: bytes, *, max_side: int, limits: ClipLimits = DEFAULT_CLIP_LIMITS) -> DecodedClip:
    """Probe (see `probe_clip`), then decode every frame fitted to `work_size(size, max_side)`.

    A stream cut short gives the frames before the cut; one with none gives InvalidVideo.
    """
    info = probe_clip(data, limits=limits)
    size = work_size(info.size, max_side)
    with decoder_errors():
        if info.container in ("gif", "webp"):
            frames = _decode_animation(data, size, limits)
        else:
            frames = _decode_container(data, info, size, limits)
    if not frames:
        raise InvalidVideo("no frame of the video could be decoded")
    if len(frames) != info.frames:
        info = ClipInfo(info.width, info.height, len(frames), info.fps, len(frames) / info.fps, info.has_audio, info.container)
    return DecodedClip(info, frames)
