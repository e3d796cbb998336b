"""Runs one `JobSpec` to a `JobResult`: the single entry point that the CLI and every executor use.

A `JobRunner` lives as long as its worker process and keeps loaded networks (and, on CUDA,
captured gradient graphs) warm. `run_batch` runs several jobs at once, sharing each step's
forward and backward pass among dreams that differ only in their seed and photo.
"""

from __future__ import annotations

import ctypes
import sys
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from .clip_encoding import encode_clip
from .clips import DEFAULT_CLIP_LIMITS, ClipLimits, decode_clip
from .cost import work_share
from .device import resolve_device
from .dream import PRECISIONS, DreamSettings, StepGraphs, dream_deeper
from .errors import InvalidParameter, JobCancelled
from .images import DEFAULT_MAX_PIXELS, DecodedImage, decode_image, encode_image, fit_longest_side, to_pil, to_tensor
from .jobs import CancelCheck, JobResult, JobSpec, ProgressCallback, ProgressEvent, Span, monotonic, report_done, report_stage
from .models.classes import imagenet_classes, resolve_class
from .models.registry import TappedNetwork, get_entry, load_network, resolve_layers
from .objectives import Objective, channel_objective, class_logit_objective, guide_objective, layer_objective
from .params import DreamParams, VideoParams, VisualizeParams, ZoomParams, as_dict, fields_for
from .render import NaturalRenderSettings, RenderSettings, classify, render, render_natural
from .video import CoherenceSettings, dream_clip
from .zoom import ZoomSettings, noise_image, zoom_frames

__all__ = ["JobRunner", "build_dream_objective", "dream_settings", "keep_freed_memory"]

GUIDE_MAX_SIDE = 512

OutcomeCallback = Callable[[int, JobResult | Exception], None]  # (index into the batch, its outcome)


@dataclass
class _DreamInput:
    """A dream's decoded photo (and guide), fitted to its max_side: what decides whether dreams can share passes."""

    source: DecodedImage
    guide: DecodedImage | None
    rgb: Image.Image  # the source's RGB fitted to max_side: the size the dream runs at
    seconds: float  # spent checking the layer names and decoding


_Member = tuple[int, DreamParams, _DreamInput]  # a dream of a batch: its index, validated params and input


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
        clip_limits: ClipLimits = DEFAULT_CLIP_LIMITS,
        fast: bool = True,
        precision: str = "auto",
        cuda_graphs: bool | None = None,
        tune_allocator: bool = True,
    ):
        self.device = resolve_device(device)
        self.allow_download = allow_download
        self.max_pixels = max_pixels
        self.clip_limits = clip_limits
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
        """Run a compiled spec (`core.spec.compile_job`); its params are trusted as they are."""
        progress = monotonic(progress)
        result = self._run(spec, spec.params, progress, should_cancel)
        report_done(progress)
        return result

    def run_batch(
        self,
        specs: Sequence[JobSpec],
        progress: Sequence[ProgressCallback | None] | None = None,
        should_cancel: Sequence[CancelCheck | None] | None = None,
        *,
        on_outcome: OutcomeCallback | None = None,
    ) -> list[JobResult | Exception]:
        """Run several jobs, sharing passes where they can; returns one outcome per spec, in order.

        progress, should_cancel: one callable or None per spec. Dreams without a guide whose
        validated parameters are equal and whose photos fit to the same size run together through
        `dream_batch` (pass after pass: `core.dream.dream_deeper`), each with its own seed's
        generator, so each gets what `run` would give it up to float rounding; every job of such
        a group sees the group's progress, the group stops early only when all of its jobs are
        cancelled, and a job cancelled by the end gets JobCancelled instead of its result.
        Everything else runs alone through `run`'s path, in order of first appearance. An outcome
        is a JobResult, or the exception that job failed with (a DreamError such as InvalidImage,
        or any other Exception, a bug): one job's failure never fails another's.
        on_outcome(index, outcome) is called as soon as each is known.
        """
        count = len(specs)
        progress = [monotonic(p) for p in progress] if progress is not None else [None] * count
        should_cancel = list(should_cancel) if should_cancel is not None else [None] * count
        assert len(progress) == len(should_cancel) == count, "run_batch takes one progress and one should_cancel entry (or None) per spec"
        outcomes: list[JobResult | Exception | None] = [None] * count

        def settle(index: int, outcome: JobResult | Exception) -> None:
            outcomes[index] = outcome
            if isinstance(outcome, JobResult):
                report_done(progress[index])
            if on_outcome is not None:
                on_outcome(index, outcome)

        # Work in order of first appearance: a job that is not a plain dream (its index), or dreams
        # with equal params and fitted size (decoded already), which share passes when there are several.
        units: list[int | list[_Member]] = []
        groups: dict[tuple[object, tuple[int, int]], list[_Member]] = {}
        for index, spec in enumerate(specs):
            if spec.batch_key is None:
                units.append(index)
                continue
            params = spec.params
            try:
                given = self._dream_input(spec, params)
            except Exception as exc:
                settle(index, exc)
                continue
            key = (spec.batch_key, given.rgb.size)
            if key not in groups:
                units.append(groups.setdefault(key, []))
            groups[key].append((index, params, given))
        for unit in units:
            if isinstance(unit, list) and len(unit) > 1:
                for index, outcome in self._dream_group(specs, unit, progress, should_cancel):
                    settle(index, outcome)
                continue
            index, params, given = unit[0] if isinstance(unit, list) else (unit, None, None)
            settle(index, self._outcome(specs[index], params, progress[index], should_cancel[index], given))
        assert all(outcome is not None for outcome in outcomes), "run_batch settles every job"
        return outcomes  # type: ignore[return-value]  # no None is left, see the assert

    def _outcome(self, spec: JobSpec, params, progress, should_cancel, given: _DreamInput | None = None) -> JobResult | Exception:
        """`_run`'s result, or the exception it raised: one job's failure is not the batch's. Errors of
        `on_outcome` (say, a broken pipe to a parent that went away) must not be caught this way."""
        try:
            return self._run(spec, params if params is not None else spec.params, progress, should_cancel, given)
        except Exception as exc:
            return exc

    def _run(self, spec: JobSpec, params, progress, should_cancel, given: _DreamInput | None = None) -> JobResult:
        handlers = {"dream": self._dream, "visualize": self._visualize, "zoom": self._zoom, "video": self._video}
        generator = torch.Generator().manual_seed(int(spec.seed))
        started = time.perf_counter() - (given.seconds if given is not None else 0.0)
        with torch.enable_grad():
            if given is not None:
                data, mime, metadata, timings = self._dream(spec, params, generator, progress, should_cancel, given)
            else:
                data, mime, metadata, timings = handlers[spec.kind](spec, params, generator, progress, should_cancel)
        timings["total"] = time.perf_counter() - started
        return _result(spec, params, data, mime, metadata, timings)

    def _dream_group(
        self,
        specs: Sequence[JobSpec],
        members: list[_Member],
        progress: list[ProgressCallback | None],
        should_cancel: list[CancelCheck | None],
    ) -> Iterator[tuple[int, JobResult | Exception]]:
        """Dream `members` (equal params, equal fitted size) in shared passes; yield (index, outcome) as each is encoded."""
        p = members[0][1]
        started = time.perf_counter()
        callbacks = [progress[index] for index, _, _ in members if progress[index] is not None]
        checks = [should_cancel[index] for index, _, _ in members]

        def fan_out(event: ProgressEvent) -> None:
            for callback in callbacks:
                callback(event)

        outs: list[torch.Tensor | None] = []
        warps: dict[str, float] = {}
        failure: Exception | None = None
        out_of_memory = False
        try:
            net, objective = self._dream_objective(p, None)
            t1 = time.perf_counter()
            images = [to_tensor(given.rgb).to(self.device) for _, _, given in members]
            generators = [torch.Generator().manual_seed(int(specs[index].seed)) for index, _, _ in members]
            with torch.enable_grad():
                outs = list(dream_deeper(
                    net, objective, images, dream_settings(p), generators, iterations=p.iterations,
                    progress=fan_out if callbacks else None, should_cancel=lambda: all(map(_cancelled, checks)),
                    span=_work_span(specs[members[0][0]]), timings=warps,
                    precision=self.precision_for(p.model), graphs=self.graphs, graph_key=(net.name, objective.name),
                ))
        except torch.OutOfMemoryError:
            out_of_memory = True  # handled below, once the traceback no longer holds the batch's tensors
        except Exception as exc:
            failure = exc
        images = []
        if failure is not None:
            for index, _, _ in members:
                yield index, failure
            return
        if out_of_memory:
            # Together they do not fit where each alone may: run them one at a time instead.
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            for index, params, given in members:
                yield index, self._outcome(specs[index], params, progress[index], should_cancel[index], given)
            return
        t2 = time.perf_counter()
        for position, (index, params, given) in enumerate(members):
            out, outs[position] = outs[position], None  # each image is freed once encoded
            if _cancelled(should_cancel[index]):
                yield index, JobCancelled("the job was cancelled")
                continue
            try:
                t3 = time.perf_counter()
                seen = self._seen_as(net, out, params.target)
                seeing = time.perf_counter() - t3  # a network pass: timed with the dream, as core.cost prices it
                data, mime, meta = self._dream_output(out, given, net, objective, progress[index], _work_span(specs[index]))
                t4 = time.perf_counter()
            except Exception as exc:
                yield index, exc
                continue
            # Zooms between passes are pixel work, priced with decoding (core.cost.WARP_WEIGHT): timed with it.
            warp = warps.get("zoom", 0.0)
            timings = {"decode": given.seconds + (t1 - started) + warp, "dream": t2 - t1 - warp + seeing, "encode": t4 - t3 - seeing,
                       "total": given.seconds + (t4 - started)}
            yield index, _result(specs[index], params, data, mime, {**meta, **seen, "batch_size": len(members)}, timings)

    # -- kinds ------------------------------------------------------------------------------

    def _dream(self, spec: JobSpec, p: DreamParams, generator, progress, should_cancel, given: _DreamInput | None = None):
        given = given if given is not None else self._dream_input(spec, p)
        t0 = time.perf_counter()
        net, objective = self._dream_objective(p, given.guide)
        t1 = time.perf_counter()
        image = to_tensor(given.rgb).to(self.device)
        # A guide objective holds the guide's features, which its name does not capture: no replay.
        key = None if given.guide is not None else (net.name, objective.name)
        span = _work_span(spec)
        warps: dict[str, float] = {}
        out, = dream_deeper(net, objective, [image], dream_settings(p), [generator], iterations=p.iterations,
                            progress=progress, should_cancel=should_cancel, span=span, timings=warps,
                            precision=self.precision_for(p.model), graphs=self.graphs, graph_key=key)
        seen = self._seen_as(net, out, p.target)  # a network pass: timed with the dream, as core.cost prices it
        t2 = time.perf_counter()
        del image  # a large input's copy need not live through encoding
        data, mime, meta = self._dream_output(out, given, net, objective, progress, span)
        meta |= seen
        warp = warps.get("zoom", 0.0)  # pixel work between passes, priced with decoding (core.cost.WARP_WEIGHT)
        timings = {"decode": given.seconds + (t1 - t0) + warp, "dream": t2 - t1 - warp, "encode": time.perf_counter() - t2}
        return data, mime, meta, timings

    def _dream_input(self, spec: JobSpec, p: DreamParams) -> _DreamInput:
        """Decode the photo (and guide) and fit the photo to max_side."""
        started = time.perf_counter()
        assert spec.image is not None, "a dream spec carries its photo; make specs with core.spec.compile_job"
        source = decode_image(spec.image, max_pixels=self.max_pixels)
        guide = decode_image(spec.guide, max_pixels=self.max_pixels) if spec.guide is not None else None
        rgb = fit_longest_side(source.rgb, p.max_side)
        return _DreamInput(source, guide, rgb, time.perf_counter() - started)

    def _dream_objective(self, p: DreamParams, guide: DecodedImage | None) -> tuple[TappedNetwork, Objective]:
        net = self.network(p.model)
        return net, build_dream_objective(net, p.model, p.layer, p.channel, guide.rgb if guide else None, self.device, target=p.target)

    def _seen_as(self, net: TappedNetwork, out: torch.Tensor, target: str) -> dict[str, Any]:
        """For a dream toward a class: how the network sees the result as the user gets it (8 bits
        per channel), for its metadata, as a render's; nothing for other dreams."""
        if not target:
            return {}
        quantised = to_tensor(to_pil(out)).to(self.device)
        return _class_metadata(classify(net, quantised), resolve_class(target))

    def _dream_output(self, out: torch.Tensor, given: _DreamInput, net: TappedNetwork, objective: Objective, progress, span: Span):
        """Encode a dreamt (1, 3, H, W) image as PNG with the source's alpha; returns (data, mime, metadata)."""
        report_stage(progress, "encode", span.end)
        data, mime = encode_image(to_pil(out), "PNG", alpha=given.source.alpha)
        meta = {"size": list(given.rgb.size), "source_size": list(given.source.rgb.size), "objective": objective.name, "model": net.name}
        return data, mime, meta

    def _visualize(self, spec: JobSpec, p: VisualizeParams, generator, progress, should_cancel):
        class_index = resolve_class(p.target)
        net = self.network(p.model)
        t0 = time.perf_counter()
        span = _work_span(spec)
        objective = class_logit_objective(class_index)
        mask = None
        if p.style == "vivid":
            image = render(net, objective, fields_for(RenderSettings, p), generator,
                           device=self.device, progress=progress, should_cancel=should_cancel, span=span)
            seen = image
        else:
            settings = fields_for(NaturalRenderSettings, p)
            image, importance = render_natural(net, objective, settings, generator,
                                               device=self.device, progress=progress, should_cancel=should_cancel, span=span)
            mask = to_pil(importance.expand(-1, 3, -1, -1)).convert("L") if p.mask else None
            # Scored as the network saw it while rendering: the whole image at its input size.
            seen = to_tensor(fit_longest_side(to_pil(image), settings.input_size)).to(self.device)
        t1 = time.perf_counter()
        probabilities = classify(net, seen)
        top = int(probabilities.argmax())
        report_stage(progress, "encode", span.end)
        data, mime = encode_image(to_pil(image), "PNG", alpha=mask)
        meta = {
            "style": p.style,
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
        span = _work_span(spec)
        frames = zoom_frames(net, objective, start.to(self.device), fields_for(DreamSettings, p), fields_for(ZoomSettings, p),
                             generator, progress=progress, should_cancel=should_cancel, span=span,
                             precision=self.precision_for(p.model), graphs=self.graphs, graph_key=(net.name, objective.name))
        t1 = time.perf_counter()
        report_stage(progress, "encode", span.end)
        data, mime, report = encode_clip([np.asarray(to_pil(f)) for f in frames], 1000 / p.frame_ms, p.format, p.max_bytes)
        meta = {"frames": report.frames, "size": list(report.size), "bytes": report.bytes, "format": report.format,
                "colors": report.colors, "loop": p.loop, "objective": objective.name, "model": net.name}
        return data, mime, meta, {"dream": t1 - t0, "encode": time.perf_counter() - t1}

    def _video(self, spec: JobSpec, p: VideoParams, generator, progress, should_cancel):
        t0 = time.perf_counter()
        assert spec.image is not None, "a video spec carries its clip; make specs with core.spec.compile_job"
        clip = decode_clip(spec.image, max_side=p.max_side, limits=self.clip_limits)
        net = self.network(p.model)
        objective = build_dream_objective(net, p.model, p.layer, p.channel, None, self.device)
        t1 = time.perf_counter()
        span = _work_span(spec)
        timings: dict[str, float] = {}
        frames = dream_clip(net, objective, clip.frames, fields_for(DreamSettings, p), fields_for(CoherenceSettings, p), generator,
                            device=self.device, progress=progress, should_cancel=should_cancel, span=span,
                            precision=self.precision_for(p.model), graphs=self.graphs, graph_key=(net.name, objective.name),
                            timings=timings)
        t2 = time.perf_counter()
        report_stage(progress, "encode", span.end)
        audio = spec.image if clip.info.has_audio and p.format == "mp4" else None
        data, mime, report = encode_clip(frames, clip.info.fps, p.format, p.max_bytes, audio_source=audio)
        meta = {"frames": report.frames, "size": list(report.size), "source_size": list(clip.info.size), "fps": report.fps,
                "bytes": report.bytes, "format": report.format, "audio": report.audio, "objective": objective.name, "model": net.name}
        # Motion is pixel work, priced with decoding (core.cost.FLOW_WEIGHT): timed with it, so the rates learn it there.
        flow_seconds = timings.get("flow", 0.0)
        timings = {"decode": t1 - t0 + flow_seconds, "dream": t2 - t1 - flow_seconds, "encode": time.perf_counter() - t2}
        return data, mime, meta, timings


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


def _cancelled(check: CancelCheck | None) -> bool:
    return check is not None and bool(check())


def _work_span(spec: JobSpec) -> Span:
    """The part of the job's progress before encoding: the work's share of its predicted time."""
    return Span().head(work_share(spec.cost) if spec.cost is not None else 0.95)


def _result(spec: JobSpec, params, data: bytes, mime: str, metadata: dict[str, Any], timings: dict[str, float]) -> JobResult:
    metadata = {"kind": spec.kind, "seed": spec.seed, "params": as_dict(params), **metadata}
    return JobResult(data=data, mime_type=mime, metadata=metadata, timings=timings)


def _sum_objectives(objectives: list[Objective]) -> Objective:
    total = objectives[0]
    for objective in objectives[1:]:
        total = total + objective
    return total


# How a dream toward a class steps (see DreamSettings): in natural-image units (`core.dream.natural_step`),
# pulled a little back toward the photo after every step, so the class grows out of the photo's
# own shapes and colours while the photo stays recognisable (Hamblin et al. 2024's feature accentuation).
TARGET_STEP_SHAPING: dict[str, float] = {"smoothing": 1.0, "pull": 0.01}


def dream_settings(p: DreamParams) -> DreamSettings:
    """The dream loop's settings for a photo dream's params (a target's step shaping included)."""
    settings = fields_for(DreamSettings, p)
    return replace(settings, **TARGET_STEP_SHAPING) if p.target else settings


def _class_metadata(probabilities: torch.Tensor, class_index: int) -> dict[str, Any]:
    """How the network sees an image, for a result's metadata: the class asked for and its top-1."""
    top = int(probabilities.argmax())
    names = imagenet_classes()
    return {"class_index": class_index, "class_name": names[class_index], "probability": float(probabilities[class_index]),
            "top1_index": top, "top1_name": names[top]}


def build_dream_objective(
    net: TappedNetwork, model: str, layer_spec: str, channels: tuple[int, ...], guide, device: Any, *, target: str = ""
) -> Objective:
    """The objective a dream maximises: a class's score, a guide's features, chosen channels, or whole layers.

    target: an ImageNet class (compile_job resolved it and set the layer to the class scores).
    """
    layers = resolve_layers(get_entry(model), layer_spec)
    if target:
        assert layers == ("logits",), "compile_job sets a target dream's layer to logits"
        return class_logit_objective(resolve_class(target))
    if guide is not None:
        assert len(layers) == 1, "compile_job refuses a guided dream on several layers"
        with torch.no_grad():
            features = net(to_tensor(fit_longest_side(guide, GUIDE_MAX_SIDE)).to(device), layers)[layers[0]]
        return guide_objective(layers[0], features[0].flatten(1))  # (C, N)
    if channels:  # compile_job checked them against the layers' channel counts
        return _sum_objectives([channel_objective(layer, c) for layer in layers for c in channels])
    return _sum_objectives([layer_objective(layer) for layer in layers])
