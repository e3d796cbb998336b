"""`make bench`, zoom part: seamless loops, and what each output format costs and keeps.

    python -m benchmarks.zooms [--device cpu|cuda] [--size 320] [--lengths 24,48,96] [--out PATH]

A zoom into chelsea.png (scikit-image) is dreamt at the zoom defaults (steps 5, octaves 2, zoom
1.05), --size px. Reported:
  loop          the change from the last frame to the first over the median change between
                consecutive frames (mean absolute differences), for 24-frame zooms with and
                without `loop:seamless`, straight and rotating 2 degrees a frame. Target for
                seamless: <= 1.5.
  formats       for the first N frames (--lengths) of one zoom, each format at a roomy budget:
                KiB per frame, fidelity to the frames (PSNR, dB, and PSNR of 4x4 block means:
                tones, where a GIF bands), encode seconds and the cost model's prediction (core.cost,
                default rates); what `auto` picks within 10 MiB; and a GIF squeezed into the
                WebP's bytes (gif@webp, compared at the frames' own size).
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageSequence

from benchmarks.image_measures import reference_photo
from core.clip_encoding import encode_clip
from core.clips import decode_clip
from core.cost import DEFAULT_RATES, job_cost
from core.dream import DreamSettings
from core.images import fit_longest_side, to_tensor
from core.models.registry import get_entry, resolve_layers
from core.objectives import layer_objective
from core.params import ZoomParams, fields_for
from core.runner import JobRunner
from core.zoom import ZoomSettings, zoom_frames

FORMATS = ("gif", "webp", "mp4")
TARGETS = {"seamless_jump_ratio": 1.5}


def _frames(runner: JobRunner, size: int, frames: int, loop: str, rotate: float, seed: int = 0) -> list[np.ndarray]:
    params = ZoomParams(size=size, frames=frames, loop=loop, rotate=rotate)
    net = runner.network(params.model)
    objective = layer_objective(resolve_layers(get_entry(params.model), params.layer)[0])
    start = to_tensor(fit_longest_side(reference_photo("chelsea"), size)).to(runner.device)
    with torch.enable_grad():
        out = zoom_frames(net, objective, start, fields_for(DreamSettings, params), fields_for(ZoomSettings, params),
                          torch.Generator().manual_seed(seed))
    return [(f[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8) for f in out]


def jump_ratio(frames: list[np.ndarray]) -> float:
    as_float = [f.astype(np.float32) for f in frames]
    changes = [np.abs(b - a).mean() for a, b in zip(as_float, as_float[1:])]
    return float(np.abs(as_float[0] - as_float[-1]).mean() / np.median(changes))


def _decoded(data: bytes, mime: str) -> np.ndarray:
    if mime == "video/mp4":
        return np.stack(decode_clip(data, max_side=1 << 14).frames)
    return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(io.BytesIO(data)))])


def psnr(decoded: np.ndarray, frames: list[np.ndarray], block: int = 1) -> float:
    height, width = decoded.shape[1] // block * block, decoded.shape[2] // block * block  # an MP4 loses an odd row
    x, y = (np.stack(v)[:, :height, :width].astype(np.float64) for v in (decoded, frames))
    if block > 1:
        n = x.shape[0]
        x, y = (v.reshape(n, height // block, block, width // block, block, 3).mean(axis=(2, 4)) for v in (x, y))
    return float(10 * np.log10(255**2 / np.mean((x - y) ** 2)))


def formats(frames: list[np.ndarray], size: int, lengths: list[int], rates) -> list[dict]:
    rows = []
    for n in lengths:
        part = frames[:n]
        height, width = part[0].shape[:2]
        for fmt in FORMATS + ("auto",):
            budget = 10 << 20 if fmt == "auto" else 1 << 30
            started = time.perf_counter()
            data, mime, report = encode_clip(part, 12.5, fmt, budget)
            elapsed = time.perf_counter() - started
            decoded = _decoded(data, mime)
            cost = job_cost("zoom", ZoomParams(size=size, frames=n, format=fmt, max_bytes=budget), (width, height))
            rows.append({
                "frames": n, "format": fmt, "chosen": report.format, "kib_per_frame": len(data) / 1024 / n,
                "psnr": psnr(decoded, part), "psnr_4x4": psnr(decoded, part, 4),
                "encode_seconds": elapsed, "predicted_encode_seconds": cost.encode / rates.megapixels_per_second,
            })
        # What `auto` rests on: squeezed into the WebP's bytes, a GIF must shrink (fewer colours, a
        # smaller size or fewer frames); compared as shown, at the frames' own size.
        webp_bytes = int(next(r["kib_per_frame"] for r in rows if r["frames"] == n and r["format"] == "webp") * 1024 * n)
        data, mime, report = encode_clip(part, 12.5, "gif", webp_bytes)
        shown = [np.asarray(Image.fromarray(f).resize((width, height), Image.LANCZOS)) for f in _decoded(data, mime)]
        rows.append({"frames": n, "format": "gif@webp", "chosen": f"{report.size[0]}x{report.size[1]}/{report.frames}",
                     "kib_per_frame": len(data) / 1024 / n, "psnr": psnr(np.stack(shown), part[: len(shown)]),
                     "psnr_4x4": psnr(np.stack(shown), part[: len(shown)], 4), "encode_seconds": 0.0,
                     "predicted_encode_seconds": 0.0})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--lengths", default="24,48,96")
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args()
    runner = JobRunner(args.device, allow_download=False)
    rates = DEFAULT_RATES.get(runner.device.type, DEFAULT_RATES["cpu"])
    loops = {f"{loop}, rotate {rotate:g}": jump_ratio(_frames(runner, args.size, 24, loop, rotate))
             for rotate in (0.0, 2.0) for loop in ("plain", "seamless")}
    print("loop: last-to-first change / median consecutive change (target for seamless <= 1.5)")
    for name, ratio in loops.items():
        print(f"  {name:22s} {ratio:5.2f}")
    lengths = [int(n) for n in args.lengths.split(",")]
    rows = formats(_frames(runner, args.size, max(lengths), "plain", 0.0), args.size, lengths, rates)
    print("formats: KiB/frame, PSNR dB, PSNR of 4x4 means dB, encode s (predicted); gif@webp: a GIF in the WebP's bytes")
    for row in rows:
        chosen = f" -> {row['chosen']}" if row["format"] in ("auto", "gif@webp") else ""
        print(f"  {row['frames']:3d} frames {row['format']:4s}{chosen:8s} {row['kib_per_frame']:6.1f} KiB {row['psnr']:5.1f} "
              f"{row['psnr_4x4']:5.1f}  {row['encode_seconds']:5.2f} s ({row['predicted_encode_seconds']:5.2f})")
    seamless = [ratio for name, ratio in loops.items() if name.startswith("seamless")]
    met = max(seamless) <= TARGETS["seamless_jump_ratio"]
    print(f"seamless loops {'meet' if met else 'MISS'} the target")
    if args.out:
        args.out.write_text(json.dumps({"loops": loops, "formats": rows}, indent=2))
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
