"""Each server's gallery: the results posted there, their likes, which were featured, and the
numbers `!stats` shows. An entry whose message was deleted is in no listing."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import delete, func, or_, select, update

from .database import Database, insert_ignore
from .jobs import add_gallery_entry
from .models import GalleryEntry, Job, Like
from .records import GalleryItem, LikeResult, NotFound, Stats

__all__ = ["GalleryRows", "ORDERS", "Order"]

Order = Literal["recent", "top"]
ORDERS: tuple[Order, ...] = ("recent", "top")  # newest first, or most liked first (ties: newest first)


class GalleryRows:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, job_id: int, message_link: str, *, channel_id: str | None = None) -> int:
        """Add a finished job to its server's gallery; adding the same job again returns the same id."""
        async with self.db.writing() as session:
            return await add_gallery_entry(session, job_id, message_link, channel_id, self.db.now)

    async def like(self, entry_id: int, user_id: str) -> LikeResult:
        """Record the user's like of an entry; liking twice counts once."""
        async with self.db.writing() as session:
            if await session.get(GalleryEntry, entry_id) is None:
                raise NotFound(f"no gallery entry #{entry_id}")
            added = await insert_ignore(session, Like.__table__, {"entry_id": entry_id, "user_id": str(user_id),
                                                                  "created_at": self.db.now})
            if added:  # incremented in SQL, not read-modify-write, so concurrent likes all count
                await session.execute(update(GalleryEntry).where(GalleryEntry.id == entry_id).values(likes=GalleryEntry.likes + 1))
            likes = (await session.execute(select(GalleryEntry.likes).where(GalleryEntry.id == entry_id))).scalar_one()
            return LikeResult(added, int(likes))

    async def unlike(self, entry_id: int, user_id: str) -> LikeResult:
        """Withdraw the user's like; a no-op when they had not liked it."""
        async with self.db.writing() as session:
            result = await session.execute(delete(Like).where(Like.entry_id == entry_id, Like.user_id == str(user_id)))
            if result.rowcount:
                await session.execute(update(GalleryEntry).where(GalleryEntry.id == entry_id).values(likes=GalleryEntry.likes - 1))
            likes = (await session.execute(select(GalleryEntry.likes).where(GalleryEntry.id == entry_id))).scalar_one_or_none()
            if likes is None:
                raise NotFound(f"no gallery entry #{entry_id}")
            return LikeResult(False, int(likes))

    async def listing(self, guild_id: str | None, order: Order = "recent", limit: int = 10, offset: int = 0) -> list[GalleryItem]:
        """The server's entries in `order`, skipping `offset` of them; those whose file is missing are left out."""
        assert order in ORDERS, f"order must be one of {ORDERS}; parse it at the front"
        query = _ITEMS.where(GalleryEntry.guild_id.is_(None) if guild_id is None else GalleryEntry.guild_id == str(guild_id))
        # A result whose file was found gone (not expired: that one is listed, as expired) is in no listing.
        query = query.where(or_(Job.result_removed.is_(None), Job.result_removed != "missing"))
        newest = (GalleryEntry.created_at.desc(), GalleryEntry.id.desc())
        query = query.order_by(GalleryEntry.likes.desc(), *newest) if order == "top" else query.order_by(*newest)
        async with self.db.reading() as session:
            return [GalleryItem(**row._asdict()) for row in await session.execute(query.limit(limit).offset(offset))]

    async def item(self, job_id: int) -> GalleryItem | None:
        """The gallery entry of a job; None when it has none or it was removed."""
        async with self.db.reading() as session:
            row = (await session.execute(_ITEMS.where(GalleryEntry.job_id == job_id))).one_or_none()
            return GalleryItem(**row._asdict()) if row is not None else None

    async def claim_feature(self, message_link: str) -> bool:
        """Mark the entry posted in this message featured; False when it already was (or has no entry),
        so that of several likes reaching the threshold at once, or again later, one features it."""
        query = update(GalleryEntry).where(GalleryEntry.message_link == message_link, GalleryEntry.featured_at.is_(None))
        async with self.db.writing() as session:
            return (await session.execute(query.values(featured_at=self.db.now))).rowcount == 1

    async def job_of_post(self, message_link: str) -> int | None:
        """The job whose result was posted in this message (and is still in a gallery), else None."""
        query = select(GalleryEntry.job_id).where(GalleryEntry.message_link == message_link, GalleryEntry.removed_at.is_(None))
        async with self.db.reading() as session:
            return (await session.execute(query)).scalar_one_or_none()

    async def remove(self, message_links: list[str]) -> int:
        """Mark the entries posted in these messages removed (their messages were deleted); returns
        how many were still in a gallery. Most deleted messages carry no result: those cost one read."""
        links = sorted(set(message_links))
        if not links:
            return 0
        shown = (GalleryEntry.message_link.in_(links), GalleryEntry.removed_at.is_(None))
        async with self.db.reading() as session:
            if (await session.execute(select(GalleryEntry.id).where(*shown).limit(1))).first() is None:
                return 0
        async with self.db.writing() as session:
            return (await session.execute(update(GalleryEntry).where(*shown).values(removed_at=self.db.now))).rowcount

    async def stats(self, guild_id: str | None = None) -> Stats:
        """Counts over all servers, or one server's: jobs, who asked, entries and likes."""
        job_filter: list[Any] = [] if guild_id is None else [Job.guild_id == str(guild_id)]
        entry_filter = [GalleryEntry.removed_at.is_(None)] + ([] if guild_id is None else [GalleryEntry.guild_id == str(guild_id)])
        async with self.db.reading() as session:
            by_status = await session.execute(select(Job.status, func.count()).where(*job_filter).group_by(Job.status))
            by_kind = await session.execute(select(Job.kind, func.count()).where(*job_filter).group_by(Job.kind))
            users = await session.execute(select(func.count(func.distinct(Job.user_id))).where(*job_filter))
            entries = await session.execute(select(func.count(), func.coalesce(func.sum(GalleryEntry.likes), 0)).where(*entry_filter))
            entry_count, like_count = entries.one()
            return Stats(jobs_by_status={status: int(n) for status, n in by_status.all()},
                         jobs_by_kind={kind: int(n) for kind, n in by_kind.all()}, users=int(users.scalar_one()),
                         gallery_entries=int(entry_count), likes=int(like_count))


# GalleryItem's fields: the entry's own, and from its job who asked, the seed, the command and the result.
_ITEMS = (
    select(
        GalleryEntry.id, GalleryEntry.job_id, GalleryEntry.guild_id, GalleryEntry.channel_id, GalleryEntry.message_link,
        GalleryEntry.kind, GalleryEntry.params, GalleryEntry.likes, GalleryEntry.created_at,
        Job.user_id, Job.seed, Job.command, Job.result_location, Job.result_type, Job.result_removed,
    )
    .join(Job, Job.id == GalleryEntry.job_id)
    .where(GalleryEntry.removed_at.is_(None))
)
