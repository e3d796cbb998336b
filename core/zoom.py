"""Zoom dreams ("we must go deeper"): dream, zoom into the centre, dream again; and GIFs within a byte budget."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Hashable

import torch
import torch.nn.functional as F
from PIL import Image

from .dream import DreamSettings, StepGraphs, dream
from .jobs import CancelCheck, ProgressCallback
from .models.network import TappedNetwork
from .objectives import Objective
from .progress import Span

__all__ = ["zoom_frames", "zoom_step", "noise_image", "encode_gif", "GifReport"]


def noise_image(height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """Soft coloured noise (1, 3, H, W) in [0, 1]: a few coarse blobs plus fine grain, for dreams from nothing."""
    coarse = torch.rand(1, 3, max(2, height // 32), max(2, width // 32), generator=generator)
    coarse = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    fine = torch.rand(1, 3, height, width, generator=generator)
    return (0.35 + 0.3 * coarse + 0.1 * (fine - 0.5)).clamp(0, 1)


def zoom_step(image: torch.Tensor, zoom: float, degrees: float = 0.0) -> torch.Tensor:
    """Enlarge the centre of `image` by `zoom` (and rotate it), keeping the size."""
    if zoom == 1.0 and degrees == 0.0:
        return image
    angle = math.radians(degrees)
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=image.dtype, device=image.device)
    grid = F.affine_grid(theta[None], list(image.shape), align_corners=False)
    return F.grid_sample(image, grid, mode="bicubic", padding_mode="reflection", align_corners=False).clamp(0, 1)


@dataclass(frozen=True)
class ZoomSettings:
    frames: int = 24
    zoom: float = 1.05
    rotate: float = 0.0


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

    span: the part of the job's progress the frames fill; each frame gets an equal share.
    precision, graphs, graph_key: passed to `dream` (bf16 autocast and CUDA graph replay on GPUs).
    """
    frames = []
    current = start
    for index in range(zoom_settings.frames):
        current = dream(
            net, objective, current, dream_settings, generator,
            progress=progress, should_cancel=should_cancel, stage_prefix=f"frame {index + 1}/{zoom_settings.frames} ",
            span=span.part(index, zoom_settings.frames),
            precision=precision, graphs=graphs, graph_key=graph_key,
        )
        frames.append(current)
        current = zoom_step(current, zoom_settings.zoom, zoom_settings.rotate)
    return frames


@dataclass(frozen=True)
class GifReport:
    frames: int
    colors: int
    size: tuple[int, int]
    bytes: int


def _encode(frames: list[Image.Image], colors: int, frame_ms: int) -> bytes:
    paletted = [f.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG) for f in frames]
    out = io.BytesIO()
    paletted[0].save(out, "GIF", save_all=True, append_images=paletted[1:], duration=frame_ms, loop=0, optimize=False, disposal=1)
    return out.getvalue()


def encode_gif(frames: list[Image.Image], max_bytes: int, frame_ms: int = 80, *, min_side: int = 32) -> tuple[bytes, GifReport]:
    """A looping GIF no larger than `max_bytes`, found by reducing colours, then size, then frame count.

    Never fails: as a last resort it returns one small frame (a few KiB, within any budget the
    parameters allow).
    """
    color_steps = (256, 128, 64, 32, 16)
    current = list(frames)
    while True:
        for colors in color_steps:
            data = _encode(current, colors, frame_ms)
            if len(data) <= max_bytes:
                return data, GifReport(len(current), colors, current[0].size, len(data))
        width, height = current[0].size
        # Shrink by the square root of the overshoot (bytes grow with area), at least by 10%.
        ratio = min(0.9, math.sqrt(max_bytes / len(data)) * 0.95)
        if min(width, height) * ratio >= min_side:
            size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
            current = [f.resize(size, Image.LANCZOS) for f in current]
        elif len(current) > 1:
            current = current[::2]  # keep every other frame: the loop stays smooth, just faster
        else:
            return data, GifReport(1, color_steps[-1], current[0].size, len(data))
