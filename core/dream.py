"""Layer amplification: the octave pyramid, random-roll jitter, normalised gradient steps and tiling;
and going deeper, the 2015 post's feedback loop: dream on the dream, zooming in a little between
passes, so faint patterns grow into objects ("whatever you see there, I want more of it").

Speed: `dream_batch` dreams several same-sized images with one forward pass per step; the gradient
can run under bf16 autocast (`precision`), and on CUDA each gradient pass can be captured once per
image shape as a CUDA graph and replayed (`StepGraphs`). `benchmarks/` measures what each buys.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import torch
import torch.nn.functional as F

from .errors import JobCancelled
from .images import zoom_step
from .jobs import CancelCheck, ProgressCallback, ProgressEvent, Span
from .models.registry import TappedNetwork
from .objectives import Objective
from .params import DreamParams
from .parameterization import COLOR_SQRT_COVARIANCE, frequencies  # photos' colour statistics and the Fourier grid, shared with renders

__all__ = [
    "DreamSettings", "PRECISIONS", "StepGraphs", "dream", "dream_batch", "dream_deeper", "ITERATION_ZOOM", "natural_step",
    "tiled_gradient", "octave_sizes", "tile_edges", "patch_bounds",
]

BASE_STEP = 1.5 / 255  # the original's step of 1.5 on a 0-255 scale
TILE_MARGIN = 64  # context around each tile, about the receptive field that matters at mid layers
PRECISIONS = ("fp32", "bf16")  # bf16: the network runs under bfloat16 autocast; images and steps stay fp32

GradientFn = Callable[[torch.Tensor], torch.Tensor]  # images (B, 3, H, W) -> d objective / d images
Capture = Callable[[GradientFn, torch.Tensor], GradientFn]  # (function, example input) -> replayable function


_PHOTO = DreamParams()  # the engine's defaults are a photo dream's: core.params holds them, once


@dataclass(frozen=True)
class DreamSettings:
    steps: int = _PHOTO.steps
    octaves: int = _PHOTO.octaves
    octave_scale: float = _PHOTO.octave_scale
    strength: float = _PHOTO.strength
    tile: int = _PHOTO.tile
    jitter: int = _PHOTO.jitter
    # Step shaping, off for layer dreams. smoothing: each step's gradient is reweighted by
    # 1/frequency**smoothing and by the colour covariance of photos (`natural_step`), as if the
    # image were optimised in a decorrelated Fourier parameterisation. pull: the share of the change
    # from the photo (at each octave's size) that is undone after every step.
    smoothing: float = 0.0
    pull: float = 0.0


def natural_step(grad: torch.Tensor, smoothing: float) -> torch.Tensor:
    """`grad` (B, 3, H, W) as a step in natural-image units: a change of photo-like colour and spectrum.

    A class score's raw gradient on a photo is mostly fine, saturated static that changes the
    network's answer without showing the class (an adversarial example). Weighting frequency f by
    (f * side)**-smoothing and mixing channels by the photos' colour covariance is gradient descent
    on a decorrelated Fourier parameterisation (Olah et al. 2017; Hamblin et al. 2024's feature
    accentuation), whose easy directions are broad, photo-coloured changes. The image is kept
    rolled, not cropped, so the circular FFT fits it exactly. The scale is arbitrary: the dream
    normalises every step.
    """
    height, width = grad.shape[-2:]
    side = max(height, width)
    weight = (frequencies(height, width).to(grad.device).clamp(min=1.0 / side) * side) ** -smoothing  # (H, W//2+1), 1 at the lowest
    smooth = torch.fft.irfft2(torch.fft.rfft2(grad.float()) * weight, s=(height, width))
    covariance = COLOR_SQRT_COVARIANCE @ COLOR_SQRT_COVARIANCE.t()
    return torch.einsum("bchw,dc->bdhw", smooth, covariance.to(smooth)).to(grad.dtype)


def tile_edges(length: int, tile: int) -> list[tuple[int, int]]:
    """Split [0, length) into near-equal pieces no longer than `tile` (no sliver at the end)."""
    count = max(1, math.ceil(length / tile))
    bounds = [round(i * length / count) for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def patch_bounds(start: int, end: int, length: int, margin: int, align: int) -> tuple[int, int]:
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


def _autocast(device: torch.device, precision: str):
    assert precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {precision!r}"
    # No weight-cast cache: cached casts made during a CUDA graph capture would outlive it.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False)


def _patch_gradient(net: TappedNetwork, objective: Objective, patch: torch.Tensor, precision: str) -> torch.Tensor:
    patch = patch.detach().requires_grad_(True)
    with _autocast(patch.device, precision):
        loss = objective(net(patch, objective.layers))
    (grad,) = torch.autograd.grad(loss, patch)
    return grad


def tiled_gradient(
    net: TappedNetwork,
    objective: Objective,
    image: torch.Tensor,
    tile: int,
    margin: int = TILE_MARGIN,
    *,
    precision: str = "fp32",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """d objective / d image, computed tile by tile so peak memory depends on `tile`, not the image.

    image: (B, 3, H, W). Each tile is run with `margin` pixels of its neighbours around it and only
    its own pixels' gradient is kept, so the network sees context across tile borders; rolling the
    image between steps moves the borders, so what little error is left leaves no seams.
    out: a tensor like `image` to write the gradient into when there is more than one tile.
    """
    height, width = image.shape[2], image.shape[3]
    rows, cols = tile_edges(height, tile), tile_edges(width, tile)
    if len(rows) == 1 and len(cols) == 1:
        return _patch_gradient(net, objective, image, precision)
    align = net.stride
    if out is None:
        out = torch.empty_like(image)  # the tiles cover every pixel exactly once
    assert out.shape == image.shape and out.dtype == image.dtype, "tiled_gradient's out must be like the image"
    grad = out
    for y0, y1 in rows:
        top, bottom = patch_bounds(y0, y1, height, margin, align)
        for x0, x1 in cols:
            left, right = patch_bounds(x0, x1, width, margin, align)
            patch_grad = _patch_gradient(net, objective, image[:, :, top:bottom, left:right], precision)
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


def _roll_each(x: torch.Tensor, shifts: Sequence[tuple[int, int]], out: torch.Tensor | None = None) -> torch.Tensor:
    """Image i of x (B, 3, H, W) rolled by shifts[i] = (dy, dx), written into `out` (a new tensor
    when None); the same values as torch.roll, but into a buffer that the caller can reuse."""
    height, width = x.shape[2], x.shape[3]
    out = torch.empty_like(x) if out is None else out
    for i, (dy, dx) in enumerate(shifts):
        dy, dx = dy % height, dx % width
        for target_y, source_y in ((slice(dy, height), slice(0, height - dy)), (slice(0, dy), slice(height - dy, height))):
            for target_x, source_x in ((slice(dx, width), slice(0, width - dx)), (slice(0, dx), slice(width - dx, width))):
                out[i, :, target_y, target_x] = x[i, :, source_y, source_x]
    return out


class StepGraphs:
    """Gradient passes captured once per (key, input shape) and replayed afterwards.

    On CUDA a capture is a CUDA graph: a step becomes one graph launch instead of hundreds of
    kernel launches. `key` must name everything the gradient depends on besides its input (model,
    objective, tile, precision): a later call with the same key and shape replays the first call's
    capture, whatever function it passes. All graphs share one memory pool, which is safe because
    they replay one at a time on one stream and each result is copied out before the next replay.

    capture: how to capture; the default records a CUDA graph. Tests pass an eager stand-in to check
    the cache on CPU. A capture that raises RuntimeError is recorded in `failures` and that key then
    runs eagerly, so a capture problem slows a job down instead of failing it.
    """

    def __init__(self, capture: Capture | None = None, *, max_entries: int = 16):
        self._capture = capture if capture is not None else self._capture_cuda_graph
        self._max_entries = max_entries
        self._entries: OrderedDict[Hashable, GradientFn] = OrderedDict()
        self._pool = None
        self.captures = 0
        self.replays = 0
        self.failures: dict[Hashable, str] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def run(self, key: Hashable, fn: GradientFn, image: torch.Tensor) -> torch.Tensor:
        full_key = (key, tuple(image.shape), image.dtype, str(image.device))
        if full_key in self.failures:
            return fn(image)
        replay = self._entries.get(full_key)
        if replay is None:
            try:
                replay = self._capture(fn, image)
            except RuntimeError as exc:
                self.failures[full_key] = f"{type(exc).__name__}: {exc}"
                return fn(image)
            self.captures += 1
            self._entries[full_key] = replay
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)  # least recently used
        else:
            self._entries.move_to_end(full_key)
        self.replays += 1
        return replay(image)

    def _capture_cuda_graph(self, fn: GradientFn, example: torch.Tensor) -> GradientFn:
        assert example.device.type == "cuda", "StepGraphs' default capture needs CUDA; pass capture= on other devices"
        static_in = example.detach().clone()
        current = torch.cuda.current_stream(example.device)
        side = torch.cuda.Stream(example.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up outside the graph: cuDNN picks algorithms, workspaces get allocated
                fn(static_in)
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            static_out = fn(static_in)
        self._pool = graph.pool()

        def replay(image: torch.Tensor) -> torch.Tensor:
            static_in.copy_(image)
            graph.replay()
            return static_out.clone()  # the next replay of any graph in the pool may overwrite it

        return replay


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
    span: Span = Span(),
    precision: str = "fp32",
    graphs: StepGraphs | None = None,
    graph_key: Hashable | None = None,
) -> torch.Tensor:
    """Return `image` (1, 3, H, W) in [0, 1] changed so that `objective` grows.

    Works from the smallest octave up and carries only the added detail to the next size, so the
    large structures that the network draws at small scales survive at full resolution.

    span: the part of the job's progress this dream fills (a zoom frame's, say).
    precision: "fp32" or "bf16" (autocast of the network's passes). graphs, graph_key: replay
    captured gradient passes from `graphs` under `graph_key`, which must name the network and the
    objective (see `StepGraphs`); without a key every pass runs eagerly.
    """
    return dream_batch(
        net, objective, [image], settings, [generator], progress=progress, should_cancel=should_cancel,
        stage_prefix=stage_prefix, span=span, precision=precision, graphs=graphs, graph_key=graph_key,
    )[0]


def dream_batch(
    net: TappedNetwork,
    objective: Objective,
    images: Sequence[torch.Tensor],
    settings: DreamSettings,
    generators: Sequence[torch.Generator],
    *,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    stage_prefix: str = "",
    span: Span = Span(),
    precision: str = "fp32",
    graphs: StepGraphs | None = None,
    graph_key: Hashable | None = None,
) -> list[torch.Tensor]:
    """`dream` on several images of one size at once, sharing each step's forward and backward pass.

    images: each (1, 3, H, W) in [0, 1]; generators: one per image. Image i gets the jitter drawn
    from generators[i] and a step normalised by its own gradient, exactly as it would alone, so the
    results equal separate `dream` calls up to float rounding (objectives sum over the batch, so
    images do not mix). Returns one (1, 3, H, W) image per input, in order.
    """
    assert images and len(images) == len(generators), "dream_batch needs one generator per image"
    shapes = sorted({tuple(image.shape) for image in images})
    assert len(shapes) == 1 and shapes[0][0] == 1, f"dream_batch needs (1, 3, H, W) images of one size, got {shapes}; group jobs by size"
    base = images[0].detach() if len(images) == 1 else torch.cat([image.detach() for image in images])  # (B, 3, H, W)
    sizes = octave_sizes(base.shape[2], base.shape[3], settings.octaves, settings.octave_scale)
    step_size = BASE_STEP * settings.strength

    def gradient(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return tiled_gradient(net, objective, x, settings.tile, precision=precision, out=out)

    if graphs is not None and graph_key is not None:
        key = (graph_key, settings.tile, precision)
        eager = gradient

        def gradient(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
            return graphs.run(key, eager, x)

    detail = torch.zeros_like(_resize(base, sizes[0]))
    # Progress counts pixel-steps: a step at the largest octave is worth many at the smallest.
    work_total, work_done = sum(h * w for h, w in sizes) * settings.steps, 0
    for octave, size in enumerate(sizes):
        octave_base = _resize(base, size)
        # The image is kept rolled by `offsets` (one (dy, dx) per image): each step rolls it on by
        # the difference to the new jitter, so the gradient never has to be rolled back. Rolls and
        # tiled gradients reuse one spare buffer, so a step allocates no image-sized memory and
        # the peak stays near three image copies (input, image, spare) plus one tile's activations.
        rolled = (octave_base + _resize(detail, size)).clamp(0, 1)
        del detail
        spare: torch.Tensor | None = None
        offsets = [(0, 0)] * len(generators)
        anchor = octave_base if settings.pull else None  # the photo, rolled along with the image
        for step in range(settings.steps):
            if should_cancel is not None and should_cancel():
                raise JobCancelled("the job was cancelled")
            shifts = [_draw_shift(settings.jitter, generator) for generator in generators]
            moves = [(sy - oy, sx - ox) for (sy, sx), (oy, ox) in zip(shifts, offsets)]
            if any(dy or dx for dy, dx in moves):
                spare, rolled = rolled, _roll_each(rolled, moves, out=spare)
                anchor = _roll_each(anchor, moves) if anchor is not None else None
            offsets = shifts
            grad = gradient(rolled, out=spare)  # (B, 3, h, w)
            if settings.smoothing:
                grad = natural_step(grad, settings.smoothing)
            magnitude = torch.linalg.vector_norm(grad, ord=1, dim=(1, 2, 3), keepdim=True) / grad[0].numel()  # (B, 1, 1, 1)
            rolled.addcmul_(grad, step_size / (magnitude + 1e-8))
            if anchor is not None:
                rolled.lerp_(anchor, settings.pull)
            rolled.clamp_(0, 1)
            spare = grad if spare is None or grad is spare else spare
            del grad
            work_done += size[0] * size[1]
            if progress is not None:
                progress(ProgressEvent(f"{stage_prefix}octave {octave + 1}/{len(sizes)}", step + 1, settings.steps,
                                       span.at(work_done / work_total)))
        current = _roll_each(rolled, [(-oy, -ox) for oy, ox in offsets], out=spare) if any(oy or ox for oy, ox in offsets) else rolled
        del rolled, spare, anchor
        if octave < len(sizes) - 1:
            detail = current - octave_base
    return list(current.split(1)) if current.shape[0] > 1 else [current]


def _draw_shift(jitter: int, generator: torch.Generator) -> tuple[int, int]:
    if not jitter:
        return 0, 0
    dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
    return dy, dx


# -- going deeper: passes of the dream on its own output ---------------------------------------------

# Enlargement of the centre between passes: the post's zoom dreams use about this per frame; over
# the most passes a dream allows (8) the view narrows to 1/1.05^7 = 71% of the photo's width.
ITERATION_ZOOM = 1.05


def dream_deeper(
    net: TappedNetwork,
    objective: Objective,
    images: Sequence[torch.Tensor],
    settings: DreamSettings,
    generators: Sequence[torch.Generator],
    *,
    iterations: int,
    zoom: float = ITERATION_ZOOM,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    span: Span = Span(),
    timings: dict[str, float] | None = None,
    **dream_options: Any,
) -> list[torch.Tensor]:
    """`dream_batch` run `iterations` times, each pass on the previous one's output zoomed by `zoom`.

    images, generators: as `dream_batch` takes them (one (1, 3, H, W) image in [0, 1] and one
    generator per dream); each generator is drawn from pass after pass, so a batch equals separate
    calls. Each pass fills an equal part of `span`; cancelling stops within a pass or between two.
    timings: if given, gets "zoom", the seconds spent warping between passes (pixel work, which
    the cost model prices apart from the network's). dream_options: passed on to `dream_batch`
    (precision, graphs, graph_key...). Returns one image per input, in order.
    """
    assert iterations >= 1, "a dream makes at least one pass"
    current = list(images)
    warping = 0.0
    for index in range(iterations):
        if index:
            if should_cancel is not None and should_cancel():
                raise JobCancelled("the job was cancelled")
            started = time.perf_counter()
            current = [zoom_step(image, zoom) for image in current]
            warping += time.perf_counter() - started
        prefix = f"pass {index + 1}/{iterations} " if iterations > 1 else ""
        current = dream_batch(net, objective, current, settings, generators, progress=progress, should_cancel=should_cancel,
                              stage_prefix=prefix, span=span.part(index, iterations), **dream_options)
    if timings is not None:
        timings["zoom"] = timings.get("zoom", 0.0) + warping
    return current
