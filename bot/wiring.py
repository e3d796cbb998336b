"""Start-up wiring shared by `dreambot console`, `dreambot run` and `dreambot web`: the store, the
result store, the workers and the service, opened in order and closed in reverse.

Closing runs backwards: the service stops its jobs and gives them back in the store for the next
start, then the workers stop, then the store closes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .executor import LocalProcessExecutor, PoolExecutor, RayExecutor
from .results import LocalResults, ResultStore
from .service import Metrics, Pruned, PublicGallery, Retention, Service
from .settings import Settings
from .store import Store

__all__ = ["open_service", "build_executor", "open_results", "open_web", "prune_results"]


def build_executor(settings: Settings) -> PoolExecutor:
    """The worker pool `settings` describe, local processes or Ray actors (EXECUTOR), with the
    runner options (precision, offline, pixel cap) they give."""
    pool = dict(  # what both backends take
        workers=settings.workers,
        device=settings.device,
        warm_models=(settings.dream_model,),
        max_batch=settings.max_batch or None,
        runner_options=settings.runner_options,
        threads_per_worker=settings.threads_per_worker or None,
    )
    if settings.executor == "ray":
        return RayExecutor(**pool, address=settings.ray_address, cpus_per_actor=settings.ray_cpus_per_actor,
                           gpus_per_actor=settings.ray_gpus_per_actor, start_timeout=settings.ray_start_timeout)
    return LocalProcessExecutor(**pool)


def open_results(settings: Settings) -> ResultStore:
    """Where results are kept (RESULTS_DIR)."""
    return LocalResults(settings.results_dir)


@asynccontextmanager
async def open_service(settings: Settings) -> AsyncIterator[Service]:
    """The store (migrated to head), warm workers and the service over them, closed on exit."""
    async with Store.open(settings.database_url, limits=settings.rate_limits, upgrade=True,
                          lease_seconds=settings.lease_seconds) as store:
        executor = build_executor(settings)
        async with executor, Service.open(store=store, executor=executor, results=open_results(settings),
                                          prefix=settings.command_prefix, max_job_seconds=settings.max_job_seconds,
                                          heartbeat_seconds=settings.heartbeat_seconds,
                                          retention_days=settings.result_retention_days) as service:
            yield service


@asynccontextmanager
async def open_web(settings: Settings) -> AsyncIterator[tuple[PublicGallery, Metrics]]:
    """For `dreambot web` on its own: the store (migrated to head), the public gallery and the metrics
    over it. No workers: its health check judges the database. It sweeps no results (the bot does),
    but counts the files kept every hour, for its /metrics."""
    async with Store.open(settings.database_url, limits=settings.rate_limits, upgrade=True,
                          lease_seconds=settings.lease_seconds) as store:
        results, metrics = open_results(settings), Metrics(store)
        counting = Retention(store=store, results=results, days=0, metrics=metrics)
        counting.start()
        try:
            yield PublicGallery(store, results=results, default_prefix=settings.command_prefix), metrics
        finally:
            await counting.close()


async def prune_results(settings: Settings, *, days: float, dry_run: bool) -> Pruned:
    """For `dreambot results prune`: one sweep of the result files older than `days` over the store (migrated to head)."""
    async with Store.open(settings.database_url, limits=settings.rate_limits, upgrade=True,
                          lease_seconds=settings.lease_seconds) as store:
        return await Retention(store=store, results=open_results(settings), days=days).prune(dry_run=dry_run)
