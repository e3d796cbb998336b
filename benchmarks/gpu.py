"""The speed issue's GPU figures in one script (a minute or two on an H200; written for under 5):

    python -m benchmarks.gpu [--out PATH]          # CUDA
    python -m benchmarks.gpu --device cpu --smoke  # tiny sizes on CPU: checks the script, not speed

GoogLeNet cut at inception4c, weights from the torch cache (else random weights of the same
architecture, said in the output; timings do not depend on weight values):

  step       ms per step at 1024x1024, one image: the naive loop (fp32, NCHW, eager), then the
             project's step eager fp32 (folded batch norms, channels-last), + bf16 autocast, + a
             CUDA graph per shape (fp32 and bf16)
  batched    image-steps/s of 512x512 images dreamt together (dream_batch), graph replayed
  dream      a whole default dream (4 octaves x 10 steps) of 1024x1024: first call (captures)
             and warm, with the job's default tile (512) and untiled; and the whole job through
             JobRunner (decode and PNG encode included)
  checks     bf16 tolerance (benchmarks.run.bf16_check) and graph replay against eager

Targets (speed issue): <= 1.5 ms per step at 1024, >= 3000 image-steps/s batched at 512, whole
default 1024 dream <= 100 ms. Writes JSON (default bench-results/gpu.json).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image

from benchmarks.run import NaiveNetwork, bf16_check, ensure_weights, naive_dream, photo, timed
from core.dream import DreamSettings, StepGraphs, dream, dream_batch, tiled_gradient
from core.images import to_tensor
from core.spec import compile_job
from core.models.registry import load_network
from core.objectives import layer_objective
from core.runner import JobRunner

MODEL, LAYER = "googlenet", "inception4c"
TARGETS = {"step_ms_1024": 1.5, "batched_image_steps_per_s": 3000.0, "dream_1024_ms": 100.0}


def per_step_ms(run_steps: Callable[[int], Any], device: torch.device, steps: int, reps: int = 3) -> dict[str, float]:
    """Median ms per step of `run_steps(steps)` after a warm-up call (which also captures graphs)."""
    run_steps(3)
    times = [timed(lambda: run_steps(steps), device) / steps * 1000 for _ in range(reps)]
    return {"ms": statistics.median(times), "all_ms": times}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script (any device)")
    parser.add_argument("--out", default="bench-results/gpu.json")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    on_cuda = device.type == "cuda"
    if on_cuda and not torch.cuda.is_available():
        print("no CUDA device; run with --device cpu --smoke to check the script", file=sys.stderr)
        return 2
    started = time.perf_counter()
    if on_cuda:
        torch.backends.cudnn.benchmark = True  # as JobRunner does on CUDA
    weights_note = ensure_weights(MODEL)
    if weights_note:
        print(weights_note, flush=True)

    size, small = (128, 64) if args.smoke else (1024, 512)
    batches = [1, 2] if args.smoke else [1, 8, 16, 32, 64]
    steps = 4 if args.smoke else 50
    net = load_network(MODEL, device, allow_download=False)
    naive = NaiveNetwork(MODEL, LAYER, device)
    objective = layer_objective(LAYER)
    key = (net.name, objective.name)
    graphs = StepGraphs() if on_cuda else None
    image = to_tensor(Image.open(io.BytesIO(photo(size)))).to(device)
    small_image = to_tensor(Image.open(io.BytesIO(photo(small)))).to(device)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if on_cuda else str(device),
        "torch": torch.__version__,
        "model": MODEL,
        "layer": LAYER,
        "weights_note": weights_note,
        "smoke": args.smoke,
        "size": size,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }
    print(f"{report['device']}, torch {torch.__version__}, {MODEL} to {LAYER}", flush=True)

    # One image, whole image (no tiles), one octave: the per-step figures.
    def project(precision: str, use_graphs: bool) -> Callable[[int], Any]:
        return lambda n: dream(net, objective, image, DreamSettings(steps=n, octaves=1, tile=size), torch.Generator().manual_seed(0),
                               precision=precision, graphs=graphs if use_graphs else None, graph_key=key if use_graphs else None)

    variants: dict[str, Callable[[int], Any]] = {
        "naive fp32 NCHW eager": lambda n: naive_dream(naive, image, steps=n, octaves=1, octave_scale=1.4, jitter=32,
                                                       generator=torch.Generator().manual_seed(0)),
        "fp32 channels_last eager": project("fp32", False),
        "bf16 channels_last eager": project("bf16", False),
    }
    if on_cuda:
        variants["fp32 channels_last graph"] = project("fp32", True)
        variants["bf16 channels_last graph"] = project("bf16", True)
    report["step_1024"] = {}
    for name, fn in variants.items():
        report["step_1024"][name] = per_step_ms(fn, device, steps)
        print(f"  step {size}x{size} {name:<28} {report['step_1024'][name]['ms']:8.2f} ms", flush=True)

    # Batched 512x512 jobs: image-steps per second.
    report["batched_512"] = {}
    for precision in ("fp32", "bf16"):
        for batch in batches:
            images = [small_image] * batch

            def run_batch(n: int, images=images, precision=precision) -> Any:
                gens = [torch.Generator().manual_seed(i) for i in range(len(images))]
                return dream_batch(net, objective, images, DreamSettings(steps=n, octaves=1, tile=small), gens,
                                   precision=precision, graphs=graphs, graph_key=key if on_cuda else None)

            try:
                ms = per_step_ms(run_batch, device, max(4, steps // 2), reps=2)["ms"]
            except torch.cuda.OutOfMemoryError:
                print(f"  batched {batch} x {small}: out of memory", flush=True)
                break
            rate = batch / ms * 1000
            report["batched_512"][f"{precision} x{batch}"] = {"ms_per_step": ms, "image_steps_per_s": rate}
            print(f"  batched {precision} {batch:3d} x {small}x{small}: {ms:8.2f} ms per step, {rate:8.0f} image-steps/s", flush=True)

    # The whole default dream of a 1024x1024 photo (4 octaves x 10 steps).
    report["dream_1024"] = {}
    for precision in ("fp32", "bf16"):
        for tile in (512, size):
            settings = DreamSettings(tile=tile)
            run = lambda: dream(net, objective, image, settings, torch.Generator().manual_seed(0), precision=precision,  # noqa: E731
                                graphs=graphs, graph_key=key if on_cuda else None)
            first = timed(run, device)
            warm = statistics.median(timed(run, device) for _ in range(3))
            label = f"{precision} tile {tile}" + (" (untiled)" if tile >= size else " (job default)")
            report["dream_1024"][label] = {"first_s": first, "warm_ms": warm * 1000}
            print(f"  default dream {size}x{size} {label:<26} first {first:6.2f} s, warm {warm * 1000:8.1f} ms", flush=True)

    # The whole job through the runner (its defaults: precision per model, graphs on CUDA).
    runner = JobRunner(str(device), allow_download=False)
    spec = compile_job("dream", {"model": MODEL, "layer": LAYER}, images=[photo(size)], seed=0)
    runner.run(spec)
    results = [runner.run(spec) for _ in range(3)]
    report["job_1024"] = {
        "precision": runner.precision_for(MODEL),
        "total_s": statistics.median(r.timings["total"] for r in results),
        "dream_s": statistics.median(r.timings["dream"] for r in results),
        "encode_s": statistics.median(r.timings["encode"] for r in results),
    }
    print(f"  job through JobRunner: {report['job_1024']}", flush=True)

    # Checks: graph replay equals eager; bf16 within tolerance.
    if on_cuda:
        checked = StepGraphs()
        eager = tiled_gradient(net, objective, image, size)
        gradient = lambda x: tiled_gradient(net, objective, x, size)  # noqa: E731
        checked.run("check", gradient, image)
        replayed = checked.run("check", gradient, image)
        report["graph_vs_eager_max_relative"] = float((replayed - eager).abs().max() / eager.abs().max())
        report["graph_failures"] = {str(k): v for k, v in graphs.failures.items()}
        print(f"  graph replay vs eager: max relative difference {report['graph_vs_eager_max_relative']:.2e}; "
              f"capture failures: {len(graphs.failures)}", flush=True)
    report["bf16"] = bf16_check(net, objective, image, DreamSettings(tile=size))
    print(f"  bf16: {json.dumps({k: v for k, v in report['bf16'].items() if k != 'tolerance'})}", flush=True)

    best_step = min(v["ms"] for k, v in report["step_1024"].items() if not k.startswith("naive"))
    best_rate = max((v["image_steps_per_s"] for v in report["batched_512"].values()), default=0.0)
    best_dream = min(v["warm_ms"] for v in report["dream_1024"].values())
    report["targets"] = [
        {"name": "ms per step at 1024, one image", "value": best_step, "limit": TARGETS["step_ms_1024"], "ok": best_step <= TARGETS["step_ms_1024"]},
        {"name": "image-steps/s, batched 512", "value": best_rate, "limit": TARGETS["batched_image_steps_per_s"],
         "ok": best_rate >= TARGETS["batched_image_steps_per_s"]},
        {"name": "whole default dream at 1024, ms (warm)", "value": best_dream, "limit": TARGETS["dream_1024_ms"],
         "ok": best_dream <= TARGETS["dream_1024_ms"]},
        {"name": "bf16 within tolerance", "value": report["bf16"]["mean_levels_bf16_vs_fp32"], "ok": report["bf16"]["ok"]},
    ]
    report["seconds"] = time.perf_counter() - started
    for target in report["targets"]:
        print(f"{'PASS' if target['ok'] else 'FAIL'}  {target['name']}: {target['value']:.4g}"
              + (f" (limit {target['limit']:g})" if "limit" in target else ""))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out.resolve()} ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
