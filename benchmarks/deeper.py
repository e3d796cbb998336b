"""`make bench`, going deeper: do objects come out of textures when a dream runs on its own output?

    python -m benchmarks.deeper [--device cpu|cuda] [--grid 3] [--photos grass,gravel] [--seeds 0,1,2]

The post's feedback loop ("whatever you see there, I want more of it") turns clouds into birds:
the network comes to see things where it saw texture. Measured as the mean top-1 probability the
rendering network gives to a grid of 224-px crops, of scikit-image's grass.png and gravel.png as
they are and after `!dream layer:deep iterations:4` (every other option at its default), for each
seed and on average over the seeds (what emerges varies from seed to seed). Target: the mean at
least doubles. A photo the network already reads with confidence (gravel: a dishrag at p ~ 0.6)
cannot double; its figure is printed all the same.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
from PIL import Image

from core.images import decode_image, to_tensor
from core.models.registry import TappedNetwork
from core.runner import JobRunner
from core.spec import compile_job

__all__ = ["CROP", "DEEPER_OPTIONS", "crop_confidence", "grey_photo_png"]

CROP = 224  # the network's training size
DEEPER_OPTIONS = {"layer": "deep", "iterations": 4}
TARGET_RATIO = 2.0


def crop_confidence(net: TappedNetwork, image: Image.Image, grid: int = 3) -> float:
    """Mean top-1 softmax probability over grid x grid evenly spaced CROP-px crops of `image`."""
    x = to_tensor(image.convert("RGB"))  # (1, 3, H, W)
    height, width = x.shape[2:]
    assert min(height, width) >= CROP, f"crop_confidence needs images of at least {CROP} px, got {width}x{height}"
    tops = np.linspace(0, height - CROP, grid).round().astype(int)
    lefts = np.linspace(0, width - CROP, grid).round().astype(int)
    crops = torch.cat([x[:, :, y:y + CROP, left:left + CROP] for y in tops for left in lefts]).to(next(net.parameters()).device)
    with torch.no_grad():
        probabilities = net(crops, ["logits"])["logits"].softmax(dim=-1)  # (grid * grid, 1000)
    return float(probabilities.max(dim=-1).values.mean())


def grey_photo_png(name: str) -> bytes:
    """One of scikit-image's (greyscale) texture photos as RGB PNG bytes."""
    from skimage import data

    out = io.BytesIO()
    Image.fromarray(getattr(data, name)()).convert("RGB").save(out, "PNG")
    return out.getvalue()


def measure(runner: JobRunner, name: str, grid: int, seed: int) -> dict[str, float]:
    photo = grey_photo_png(name)
    spec = compile_job("dream", DEEPER_OPTIONS, images=[photo], seed=seed)
    net = runner.network(spec.params.model)
    started = time.perf_counter()
    result = runner.run(spec)
    seconds = time.perf_counter() - started
    before = crop_confidence(net, decode_image(photo).rgb, grid)
    after = crop_confidence(net, decode_image(result.data).rgb, grid)
    return {"before": before, "after": after, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--grid", type=int, default=3, help="crops per side (default 3: 9 crops)")
    parser.add_argument("--photos", default="grass,gravel")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    runner = JobRunner(args.device, allow_download=False)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    params = compile_job("dream", DEEPER_OPTIONS, images=[grey_photo_png("grass")], seed=0).params
    shown = " ".join(f"{k}:{getattr(params, k)}" for k in ("layer", "strength", "steps", "octaves", "iterations"))
    print(f"top-1 probability of {args.grid}x{args.grid} {CROP}-px crops, before and after !dream "
          f"{' '.join(f'{k}:{v}' for k, v in DEEPER_OPTIONS.items())} ({shown}); target: x{TARGET_RATIO:g}")
    befores, afters = [], []
    for name in args.photos.split(","):
        runs = [measure(runner, name, args.grid, seed) for seed in seeds]
        before, after = runs[0]["before"], float(np.mean([r["after"] for r in runs]))
        each = ", ".join(f"seed {seed}: {r['after']:.3f} ({r['seconds']:.0f} s)" for seed, r in zip(seeds, runs))
        verdict = "ok" if after >= TARGET_RATIO * before else "below target"
        print(f"{name:8} before {before:.3f}  after {after:.3f}  x{after / before:.2f}  {verdict}   [{each}]")
        befores.append(before)
        afters.append(after)
    before, after = float(np.mean(befores)), float(np.mean(afters))
    print(f"{'both':8} before {before:.3f}  after {after:.3f}  x{after / before:.2f}")


if __name__ == "__main__":
    main()
