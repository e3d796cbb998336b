"""Which bot process holds each unfinished job: leases that the holder renews and others adopt
only once they run out, so no job runs or posts twice however processes die.

Every lease time is the database's clock (`Database.now`), read inside the statement that writes
or compares it: processes whose own clocks disagree still agree on when a lease runs out. The
`now` arguments exist for tests that move time on; in service, leave them out.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, and_, or_, select, update

from .database import Database
from .jobs import ACTIVE_STATUSES, RECORD_COLUMNS, job_record, records
from .models import Job
from .records import JobRecord

__all__ = ["LeaseRows", "DEFAULT_LEASE_SECONDS", "check_heartbeat"]

# How long a process's hold on a job lasts unless renewed; its owner renews well before (the service's heartbeat).
DEFAULT_LEASE_SECONDS = 30.0


def check_heartbeat(heartbeat_seconds: float, lease_seconds: float) -> None:
    """ValueError unless a process renews its leases at least twice per lease, so that one missed
    beat (a slow database, a long pause) does not cost it its jobs."""
    if not 0 < heartbeat_seconds < lease_seconds / 2:
        raise ValueError(f"HEARTBEAT_SECONDS ({heartbeat_seconds:g}) must be more than 0 and under half of "
                         f"LEASE_SECONDS ({lease_seconds:g}), so one missed beat does not cost a process its jobs")


class LeaseRows:
    def __init__(self, db: Database, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.db = db
        self.lease_seconds = lease_seconds

    async def renew(self, owner: str, job_ids: Iterable[int], *, now: float | None = None) -> set[int]:
        """Extend `owner`'s lease on these jobs; returns the ids it still holds.

        A job missing from the answer has ended (say, cancelled from another process) or was adopted
        by another process after this one's lease lapsed: its owner must stop it and not post it.
        A finished job whose result `owner` is posting stays held until the post is recorded
        (see DeliveryRows.claim).
        """
        ids = sorted(set(job_ids))
        if not ids:
            return set()
        posting = and_(Job.status == "done", Job.delivery == "pending")
        held = (Job.owner == owner, or_(Job.status.in_(ACTIVE_STATUSES), posting), Job.id.in_(ids))
        async with self.db.writing() as session:
            await session.execute(update(Job).where(*held).values(lease_expires_at=self.db.clock(now) + self.lease_seconds))
            return set((await session.scalars(select(Job.id).where(*held))).all())

    async def release(self, job_id: int, owner: str) -> bool:
        """Put an unfinished job back in the queue, held by nobody, so any process may run it at once
        (a process that stops cleanly gives its jobs back instead of letting their leases run out)."""
        query = update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE_STATUSES), Job.owner == owner)
        async with self.db.writing() as session:
            changed = await session.execute(query.values(status="queued", started_at=None, owner=None, lease_expires_at=None))
            return changed.rowcount == 1

    async def orphans(self, *, now: float | None = None) -> list[JobRecord]:
        """Queued and running jobs nobody holds (no owner, or a lease past its expiry), oldest first; inputs not loaded."""
        query = select(*RECORD_COLUMNS).where(Job.status.in_(ACTIVE_STATUSES), _orphaned(self.db.clock(now)))
        async with self.db.reading() as session:
            return records(await session.execute(query.order_by(Job.id)))

    async def claim(self, job_id: int, owner: str, *, now: float | None = None) -> JobRecord | None:
        """Adopt an orphaned job for `owner`, back in the queued state; None when it is not orphaned
        (another process adopted it first, or it ended). Returns it with its inputs, to run again."""
        claimed = await self.claim_many([job_id], owner, now=now)
        return claimed[0] if claimed else None

    async def claim_many(self, job_ids: Iterable[int], owner: str, *, now: float | None = None) -> list[JobRecord]:
        """`claim` for several jobs in one transaction (a dead process may leave hundreds): those
        still orphaned, oldest first, with their inputs; the others are skipped."""
        ids = sorted(set(job_ids))
        if not ids:
            return []
        clock = self.db.clock(now)
        async with self.db.writing() as session:
            orphaned = (Job.id.in_(ids), Job.status.in_(ACTIVE_STATUSES), _orphaned(clock))
            # Locked as they are read (PostgreSQL; SQLite's write transaction holds the whole file),
            # so of processes claiming at once, one takes each job.
            taken = list((await session.scalars(select(Job.id).where(*orphaned).with_for_update())).all())
            if not taken:
                return []
            await session.execute(update(Job).where(Job.id.in_(taken)).values(
                owner=owner, lease_expires_at=clock + self.lease_seconds, status="queued", started_at=None))
            jobs = await session.scalars(select(Job).where(Job.id.in_(taken)).order_by(Job.id))
            return [job_record(job, inputs=True) for job in jobs]



def _orphaned(now: ColumnElement[float]):
    """SQL condition: no process holds the job (never held, released, or its lease has run out)."""
    return or_(Job.owner.is_(None), Job.lease_expires_at.is_(None), Job.lease_expires_at < now)
