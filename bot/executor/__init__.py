"""Run jobs away from the event loop: the `Executor` boundary and its local process-pool backend."""

from __future__ import annotations

from ._devices import resolve_devices
from .base import Executor, ProgressHandler, QueuePlace
from .errors import ExecutorClosed, ExecutorError, JobFailed, WorkerCrashed, WorkerStartFailed
from .local import LocalProcessExecutor

__all__ = [
    "Executor",
    "ProgressHandler",
    "QueuePlace",
    "LocalProcessExecutor",
    "resolve_devices",
    "ExecutorError",
    "WorkerCrashed",
    "WorkerStartFailed",
    "ExecutorClosed",
    "JobFailed",
]
