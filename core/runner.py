"""Runs one `JobSpec` to a `JobResult`: the single entry point that the CLI and every executor use.

A `JobRunner` lives as long as its worker process and keeps loaded networks (and, on CUDA,
captured gradient graphs) warm.
"""

from __future__ import annotations

import ctypes
import sys
import time
from typing import Any

import torch

from .device import resolve_device
from .dream import PRECISIONS, DreamSettings, StepGraphs, dream
from .errors import InvalidImage, InvalidParameter
from .images import DEFAULT_MAX_PIXELS, decode_image, encode_image, fit_longest_side, to_pil, to_tensor
from .jobs import CancelCheck, JobResult, JobSpec, ProgressCallback, ProgressEvent
from .models.classes import imagenet_classes, resolve_class
from .models.network import TappedNetwork
from .models.registry import get_entry, load_network, resolve_layers
from .objectives import Objective, channel_objective, class_logit_objective, guide_objective, layer_objective
from .params import DreamParams, VisualizeParams, ZoomParams, as_dict, validate_params
from .render import RenderSettings, classify, render
from .zoom import ZoomSettings, encode_gif, noise_image, zoom_frames

__all__ = ["JobRunner", "build_dream_objective", "keep_freed_memory"]

GUIDE_MAX_SIDE = 512


class JobRunner:
    """Loads networks on first use and runs jobs on one device.

    fast: load networks with batch norms folded and channels-last layout (`load_network`).
    precision: "fp32", "bf16" (the dream's network passes under bfloat16 autocast) or "auto"
    (bf16 on CUDA for models whose entry says bf16 stays within the benchmark's tolerance, else
    fp32). cuda_graphs: capture each dream's gradient pass once per image shape and replay it
    (None: on CUDA only). tune_allocator: keep freed memory for reuse (`keep_freed_memory`).
    Those two and, on CUDA, cuDNN's autotuner are process-wide settings: the runner assumes it owns
    its worker process.
    """

    def __init__(
        self,
        device: str = "auto",
        *,
        allow_download: bool = True,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        fast: bool = True,
        precision: str = "auto",
        cuda_graphs: bool | None = None,
        tune_allocator: bool = True,
    ):
        self.device = resolve_device(device)
        self.allow_download = allow_download
        self.max_pixels = max_pixels
        self.fast = fast
        on_cuda = self.device.type == "cuda"
        if precision != "auto" and precision not in PRECISIONS:
            raise InvalidParameter(f"precision must be auto, {' or '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        if cuda_graphs and not on_cuda:
            raise InvalidParameter("CUDA graphs need a CUDA device")
        self.graphs = StepGraphs() if (on_cuda if cuda_graphs is None else cuda_graphs) else None
        if on_cuda:
            torch.backends.cudnn.benchmark = True  # each octave's shape recurs for every step: tune once
        if tune_allocator:
            keep_freed_memory()
        self._networks: dict[str, TappedNetwork] = {}

    def network(self, name: str) -> TappedNetwork:
        entry = get_entry(name)
        if entry.name not in self._networks:
            self._networks[entry.name] = load_network(entry.name, self.device, allow_download=self.allow_download, fast=self.fast)
        return self._networks[entry.name]

    def precision_for(self, model: str) -> str:
        """The precision a dream on `model` runs at ("fp32" or "bf16")."""
        if self.precision != "auto":
            return self.precision
        return "bf16" if self.device.type == "cuda" and get_entry(model).bf16 else "fp32"

    def warm(self, model_name: str) -> None:
        self.network(model_name)

    def run(self, spec: JobSpec, progress: ProgressCallback | None = None, should_cancel: CancelCheck | None = None) -> JobResult:
        handlers = {"dream": self._dream, "visualize": self._visualize, "zoom": self._zoom}
        if spec.kind not in handlers:
            raise InvalidParameter(f"unknown job kind {spec.kind!r}; expected one of {', '.join(handlers)}")
        if not 0 <= int(spec.seed) < 2**63:
            raise InvalidParameter(f"seed must be a non-negative whole number, got {spec.seed}")
        params = validate_params(spec.kind, spec.params)
        generator = torch.Generator().manual_seed(int(spec.seed))
        started = time.perf_counter()
        with torch.enable_grad():
            data, mime, metadata, timings = handlers[spec.kind](spec, params, generator, progress, should_cancel)
        timings["total"] = time.perf_counter() - started
        metadata = {"kind": spec.kind, "seed": spec.seed, "params": as_dict(params), **metadata}
        return JobResult(data=data, mime_type=mime, metadata=metadata, timings=timings)

    # -- kinds ------------------------------------------------------------------------------

    def _dream(self, spec: JobSpec, p: DreamParams, generator, progress, should_cancel):
        if spec.image is None:
            raise InvalidImage("dream needs an input image")
        resolve_layers(get_entry(p.model), p.layer)  # a bad name fails before any decoding
        t0 = time.perf_counter()
        source = decode_image(spec.image, max_pixels=self.max_pixels)
        guide = decode_image(spec.guide, max_pixels=self.max_pixels) if spec.guide is not None else None
        rgb = fit_longest_side(source.rgb, p.max_side)
        net = self.network(p.model)
        objective = build_dream_objective(net, p.model, p.layer, p.channel, guide.rgb if guide else None, self.device)
        t1 = time.perf_counter()
        image = to_tensor(rgb).to(self.device)
        settings = DreamSettings(p.steps, p.octaves, p.octave_scale, p.strength, p.tile, p.jitter)
        # A guide objective holds the guide's features, which its name does not capture: no replay.
        key = None if guide is not None else (net.name, objective.name)
        out = dream(net, objective, image, settings, generator, progress=progress, should_cancel=should_cancel,
                    precision=self.precision_for(p.model), graphs=self.graphs, graph_key=key)
        t2 = time.perf_counter()
        del image  # a large input's copy need not live through encoding
        _report(progress, "encode")
        data, mime = encode_image(to_pil(out), "PNG", alpha=source.alpha)
        timings = {"decode": t1 - t0, "dream": t2 - t1, "encode": time.perf_counter() - t2}
        meta = {"size": list(rgb.size), "source_size": list(source.rgb.size), "objective": objective.name, "model": net.name}
        return data, mime, meta, timings

    def _visualize(self, spec: JobSpec, p: VisualizeParams, generator, progress, should_cancel):
        class_index = resolve_class(p.target)
        net = self.network(p.model)
        t0 = time.perf_counter()
        settings = RenderSettings(size=p.size, steps=p.steps, lr=p.lr)
        image = render(net, class_logit_objective(class_index), settings, generator,
                       device=self.device, progress=progress, should_cancel=should_cancel)
        t1 = time.perf_counter()
        probabilities = classify(net, image)
        top = int(probabilities.argmax())
        _report(progress, "encode")
        data, mime = encode_image(to_pil(image), "PNG")
        meta = {
            "class_index": class_index,
            "class_name": imagenet_classes()[class_index],
            "probability": float(probabilities[class_index]),
            "top1_index": top,
            "top1_name": imagenet_classes()[top],
            "model": net.name,
        }
        return data, mime, meta, {"render": t1 - t0, "encode": time.perf_counter() - t1}

    def _zoom(self, spec: JobSpec, p: ZoomParams, generator, progress, should_cancel):
        net = self.network(p.model)
        layers = resolve_layers(get_entry(p.model), p.layer)
        objective = _sum_objectives([layer_objective(layer) for layer in layers])
        t0 = time.perf_counter()
        if spec.image is not None:
            start = to_tensor(fit_longest_side(decode_image(spec.image, max_pixels=self.max_pixels).rgb, p.size))
        else:
            start = noise_image(p.size, p.size, generator)
        settings = DreamSettings(steps=p.steps, octaves=p.octaves, strength=p.strength)
        frames = zoom_frames(net, objective, start.to(self.device), settings, ZoomSettings(p.frames, p.zoom, p.rotate),
                             generator, progress=progress, should_cancel=should_cancel)
        t1 = time.perf_counter()
        _report(progress, "encode")
        data, report = encode_gif([to_pil(f) for f in frames], p.max_bytes, p.frame_ms)
        meta = {"frames": report.frames, "colors": report.colors, "size": list(report.size), "bytes": report.bytes,
                "objective": objective.name, "model": net.name}
        return data, "image/gif", meta, {"dream": t1 - t0, "encode": time.perf_counter() - t1}


def keep_freed_memory(max_block: int = 32 << 20, keep: int = 1 << 30) -> bool:
    """Have glibc keep freed memory for reuse instead of handing it back to the kernel at once.

    Every gradient step allocates and frees its activations, hundreds of MB. By default glibc
    unmaps large blocks and trims the heap as soon as they are freed, and the kernel then has to
    zero fresh pages when the next step touches them: about a third of a CPU step at 512x512
    (benchmarks/run.py). Here blocks up to `max_block` (32 MB, glibc's ceiling) come from the heap
    and up to `keep` bytes of free heap stay mapped; larger blocks, such as a 4096x4096 image, are
    still returned at once, so peak memory hardly changes. Returns False where this is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False  # another C library (musl): leave it as it is
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # from glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, max_block) and mallopt(m_trim_threshold, keep) and mallopt(m_top_pad, 64 << 20))


def _report(progress: ProgressCallback | None, stage: str) -> None:
    if progress is not None:
        progress(ProgressEvent(stage, 0, 1))


def _sum_objectives(objectives: list[Objective]) -> Objective:
    total = objectives[0]
    for objective in objectives[1:]:
        total = total + objective
    return total


def build_dream_objective(
    net: TappedNetwork, model: str, layer_spec: str, channels: tuple[int, ...], guide, device: Any
) -> Objective:
    """The objective a dream maximises: a guide's features, chosen channels, or whole layers."""
    layers = resolve_layers(get_entry(model), layer_spec)
    if guide is not None:
        if len(layers) != 1:
            raise InvalidParameter("a guided dream uses exactly one layer")
        with torch.no_grad():
            features = net(to_tensor(fit_longest_side(guide, GUIDE_MAX_SIDE)).to(device), layers)[layers[0]]
        return guide_objective(layers[0], features[0].flatten(1))  # (C, N)
    if channels:
        with torch.no_grad():
            probe = net(torch.zeros(1, 3, 64, 64, device=device), layers)
        objectives = []
        for layer in layers:
            count = probe[layer].shape[1]
            bad = [c for c in channels if not 0 <= c < count]
            if bad:
                raise InvalidParameter(f"{layer} has channels 0-{count - 1}; got {bad[0]}")
            objectives += [channel_objective(layer, c) for c in channels]
        return _sum_objectives(objectives)
    return _sum_objectives([layer_objective(layer) for layer in layers])
