"""Results still to post: a finished job whose post Discord refused stays pending, and is tried
again (by any process, after a restart too) until it is posted, sent by DM, or given up."""

from __future__ import annotations

import time

from sqlalchemy import select, update

from .database import Database
from .jobs import RECORD_COLUMNS, records
from .models import Job
from .records import JobRecord

__all__ = ["DeliveryRows"]


class DeliveryRows:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def pending(self) -> list[JobRecord]:
        """Finished jobs whose result is still to be posted, oldest first; inputs not loaded."""
        query = select(*RECORD_COLUMNS).where(Job.status == "done", Job.delivery == "pending")
        async with self.db.reading() as session:
            return records(await session.execute(query.order_by(Job.id)))

    async def claim(self, job_id: int, attempts: int, *, now: float | None = None) -> bool:
        """Begin try number `attempts + 1` at posting a result, if nobody began one since `attempts`
        were seen: of several processes sweeping at once, exactly one posts it."""
        async with self.db.writing() as session:
            query = update(Job).where(Job.id == job_id, Job.delivery == "pending", Job.delivery_attempts == attempts)
            claimed = await session.execute(query.values(delivery_attempts=attempts + 1,
                                                         delivery_tried_at=time.time() if now is None else now))
            return claimed.rowcount == 1

    async def failed(self, job_id: int, error: str) -> int:
        """The latest try at posting failed with `error`; the result stays pending. Returns how many were tried."""
        async with self.db.writing() as session:
            await session.execute(update(Job).where(Job.id == job_id, Job.delivery == "pending").values(delivery_error=error))
            tried = await session.execute(select(Job.delivery_attempts).where(Job.id == job_id))
            return int(tried.scalar_one_or_none() or 0)

    async def end(self, job_id: int, delivery: str, error: str | None = None) -> None:
        """A pending result will not be posted in its channel: `delivery` says what became of it."""
        assert delivery in ("sent_by_dm", "undeliverable"), \
            f"{delivery!r} does not end a delivery; a posted result is recorded with JobRows.posted"
        async with self.db.writing() as session:
            await session.execute(update(Job).where(Job.id == job_id, Job.delivery == "pending").values(
                delivery=delivery, delivery_error=error))
