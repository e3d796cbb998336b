"""`make bench`, worker threads: what oversubscribing the cores costs, and what the default avoids.

    python -m benchmarks.threads [--jobs 4] [--side 256] [--reps 2] [--out PATH]

Two local workers run the same dreams twice over, in one process and alternating: once with
torch's own default in each worker (every core, so two workers ask for twice the cores) and once
with the project's default (`THREADS_PER_WORKER` unset: each worker its share of the cores, so
workers x threads = cores). Reported: the wall seconds of the batch of jobs each way (median of
--reps), and old / new. Ratios, not absolute times, are what hold from one machine to another.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import time
from pathlib import Path

from PIL import Image

from bot.executor import LocalProcessExecutor, available_cores, threads_per_worker
from core.spec import compile_job

WORKERS = 2


def _photo(side: int) -> bytes:
    import skimage.data

    out = io.BytesIO()
    Image.fromarray(skimage.data.chelsea()).resize((side, side * 3 // 4)).save(out, "PNG")
    return out.getvalue()


async def _batch_seconds(threads: int, specs: list) -> float:
    """Wall seconds for two warm workers with `threads` torch threads each to finish `specs`."""
    async with LocalProcessExecutor(workers=WORKERS, device="cpu", warm_models=(specs[0].params.model,),
                                    threads_per_worker=threads) as executor:
        for i in range(WORKERS):  # warm-up: each worker's first job builds its kernels
            executor.enqueue(f"warm-{i}", specs[0], user=f"warm-{i}")
        await asyncio.gather(*(executor.wait(f"warm-{i}") for i in range(WORKERS)))
        started = time.perf_counter()
        for i, spec in enumerate(specs):
            executor.enqueue(str(i), spec, user=f"user-{i}")
        await asyncio.gather(*(executor.wait(str(i)) for i in range(len(specs))))
        return time.perf_counter() - started


async def measure(jobs: int, side: int, reps: int) -> dict:
    photo = _photo(side)
    specs = [compile_job("dream", {"steps": 4, "octaves": 2, "max_side": side}, images=[photo], seed=i) for i in range(jobs)]
    cores = available_cores()
    ways = {"old": cores, "new": threads_per_worker(WORKERS)}  # torch's default: every core, in each worker
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    for rep in range(reps):
        for way in (("old", "new") if rep % 2 == 0 else ("new", "old")):
            seconds[way].append(await _batch_seconds(ways[way], specs))
    median = {way: statistics.median(values) for way, values in seconds.items()}
    return {"cores": cores, "workers": WORKERS, "jobs": jobs, "side": side, "threads": ways,
            "seconds": median, "ratio_old_over_new": median["old"] / median["new"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.threads", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--out", default="bench-results/threads.json")
    args = parser.parse_args(argv)
    os.environ.pop("OMP_NUM_THREADS", None)  # each way sets its workers' threads itself
    result = asyncio.run(measure(args.jobs, args.side, args.reps))
    old, new = result["threads"]["old"], result["threads"]["new"]
    print(f"{WORKERS} workers on {result['cores']} cores, {args.jobs} dreams of {args.side} px:")
    print(f"  {'threads per worker':<34} {'batch s':>8}")
    print(f"  {f'{old} (torch default: every core)':<34} {result['seconds']['old']:>8.2f}")
    print(f"  {f'{new} (default: share of the cores)':<34} {result['seconds']['new']:>8.2f}")
    print(f"  oversubscribed / default: {result['ratio_old_over_new']:.2f}x")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
