"""Running one job on an executor the way a front does: `enqueue`, then `wait` for its progress and result;
and what the executor's tests share about the jobs and processes they use."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Callable

from bot.executor import Executor, PoolExecutor, ProgressHandler
from core.jobs import JobResult, JobSpec
from tests.bot.fake_runners import fake_spec

FAKE = "tests.bot.fake_runners:FakeRunner"

Pool = Callable[..., PoolExecutor]


async def submit(executor: Executor, job_id: str, spec: JobSpec, on_progress: ProgressHandler | None = None, *,
                 user: str = "", guild: str | None = None) -> JobResult:
    """Queue `spec` as `job_id` (for `user` in `guild`), then deliver its progress and return its result.

    The job is queued when the coroutine first runs, so tasks made one after the other queue in that order.
    """
    executor.enqueue(job_id, spec, user=user, guild=guild)
    return await executor.wait(job_id, on_progress)


def spec(**params: Any) -> JobSpec:
    return fake_spec("dream", **params)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def first_progress() -> tuple[asyncio.Event, Any]:
    seen = asyncio.Event()
    return seen, lambda event: seen.set()
