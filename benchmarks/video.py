"""`make bench`, video part: how much flow-coherent video dreams flicker, how much they dream, how fast.

    python -m benchmarks.video [--device cpu|cuda] [--sizes 320,512] [--frames 24] [--repeats 3] [--out PATH]

For each size, a pan and zoom over chelsea.png (the clip the tests use, larger) is dreamt at the
video defaults twice with the same seed: flow-coherent (core.video) and each frame alone (blend 0).
Reported per size:
  warp ratio    warp error of the coherent output / that of the frames dreamt alone: output t-1
                moved by the input's flow against output t, on pixels that pass the forward-backward
                check (core.flow.warp_error). Target <= 0.5.
  change        mean |output - input| per frame of the coherent output, in 0-255 levels. Target >= 4:
                coherence must not come from dreaming less.
  s/frame       a whole video job (`JobRunner.run`: decode, flow, dream, MP4 encode) per frame, the
                fastest of --repeats runs (the CPU may be shared: another process's burst can slow
                one run many times over); and the cost model's prediction (core.cost, default rates).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import skimage
import torch

from core.clips import decode_clip
from core.cost import DEFAULT_RATES, seconds
from core.dream import DreamSettings
from core.flow import mean_change, warp_error
from core.params import VideoParams, fields_for
from core.runner import JobRunner, build_dream_objective
from core.spec import compile_job
from core.video import CoherenceSettings, dream_clip
from tests.clip_making import encode_video, pan_and_zoom

PHOTO = Path(skimage.__file__).parent / "data" / "chelsea.png"
TARGETS = {"warp_ratio": 0.5, "change_levels": 4.0}


def measure(runner: JobRunner, width: int, frames: int, repeats: int, seed: int = 7) -> dict[str, float]:
    clip = encode_video(pan_and_zoom(PHOTO, frames, (width, width * 3 // 4)), fps=24)
    params = VideoParams(max_side=width)
    inputs = decode_clip(clip, max_side=width).frames
    net = runner.network(params.model)
    objective = build_dream_objective(net, params.model, params.layer, params.channel, None, runner.device)

    def dreamt(blend: float) -> list[np.ndarray]:
        with torch.enable_grad():
            return dream_clip(net, objective, inputs, fields_for(DreamSettings, params), CoherenceSettings(blend=blend, flow=True),
                              torch.Generator().manual_seed(seed), device=runner.device)

    spec = compile_job("dream", {"max_side": width}, images=[clip], seed=seed)
    alone_spec = compile_job("dream", {"max_side": width, "blend": 0}, images=[clip], seed=seed)
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        runner.run(spec)
        runs.append(time.perf_counter() - started)
    rates = DEFAULT_RATES.get(runner.device.type, DEFAULT_RATES["cpu"])
    coherent, alone = dreamt(params.blend), dreamt(0.0)
    coherent_error, alone_error = warp_error(coherent, inputs), warp_error(alone, inputs)
    return {
        "size": f"{inputs[0].shape[1]}x{inputs[0].shape[0]}",
        "frames": frames,
        "warp_error_coherent": coherent_error,
        "warp_error_alone": alone_error,
        "warp_error_inputs": warp_error(inputs, inputs),
        "warp_ratio": coherent_error / alone_error,
        "change_levels": 255 * mean_change(coherent, inputs),
        "change_levels_alone": 255 * mean_change(alone, inputs),
        "job_seconds_per_frame": min(runs) / frames,
        "job_runs_seconds": runs,
        "predicted_seconds_per_frame": seconds(spec.cost, rates) / frames,
        "predicted_alone_seconds_per_frame": seconds(alone_spec.cost, rates) / frames,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.video", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="320,512", help="frame widths, comma-separated (default 320,512)")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each whole job; the fastest counts")
    parser.add_argument("--out", default=None, help="JSON path (default bench-results/video-<device>.json)")
    args = parser.parse_args(argv)
    runner = JobRunner(args.device, allow_download=False)
    print(f"video dreams on {runner.device}, {torch.get_num_threads()} threads, {args.frames} frames, video defaults", flush=True)
    print(f"{'size':>9} | {'warp ratio':>10} {'coherent':>9} {'alone':>7} {'inputs':>7} | {'change':>6} | "
          f"{'job s/frame':>11} {'predicted':>9} {'alone, predicted':>16}")
    rows = []
    for width in (int(w) for w in args.sizes.split(",")):
        row = measure(runner, width, args.frames, args.repeats)
        rows.append(row)
        print(f"{row['size']:>9} | {row['warp_ratio']:>10.3f} {row['warp_error_coherent'] * 255:>9.2f} {row['warp_error_alone'] * 255:>7.2f} "
              f"{row['warp_error_inputs'] * 255:>7.2f} | {row['change_levels']:>6.1f} | {row['job_seconds_per_frame']:>11.3f} "
              f"{row['predicted_seconds_per_frame']:>9.3f} {row['predicted_alone_seconds_per_frame']:>16.3f}", flush=True)
    print("(warp errors and change in 0-255 levels)")
    for row in rows:
        for name, limit, ok in (("warp ratio", TARGETS["warp_ratio"], row["warp_ratio"] <= TARGETS["warp_ratio"]),
                                ("change per frame", TARGETS["change_levels"], row["change_levels"] >= TARGETS["change_levels"])):
            value = row["warp_ratio"] if name == "warp ratio" else row["change_levels"]
            print(f"{'PASS' if ok else 'FAIL'}  {row['size']} {name}: {value:.3g} ({'<=' if name == 'warp ratio' else '>='} {limit:g})")
    out = Path(args.out or f"bench-results/video-{runner.device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "targets": TARGETS}, indent=2))
    print(f"wrote {out.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
