"""Running one job on an executor the way a front does: `enqueue`, then `wait` for its progress and result."""

from __future__ import annotations

from bot.executor import Executor, ProgressHandler
from core.jobs import JobResult, JobSpec


async def submit(executor: Executor, job_id: str, spec: JobSpec, on_progress: ProgressHandler | None = None, *,
                 user: str = "", guild: str | None = None) -> JobResult:
    """Queue `spec` as `job_id` (for `user` in `guild`), then deliver its progress and return its result.

    The job is queued when the coroutine first runs, so tasks made one after the other queue in that order.
    """
    executor.enqueue(job_id, spec, user=user, guild=guild)
    return await executor.wait(job_id, on_progress)
