"""How well `core.cost` predicts real jobs: eleven jobs run, each priced before it runs.

    python -m benchmarks.cost_check [--device cpu|cuda] [--rounds N] [--backward]

Dreams (max_side 256, 512, 1024), vivid class renders (size 128, 224, 320), natural ones (224, 1024) and zooms (size 128, 256, 384)
run through `core.runner.JobRunner` one after another. Each is predicted by a `RateMeter` before it
runs, timed, and then fed to the meter, as the executor's workers do; the table shows the
prediction, the measurement and the relative error, and the median absolute error at the end.
The meter starts from DEFAULT_RATES for the device, so the first round checks those defaults.
Each job runs `--repeats` times back to back and the fastest run counts: the CPU may be shared.
`--backward` also measures the backward/forward time ratio that `core.cost.BACKWARD_RATIO` holds.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path
from typing import Any

import skimage
import torch
from PIL import Image

from core.cost import DEFAULT_RATES, RateMeter, job_cost, seconds
from core.jobs import JobSpec
from core.runner import JobRunner
from core.spec import compile_job

__all__ = ["JOBS", "make_spec", "prediction_errors", "backward_ratio", "main"]

PHOTOS = Path(skimage.__file__).parent / "data"

# (kind, size shown in the table, options, photo): photo is a file in scikit-image's data folder,
# "name@side" for that photo enlarged to side x side (a large upload), or None.
JOBS: list[tuple[str, int, dict[str, Any], str | None]] = [
    ("dream", 256, {"max_side": 256, "steps": 10, "octaves": 4}, "chelsea.png"),
    ("dream", 512, {"max_side": 512, "steps": 10, "octaves": 4}, "astronaut.png"),
    ("dream", 1024, {"max_side": 1024, "steps": 10, "octaves": 4}, "astronaut.png@2048"),
    ("visualize", 128, {"size": 128, "steps": 64, "target": "banana", "style": "vivid"}, None),
    ("visualize", 224, {"size": 224, "steps": 64, "target": "banana", "style": "vivid"}, None),
    ("visualize", 320, {"size": 320, "steps": 64, "target": "banana", "style": "vivid"}, None),
    ("visualize", 224, {"size": 224, "steps": 64, "target": "banana"}, None),
    ("visualize", 1024, {"size": 1024, "steps": 32, "target": "banana"}, None),
    ("zoom", 128, {"size": 128, "frames": 6}, None),
    ("zoom", 256, {"size": 256, "frames": 6}, "chelsea.png"),
    ("zoom", 384, {"size": 384, "frames": 6}, "astronaut.png"),
]


def make_spec(kind: str, options: dict[str, Any], image: bytes | None) -> JobSpec:
    """The one place that builds a spec, so a change of the spec API is one edit here."""
    return compile_job(kind, options, images=[image] if image is not None else [], seed=0)


def _photo(name: str) -> bytes:
    file, _, side = name.partition("@")
    data = (PHOTOS / file).read_bytes()
    if not side:
        return data
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").resize((int(side), int(side)), Image.LANCZOS).save(out, "PNG")
    return out.getvalue()


def _image_size(data: bytes | None) -> tuple[int, int] | None:
    return Image.open(io.BytesIO(data)).size if data is not None else None


def prediction_errors(
    runner: JobRunner, rates_meter: RateMeter | None = None, jobs=JOBS, *, repeats: int = 1
) -> list[dict[str, Any]]:
    """Run `jobs` on `runner`, each priced by `rates_meter` before it runs and fed to it afterwards.

    repeats: run each job this many times back to back and keep the fastest run: on a shared
    machine another process's burst can slow one run many times over, which is not the job's cost.
    Returns one row per job: kind, size, predicted and measured seconds, error (predicted /
    measured - 1), default (the prediction of the device's DEFAULT_RATES, which never learn),
    timings (the runner's stages) and runs (every run's wall seconds).
    """
    meter = rates_meter if rates_meter is not None else RateMeter()
    device = runner.device.type
    photos = {name: _photo(name) for name in {photo for *_, photo in jobs if photo is not None}}
    # A worker's runner has its network loaded and has run jobs before: the first passes through
    # each part of the network pay for one-off set-up (weights' layout, kernels), not a job's cost.
    runner.warm("efficientnet-lite0")
    runner.run(make_spec("dream", {"max_side": 96, "steps": 2, "octaves": 2}, _photo("chelsea.png")))
    runner.run(make_spec("visualize", {"size": 64, "steps": 10}, None))
    runner.run(make_spec("zoom", {"size": 64, "frames": 2, "steps": 1}, None))
    rows = []
    for kind, size, options, photo in jobs:
        image = photos[photo] if photo is not None else None
        spec = make_spec(kind, options, image)
        cost = spec.cost if spec.cost is not None else job_cost(kind, spec.params, _image_size(image))
        predicted = meter.predict(cost, device)
        runs, result = [], None
        for _ in range(repeats):
            started = time.perf_counter()
            outcome = runner.run(spec)
            runs.append(time.perf_counter() - started)
            result = outcome if runs[-1] == min(runs) else result
        measured = min(runs)
        meter.observe(cost, result.timings, device)
        rows.append({
            "kind": kind, "size": size, "predicted": predicted, "measured": measured,
            "error": predicted / measured - 1, "default": seconds(cost, DEFAULT_RATES.get(device, DEFAULT_RATES["cpu"])),
            "timings": dict(result.timings), "runs": runs,
        })
    return rows


def backward_ratio(model: str = "efficientnet-lite0", layer: str = "block8", size: int = 384, reps: int = 15) -> float:
    """Median over `reps` of (forward + backward to the input - plain forward) / plain forward on the CPU
    network the runner uses (folded, channels-last): the backward's cost in forwards."""
    from core.models.registry import load_network

    net = load_network(model, "cpu")
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))

    def forward() -> None:
        with torch.no_grad():
            net(x, [layer])

    def gradient() -> None:
        patch = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(net(patch, [layer])[layer].square().mean(), patch)

    def timed(fn) -> float:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started

    forward(), gradient()
    ratios = []
    for _ in range(reps):  # interleaved, so a busy moment slows both alike
        plain, full = timed(forward), timed(gradient)
        ratios.append((full - plain) / plain)
    return statistics.median(ratios)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=1, help="run the jobs this many times with one meter")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each job; the fastest counts (default 3)")
    parser.add_argument("--backward", action="store_true", help="also measure the backward/forward ratio")
    args = parser.parse_args(argv)
    if args.backward:
        for layer in ("block8", "logits"):
            for size in (256, 512):
                print(f"backward/forward efficientnet-lite0 {layer} {size}px: {backward_ratio(layer=layer, size=size):.2f}")
    runner = JobRunner(args.device)
    meter = RateMeter()
    print(f"threads {torch.get_num_threads()}, start rates {meter.rates_for(runner.device.type)}")
    for round_ in range(args.rounds):
        rows = prediction_errors(runner, meter, repeats=args.repeats)
        print(f"\nround {round_ + 1}")
        print(f"{'kind':<10}{'size':>6}{'predicted s':>13}{'measured s':>12}{'error':>8}{'default s':>11}  stages")
        for row in rows:
            stages = " ".join(f"{k}={v:.2f}" for k, v in row["timings"].items())
            stages += "  runs " + "/".join(f"{run:.2f}" for run in row["runs"])
            print(f"{row['kind']:<10}{row['size']:>6}{row['predicted']:>13.2f}{row['measured']:>12.2f}"
                  f"{row['error']:>+8.0%}{row['default']:>11.2f}  {stages}")
        print(f"median |error|: {statistics.median(abs(r['error']) for r in rows):.0%} (meter), "
              f"{statistics.median(abs(r['default'] / r['measured'] - 1) for r in rows):.0%} (defaults alone)")
        print(f"rates now {meter.rates_for(runner.device.type)}")


if __name__ == "__main__":
    main()
