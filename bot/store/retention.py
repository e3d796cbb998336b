"""Which result files may go, and the record that they went: the retention sweep's rows.

A finished job's file may expire once it is older than the retention (by `finished_at`, the
database's clock), when nothing still needs it: its delivery is over (posted, sent by DM, given
up; or it had nothing to post) and it is in no gallery that keeps it, that is it is not featured
and its server's web gallery is not public. A result still to post is never a candidate, so no
sweep deletes a file that a process is delivering.

Several processes may sweep at once. `expire` marks a job "expired" with one conditional UPDATE
per job, in one transaction, in id order: of two sweeps that saw the same candidates, each job is
marked by exactly one, and only the process that marked it deletes its file. The conditions are
checked again in that UPDATE, so a result posted to a public gallery meanwhile stays.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, func, or_, select, true, update

from .database import Database
from .models import GalleryEntry, GuildSettingsRow, Job

__all__ = ["RetentionRows", "ResultFileRow", "DELIVERY_OVER"]

# Deliveries that are over: the file is needed for no further post.
DELIVERY_OVER = ("posted", "sent_by_dm", "undeliverable")


@dataclass(frozen=True)
class ResultFileRow:
    job_id: int
    location: str


class RetentionRows:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def expirable(self, older_than: float, *, after: int = 0, limit: int = 500) -> list[ResultFileRow]:
        """Results that may expire now: finished over `older_than` seconds ago and needed by nothing;
        `limit` of them with ids above `after`, in id order (so a caller pages through them)."""
        query = select(Job.id, Job.result_location).where(Job.id > after, *self._due(older_than))
        async with self.db.reading() as session:
            rows = await session.execute(query.order_by(Job.id).limit(limit))
            return [ResultFileRow(job_id, location) for job_id, location in rows.all()]

    async def expire(self, rows: Iterable[ResultFileRow], older_than: float) -> list[ResultFileRow]:
        """Mark these results expired where they still may expire; returns those this call marked,
        whose files the caller now deletes (no other call returns them)."""
        marked = []
        async with self.db.writing() as session:
            for row in sorted(set(rows), key=lambda r: r.job_id):  # one lock order, so two sweeps never deadlock
                query = update(Job).where(Job.id == row.job_id, Job.result_location == row.location, *self._due(older_than))
                if (await session.execute(query.values(result_removed="expired", result_removed_at=self.db.now))).rowcount == 1:
                    marked.append(row)
        return marked

    async def recently_expired(self, within: float) -> list[ResultFileRow]:
        """Results marked expired in the last `within` seconds: a process that died between marking
        one and deleting its file left the file, which the next sweep deletes."""
        query = select(Job.id, Job.result_location).where(
            Job.status == "done", Job.result_removed == "expired", Job.result_removed_at >= self.db.now - within,
            Job.result_location.is_not(None))
        async with self.db.reading() as session:
            return [ResultFileRow(job_id, location) for job_id, location in (await session.execute(query.order_by(Job.id))).all()]

    async def missing(self, job_id: int) -> bool:
        """A front found this job's result file gone (not by the sweep): record it, so listings skip
        it. False when it was already recorded as expired or missing."""
        query = update(Job).where(Job.id == job_id, Job.result_location.is_not(None), Job.result_removed.is_(None))
        async with self.db.writing() as session:
            return (await session.execute(query.values(result_removed="missing", result_removed_at=self.db.now))).rowcount == 1

    async def removed(self) -> dict[str, int]:
        """How many results are recorded gone, by why ("expired", "missing")."""
        query = select(Job.result_removed, func.count()).where(Job.result_removed.is_not(None)).group_by(Job.result_removed)
        async with self.db.reading() as session:
            return {reason: int(n) for reason, n in (await session.execute(query)).all()}

    def _due(self, older_than: float) -> list[ColumnElement[bool]]:
        kept_in_gallery = exists().where(
            GalleryEntry.job_id == Job.id, GalleryEntry.removed_at.is_(None),
            or_(GalleryEntry.featured_at.is_not(None),
                exists().where(GuildSettingsRow.guild_id == GalleryEntry.guild_id, GuildSettingsRow.public_gallery == true())),
        )
        return [
            Job.status == "done", Job.result_location.is_not(None), Job.result_removed.is_(None),
            Job.finished_at < self.db.now - older_than,
            or_(Job.delivery.is_(None), Job.delivery.in_(DELIVERY_OVER)),
            ~kept_in_gallery,
        ]
