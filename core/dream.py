"""Layer amplification: the octave pyramid, random-roll jitter, normalised gradient steps and tiling."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .errors import JobCancelled
from .jobs import CancelCheck, ProgressCallback, ProgressEvent
from .models.network import TappedNetwork
from .objectives import Objective

__all__ = ["DreamSettings", "dream", "tiled_gradient", "octave_sizes"]

BASE_STEP = 1.5 / 255  # the original's step of 1.5 on a 0-255 scale
TILE_MARGIN = 64  # context around each tile, about the receptive field that matters at mid layers


@dataclass(frozen=True)
class DreamSettings:
    steps: int = 10
    octaves: int = 4
    octave_scale: float = 1.4
    strength: float = 1.0
    tile: int = 512
    jitter: int = 32


def _tile_edges(length: int, tile: int) -> list[tuple[int, int]]:
    """Split [0, length) into near-equal pieces no longer than `tile` (no sliver at the end)."""
    count = max(1, math.ceil(length / tile))
    bounds = [round(i * length / count) for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _patch_bounds(start: int, end: int, length: int, margin: int, align: int) -> tuple[int, int]:
    """The slice [lo, hi) of one axis that a tile [start, end) is run with.

    lo is a multiple of `align` (the network's total stride) and hi - lo is congruent to `length`
    modulo `align`, so strided convolutions and TensorFlow "same" padding lay the same sampling
    grid over the patch as over the whole image; otherwise each tile's gradient would be shifted.
    """
    lo = max(0, start - margin)
    lo -= lo % align
    hi = min(length, end + margin)
    hi += (length - (hi - lo)) % align
    return lo, min(length, hi)


def tiled_gradient(
    net: TappedNetwork, objective: Objective, image: torch.Tensor, tile: int, margin: int = TILE_MARGIN
) -> torch.Tensor:
    """d objective / d image, computed tile by tile so peak memory depends on `tile`, not the image.

    image: (1, 3, H, W). Each tile is run with `margin` pixels of its neighbours around it and only
    its own pixels' gradient is kept, so the network sees context across tile borders; rolling the
    image between steps moves the borders, so what little error is left leaves no seams.
    """
    height, width = image.shape[2], image.shape[3]
    align = net.stride
    grad = torch.zeros_like(image)
    for y0, y1 in _tile_edges(height, tile):
        top, bottom = _patch_bounds(y0, y1, height, margin, align)
        for x0, x1 in _tile_edges(width, tile):
            left, right = _patch_bounds(x0, x1, width, margin, align)
            patch = image[:, :, top:bottom, left:right].detach().requires_grad_(True)
            loss = objective(net(patch, objective.layers))
            (patch_grad,) = torch.autograd.grad(loss, patch)
            grad[:, :, y0:y1, x0:x1] = patch_grad[:, :, y0 - top : y1 - top, x0 - left : x1 - left]
    return grad


def octave_sizes(height: int, width: int, octaves: int, scale: float, min_side: int = 32) -> list[tuple[int, int]]:
    """Sizes from the smallest octave up to (height, width); octaves that would be tiny are dropped."""
    sizes = [(height, width)]
    for _ in range(octaves - 1):
        h, w = round(sizes[-1][0] / scale), round(sizes[-1][1] / scale)
        if min(h, w) < min_side:
            break
        sizes.append((h, w))
    return sizes[::-1]


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=size[0] < x.shape[-2])


def dream(
    net: TappedNetwork,
    objective: Objective,
    image: torch.Tensor,
    settings: DreamSettings,
    generator: torch.Generator,
    *,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    stage_prefix: str = "",
) -> torch.Tensor:
    """Return `image` (1, 3, H, W) in [0, 1] changed so that `objective` grows.

    Works from the smallest octave up and carries only the added detail to the next size, so the
    large structures that the network draws at small scales survive at full resolution.
    """
    base = image.detach()
    sizes = octave_sizes(base.shape[2], base.shape[3], settings.octaves, settings.octave_scale)
    step_size = BASE_STEP * settings.strength
    detail = torch.zeros_like(_resize(base, sizes[0]))
    total, done = len(sizes) * settings.steps, 0
    for octave, size in enumerate(sizes):
        octave_base = _resize(base, size)
        current = (octave_base + _resize(detail, size)).clamp(0, 1)
        for _ in range(settings.steps):
            if should_cancel is not None and should_cancel():
                raise JobCancelled("the job was cancelled")
            shift = torch.randint(-settings.jitter, settings.jitter + 1, (2,), generator=generator).tolist() if settings.jitter else [0, 0]
            rolled = current.roll(shifts=shift, dims=(2, 3))
            grad = tiled_gradient(net, objective, rolled, settings.tile).roll(shifts=[-s for s in shift], dims=(2, 3))
            current = (current + step_size / (grad.abs().mean() + 1e-8) * grad).clamp(0, 1)
            done += 1
            if progress is not None:
                progress(ProgressEvent(f"{stage_prefix}octave {octave + 1}/{len(sizes)}", done, total))
        detail = current - octave_base
    return current
