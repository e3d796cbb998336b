"""Run jobs away from the event loop: the `Executor` boundary and its backends, local processes or Ray actors."""

from __future__ import annotations

from ._devices import available_cores, resolve_devices, threads_per_worker
from ._pool import FairQueue, PoolExecutor
from ._process import LocalProcessExecutor
from .base import Executor, ProgressHandler, QueuePlace
from .errors import ExecutorClosed, ExecutorError, JobFailed, WorkerCrashed, WorkerStartFailed
from .ray_actors import RayExecutor

__all__ = [
    "Executor",
    "ProgressHandler",
    "QueuePlace",
    "PoolExecutor",
    "FairQueue",
    "LocalProcessExecutor",
    "RayExecutor",
    "resolve_devices",
    "threads_per_worker",
    "available_cores",
    "ExecutorError",
    "WorkerCrashed",
    "WorkerStartFailed",
    "ExecutorClosed",
    "JobFailed",
]
