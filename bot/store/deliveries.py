"""Results still to post: a finished job whose post Discord refused stays pending, and is tried
again (by any process, after a restart too) until it is posted, sent by DM, or given up.

A try at posting is held like a running job: the process that claims it holds the job's lease
(owner, lease_expires_at) and renews it while it posts (LeaseRows.renew), so no other process
claims the same result while a slow post is still under way. Times are the database's clock.
"""

from __future__ import annotations

from sqlalchemy import or_, select, update

from .database import Database
from .jobs import RECORD_COLUMNS, records
from .models import Job
from .records import JobRecord

__all__ = ["DeliveryRows"]


class DeliveryRows:
    def __init__(self, db: Database, *, lease_seconds: float) -> None:
        self.db = db
        self.lease_seconds = lease_seconds

    async def pending(self) -> list[JobRecord]:
        """Finished jobs whose result is still to be posted, oldest first; inputs not loaded."""
        query = select(*RECORD_COLUMNS).where(Job.status == "done", Job.delivery == "pending")
        async with self.db.reading() as session:
            return records(await session.execute(query.order_by(Job.id)))

    async def claim(self, job_id: int, attempts: int, *, owner: str | None = None, after: float = 0.0,
                    now: float | None = None) -> bool:
        """Begin try number `attempts + 1` at posting a result for `owner`, if nobody began one since
        `attempts` were seen, at least `after` seconds have passed since the last try, and no
        process holds a try still under way: of several processes sweeping at once, exactly one
        posts it, and a slow post is never posted a second time beside it.

        now: a test's fixed time instead of the database's clock."""
        clock = self.db.clock(now)
        async with self.db.writing() as session:
            query = update(Job).where(
                Job.id == job_id, Job.delivery == "pending", Job.delivery_attempts == attempts,
                or_(Job.delivery_tried_at.is_(None), Job.delivery_tried_at + after <= clock),
                or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < clock))
            claimed = await session.execute(query.values(
                delivery_attempts=attempts + 1, delivery_tried_at=clock, owner=owner,
                lease_expires_at=clock + self.lease_seconds))
            return claimed.rowcount == 1

    async def failed(self, job_id: int, error: str) -> int:
        """The latest try at posting failed with `error`; the result stays pending. Returns how many were tried."""
        async with self.db.writing() as session:
            # The try is over: its hold ends, so the next one waits only for its backoff.
            await session.execute(update(Job).where(Job.id == job_id, Job.delivery == "pending").values(
                delivery_error=error, lease_expires_at=None))
            tried = await session.execute(select(Job.delivery_attempts).where(Job.id == job_id))
            return int(tried.scalar_one_or_none() or 0)

    async def end(self, job_id: int, delivery: str, error: str | None = None) -> None:
        """A pending result will not be posted in its channel: `delivery` says what became of it."""
        assert delivery in ("sent_by_dm", "undeliverable"), \
            f"{delivery!r} does not end a delivery; a posted result is recorded with JobRows.posted"
        async with self.db.writing() as session:
            await session.execute(update(Job).where(Job.id == job_id, Job.delivery == "pending").values(
                delivery=delivery, delivery_error=error))
