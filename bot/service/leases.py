"""Leases: this process's hold on its jobs, renewed every heartbeat, and the jobs it adopts from
processes that died.

Each unfinished job is held by one bot process through a lease in the store. A process that dies
stops renewing; once its leases run out, the others (or its own restart) adopt its jobs, for the
front that owns them, and run them again. A job this process no longer holds (cancelled from
another process, or adopted after this one stalled) is stopped here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable

from ..store import JobRecord, Store, check_heartbeat

__all__ = ["LeaseKeeper", "process_owner_id", "Owns", "Adopter"]

log = logging.getLogger(__name__)

Owns = Callable[[JobRecord], bool]  # whether a front takes this job back (its front, its shards)
Adopter = Callable[[list[JobRecord]], Awaitable[None]]  # a front taking over jobs adopted from a dead process
CLAIM_BATCH = 50  # orphans claimed in one transaction


def process_owner_id() -> str:
    """A name for this bot process in job leases: host, pid and a random tail (pids are reused)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


class LeaseKeeper:
    """Renews this process's leases every `heartbeat_seconds` and adopts orphaned jobs.

    held: the ids of the jobs this process runs; on_lost(job_id): stop a job no longer held;
    resume(record): queue an adopted job again (False when it cannot run any more).
    """

    def __init__(self, *, store: Store, owner: str, heartbeat_seconds: float, held: Callable[[], list[int]],
                 on_lost: Callable[[int], Awaitable[None]], resume: Callable[[JobRecord], Awaitable[bool]]) -> None:
        check_heartbeat(heartbeat_seconds, store.lease_seconds)
        self.store, self.owner, self.heartbeat_seconds = store, owner, heartbeat_seconds
        self._held, self._on_lost, self._resume = held, on_lost, resume
        self._adopting: list[tuple[Owns, Adopter]] = []
        self._task: asyncio.Task | None = None
        self._closing = False

    def start(self) -> None:
        """Begin the heartbeat (the service starts it once, before any job)."""
        if self._task is None and not self._closing:
            self._task = asyncio.create_task(self._renew_forever(), name="lease-heartbeat")

    async def recover(self, owns: Owns = lambda record: True, *, on_adopted: Adopter | None = None) -> list[JobRecord]:
        """Adopt and queue again the unfinished jobs no live process holds, for the front that `owns`
        them; returns them, with those that could not run again (failed, with the reason as
        their error). Only jobs whose lease has run out (or that were given back) are taken.

        With `on_adopted`, every heartbeat also adopts jobs whose owner has died since and hands them to it.
        """
        if on_adopted is not None:
            self._adopting.append((owns, on_adopted))
        return await self._adopt(owns)

    async def _adopt(self, owns: Owns) -> list[JobRecord]:
        """Claim the orphans `owns` takes, a batch at a time, and queue each again. Queueing hundreds
        takes a while: the leases taken meanwhile are renewed every heartbeat, or the first ones
        would run out before the last were queued, and another process would adopt them again."""
        mine = [orphan.id for orphan in await self.store.leases.orphans() if owns(orphan)]
        adopted: list[JobRecord] = []
        renewed = time.monotonic()
        for start in range(0, len(mine), CLAIM_BATCH):
            if self._closing:
                break
            # Those another process adopted first, or that ended meanwhile, are not in the batch.
            batch = await self.store.leases.claim_many(mine[start:start + CLAIM_BATCH], self.owner)
            for position, record in enumerate(batch):
                if time.monotonic() - renewed >= self.heartbeat_seconds:
                    await self.store.leases.renew(self.owner, [*self._held(), *(r.id for r in batch[position:])])
                    renewed = time.monotonic()
                if await self._resume(record):
                    adopted.append(record)
                elif (ended := await self.store.jobs.get(record.id)) is not None and ended.status == "failed":
                    adopted.append(ended)  # it cannot run again: its front tells the requester why
        return adopted

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                await self.renew_once()
            except Exception:  # the database may be briefly away: leases outlast a few missed beats
                log.exception("lease heartbeat failed; trying again in %g s", self.heartbeat_seconds)

    async def renew_once(self) -> None:
        """Renew this process's leases, stop jobs it no longer holds, and adopt newly orphaned ones."""
        ids = self._held()
        held = await self.store.leases.renew(self.owner, ids)
        for job_id in ids:
            if job_id not in held:
                await self._on_lost(job_id)
        for owns, on_adopted in list(self._adopting):
            if self._closing:
                return
            adopted = await self._adopt(owns)
            if adopted:
                # The front may talk to Discord for a while; the next renewal must not wait for it.
                handing_over = asyncio.create_task(on_adopted(adopted), name="hand-over-adopted-jobs")
                handing_over.add_done_callback(_log_failure)

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("handing adopted jobs to the front failed", exc_info=task.exception())
