"""Start-up wiring shared by `dreambot console` and `dreambot run`: store, workers, service.

One place opens the resources in order and closes them in reverse, so both fronts shut down the
same way: the service stops its jobs and puts them back in the store for the next start, then the
workers stop, then the store closes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .executor import LocalProcessExecutor, PoolExecutor, RayExecutor
from .metrics import Metrics
from .public import PublicGallery
from .service import DreamService
from .settings import Settings
from .store import Store

__all__ = ["open_service", "build_executor", "public_gallery", "open_web"]


def build_executor(settings: Settings) -> PoolExecutor:
    """The worker pool `settings` describe, local processes or Ray actors (EXECUTOR), with the
    runner options (precision, offline, pixel cap) they give."""
    pool = dict(  # what both backends take
        workers=settings.workers,
        device=settings.device,
        warm_models=(settings.dream_model,),
        max_batch=settings.max_batch or None,
        runner_options=settings.runner_options,
    )
    if settings.executor == "ray":
        return RayExecutor(**pool, address=settings.ray_address, cpus_per_actor=settings.ray_cpus_per_actor,
                           gpus_per_actor=settings.ray_gpus_per_actor)
    return LocalProcessExecutor(**pool)


@asynccontextmanager
async def open_service(settings: Settings) -> AsyncIterator[DreamService]:
    """The store (migrated to head), warm workers and the service over them, closed on exit."""
    settings.results_dir.mkdir(parents=True, exist_ok=True)
    async with Store.open(settings.database_url, limits=settings.rate_limits, upgrade=True,
                          lease_seconds=settings.lease_seconds) as store:
        executor = build_executor(settings)
        service = DreamService(
            store=store, executor=executor, results_dir=settings.results_dir,
            prefix=settings.command_prefix, max_job_seconds=settings.max_job_seconds,
            heartbeat_seconds=settings.heartbeat_seconds,
        )
        async with executor:
            try:
                yield service
            finally:
                await service.close()


def public_gallery(store: Store, settings: Settings) -> PublicGallery:
    """The read-only view of `store` that the web gallery serves."""
    return PublicGallery(store, results_dir=settings.results_dir, default_prefix=settings.command_prefix)


@asynccontextmanager
async def open_web(settings: Settings) -> AsyncIterator[tuple[PublicGallery, Metrics]]:
    """For `dreambot web` on its own: the store (migrated to head), the public gallery and the metrics
    over it. No workers: its health check judges the database, and reads results from RESULTS_DIR."""
    async with Store.open(settings.database_url, limits=settings.rate_limits, upgrade=True,
                          lease_seconds=settings.lease_seconds) as store:
        yield public_gallery(store, settings), Metrics(store)
