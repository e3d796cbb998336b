"""The boundary the service talks to: enqueue a JobSpec, wait for its progress events and its JobResult.

Backends (a pool of local processes, or of Ray actors) implement `Executor`; fronts
depend on this Protocol only, so a backend can change without touching a cog or the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol, Self, runtime_checkable

from core.jobs import JobResult, JobSpec, ProgressEvent

__all__ = ["Executor", "ProgressHandler", "QueuePlace"]

ProgressHandler = Callable[[ProgressEvent], Awaitable[None] | None]
"""Called on the event loop for each progress event, in order; an awaitable it returns is awaited
before the next event is delivered, so keep it quick (throttle message edits on your side)."""


@dataclass(frozen=True)
class QueuePlace:
    """Where an unfinished job stands: position 0 while it runs, else 1 for the next to start."""

    position: int
    wait_seconds: float  # expected seconds until it starts (0 while it runs)


@runtime_checkable
class Executor(Protocol):
    async def start(self) -> None:
        """Bring the workers up; returns once they can take jobs."""
        ...

    async def close(self) -> None:
        """Stop the workers. Queued and running jobs fail with `ExecutorClosed`; never hangs."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    def enqueue(self, job_id: str, spec: JobSpec, *, user: str = "", guild: str | None = None) -> None:
        """Queue `spec` now, in the fair order across users and servers; `wait` follows it.

        `job_id` is the caller's name for the job (unique among unfinished jobs), used by `cancel`.
        """
        ...

    async def wait(self, job_id: str, on_progress: ProgressHandler | None = None) -> JobResult:
        """Deliver an enqueued job's progress (first the stage "start", when a worker takes it) and return its result.

        Raises the runner's `DreamError` with its own class and message, `JobCancelled` once the job
        is cancelled, `WorkerCrashed` when the worker died mid-job, `ExecutorClosed` on shutdown.
        Cancelling the awaiting task cancels the job too.
        """
        ...

    def predict(self, spec: JobSpec) -> float:
        """Seconds `spec` is expected to run on these workers (measured rates; built-in ones at first)."""
        ...

    def place(self, job_id: str) -> QueuePlace | None:
        """Where an unfinished job stands and how long until it starts; None once it has ended."""
        ...

    async def cancel(self, job_id: str) -> bool:
        """Cancel a queued job at once, or ask a running one to stop at its next progress step.

        Returns whether there was an unfinished job of that id; if so its `submit` raises `JobCancelled`.
        """
        ...

    def queued(self) -> tuple[str, ...]:
        """Ids of jobs waiting for a worker, first to run first."""
        ...

    def running(self) -> tuple[str, ...]:
        """Ids of jobs a worker is running now."""
        ...

    def live_workers(self) -> int:
        """How many workers are up and able to take a job (for health checks and metrics)."""
        ...
