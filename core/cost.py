"""Job prices: how much work a job is (`JobCost`), and how long that work takes on a device.

The work is counted from a job's params and its photo's size alone. No weights are loaded and no
pixel is decoded: `job_cost` counts the network passes the way core/dream.py and core/render.py
will run them (octaves, tiles with their margins, frames, render crops) and takes the GFLOP of
each from the registry's per-layer counts (`ModelEntry.gflops_per_megapixel`).

The seconds come from each kind of device's `Rates`:

    seconds = overhead_seconds
              + network / gflops_per_second + passes * seconds_per_pass   (the dream or render stage)
              + pixels / megapixels_per_second                            (decode and encode)

`RateMeter` starts from `DEFAULT_RATES` and moves each rate toward what finished jobs' stage
timings measured. benchmarks/cost_check.py calibrates both halves and prints their errors on real jobs.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Mapping

from .clip_encoding import auto_tries_webp
from .clips import work_size
from .dream import TILE_MARGIN, DreamSettings, octave_sizes, patch_bounds, tile_edges
from .jobs import JobCost, Rates
from .models.registry import ModelEntry, get_entry, resolve_layers
from .params import DreamParams, VideoParams, VisualizeParams, ZoomParams, fields_for
from .render import NaturalRenderSettings
from .video import CoherenceSettings, refresh_settings
from .zoom import crossfade_frames

__all__ = ["BACKWARD_RATIO", "job_cost", "DEFAULT_RATES", "seconds", "work_share", "RateMeter"]

# A gradient pass is a forward pass (recording the graph) plus a backward pass to the input only:
# the weights are frozen, so no weight gradients are computed and the backward costs about one
# forward, not two. Measured on efficientnet-lite0 (folded, channels-last) on a 2-core CPU:
# (pass - plain forward) / plain forward = 1.15-1.45 over several runs at 256 and 512 px for
# block8 and logits, about 1.3 typically (benchmarks/cost_check.py --backward). The extra over 1
# is elementwise backward work (ReLU6, depthwise convolutions) that counts no multiply-adds.
# Used for googlenet too.
BACKWARD_RATIO = 1.3

# Pixel work is counted in PNG-encode megapixels: one megapixel of `encode_image(..., "PNG")` of a
# dreamt (detailed) image is 1. The weights below are the other operations' time relative to it,
# measured with Pillow on the same CPU; ratios of codecs hold across machines better than speeds.
DECODE_WEIGHT = 0.18  # decode a PNG/JPEG and LANCZOS-fit it to max_side, per source megapixel
# Animations (core/clip_encoding.py), per frame megapixel of each try, measured on zooms of 24-96
# frames at 320 and 512 px: mapping a frame onto the GIF's palette with dithering and compressing
# it; and a WebP frame at any quality. A GIF's palette costs the same whatever the frames' size
# (it is made from a fixed-size sample), once per try. H.264 is VIDEO_ENCODE_WEIGHT below.
GIF_WEIGHT = 0.25
GIF_PALETTE_WEIGHT = 1.4  # per try
WEBP_WEIGHT = 0.7
# One bicubic zoom of an image between a dream's iterations (core.dream.dream_deeper), per megapixel.
WARP_WEIGHT = 0.4
RESIZE_WEIGHT = 0.07  # LANCZOS shrink of frames that overshoot the byte budget, per source megapixel
# Bytes per pixel of each try that `encode_clip` makes, for dreamt frames (measured on zooms from
# noise and photos; noise-like detail compresses badly, so these are on the high side): a GIF at
# each colour count, a WebP at each quality, an H.264 frame at constant quality.
GIF_BYTES_PER_PIXEL = {256: 1.1, 128: 0.9, 64: 0.72, 32: 0.56, 16: 0.44}
WEBP_BYTES_PER_PIXEL = {90: 0.52, 80: 0.39, 60: 0.28, 40: 0.22, 25: 0.17}
MP4_BYTES_PER_PIXEL = 0.24

# A clip (core/video.py), per frame megapixel, measured the same way at 320 px: decoding H.264 and
# fitting the frame (per source megapixel); the two DIS flows and their warps between consecutive
# frames (counted with decoding, as the runner times them under "decode"); and one H.264 encode.
VIDEO_DECODE_WEIGHT = 0.37
FLOW_WEIGHT = 1.9
VIDEO_ENCODE_WEIGHT = 0.25

# A render step runs the Fourier image, five transforms and Adam around its pass, forward and
# backward: about as many small operations as two more passes, so it counts as three.
RENDER_STEP_PASSES = 3
# core/transforms.py `standard_transforms`: pad 12 on each side, crop 8, scale by one of
# 0.90, 0.92, ..., 1.10, rotate (same size), crop 4. The network sees that crop at every render step.
_RENDER_PAD, _RENDER_CROP_BEFORE, _RENDER_CROP_AFTER = 12, 8, 4
_RENDER_SCALES = tuple(1 + (i - 5) / 50 for i in range(11))
# A natural render step's work outside the network (phase to image through an inverse FFT and back,
# crop resampling), in GFLOP-equivalents per megapixel of the render: measured on the CPU as the
# extra time of a 1024 px render over a 224 px one with the same crops (benchmarks/cost_check.py).
NATURAL_IMAGE_GFLOP_PER_MEGAPIXEL = 3.75
# A natural render step has none of the vivid step's five transforms: its small operations weigh
# about one pass, not three (fitted to the same runs).
NATURAL_STEP_PASSES = 1


# -- counting --------------------------------------------------------------------------------------


def job_cost(kind: str, params: DreamParams | VisualizeParams | ZoomParams | VideoParams, image_size: tuple[int, int] | None,
             *, frames: int = 1) -> JobCost:
    """The work of one job of `kind` with validated `params`.

    image_size: (width, height) of the photo as decoded (`core.images.probe_image`): a dream's
    photo, a zoom's optional start photo (None: the zoom starts from noise), a clip's frames
    (`core.clips.probe_clip`); ignored for visualize. frames: a clip's frame count.
    """
    entry = get_entry(params.model)
    if kind == "video":
        assert isinstance(params, VideoParams) and image_size is not None, "a video is priced from VideoParams and its clip's size"
        return _video_cost(entry, params, image_size, frames)
    if kind == "dream":
        assert isinstance(params, DreamParams) and image_size is not None, "a dream is priced from DreamParams and its photo's size"
        return _dream_cost(entry, params, image_size)
    if kind == "visualize":
        assert isinstance(params, VisualizeParams), "visualize is priced from VisualizeParams"
        return _visualize_cost(entry, params)
    assert kind == "zoom" and isinstance(params, ZoomParams), f"no price for {kind!r} with {type(params).__name__}"
    return _zoom_cost(entry, params, image_size)


def _fitted(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The arithmetic of `core.images.fit_longest_side`, on a (width, height) instead of an image."""
    width, height = size
    scale = max_side / max(width, height)
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _deepest(entry: ModelEntry, layer_spec: str) -> str:
    """The layer a forward pass stops at: the deepest one the objective reads."""
    return max(resolve_layers(entry, layer_spec), key=entry.layers.index)


def _dream_work(height: int, width: int, settings: DreamSettings, stride: int) -> tuple[float, int]:
    """(megapixels the network is run on over all steps, passes) of one `dream` at (height, width).

    Mirrors `tiled_gradient`: an octave larger than a tile is cut into tiles that each run with up
    to TILE_MARGIN pixels of context, aligned to the network's stride.
    """
    megapixels, passes = 0.0, 0
    for h, w in octave_sizes(height, width, settings.octaves, settings.octave_scale):
        rows, cols = tile_edges(h, settings.tile), tile_edges(w, settings.tile)
        if len(rows) == 1 and len(cols) == 1:
            area = h * w
        else:
            tall = sum(hi - lo for lo, hi in (patch_bounds(y0, y1, h, TILE_MARGIN, stride) for y0, y1 in rows))
            wide = sum(hi - lo for lo, hi in (patch_bounds(x0, x1, w, TILE_MARGIN, stride) for x0, x1 in cols))
            area = tall * wide  # every (row, column) pair is one patch
        megapixels += settings.steps * area / 1e6
        passes += settings.steps * len(rows) * len(cols)
    return megapixels, passes


def _dream_cost(entry: ModelEntry, p: DreamParams, image_size: tuple[int, int]) -> JobCost:
    width, height = _fitted(image_size, p.max_side)
    megapixels, passes = _dream_work(height, width, fields_for(DreamSettings, p), entry.stride)
    gflops = entry.gflops_per_megapixel[_deepest(entry, p.layer)]
    # Each of the iterations is a whole dream; the zooms between them are timed with decoding (core.dream.dream_deeper).
    warps = WARP_WEIGHT * (p.iterations - 1) * width * height / 1e6
    # A dream toward a class (its layer is then the logits) classifies its result: one forward, no backward.
    seeing = gflops * width * height / 1e6 if p.target else 0.0
    return JobCost(
        network=gflops * (1 + BACKWARD_RATIO) * megapixels * p.iterations + seeing,
        passes=passes * p.iterations + (1 if p.target else 0),
        decode=DECODE_WEIGHT * image_size[0] * image_size[1] / 1e6 + warps,
        encode=width * height / 1e6,
    )


def _video_cost(entry: ModelEntry, p: VideoParams, source: tuple[int, int], frames: int) -> JobCost:
    width, height = work_size(source, p.max_side)
    settings = fields_for(DreamSettings, p)
    first = _dream_work(height, width, settings, entry.stride)
    # Later frames refresh carried detail with a shorter dream (core.video.refresh_settings), unless each is dreamt alone.
    later = _dream_work(height, width, refresh_settings(settings, fields_for(CoherenceSettings, p)), entry.stride) if p.blend > 0 else first
    megapixels, passes = first[0] + (frames - 1) * later[0], first[1] + (frames - 1) * later[1]
    gflops = entry.gflops_per_megapixel[_deepest(entry, p.layer)]
    frame_megapixels = width * height / 1e6
    flows = frames - 1 if p.blend > 0 and p.flow else 0
    return JobCost(
        network=gflops * (1 + BACKWARD_RATIO) * megapixels,
        passes=passes,
        decode=VIDEO_DECODE_WEIGHT * frames * source[0] * source[1] / 1e6 + FLOW_WEIGHT * flows * frame_megapixels,
        encode=_clip_encoding(p.format, frames, width, height, p.max_bytes),
    )


def _render_crop_megapixels(size: int) -> float:
    """Mean area the network sees at one render step of a size x size image (see _RENDER_SCALES)."""
    side = size + 2 * _RENDER_PAD - _RENDER_CROP_BEFORE
    areas = [(max(8, round(side * s)) - _RENDER_CROP_AFTER) ** 2 for s in _RENDER_SCALES]
    return sum(areas) / len(areas) / 1e6


def _visualize_cost(entry: ModelEntry, p: VisualizeParams) -> JobCost:
    if p.style == "natural":
        return _natural_render_cost(entry, p)
    gflops = entry.gflops_per_megapixel["logits"]
    steps = gflops * (1 + BACKWARD_RATIO) * _render_crop_megapixels(p.size) * p.steps
    classify = gflops * p.size * p.size / 1e6  # one forward of the result, no backward
    return JobCost(network=steps + classify, passes=RENDER_STEP_PASSES * p.steps + 1, decode=0.0, encode=p.size * p.size / 1e6)


def _natural_render_cost(entry: ModelEntry, p: VisualizeParams) -> JobCost:
    """core.render.render_natural: each step one batched pass over the crops at the network's input
    size, plus the image's inverse FFT and the crops' resampling at the render's own size."""
    settings = fields_for(NaturalRenderSettings, p)
    gflops = entry.gflops_per_megapixel["logits"]
    crops_megapixels = settings.crops * settings.input_size ** 2 / 1e6
    image_work = NATURAL_IMAGE_GFLOP_PER_MEGAPIXEL * p.size * p.size / 1e6
    steps = (gflops * (1 + BACKWARD_RATIO) * crops_megapixels + image_work) * p.steps
    classify = gflops * settings.input_size ** 2 / 1e6
    return JobCost(network=steps + classify, passes=NATURAL_STEP_PASSES * p.steps + 1, decode=0.0, encode=p.size * p.size / 1e6)


def _zoom_cost(entry: ModelEntry, p: ZoomParams, image_size: tuple[int, int] | None) -> JobCost:
    width, height = _fitted(image_size, p.size) if image_size is not None else (p.size, p.size)
    megapixels, passes = _dream_work(height, width, fields_for(DreamSettings, p), entry.stride)
    gflops = entry.gflops_per_megapixel[_deepest(entry, p.layer)]
    dreamt = p.frames + crossfade_frames(p.frames, p.loop)  # a seamless loop dreams its cross-fade too
    return JobCost(
        network=gflops * (1 + BACKWARD_RATIO) * megapixels * dreamt,
        passes=passes * dreamt,
        decode=DECODE_WEIGHT * image_size[0] * image_size[1] / 1e6 if image_size is not None else 0.0,
        encode=_clip_encoding(p.format, p.frames, width, height, p.max_bytes, fps=1000 / p.frame_ms),
    )


def _clip_encoding(fmt: str, frames: int, width: int, height: int, max_bytes: int, *, fps: float | None = None) -> float:
    """The work of `core.clip_encoding.encode_clip`, replaying its search with estimated sizes.

    Each try encodes every frame; one over budget is tried at a lower quality (fewer colours), then
    smaller (each frame resized); a GIF then with every other frame. fps: needed for "auto" only.
    """
    pixels = frames * width * height
    if fmt == "auto":
        assert fps is not None, "auto's choice depends on the animation's length"
        webp = WEBP_WEIGHT * pixels / 1e6 if auto_tries_webp(frames, fps) else 0.0  # one try, at the top quality
        if webp and pixels * max(WEBP_BYTES_PER_PIXEL.values()) <= max_bytes:
            return webp
        return webp + _clip_encoding("mp4", frames, width, height, max_bytes)
    if fmt == "mp4":
        # Constant quality, then a bitrate aimed at the budget; smaller sizes are rare enough to leave out.
        tries = 1 if pixels * MP4_BYTES_PER_PIXEL <= max_bytes else 2
        return tries * VIDEO_ENCODE_WEIGHT * pixels / 1e6
    gif = fmt == "gif"
    total = 0.0
    while True:
        for per_pixel in (GIF_BYTES_PER_PIXEL if gif else WEBP_BYTES_PER_PIXEL).values():
            total += (GIF_WEIGHT if gif else WEBP_WEIGHT) * frames * width * height / 1e6 + (GIF_PALETTE_WEIGHT if gif else 0.0)
            size = frames * width * height * per_pixel
            if size <= max_bytes:
                return total
        ratio = min(0.9, math.sqrt(max_bytes / size) * (0.95 if gif else 1.0))
        if min(width, height) * ratio >= 32:
            total += RESIZE_WEIGHT * frames * width * height / 1e6
            width, height = max(1, round(width * ratio)), max(1, round(height * ratio))
        elif gif and frames > 1:
            frames = (frames + 1) // 2
        else:
            return total


# -- how long work takes ------------------------------------------------------------------------

DEFAULT_RATES: dict[str, Rates] = {
    # Fitted on a 2-core x86 CPU (torch using both threads) to 15 dreams, renders and zooms of
    # 96-1536 px on efficientnet-lite0, each the fastest of 3 runs; benchmarks/cost_check.py reports
    # the errors on 9 other jobs.
    "cpu": Rates(gflops_per_second=61.0, seconds_per_pass=0.0038, megapixels_per_second=6.0, overhead_seconds=0.01),
    # A GUESS, not a measurement: an H200-class GPU runs these convnets roughly 100-300x faster than
    # a 2-core CPU; the low end keeps early prices on the safe (long) side. A pass is bound by its
    # few hundred kernel launches (CUDA graphs cut that), and decoding and encoding stay on one CPU
    # core. Replace with measured values once benchmarks/cost_check.py has run on the GPU;
    # RateMeter corrects it from the first finished jobs either way.
    "cuda": Rates(gflops_per_second=6000.0, seconds_per_pass=0.004, megapixels_per_second=6.0, overhead_seconds=0.05),
}


def seconds(cost: JobCost, rates: Rates) -> float:
    """Predicted wall seconds of a job of `cost` on a device with `rates`."""
    return rates.overhead_seconds + _compute_seconds(cost, rates) + cost.pixels / rates.megapixels_per_second


def _compute_seconds(cost: JobCost, rates: Rates) -> float:
    return cost.network / rates.gflops_per_second + cost.passes * rates.seconds_per_pass


def work_share(cost: JobCost, rates: Rates | None = None) -> float:
    """The share of the job's predicted time that comes before encoding (progress spans use it).

    rates: the device's rates; the CPU defaults when None (the share varies little between devices
    for jobs long enough to watch).
    """
    rates = rates if rates is not None else DEFAULT_RATES["cpu"]
    total = seconds(cost, rates)
    return min(0.995, max(0.05, 1.0 - cost.encode / rates.megapixels_per_second / total))


_COMPUTE_STAGES = ("dream", "render")  # the runner's stage that runs the passes, by kind
_PIXEL_STAGES = ("decode", "encode")
_MIN_OVERHEAD = 1e-3  # seconds; keeps the overhead's log-space average away from zero


class RateMeter:
    """Each device type's rates, moved toward what finished jobs measured.

    Starts from `defaults` (DEFAULT_RATES). Every rate follows an exponential moving average in log
    space (a 2x faster and a 2x slower job move it by the same factor) with weight `alpha`, and one
    job's implied rate is clamped to within `max_change` of the current one, so a single job slowed
    down by a neighbour on the machine cannot wreck the prices. Not thread-safe: one owner updates it.
    """

    def __init__(self, defaults: Mapping[str, Rates] | None = None, *, alpha: float = 0.3, max_change: float = 3.0):
        assert 0 < alpha <= 1 and max_change > 1, "RateMeter needs 0 < alpha <= 1 and max_change > 1"
        self._rates: dict[str, Rates] = dict(defaults if defaults is not None else DEFAULT_RATES)
        self._alpha = alpha
        self._max_change = max_change

    @property
    def rates(self) -> dict[str, Rates]:
        """The current rates by device type (a copy)."""
        return dict(self._rates)

    def rates_for(self, device: str = "cpu") -> Rates:
        """The current rates of `device` ("cpu", "cuda"); a device type never seen starts from the CPU's."""
        return self._rates.get(device) or self._rates.get("cpu") or DEFAULT_RATES["cpu"]

    def predict(self, cost: JobCost, device: str = "cpu") -> float:
        """Predicted seconds of a job of `cost` on `device`."""
        return seconds(cost, self.rates_for(device))

    def observe(self, cost: JobCost, timings: Mapping[str, float], device: str = "cpu", *, batch: int = 1) -> None:
        """Learn from one finished job of `cost`, whose runner reported `timings` (seconds by stage).

        timings: `JobResult.timings`: "decode", "dream" or "render", "encode", "total" (a missing
        stage was not timed on its own). batch: how many jobs shared the job's dream passes
        (`JobResult.metadata["batch_size"]`); its "dream" time is theirs together. Each rate moves
        by the ratio of its stage's measured to predicted time; the two compute rates share their
        stage's ratio in proportion to their parts of its predicted time.
        """
        assert batch >= 1, "batch counts the jobs that shared the passes, this one included"
        rates = self.rates_for(device)
        compute = next((timings[s] for s in _COMPUTE_STAGES if s in timings), None)
        pixel = sum(timings.get(s, 0.0) for s in _PIXEL_STAGES)
        decode_predicted = cost.decode / rates.megapixels_per_second
        if compute is not None and "decode" not in timings and decode_predicted:
            # A zoom decodes its photo inside its "dream" stage: move the predicted decode across.
            shift = min(decode_predicted, compute)
            compute, pixel = compute - shift, pixel + shift
        updates: dict[str, float] = {}
        if compute is not None:
            network_time = batch * cost.network / rates.gflops_per_second
            pass_time = cost.passes * rates.seconds_per_pass  # a shared pass runs the whole batch at once
            biggest = max(network_time, pass_time)
            factor = self._factor(network_time + pass_time, compute)
            if factor is not None and biggest > 0:
                # Time per unit goes up by the factor: rates per second divide, seconds multiply.
                updates["gflops_per_second"] = rates.gflops_per_second / factor ** (network_time / biggest)
                updates["seconds_per_pass"] = rates.seconds_per_pass * factor ** (pass_time / biggest)
        # A render's "encode" stage also classifies the result (a network pass): no evidence about codecs.
        factor = self._factor(cost.pixels / rates.megapixels_per_second, pixel) if "render" not in timings else None
        if factor is not None:
            updates["megapixels_per_second"] = rates.megapixels_per_second / factor
        if "total" in timings:
            staged = (compute or 0.0) + pixel
            measured = max(timings["total"] - staged, 0.0)
            factor = self._factor(rates.overhead_seconds, max(measured, _MIN_OVERHEAD))
            if factor is not None:
                updates["overhead_seconds"] = rates.overhead_seconds * factor
        self._rates[device] = replace(rates, **updates)

    def _factor(self, predicted: float, measured: float) -> float | None:
        """How much to multiply a time per unit by, from one job: the measured/predicted ratio,
        clamped to max_change, raised to alpha (one step of the log-space moving average)."""
        if predicted <= 0 or measured <= 0:
            return None  # nothing predicted or nothing measured: no evidence about this rate
        ratio = min(self._max_change, max(1 / self._max_change, measured / predicted))
        return ratio**self._alpha

