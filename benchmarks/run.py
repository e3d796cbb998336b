"""`make bench`: the project's jobs against naive reference loops doing the same work, in one process.

    python -m benchmarks.run [--device cpu|cuda] [--quick] [--reps N] [--model NAME] [--out PATH]

The naive loops are written here on purpose, the way a first PyTorch port of google/deepdream looks:
the same network and weights, but fp32, eager, NCHW, batch norms as separate layers, the whole
image in one pass (no tiles), forward to the layer, gradient to the input, a step normalised by
its mean magnitude, roll jitter; the same octave, step and jitter counts as the project's
defaults. Each row compares the same work: a dream toward a class gets the same step shaping on
both sides; the natural render (the default style) is compared with MACO's loop written plainly
(the same phase-only image, crops, noise, objective, optimiser and steps, one crop at a time),
the vivid style with its own plain Fourier loop. The video row's naive side dreams every frame
alone at the first frame's settings, as a plain loop would; the project carries the detail along
the motion and refreshes it with a third of the steps. Project and naive runs alternate within
each repetition and the table shows medians, so the ratios hold even when other processes take
the CPU now and then (absolute times do not).

Columns:
  step ms   one gradient step at the job's full size (dream, zoom) or one render step (visualize)
  job s     the whole job from input bytes to encoded bytes (project: `JobRunner.run`)
  peak MB   peak resident memory of a fresh subprocess that loads the model and runs the job once
            (on CUDA also the peak of allocated GPU memory)
  ratio     project / naive

Also checked: a 4096x4096 dream's peak memory (subprocess) with a seam check on its output, the
tiled gradient against an untiled one on a crop that straddles a tile corner, and the bf16
autocast tolerance. The table is also written as JSON to the path printed at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from core.clips import decode_clip
from core.dream import DreamSettings, dream, natural_step, tiled_gradient
from core.images import decode_image, encode_image, fit_longest_side, to_pil, to_tensor
from core.jobs import JobSpec
from core.models.classes import resolve_class
from core.models.registry import get_entry, load_network, resolve_layers
from core.objectives import Objective, class_logit_objective, layer_objective
from core.parameterization import fourier_image, phase_image
from core.params import VisualizeParams, fields_for, validate_params
from core.render import PHASE_LR_SCALE, NaturalRenderSettings, RenderSettings, render, render_natural
from core.runner import TARGET_STEP_SHAPING, JobRunner, dream_settings
from core.spec import compile_job
from core.transforms import compose, standard_transforms
from core.clip_encoding import encode_clip
from core.images import zoom_step
from core.zoom import noise_image

BASE_STEP = 1.5 / 255
MB = 1024 * 1024

# bf16 is fit for a model when its finished dream stays this close to the fp32 one (`bf16_check`):
BF16_MAX_MEAN_LEVELS = 2.0  # mean |bf16 - fp32| in 8-bit levels
BF16_MAX_SEED_FRACTION = 0.25  # and at most this fraction of what another seed changes (the same dream, not another)

TARGETS = {
    "dream_512_job_s": 10.0,  # default dream of a 512x512 photo
    "visualize_job_s": 30.0,  # default visualize
    "dream_ratio": 0.7,  # project / naive, same work
    "peak_4096_mb": 2048.0,  # whole process, 4096x4096 input
}


# -- the naive reference ------------------------------------------------------------------------


class NaiveNetwork:
    """The network as a plain loop holds it: same weights, fp32, NCHW, batch norms unfolded, cut after `layer`."""

    def __init__(self, model: str, layer: str, device: torch.device, *, allow_download: bool = False):
        plain = load_network(model, device, allow_download=allow_download, fast=False)
        names = plain.stage_names
        self.features = nn.Sequential(*[plain.stages[name] for name in names[: names.index(layer) + 1]])
        self.normalize = plain.normalize

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(self.normalize(images))


def naive_dream(net: NaiveNetwork, image: torch.Tensor, *, steps: int, octaves: int, octave_scale: float,
                jitter: int, generator: torch.Generator, strength: float = 1.0, class_index: int | None = None,
                smoothing: float = 0.0, pull: float = 0.0) -> torch.Tensor:
    """The notebook's loop: octaves small to large, carrying the detail; roll, gradient, normalised step.

    class_index: raise that class's score (a dream toward a class; `net` ends at the logits) rather
    than the layer's activations. smoothing, pull: a target dream's step shaping, applied the same
    way as the project's (`natural_step`, then a pull toward the photo after each step).
    """
    sizes = [tuple(image.shape[-2:])]
    for _ in range(octaves - 1):
        h, w = round(sizes[-1][0] / octave_scale), round(sizes[-1][1] / octave_scale)
        if min(h, w) < 32:
            break
        sizes.append((h, w))
    sizes.reverse()
    detail = torch.zeros(1, 3, *sizes[0], device=image.device)
    for size in sizes:
        octave_base = image if size == tuple(image.shape[-2:]) else F.interpolate(
            image, size=size, mode="bilinear", align_corners=False, antialias=True)
        img = (octave_base + F.interpolate(detail, size=size, mode="bilinear", align_corners=False)).clamp(0, 1)
        for _ in range(steps):
            dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
            rolled = img.roll((dy, dx), dims=(2, 3)).detach().requires_grad_(True)
            out = net(rolled)
            loss = out[:, class_index].mean() if class_index is not None else out.pow(2).mean()
            (grad,) = torch.autograd.grad(loss, rolled)
            grad = grad.roll((-dy, -dx), dims=(2, 3))
            if smoothing:
                grad = natural_step(grad, smoothing)
            img = (img + BASE_STEP * strength / (grad.abs().mean() + 1e-8) * grad).clamp(0, 1).detach()
            if pull:
                img = img.lerp(octave_base, pull)
        detail = img - octave_base
    return img


def naive_render(net: NaiveNetwork, class_index: int, *, size: int, steps: int, lr: float,
                 generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """The same Fourier-parameterised class render, through the naive network."""
    params, image_fn = fourier_image(size, size, generator, decay_power=1.5, device=device)
    optimizer = torch.optim.Adam(params, lr=lr)
    transform = compose(standard_transforms(generator))
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = -net(transform(image_fn()))[:, class_index].mean()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return image_fn()


def naive_natural_render(net: NaiveNetwork, class_index: int, settings: NaturalRenderSettings, *,
                         generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """The project's natural (MACO) render written the plain way: the same phase-only image with
    photos' spectrum, the same crops (count, sizes, noise, input size), objective, optimiser and
    steps, but each crop cut, resized and run through the plain network on its own."""
    size = settings.size
    params, image_fn = phase_image(size, size, generator, device=device)
    optimizer = torch.optim.NAdam(params, lr=settings.lr * PHASE_LR_SCALE)
    for _ in range(settings.steps):
        optimizer.zero_grad(set_to_none=True)
        image = image_fn()
        loss = 0.0
        for _ in range(settings.crops):
            side = int(size * (settings.min_crop + (settings.max_crop - settings.min_crop) * float(torch.rand((), generator=generator))))
            top, left = (int(torch.randint(0, size - side + 1, (), generator=generator)) for _ in range(2))
            crop = F.interpolate(image[..., top:top + side, left:left + side], size=(settings.input_size,) * 2,
                                 mode="bilinear", align_corners=False)
            crop = crop + settings.noise * torch.randn(crop.shape, generator=generator).to(device)
            loss = loss - net(crop)[:, class_index].mean() / settings.crops
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return image_fn()


def ensure_weights(model: str) -> str | None:
    """GoogLeNet without weights in the torch cache gets random weights of the same architecture,
    saved to a temporary torch home (inherited by child processes). Returns a note saying so, or None.

    Timings do not depend on weight values; tolerance checks and pictures do."""
    from core.models.registry import googlenet_cache_path

    if model != "googlenet" or os.path.exists(googlenet_cache_path()):
        return None
    from torchvision.models import GoogLeNet

    home = tempfile.mkdtemp(prefix="dreambot-bench-")
    os.environ["TORCH_HOME"] = home  # torch.hub.get_dir() of child processes
    torch.hub.set_dir(os.path.join(home, "hub"))
    os.makedirs(os.path.dirname(googlenet_cache_path()))
    torch.manual_seed(0)
    torch.save(GoogLeNet(num_classes=1000, aux_logits=False, init_weights=False).state_dict(), googlenet_cache_path())
    return ("googlenet weights are not in the torch cache: using RANDOM weights of the same architecture "
            "(timings are valid; the bf16 tolerance and the pictures are not meaningful)")


# -- jobs, both ways ----------------------------------------------------------------------------


def photo(size: int, fmt: str = "PNG") -> bytes:
    """scikit-image's astronaut, resized to size x size."""
    try:
        import skimage
    except ImportError:
        raise SystemExit("the benchmark's photo comes from scikit-image: pip install -e '.[test]'") from None
    path = Path(skimage.__file__).parent / "data" / "astronaut.png"
    out = io.BytesIO()
    Image.open(path).convert("RGB").resize((size, size), Image.LANCZOS).save(out, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return out.getvalue()


def clip(frames: int, side: int) -> bytes:
    """A pan and zoom over scikit-image's chelsea, as an H.264 MP4 (the clip the tests use, larger)."""
    import skimage

    from tests.clip_making import encode_video, pan_and_zoom

    return encode_video(pan_and_zoom(Path(skimage.__file__).parent / "data" / "chelsea.png", frames, (side, side * 3 // 4)), fps=24)


def make_input(source: dict[str, Any] | None) -> bytes | None:
    """A case's input from its description ({"photo": side} or {"clip": [frames, side]}), so a
    child process makes the same one."""
    if source is None:
        return None
    return photo(source["photo"], "JPEG") if "photo" in source else clip(*source["clip"])


@dataclass
class Case:
    name: str
    kind: str
    params: dict[str, Any]
    source: dict[str, Any] | None = None  # the input, as make_input describes it
    key: str = ""  # its row among the targets; the kind when empty
    seed: int = 0
    typed: Any = field(init=False)
    image: bytes | None = field(init=False)

    def __post_init__(self):
        self.typed = validate_params(self.kind, self.params)
        self.image = make_input(self.source)
        self.key = self.key or self.kind

    def spec(self) -> JobSpec:
        return compile_job(self.kind, self.params, images=[self.image] if self.image is not None else [], seed=self.seed)


def naive_layer(case: Case) -> str:
    if case.kind == "visualize" or getattr(case.typed, "target", "") and case.kind == "dream":
        return "logits"
    layers = resolve_layers(get_entry(case.typed.model), case.typed.layer)
    assert len(layers) == 1, "the naive loop amplifies one layer; give the case one layer"
    return layers[0]


def naive_job(case: Case, net: NaiveNetwork, device: torch.device) -> bytes:
    """The case as a whole job the naive way: the same decoding and encoding around the naive loop."""
    p, generator = case.typed, torch.Generator().manual_seed(case.seed)
    if case.kind == "dream":
        p = case.spec().params  # a target's defaults filled in, as the project's job gets them
        rgb = fit_longest_side(decode_image(case.image).rgb, p.max_side)
        shaping = TARGET_STEP_SHAPING if p.target else {}
        out = naive_dream(net, to_tensor(rgb).to(device), steps=p.steps, octaves=p.octaves, octave_scale=p.octave_scale,
                          jitter=p.jitter, generator=generator, strength=p.strength,
                          class_index=resolve_class(p.target) if p.target else None, **shaping)
        return encode_image(to_pil(out), "PNG")[0]
    if case.kind == "video":
        decoded = decode_clip(case.image, max_side=p.max_side)
        frames = [np.asarray(to_pil(naive_dream(net, to_tensor(Image.fromarray(frame)).to(device), steps=p.steps,
                                                octaves=p.octaves, octave_scale=p.octave_scale, jitter=p.jitter,
                                                generator=generator, strength=p.strength)))
                  for frame in decoded.frames]
        return encode_clip(frames, decoded.info.fps, p.format, p.max_bytes)[0]
    if case.kind == "visualize" and p.style == "natural":
        image = naive_natural_render(net, resolve_class(p.target), fields_for(NaturalRenderSettings, p),
                                     generator=generator, device=device)
        with torch.no_grad():
            net(image).softmax(-1)  # the project's job classifies its render too
        return encode_image(to_pil(image), "PNG")[0]
    if case.kind == "visualize":
        image = naive_render(net, resolve_class(p.target), size=p.size, steps=p.steps, lr=p.lr,
                             generator=generator, device=device)
        with torch.no_grad():
            net(image).softmax(-1)  # the project's job classifies its render too
        return encode_image(to_pil(image), "PNG")[0]
    if case.kind == "zoom":
        current, frames = noise_image(p.size, p.size, generator).to(device), []
        for _ in range(p.frames):
            current = naive_dream(net, current, steps=p.steps, octaves=p.octaves, octave_scale=1.4, jitter=32,
                                  generator=generator, strength=p.strength)
            frames.append(current)
            current = zoom_step(current, p.zoom, p.rotate)
        return encode_clip([np.asarray(to_pil(f)) for f in frames], 1000 / p.frame_ms, p.format, p.max_bytes)[0]
    raise ValueError(case.kind)


def step_functions(case: Case, runner: JobRunner, naive: NaiveNetwork, steps: int) -> tuple[Callable, Callable]:
    """(project, naive) functions that each run `steps` gradient steps at the case's full size."""
    p, device = case.typed, runner.device
    if case.kind == "visualize":
        net, objective = runner.network(p.model), class_logit_objective(resolve_class(p.target))
        if p.style == "natural":
            natural = replace(fields_for(NaturalRenderSettings, p), steps=steps)
            return (
                lambda: render_natural(net, objective, natural, torch.Generator().manual_seed(0), device=device),
                lambda: naive_natural_render(naive, objective_class(objective), natural,
                                             generator=torch.Generator().manual_seed(0), device=device),
            )
        settings = RenderSettings(size=p.size, steps=steps, lr=p.lr)
        return (
            lambda: render(net, objective, settings, torch.Generator().manual_seed(0), device=device),
            lambda: naive_render(naive, objective_class(objective), size=p.size, steps=steps, lr=p.lr,
                                 generator=torch.Generator().manual_seed(0), device=device),
        )
    shaping: dict[str, float] = {}
    class_index = None
    if case.kind == "dream":
        p = case.spec().params  # a target's defaults filled in
        image = to_tensor(fit_longest_side(decode_image(case.image).rgb, p.max_side)).to(device)
        tile, jitter = p.tile, p.jitter
        if p.target:
            shaping, class_index = dict(TARGET_STEP_SHAPING), resolve_class(p.target)
    elif case.kind == "video":  # a frame's step: the first frame's dream, at the clip's size
        image = to_tensor(Image.fromarray(decode_clip(case.image, max_side=p.max_side).frames[0])).to(device)
        tile, jitter = p.tile, p.jitter
    else:
        image, tile, jitter = noise_image(p.size, p.size, torch.Generator().manual_seed(0)).to(device), 512, 32
    net = runner.network(p.model)
    objective = class_logit_objective(class_index) if class_index is not None else layer_objective(naive_layer(case))
    settings = replace(dream_settings(p) if case.kind == "dream" else DreamSettings(), steps=steps, octaves=1, tile=tile, jitter=jitter)
    key = (net.name, objective.name) if case.kind in ("dream", "video") else None  # zoom_frames runs eagerly
    return (
        lambda: dream(net, objective, image, settings, torch.Generator().manual_seed(0),
                      precision=runner.precision_for(p.model) if key else "fp32", graphs=runner.graphs, graph_key=key),
        lambda: naive_dream(naive, image, steps=steps, octaves=1, octave_scale=1.4, jitter=jitter,
                            generator=torch.Generator().manual_seed(0), class_index=class_index, **shaping),
    )


def objective_class(objective: Objective) -> int:
    return int(objective.name.split(":")[1])


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


# -- peak memory in a fresh process -------------------------------------------------------------


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """This process's own peak RSS. Not getrusage's ru_maxrss: Linux carries that over from the
    parent through fork and exec, so a child would report at least the parent's peak."""
    return _status_mb("VmHWM")


def child_main(request: dict[str, Any]) -> dict[str, Any]:
    """Runs one job once in this (fresh) process and reports its peak memory."""
    device = torch.device(request["device"])
    case = Case(request["name"], request["kind"], request["params"], source=request.get("source"))
    if request["impl"] == "project":
        runner = JobRunner(str(device), allow_download=False)
        runner.warm(case.typed.model)
        run = lambda: runner.run(case.spec())  # noqa: E731
    else:
        naive = NaiveNetwork(case.typed.model, naive_layer(case), device)
        run = lambda: naive_job(case, naive, device)  # noqa: E731
    before = rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    report = {
        "job_s": seconds,
        "rss_before_mb": before,
        "peak_mb": peak_rss_mb(),
        "timings": getattr(result, "timings", {}),
    }
    if device.type == "cuda":
        report["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / MB
    if request.get("seams"):
        data = result.data if hasattr(result, "data") else result
        source = fit_longest_side(decode_image(case.image).rgb, case.typed.max_side)
        report["seams"] = seam_statistics(np.asarray(source), np.asarray(decode_image(data).rgb),
                                          case.typed.tile, case.typed.jitter)
    return report


def run_child(request: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.run", "--child", json.dumps(request)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).resolve().parent.parent)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("CHILD-RESULT "):
            return json.loads(line[len("CHILD-RESULT "):])
    return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit status {done.returncode}"]}


# -- seams --------------------------------------------------------------------------------------


def _fold_profile(diff: np.ndarray, axis: int, period: int) -> np.ndarray:
    """Mean |jump| of the dream's change between neighbouring rows (axis 0) or columns (axis 1),
    folded modulo the tile period: entry p averages the boundaries at positions p, p + period, ..."""
    length = diff.shape[axis]
    jumps = np.empty(length - 1)
    chunk = 256
    for start in range(0, length - 1, chunk):
        stop = min(length - 1, start + chunk)
        a = np.take(diff, range(start, stop), axis=axis).astype(np.int16)
        b = np.take(diff, range(start + 1, stop + 1), axis=axis).astype(np.int16)
        jumps[start:stop] = np.abs(a - b).mean(axis=tuple(i for i in range(diff.ndim) if i != axis))
    positions = np.arange(1, length) % period  # the boundary between i - 1 and i is at position i
    return np.array([jumps[positions == p].mean() for p in range(period)])


def seam_statistics(source: np.ndarray, result: np.ndarray, tile: int, jitter: int) -> dict[str, float]:
    """How much sharper the dream's change is near tile borders than elsewhere.

    source, result: (H, W, 3) uint8. Tile borders sit at multiples of the tile period in the
    rolled image, so in the image they fall within `jitter` pixels of those multiples. A seam would
    show as a peak of the folded jump profile there; `control` is the same statistic half a period
    away, where no border ever falls, so border ≈ control means no seams.
    """
    change = result.astype(np.int16) - source.astype(np.int16)  # (H, W, 3)
    out: dict[str, float] = {}
    for axis, label in ((0, "rows"), (1, "cols")):
        length = change.shape[axis]
        count = max(1, math.ceil(length / tile))
        if length % count:
            continue  # tile borders are not periodic; skip the axis
        period = length // count
        profile = _fold_profile(change, axis, period)
        distance = np.minimum(np.arange(period), period - np.arange(period))  # to the nearest border position
        far = np.median(profile[distance > 2 * jitter + 2]) if period > 4 * jitter + 8 else np.median(profile)
        near = profile[distance <= jitter + 1]
        control = profile[np.abs(np.arange(period) - period // 2) <= jitter + 1]
        out[f"{label}_border"] = float(near.max() / far)
        out[f"{label}_control"] = float(control.max() / far)
    out["ok"] = all(out[f"{k}_border"] <= max(1.1, 1.1 * out[f"{k}_control"]) for k in ("rows", "cols") if f"{k}_border" in out)
    return out


def crop_seam_check(net, layer: str, device: torch.device, size: int = 2048, tile: int = 512) -> dict[str, float]:
    """The tiled gradient of a size x size photo against an untiled gradient of a crop around a tile corner."""
    image = to_tensor(Image.open(io.BytesIO(photo(size)))).to(device)
    objective = layer_objective(layer)
    tiled = tiled_gradient(net, objective, image, tile)
    corner, half = size // 2, size // 4  # (size/2, size/2) is a tile corner; the crop reaches size/4 around it
    crop = image[:, :, corner - half : corner + half, corner - half : corner + half]
    untiled = tiled_gradient(net, objective, crop, tile=10**6)
    inner = half // 2  # compare away from the crop's own edges
    a = tiled[:, :, corner - inner : corner + inner, corner - inner : corner + inner]
    b = untiled[:, :, half - inner : half + inner, half - inner : half + inner]
    error = (a - b).abs().mean(dim=1)[0]  # (2 inner, 2 inner)
    border = torch.zeros_like(error, dtype=torch.bool)
    border[inner - 2 : inner + 2, :] = True  # the rows and columns next to the tile borders
    border[:, inner - 2 : inner + 2] = True
    scale = float(b.abs().mean())
    return {
        "relative_error": float(error.mean()) / scale,
        "border_relative_error": float(error[border].mean()) / scale,
        "interior_relative_error": float(error[~border].mean()) / scale,
    }


# -- bf16 tolerance -----------------------------------------------------------------------------


def bf16_check(net, objective: Objective, image: torch.Tensor, settings: DreamSettings, seed: int = 0) -> dict[str, Any]:
    """bf16 autocast against fp32 on the same dream: one step's gradient, and the finished image."""
    g32 = tiled_gradient(net, objective, image, settings.tile, precision="fp32").double().flatten()
    g16 = tiled_gradient(net, objective, image, settings.tile, precision="bf16").double().flatten()
    g32, g16 = g32 / g32.abs().max(), g16 / g16.abs().max()  # gradients can be tiny; keep the norms in range
    cosine = float(g32 @ g16 / (g32.norm() * g16.norm()))
    run = lambda precision, s: dream(net, objective, image, settings, torch.Generator().manual_seed(s), precision=precision)  # noqa: E731
    fp32, bf16, other_seed = run("fp32", seed), run("bf16", seed), run("fp32", seed + 1)
    levels = lambda a, b: float((a - b).abs().mean()) * 255  # noqa: E731
    report = {
        "size": list(image.shape[-2:]),
        "gradient_cosine": cosine,
        "mean_levels_bf16_vs_fp32": levels(bf16, fp32),
        "p99_levels_bf16_vs_fp32": float(torch.quantile((bf16 - fp32).abs().flatten()[:: max(1, bf16.numel() // 1_000_000)].float(), 0.99)) * 255,
        "mean_levels_dream_change": levels(fp32, image),
        "mean_levels_other_seed": levels(other_seed, fp32),
        "tolerance": {"max_mean_levels": BF16_MAX_MEAN_LEVELS, "max_fraction_of_other_seed": BF16_MAX_SEED_FRACTION},
    }
    report["ok"] = (report["mean_levels_bf16_vs_fp32"] <= BF16_MAX_MEAN_LEVELS
                    and report["mean_levels_bf16_vs_fp32"] <= BF16_MAX_SEED_FRACTION * report["mean_levels_other_seed"])
    return report


# -- the benchmark ------------------------------------------------------------------------------


def make_cases(model: str, quick: bool) -> list[Case]:
    """Each case is one job, run by the project and by a naive loop doing the same work: the same
    network, objective, parameterisation, crops, steps and sizes, written the plain way."""
    base = {"model": model}
    render_steps = {"steps": 64} if quick else {}
    frames = 6 if quick else 24
    return [
        Case("dream 512x512", "dream", dict(base), source={"photo": 512}),  # defaults: 4 octaves x 10 steps
        # The default style, against MACO's loop written plainly (crops one by one).
        Case("visualize 224 natural" + (" (64 steps)" if quick else ""), "visualize", {**base, **render_steps}),
        Case("visualize 224 vivid" + (" (64 steps)" if quick else ""), "visualize", {**base, "style": "vivid", **render_steps},
             key="visualize-vivid"),
        # A dream toward a class: the target's defaults and step shaping on both sides.
        Case("target dream 512 (banana)", "dream", {**base, "target": "banana"}, source={"photo": 512}, key="target"),
        # The naive side dreams every frame alone at the first frame's settings (what a plain
        # loop does with a video); the project carries detail along the motion and refreshes it.
        Case(f"video 320 ({frames} frames)", "video", dict(base), source={"clip": [frames, 320]}),
        Case(f"zoom 320 ({3 if quick else 6} frames)", "zoom", {**base, "frames": 3 if quick else 6}),
    ]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and smaller jobs (a couple of minutes)")
    parser.add_argument("--reps", type=int, default=None, help="interleaved repetitions (default 3, quick 2)")
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--out", default=None, help="JSON path (default bench-results/bench-<device>.json)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        print("CHILD-RESULT " + json.dumps(child_main(json.loads(args.child))), flush=True)
        return 0

    device = torch.device(args.device)
    weights_note = ensure_weights(args.model)
    if weights_note:
        print(weights_note, flush=True)
    reps = args.reps or (2 if args.quick else 3)
    runner = JobRunner(args.device, allow_download=False)
    cases = make_cases(args.model, args.quick)
    started = time.perf_counter()
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {reps} reps"
          f"{', quick' if args.quick else ''}; dream precision {runner.precision_for(args.model)}, cuda graphs {runner.graphs is not None}", flush=True)

    results: list[dict[str, Any]] = []
    for case in cases:
        # Renders draw a new input size every step (random scale), so they need more steps to average.
        step_count = (8 if case.kind == "visualize" else 2) * (1 if args.quick else 2)
        naive = NaiveNetwork(case.typed.model, naive_layer(case), device)
        runner.warm(case.typed.model)
        project_steps, naive_steps = step_functions(case, runner, naive, step_count)
        jobs = {"project": lambda: runner.run(case.spec()), "naive": lambda: naive_job(case, naive, device)}
        steps = {"project": project_steps, "naive": naive_steps}
        for impl in ("project", "naive"):  # warm-up: first calls build kernels and caches
            steps[impl]()
        times: dict[str, dict[str, list[float]]] = {impl: {"step": [], "job": []} for impl in jobs}
        for rep in range(reps):
            order = ("project", "naive") if rep % 2 == 0 else ("naive", "project")
            for impl in order:
                times[impl]["step"].append(timed(steps[impl], device) / step_count)
            for impl in order:
                times[impl]["job"].append(timed(jobs[impl], device))
            print(f"  {case.name} rep {rep + 1}/{reps}: "
                  + ", ".join(f"{impl} job {times[impl]['job'][-1]:.2f} s" for impl in jobs), flush=True)
        row: dict[str, Any] = {"case": case.name, "kind": case.kind, "key": case.key, "params": case.params}
        for impl in jobs:
            peak = run_child({"impl": impl, "device": str(device), "name": case.name, "kind": case.kind,
                              "params": case.params, "source": case.source})
            row[impl] = {
                "step_ms": _median(times[impl]["step"]) * 1000,
                "job_s": _median(times[impl]["job"]),
                "step_ms_all": [t * 1000 for t in times[impl]["step"]],
                "job_s_all": times[impl]["job"],
                "peak_mb": peak.get("peak_mb"),
                "cuda_peak_mb": peak.get("cuda_peak_mb"),
                "child": peak,
            }
        results.append(row)

    # The 4096 x 4096 dream: memory and seams in a fresh process (one octave: the top one is the peak).
    big_params = {"model": args.model, "max_side": 4096, "octaves": 1, "steps": 3 if args.quick else 5}
    big = run_child({"impl": "project", "device": str(device), "name": "dream 4096", "kind": "dream",
                     "params": big_params, "source": {"photo": 4096}, "seams": True})
    big_row: dict[str, Any] = {"case": "dream 4096x4096 (1 octave)", "kind": "dream", "key": "dream-big", "params": big_params}
    steps_4096 = big_params["steps"]
    big_row["project"] = {
        "step_ms": big["timings"]["dream"] / steps_4096 * 1000 if "timings" in big else None,
        "job_s": big.get("job_s"),
        "peak_mb": big.get("peak_mb"),
        "cuda_peak_mb": big.get("cuda_peak_mb"),
        "child": big,
    }
    # The naive loop needs the whole 4096 image's activations at once: about 22 GB for
    # efficientnet-lite0 to block8 (4x its 2048 figure, which is about 6 GB); it is not run.
    big_row["naive"] = {"step_ms": None, "job_s": None, "peak_mb": None, "note": "not run: untiled, about 4x its 2048x2048 peak (~6 GB on CPU)"}
    results.append(big_row)

    mid_layer = naive_layer(cases[0])
    crop = crop_seam_check(runner.network(args.model), mid_layer, device)
    bf16_image = to_tensor(Image.open(io.BytesIO(photo(1024 if device.type == "cuda" else 128))))
    bf16 = bf16_check(runner.network(args.model), layer_objective(mid_layer), bf16_image.to(device),
                      DreamSettings() if device.type == "cuda" else DreamSettings(steps=5, octaves=2))

    for row in results:
        row["ratio"] = {k: _ratio(row["project"].get(k), row["naive"].get(k)) for k in ("step_ms", "job_s", "peak_mb")}

    checks = targets(results, bf16, big, cases, device)
    report = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "quick": args.quick,
        "reps": reps,
        "model": args.model,
        "weights_note": weights_note,
        "precision": runner.precision_for(args.model),
        "cuda_graphs": runner.graphs is not None,
        "rows": results,
        "seams_4096": big.get("seams"),
        "tiled_vs_untiled_crop": crop,
        "bf16": bf16,
        "targets": checks,
        "seconds": time.perf_counter() - started,
    }
    print()
    print(format_table(results))
    print("\nfresh process, one cold run each (the project's runner tunes the allocator; the naive process keeps the defaults):")
    for row in results:
        cold = {impl: row[impl].get("child", {}).get("job_s") for impl in ("project", "naive")}
        if cold["project"] and cold["naive"]:
            print(f"  {row['case']:<34} project {cold['project']:.2f} s, naive {cold['naive']:.2f} s, ratio {cold['project'] / cold['naive']:.2f}")
    print()
    seams = big.get("seams") or {}
    print(f"4096 seams: border/control jump ratio rows {seams.get('rows_border', float('nan')):.3f}/{seams.get('rows_control', float('nan')):.3f}, "
          f"cols {seams.get('cols_border', float('nan')):.3f}/{seams.get('cols_control', float('nan')):.3f} -> {'no seams' if seams.get('ok') else 'SEAMS?'}")
    print(f"tiled vs untiled gradient on a crop at a tile corner: {crop['relative_error']:.2%} "
          f"(next to the borders {crop['border_relative_error']:.2%}, elsewhere {crop['interior_relative_error']:.2%})")
    print(f"bf16 at {bf16['size'][0]}x{bf16['size'][1]}: gradient cosine {bf16['gradient_cosine']:.4f}, dream differs by "
          f"{bf16['mean_levels_bf16_vs_fp32']:.2f} levels (dream changed {bf16['mean_levels_dream_change']:.1f}, another seed "
          f"{bf16['mean_levels_other_seed']:.1f}) -> {'within' if bf16['ok'] else 'OUTSIDE'} tolerance "
          f"(<= {BF16_MAX_MEAN_LEVELS} levels and <= {BF16_MAX_SEED_FRACTION:g} x another seed's difference)")
    for check in checks:
        print(f"{'PASS' if check['ok'] else 'FAIL' if check['ok'] is False else 'info'}  {check['name']}: {check['value']}")
    out = Path(args.out or f"bench-results/bench-{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out.resolve()} ({report['seconds']:.0f} s)")
    return 0


def targets(results: list[dict], bf16: dict, big: dict, cases: list[Case], device: torch.device) -> list[dict[str, Any]]:
    rows = {row["key"]: row for row in results}
    checks = []

    def check(name: str, value: float | None, limit: float, applies: bool = True, note: str = "") -> None:
        ok = None if value is None or not applies else value <= limit
        shown = "-" if value is None else f"{value:.3g} (limit {limit:g}){note}"
        checks.append({"name": name, "value": shown, "ok": ok})

    on_cpu = device.type == "cpu"
    dream_row, vis_row = rows["dream"], rows["visualize"]
    check("default dream of a 512x512 photo, s", dream_row["project"]["job_s"], TARGETS["dream_512_job_s"], on_cpu)
    vis_steps, default_steps = cases[1].typed.steps, VisualizeParams().steps
    vis_s = vis_row["project"]["job_s"] * default_steps / vis_steps if vis_row["project"]["job_s"] else None
    check("default visualize, s", vis_s, TARGETS["visualize_job_s"], on_cpu,
          "" if vis_steps == default_steps else f" (scaled from {vis_steps} steps)")
    check("dream project/naive, job", dream_row["ratio"]["job_s"], TARGETS["dream_ratio"])
    check("dream project/naive, step", dream_row["ratio"]["step_ms"], TARGETS["dream_ratio"])
    check("4096x4096 dream peak RSS, MB", big.get("peak_mb"), TARGETS["peak_4096_mb"], on_cpu)
    seams = big.get("seams") or {}
    checks.append({"name": "4096x4096 dream without seams", "value": json.dumps({k: round(v, 3) for k, v in seams.items() if k != "ok"}),
                   "ok": seams.get("ok")})
    # Not a target: it decides whether bf16 may be used for this model (ModelEntry.bf16).
    verdict = "within tolerance: bf16 usable" if bf16["ok"] else "outside tolerance: keep fp32 for this model"
    checks.append({"name": "bf16 autocast", "value": f"{bf16['mean_levels_bf16_vs_fp32']:.2f} levels from fp32 "
                   f"(gradient cosine {bf16['gradient_cosine']:.3f}); {verdict}", "ok": None, "bf16_ok": bf16["ok"]})
    return checks


def format_table(results: list[dict[str, Any]]) -> str:
    def cell(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    header = (f"{'case':<34} | {'step ms':>8} {'naive':>8} {'ratio':>6} | {'job s':>7} {'naive':>7} {'ratio':>6} | "
              f"{'peak MB':>8} {'naive':>8} {'ratio':>6}")
    lines = [header, "-" * len(header)]
    for row in results:
        p, n, r = row["project"], row["naive"], row["ratio"]
        lines.append(
            f"{row['case']:<34} | {cell(p['step_ms'], 1):>8} {cell(n['step_ms'], 1):>8} {cell(r['step_ms'], 2):>6} | "
            f"{cell(p['job_s'], 2):>7} {cell(n['job_s'], 2):>7} {cell(r['job_s'], 2):>6} | "
            f"{cell(p['peak_mb'], 0):>8} {cell(n['peak_mb'], 0):>8} {cell(r['peak_mb'], 2):>6}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
