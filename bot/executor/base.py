"""The boundary every front talks to: submit a JobSpec, get progress events and a JobResult back.

Backends (the local process pool today, a distributed engine later) implement `Executor`; fronts
depend on this Protocol only, so a backend can change without touching a cog or the CLI.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Protocol, Self, runtime_checkable

from core.jobs import JobResult, JobSpec, ProgressEvent

__all__ = ["Executor", "ProgressHandler"]

ProgressHandler = Callable[[ProgressEvent], Awaitable[None] | None]
"""Called on the event loop for each progress event, in order; an awaitable it returns is awaited
before the next event is delivered, so keep it quick (throttle message edits on your side)."""


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

    async def submit(self, job_id: str, spec: JobSpec, on_progress: ProgressHandler | None = None) -> JobResult:
        """Run `spec` and return its result.

        `job_id` is the caller's name for the job (unique among unfinished jobs), used by `cancel`.
        Raises the runner's `DreamError` with its own class and message, `JobCancelled` once the job
        is cancelled, `WorkerCrashed` when the worker died mid-job, `ExecutorClosed` on shutdown.
        Cancelling the awaiting task cancels the job too.
        """
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
