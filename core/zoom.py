"""Zoom dreams ("we must go deeper"): dream, zoom into the centre, dream again; optionally as a seamless loop.

The frames are encoded by core/clip_encoding.py, as videos' are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable

import torch
import torch.nn.functional as F

from .dream import DreamSettings, StepGraphs, dream
from .images import zoom_step
from .jobs import CancelCheck, ProgressCallback, Span
from .models.registry import TappedNetwork
from .objectives import Objective
from .params import ZoomParams

__all__ = ["ZoomSettings", "zoom_frames", "noise_image", "crossfade_frames"]


def noise_image(height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """Soft coloured noise (1, 3, H, W) in [0, 1]: a few coarse blobs plus fine grain, for dreams from nothing."""
    coarse = torch.rand(1, 3, max(2, height // 32), max(2, width // 32), generator=generator)
    coarse = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    fine = torch.rand(1, 3, height, width, generator=generator)
    return (0.35 + 0.3 * coarse + 0.1 * (fine - 0.5)).clamp(0, 1)


_ZOOM = ZoomParams()  # the engine's defaults are a zoom job's: core.params holds them, once


@dataclass(frozen=True)
class ZoomSettings:
    frames: int = _ZOOM.frames
    zoom: float = _ZOOM.zoom
    rotate: float = _ZOOM.rotate
    loop: str = _ZOOM.loop  # or "seamless": the last frame leads into the first


MAX_CROSSFADE_FRAMES = 12  # about a second at the default 80 ms a frame


def crossfade_frames(frames: int, loop: str) -> int:
    """The frames a seamless loop dreams beyond `frames`: its cross-fade's length, a third of the
    loop (at most MAX_CROSSFADE_FRAMES), so that each faded frame changes little more than a plain one."""
    return min(MAX_CROSSFADE_FRAMES, frames // 3) if loop == "seamless" else 0


def _ease(x: float) -> float:
    """Smoothstep: a fade that starts and ends gently, so neither end of it shows as a jolt."""
    return x * x * (3 - 2 * x)


def _frame_label(index: int, fade: int, frames: int) -> str:
    """Progress names the frames a user asked for as such; a seamless loop's extra frames come first
    (the output starts after them), as the loop's lead-in."""
    return f"loop lead-in {index + 1}/{fade} " if index < fade else f"frame {index - fade + 1}/{frames} "


def zoom_frames(
    net: TappedNetwork,
    objective: Objective,
    start: torch.Tensor,
    dream_settings: DreamSettings,
    zoom_settings: ZoomSettings,
    generator: torch.Generator,
    *,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    span: Span = Span(),
    precision: str = "fp32",
    graphs: StepGraphs | None = None,
    graph_key: Hashable | None = None,
) -> list[torch.Tensor]:
    """Returns `frames` images (1, 3, H, W); each is the previous one zoomed in and dreamt on again.

    A seamless loop dreams `crossfade_frames` more, fading them into the first ones: each extra
    frame is mixed a little more with its counterpart at the start, and the next is dreamt on that
    mix, so the incoming picture is dreamt in rather than laid over. The last extra frame is its
    counterpart itself, so the loop is shown from the frame that grew out of it: the step from the
    last frame back to the first is an ordinary zoom step.

    span: the part of the job's progress the frames fill; each dreamt frame gets an equal share.
    precision, graphs, graph_key: passed to `dream` (bf16 autocast and CUDA graph replay on GPUs).
    """
    fade = crossfade_frames(zoom_settings.frames, zoom_settings.loop)
    total = zoom_settings.frames + fade
    frames: list[torch.Tensor] = []
    current = start
    for index in range(total):
        current = dream(
            net, objective, current, dream_settings, generator,
            progress=progress, should_cancel=should_cancel, stage_prefix=_frame_label(index, fade, zoom_settings.frames),
            span=span.part(index, total),
            precision=precision, graphs=graphs, graph_key=graph_key,
        )
        tail = index - zoom_settings.frames  # position in the fade, from 0
        if tail >= 0:
            weight = _ease((tail + 1) / fade)
            current = torch.lerp(current, frames[tail], weight)  # the last is frames[fade - 1] itself
        frames.append(current)
        current = zoom_step(current, zoom_settings.zoom, zoom_settings.rotate)
    return frames[fade:]
