"""The service between every front and the engine, made of parts with one concern each.

    jobs      submit, follow, cancel, time limits and ETAs (jobs.py)
    leases    this process's hold on its jobs, and adopting jobs of processes that died (leases.py)
    delivery  results Discord refused, posted again until they arrive (delivery.py)
    gallery   likes, featuring and withdrawal (gallery.py)
    public    what the web gallery may show of it, read-only (gallery.py)
    guilds    servers' settings (guilds.py)
    answers   the informational commands' answers (answers.py)
    metrics   what an operator watches (metrics.py)
    retention result files deleted after RESULT_RETENTION_DAYS, once, by one process (retention.py)

Fronts reach the store, the executor and result files only through these parts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from ..executor import Executor
from ..results import ResultStore
from ..store import Store
from .answers import Answers
from .delivery import Delivery
from .gallery import Gallery, PublicGallery
from .guilds import Guilds
from .jobs import Accepted, Compiler, Describer, JobOutcome, JobService, ProgressSink, Requester, Restorer
from .refusals import Denied
from .leases import LeaseKeeper, process_owner_id
from .metrics import Metrics
from .retention import Pruned, Retention

__all__ = [
    "Service", "Accepted", "Denied", "JobOutcome", "Requester", "ProgressSink", "process_owner_id",
    "JobService", "LeaseKeeper", "Delivery", "Gallery", "PublicGallery", "Guilds", "Answers", "Metrics",
    "Retention", "Pruned",
]


@dataclass
class Service:
    """The parts, over one store, executor and result store; open with `Service.open(...)`."""

    jobs: JobService
    leases: LeaseKeeper
    delivery: Delivery
    gallery: Gallery
    public: PublicGallery
    guilds: Guilds
    answers: Answers
    metrics: Metrics
    retention: Retention
    prefix: str
    max_job_seconds: float

    @classmethod
    @asynccontextmanager
    async def open(cls, *, store: Store, executor: Executor, results: ResultStore, prefix: str = "!",
                   max_job_seconds: float = 120.0, owner: str | None = None, heartbeat_seconds: float = 10.0,
                   delivery_retry_seconds: float = 30.0, metrics: Metrics | None = None, retention_days: float = 0.0,
                   compile: Compiler | None = None, restore: Restorer | None = None,
                   describe: Describer | None = None) -> AsyncIterator[Service]:
        """The service, its lease heartbeat running; on exit its jobs stop and go back to the store.

        owner: this process's name in job leases (unique per process start); heartbeat_seconds: how
        often it renews them (well under the store's lease). retention_days: result files older than
        this are swept away (0: kept forever). compile, restore, describe: stand-ins for
        core.spec's compile_job and restore_job and the reproduce command (tests).
        """
        owner = owner or process_owner_id()
        metrics = metrics or Metrics(store, executor)
        stand_ins = {name: fn for name, fn in (("compile", compile), ("restore", restore), ("describe", describe)) if fn is not None}
        jobs = JobService(store=store, executor=executor, results=results, metrics=metrics, owner=owner, prefix=prefix,
                          max_job_seconds=max_job_seconds, **stand_ins)
        delivery = Delivery(store=store, results=results, retry_seconds=delivery_retry_seconds, owner=owner)
        # Held: the jobs this process runs, and those whose result it is posting.
        leases = LeaseKeeper(store=store, owner=owner, heartbeat_seconds=heartbeat_seconds,
                             held=jobs.held, on_lost=jobs.lost, resume=jobs.resume)
        guilds = Guilds(store=store, max_job_seconds=max_job_seconds)
        service = cls(jobs=jobs, leases=leases, delivery=delivery,
                      gallery=Gallery(store), public=PublicGallery(store, results=results, default_prefix=prefix),
                      guilds=guilds,
                      answers=Answers(store=store, executor=executor, jobs=jobs, guilds=guilds, owner=owner, results=results,
                                      prefix=prefix),
                      metrics=metrics, retention=Retention(store=store, results=results, days=retention_days, metrics=metrics),
                      prefix=prefix, max_job_seconds=max_job_seconds)
        leases.start()
        service.retention.start()
        try:
            yield service
        finally:
            await service.close()

    @property
    def owner(self) -> str:
        return self.jobs.owner

    async def close(self) -> None:
        """Stop every job this process queued and give it back in the store, for another process or the next start."""
        self.delivery.closing = True
        await self.retention.close()
        await self.leases.close()
        await self.jobs.close()
