"""Which device each worker runs on, and how many CPU threads each may use."""

from __future__ import annotations

import os
from typing import Callable

__all__ = ["resolve_devices", "threads_per_worker", "available_cores"]


def resolve_devices(workers: int, device: str, *, cuda_device_count: Callable[[], int] | None = None) -> list[str]:
    """One torch device string per worker.

    `workers=0` chooses for itself: one worker per visible CUDA GPU, pinned as "cuda:N", or a single
    CPU worker when there is no GPU (`device` is then not consulted). With `workers >= 1`, device
    "cuda" (no index) or "auto" spreads the workers over the GPUs round-robin ("auto" falls back to
    "cpu" without a GPU); any other device string is used as given by every worker.
    `cuda_device_count` replaces the torch query (tests).
    """
    if workers < 0:
        raise ValueError(f"workers must be 0 (one per GPU, or one on CPU) or a positive count, not {workers}")
    count = cuda_device_count or _cuda_device_count
    if workers == 0:
        gpus = count()
        return [f"cuda:{i}" for i in range(gpus)] if gpus else ["cpu"]
    if device in ("cuda", "auto"):
        gpus = count()
        if gpus:
            return [f"cuda:{i % gpus}" for i in range(workers)]
        if device == "auto":
            return ["cpu"] * workers
    return [device] * workers


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity (a container's or taskset's limit), not
    every core of the machine."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no affinity on this platform
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """CPU threads for each worker's torch, so that the workers together do not oversubscribe the
    cores: torch's own default is every core in each worker, and two workers so set slow down many times."""
    return max(1, available_cores() // max(1, workers))


def _cuda_device_count() -> int:
    # Imported here so that a CPU-only configuration never pays for importing torch in the bot process.
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0
