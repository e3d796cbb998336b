"""The Store: the one object the service layer talks to for users, limits, jobs and the gallery."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.jobs import JOB_KINDS, JobSpec
from core.params import as_dict

from . import _gcra
from ._admission import (
    ACTIVE_STATUSES,
    admit_locked,
    bucket_states,
    count_active,
    guild_key,
    guild_settings_from_row,
    guild_settings_in,
    user_key,
)
from ._engine import create_engine, write_engine
from ._records import (
    Admission,
    GalleryItem,
    GuildSettings,
    JobRecord,
    LikeResult,
    NotFound,
    Quota,
    RateLimits,
    SchemaOutdated,
    Stats,
)
from ._sql import insert_ignore
from .migrate import current_revision, head_revision, upgrade_async
from .models import GalleryEntry, GuildSettingsRow, Job, Like, User, utcnow

__all__ = ["Store", "DEFAULT_LEASE_SECONDS"]

# How long a process's hold on a job lasts unless renewed; its owner renews well before (service heartbeat).
DEFAULT_LEASE_SECONDS = 30.0

_GUILD_FIELDS = {
    "prefix",
    "user_burst",
    "user_refill_seconds",
    "guild_jobs_per_hour",
    "max_active_jobs",
    "exempt_role_ids",
    "gallery_channel_id",
    "like_threshold",
    "max_job_seconds",
    "public_gallery",
    "public_names",
}


class Store:
    """Async access to the database. Open with `async with Store.open(url) as store:`.

    Every method runs in its own short transaction. Methods that write begin a write transaction
    (BEGIN IMMEDIATE on SQLite), so decisions that read then write are atomic across processes.
    """

    def __init__(self, engine: AsyncEngine, limits: RateLimits | None = None, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.engine = engine
        self.limits = limits or RateLimits()
        self.lease_seconds = lease_seconds
        self._read = async_sessionmaker(engine, expire_on_commit=False)
        self._write = async_sessionmaker(write_engine(engine), expire_on_commit=False)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        url: str,
        *,
        limits: RateLimits | None = None,
        upgrade: bool = False,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        **engine_kwargs: Any,
    ) -> AsyncIterator[Store]:
        """Create the engine for `url`, optionally migrate to head, and dispose of it on exit.

        Without `upgrade`, a database not at the head revision raises SchemaOutdated, so a missing
        migration is one clear line rather than "no such table" later.
        """
        if upgrade:
            await upgrade_async(url)
        engine = create_engine(url, **engine_kwargs)
        try:
            if not upgrade:
                current, head = await current_revision(engine), head_revision()
                if current != head:
                    raise SchemaOutdated(
                        f"database schema is at revision {current or 'none'}, this code needs {head}; "
                        "run the migrations (Store.open(url, upgrade=True))"
                    )
            yield cls(engine, limits, lease_seconds=lease_seconds)
        finally:
            await engine.dispose()

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        async with self._write() as session, session.begin():
            yield session

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncSession]:
        async with self._read() as session, session.begin():
            yield session

    # -- admission ----------------------------------------------------------------------------

    async def admit(
        self, user_id: str, guild_id: str | None, *, roles: Iterable[str] = (), now: float | None = None
    ) -> Admission:
        """Decide whether the user may start a job now and, if so, consume from their limits."""
        async with self._writing() as session:
            return await admit_locked(session, str(user_id), _opt_str(guild_id), roles, _now(now), self.limits)

    async def admit_and_create_job(
        self,
        spec: JobSpec,
        *,
        user_id: str,
        guild_id: str | None = None,
        channel_id: str | None = None,
        roles: Iterable[str] = (),
        owner: str | None = None,
        reply_to: str | None = None,
        now: float | None = None,
    ) -> Admission:
        """`admit` and, when allowed, `create_job` in the same transaction; the job id is in `.job_id`.

        Doing both at once keeps the active-job cap exact: no other admission can slip in between
        counting the user's jobs and adding this one. With `owner`, that process holds the job's
        lease from the start.
        """
        now = _now(now)
        async with self._writing() as session:
            admission = await admit_locked(session, str(user_id), _opt_str(guild_id), roles, now, self.limits)
            if not admission.allowed:
                return admission
            job_id = await self._insert_job(session, spec, str(user_id), _opt_str(guild_id), _opt_str(channel_id), owner, now,
                                            reply_to=_opt_str(reply_to))
            return Admission(True, 0.0, admission.reason, job_id)

    async def quota(
        self, user_id: str, guild_id: str | None = None, *, roles: Iterable[str] = (), now: float | None = None
    ) -> Quota:
        """What the user could start right now, without consuming anything."""
        user_id, guild_id, now = str(user_id), _opt_str(guild_id), _now(now)
        async with self._reading() as session:
            settings = await guild_settings_in(session, guild_id)
            limits = settings.limits(self.limits) if settings else self.limits
            exempt = bool(settings and set(map(str, roles)) & set(settings.exempt_role_ids))
            keys = [user_key(user_id)] + ([guild_key(guild_id)] if guild_id is not None else [])
            tats = await bucket_states(session, keys, lock=False)
            active = await count_active(session, user_id)
        if limits.user_burst > 0:
            user_available, user_next_in = _gcra.available(
                tats.get(user_key(user_id)), now, burst=limits.user_burst, interval=limits.user_refill_seconds
            )
        else:  # the user limit is off
            user_available, user_next_in = None, 0.0
        guild_available = None
        if guild_id is not None and limits.guild_jobs_per_hour > 0:
            per_hour = limits.guild_jobs_per_hour
            guild_available, _ = _gcra.available(
                tats.get(guild_key(guild_id)), now, burst=per_hour, interval=3600.0 / per_hour
            )
        return Quota(
            exempt=exempt,
            user_available=user_available,
            user_burst=limits.user_burst,
            user_next_in=user_next_in,
            guild_available=guild_available,
            active_jobs=active,
            max_active_jobs=limits.max_active_jobs,
        )

    # -- jobs ---------------------------------------------------------------------------------

    async def create_job(
        self,
        spec: JobSpec,
        *,
        user_id: str,
        guild_id: str | None = None,
        channel_id: str | None = None,
        owner: str | None = None,
    ) -> int:
        """Record a queued job without any limit check (use admit_and_create_job for user requests)."""
        async with self._writing() as session:
            return await self._insert_job(session, spec, str(user_id), _opt_str(guild_id), _opt_str(channel_id), owner, _now(None))

    async def _insert_job(
        self,
        session: AsyncSession,
        spec: JobSpec,
        user_id: str,
        guild_id: str | None,
        channel_id: str | None,
        owner: str | None,
        now: float,
        *,
        reply_to: str | None = None,
    ) -> int:
        if spec.kind not in JOB_KINDS:
            raise ValueError(f"unknown job kind {spec.kind!r}; expected one of {', '.join(JOB_KINDS)}")
        await insert_ignore(session, User.__table__, {"id": user_id, "created_at": utcnow()})
        job = Job(
            user_id=user_id,
            guild_id=guild_id,
            channel_id=channel_id,
            kind=spec.kind,
            params=as_dict(spec.params),
            seed=spec.seed,
            image=spec.image,
            guide=spec.guide,
            status="queued",
            created_at=utcnow(),
            owner=owner,
            lease_expires_at=now + self.lease_seconds if owner is not None else None,
            reply_to=reply_to,
        )
        session.add(job)
        await session.flush()
        return job.id

    async def mark_running(self, job_id: int, *, owner: str | None = None) -> bool:
        """queued -> running; False when the job is no longer queued (e.g. cancelled meanwhile) or,
        with `owner`, no longer held by that process."""
        return await self._transition(job_id, ("queued",), owner, status="running", started_at=utcnow())

    async def requeue_job(self, job_id: int) -> bool:
        """running -> queued, for a job whose process stopped before it ended (restart recovery)."""
        return await self._transition(job_id, ("running",), None, status="queued", started_at=None)

    async def finish_job(
        self,
        job_id: int,
        timings: dict[str, float] | None = None,
        result_location: str | None = None,
        *,
        result_message_link: str | None = None,
        owner: str | None = None,
    ) -> bool:
        """-> done; False when the job was cancelled or had already ended (its outcome is kept) or,
        with `owner`, another process holds it now: a job is finished, hence posted, once.

        A job with a channel is then due to be posted: finishing counts as its first try (see
        `claim_delivery`), which its finisher makes at once.
        """
        has_channel = Job.channel_id.is_not(None)
        if result_message_link is not None:
            delivery: dict[str, Any] = {"delivery": case((has_channel, "posted"), else_=None)}
        else:
            delivery = {"delivery": case((has_channel, "pending"), else_=None),
                        "delivery_attempts": case((has_channel, 1), else_=0),
                        "delivery_tried_at": case((has_channel, _now(None)), else_=None)}
        return await self._transition(
            job_id,
            ACTIVE_STATUSES,
            owner,
            status="done",
            finished_at=utcnow(),
            timings=dict(timings or {}),
            result_location=result_location,
            result_message_link=result_message_link,
            **delivery,
        )

    async def fail_job(self, job_id: int, error: str, *, owner: str | None = None) -> bool:
        """-> failed with a one-line `error`; False when the job had already ended or, with `owner`,
        another process holds it now."""
        return await self._transition(job_id, ACTIVE_STATUSES, owner, status="failed", finished_at=utcnow(), error=error)

    async def cancel_job(self, job_id: int, user_id: str | None = None) -> bool:
        """-> cancelled. True when it was queued or running (the caller then stops the executor's
        work); False when it had already ended. NotFound when there is no such job or, with
        `user_id`, it belongs to someone else (so ids of others' jobs are not confirmed).
        """
        async with self._writing() as session:
            query = update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE_STATUSES))
            if user_id is not None:
                query = query.where(Job.user_id == str(user_id))
            result = await session.execute(query.values(status="cancelled", finished_at=utcnow()))
            if result.rowcount == 1:
                return True
            owner = (await session.execute(select(Job.user_id).where(Job.id == job_id))).scalar_one_or_none()
            if owner is None or (user_id is not None and owner != str(user_id)):
                raise NotFound(f"no job #{job_id} of yours")
            return False

    async def set_reply_target(self, job_id: int, message_id: str) -> None:
        """The message a job's result answers (its acknowledgement, once sent); a later post replies to it."""
        async with self._writing() as session:
            await session.execute(update(Job).where(Job.id == job_id).values(reply_to=str(message_id)))

    async def set_result_message_link(self, job_id: int, link: str) -> None:
        """The result was posted in this message: its delivery is over."""
        async with self._writing() as session:
            await session.execute(update(Job).where(Job.id == job_id).values(
                result_message_link=link, delivery="posted", delivery_error=None))

    # -- delivery: posting a finished job's result until it is posted --------------------------

    async def pending_deliveries(self) -> list[JobRecord]:
        """Finished jobs whose result is still to be posted, oldest first; inputs not loaded."""
        query = select(*_RECORD_COLUMNS).where(Job.status == "done", Job.delivery == "pending")
        async with self._reading() as session:
            return [JobRecord(**row._asdict()) for row in await session.execute(query.order_by(Job.id))]

    async def claim_delivery(self, job_id: int, attempts: int, *, now: float | None = None) -> bool:
        """Begin try number `attempts + 1` at posting a result, if nobody began one since `attempts`
        were seen: of several processes sweeping at once, exactly one posts it."""
        async with self._writing() as session:
            query = update(Job).where(Job.id == job_id, Job.delivery == "pending", Job.delivery_attempts == attempts)
            claimed = await session.execute(query.values(delivery_attempts=attempts + 1, delivery_tried_at=_now(now)))
            return claimed.rowcount == 1

    async def delivery_failed(self, job_id: int, error: str) -> int:
        """The latest try at posting failed with `error`; the result stays pending. Returns how many were tried."""
        async with self._writing() as session:
            await session.execute(update(Job).where(Job.id == job_id, Job.delivery == "pending").values(delivery_error=error))
            tried = await session.execute(select(Job.delivery_attempts).where(Job.id == job_id))
            return int(tried.scalar_one_or_none() or 0)

    async def end_delivery(self, job_id: int, delivery: str, error: str | None = None) -> None:
        """A pending result will not be posted in its channel: `delivery` says what became of it."""
        assert delivery in ("sent_by_dm", "undeliverable"), \
            f"{delivery!r} does not end a delivery; posted results use set_result_message_link"
        async with self._writing() as session:
            await session.execute(update(Job).where(Job.id == job_id, Job.delivery == "pending").values(
                delivery=delivery, delivery_error=error))

    async def _transition(self, job_id: int, from_statuses: Sequence[str], held_by: str | None, **values: Any) -> bool:
        # One conditional UPDATE: the status (and owner) check and the change cannot interleave with
        # a cancel or another process adopting the job.
        async with self._writing() as session:
            query = update(Job).where(Job.id == job_id, Job.status.in_(from_statuses))
            if held_by is not None:
                query = query.where(Job.owner == held_by)
            return (await session.execute(query.values(**values))).rowcount == 1

    # -- leases: which bot process holds an unfinished job ---------------------------------------

    async def renew_leases(self, owner: str, job_ids: Iterable[int], *, now: float | None = None) -> set[int]:
        """Extend `owner`'s lease on these jobs; returns the ids it still holds.

        A job missing from the answer has ended (say, cancelled from another process) or was adopted
        by another process after this one's lease lapsed: its owner must stop it and not post it.
        """
        ids = sorted(set(job_ids))
        if not ids:
            return set()
        held = (Job.owner == owner, Job.status.in_(ACTIVE_STATUSES), Job.id.in_(ids))
        async with self._writing() as session:
            await session.execute(update(Job).where(*held).values(lease_expires_at=_now(now) + self.lease_seconds))
            return set((await session.scalars(select(Job.id).where(*held))).all())

    async def release_job(self, job_id: int, owner: str) -> bool:
        """Put an unfinished job back in the queue, held by nobody, so any process may run it at once
        (a process that stops cleanly gives its jobs back instead of letting their leases run out)."""
        return await self._transition(
            job_id, ACTIVE_STATUSES, owner, status="queued", started_at=None, owner=None, lease_expires_at=None
        )

    async def orphaned_jobs(self, *, now: float | None = None) -> list[JobRecord]:
        """Queued and running jobs nobody holds (no owner, or a lease past its expiry), oldest first; inputs not loaded."""
        query = select(*_RECORD_COLUMNS).where(Job.status.in_(ACTIVE_STATUSES), _orphaned(_now(now)))
        async with self._reading() as session:
            return [JobRecord(**row._asdict()) for row in await session.execute(query.order_by(Job.id))]

    async def claim_job(self, job_id: int, owner: str, *, now: float | None = None) -> JobRecord | None:
        """Adopt an orphaned job for `owner`, back in the queued state; None when it is not orphaned
        (another process adopted it first, or it ended). Returns it with its inputs, to run again."""
        now = _now(now)
        async with self._writing() as session:
            query = update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE_STATUSES), _orphaned(now))
            claimed = await session.execute(
                query.values(owner=owner, lease_expires_at=now + self.lease_seconds, status="queued", started_at=None)
            )
            if claimed.rowcount != 1:
                return None
            job = await session.get(Job, job_id)
            assert job is not None, "a job just updated exists"
            return _job_record(job, inputs=True)

    async def job_counts(self) -> dict[tuple[str, str], int]:
        """How many jobs there are of each (kind, status), over all servers."""
        async with self._reading() as session:
            rows = await session.execute(select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status))
            return {(kind, status): int(n) for kind, status, n in rows.all()}

    async def ping(self) -> None:
        """Raise when the database cannot be reached (a health check)."""
        async with self._reading() as session:
            await session.execute(select(1))

    async def get_job(self, job_id: int) -> JobRecord | None:
        async with self._reading() as session:
            job = await session.get(Job, job_id)
            return _job_record(job, inputs=True) if job else None

    async def jobs_to_recover(self) -> list[JobRecord]:
        """Queued and running jobs, oldest first, with their inputs: what to re-submit after a restart."""
        async with self._reading() as session:
            rows = await session.scalars(select(Job).where(Job.status.in_(ACTIVE_STATUSES)).order_by(Job.id))
            return [_job_record(job, inputs=True) for job in rows]

    async def active_jobs(self, user_id: str) -> list[JobRecord]:
        """The user's queued and running jobs, oldest first (inputs not loaded)."""
        async with self._reading() as session:
            query = select(*_RECORD_COLUMNS).where(Job.user_id == str(user_id), Job.status.in_(ACTIVE_STATUSES))
            rows = await session.execute(query.order_by(Job.id))
            return [JobRecord(**row._asdict()) for row in rows]

    async def queue_position(self, job_id: int) -> int | None:
        """1 for the next queued job to start, 0 while running, None once ended or unknown."""
        async with self._reading() as session:
            status = (await session.execute(select(Job.status).where(Job.id == job_id))).scalar_one_or_none()
            if status == "running":
                return 0
            if status != "queued":
                return None
            ahead = select(func.count()).select_from(Job).where(Job.status == "queued", Job.id < job_id)
            return int((await session.execute(ahead)).scalar_one()) + 1

    # -- guild settings -----------------------------------------------------------------------

    async def get_guild_settings(self, guild_id: str) -> GuildSettings:
        """The guild's stored overrides (all None when it has none); `.limits(store.limits)` resolves them."""
        async with self._reading() as session:
            return guild_settings_from_row(str(guild_id), await session.get(GuildSettingsRow, str(guild_id)))

    async def set_guild_settings(self, guild_id: str, **changes: Any) -> GuildSettings:
        """Update the given fields (None resets one to the default) and return the result."""
        unknown = set(changes) - _GUILD_FIELDS
        if unknown:
            raise ValueError(f"unknown guild setting(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(_GUILD_FIELDS))}")
        # Discord ids arrive as ints from discord.py; the store keeps them as strings.
        if "exempt_role_ids" in changes:
            changes["exempt_role_ids"] = [str(role) for role in changes["exempt_role_ids"] or ()]
        if changes.get("gallery_channel_id") is not None:
            changes["gallery_channel_id"] = str(changes["gallery_channel_id"])
        async with self._writing() as session:
            # Create-if-missing then lock: two first-time changes of one guild on PostgreSQL would
            # otherwise both insert its row, and the second would fail on the primary key.
            defaults = {"guild_id": str(guild_id), "exempt_role_ids": [], "updated_at": utcnow()}
            await insert_ignore(session, GuildSettingsRow.__table__, defaults)
            row = await session.get(GuildSettingsRow, str(guild_id), with_for_update=True)
            assert row is not None, "the row was just inserted or already existed"
            for name, value in changes.items():
                setattr(row, name, value)
            row.updated_at = utcnow()
            await session.flush()
            return guild_settings_from_row(str(guild_id), row)

    # -- gallery ------------------------------------------------------------------------------

    async def add_gallery_entry(self, job_id: int, message_link: str, *, channel_id: str | None = None) -> int:
        """Add a finished job to its guild's gallery; adding the same job again returns the same id."""
        async with self._writing() as session:
            job = (
                await session.execute(select(Job.guild_id, Job.channel_id, Job.kind, Job.params).where(Job.id == job_id))
            ).one_or_none()
            if job is None:
                raise NotFound(f"no job #{job_id}")
            await insert_ignore(
                session,
                GalleryEntry.__table__,
                {
                    "job_id": job_id,
                    "guild_id": job.guild_id,
                    "channel_id": _opt_str(channel_id) or job.channel_id,
                    "message_link": message_link,
                    "kind": job.kind,
                    "params": job.params,
                    "likes": 0,
                    "created_at": utcnow(),
                },
            )
            return (await session.execute(select(GalleryEntry.id).where(GalleryEntry.job_id == job_id))).scalar_one()

    async def like(self, entry_id: int, user_id: str) -> LikeResult:
        """Record the user's like of an entry; liking twice counts once."""
        async with self._writing() as session:
            if await session.get(GalleryEntry, entry_id) is None:
                raise NotFound(f"no gallery entry #{entry_id}")
            added = await insert_ignore(
                session, Like.__table__, {"entry_id": entry_id, "user_id": str(user_id), "created_at": utcnow()}
            )
            if added:
                # Increment in SQL, not read-modify-write, so concurrent likes are all counted.
                await session.execute(
                    update(GalleryEntry).where(GalleryEntry.id == entry_id).values(likes=GalleryEntry.likes + 1)
                )
            likes = (await session.execute(select(GalleryEntry.likes).where(GalleryEntry.id == entry_id))).scalar_one()
            return LikeResult(added, int(likes))

    async def unlike(self, entry_id: int, user_id: str) -> LikeResult:
        """Withdraw the user's like; a no-op when they had not liked it."""
        async with self._writing() as session:
            result = await session.execute(delete(Like).where(Like.entry_id == entry_id, Like.user_id == str(user_id)))
            if result.rowcount:
                await session.execute(
                    update(GalleryEntry).where(GalleryEntry.id == entry_id).values(likes=GalleryEntry.likes - 1)
                )
            likes = (await session.execute(select(GalleryEntry.likes).where(GalleryEntry.id == entry_id))).scalar_one_or_none()
            if likes is None:
                raise NotFound(f"no gallery entry #{entry_id}")
            return LikeResult(False, int(likes))

    async def gallery(
        self, guild_id: str | None, order: Literal["recent", "top"] = "recent", limit: int = 10, offset: int = 0
    ) -> list[GalleryItem]:
        """The guild's entries, newest first or most liked first (ties: newest first), skipping
        `offset` of them; removed entries are left out."""
        if order not in ("recent", "top"):
            raise ValueError(f"order must be 'recent' or 'top', got {order!r}")
        query = _GALLERY_ITEMS.where(
            GalleryEntry.guild_id.is_(None) if guild_id is None else GalleryEntry.guild_id == str(guild_id)
        )
        newest = (GalleryEntry.created_at.desc(), GalleryEntry.id.desc())
        query = query.order_by(GalleryEntry.likes.desc(), *newest) if order == "top" else query.order_by(*newest)
        async with self._reading() as session:
            rows = await session.execute(query.limit(limit).offset(offset))
            return [GalleryItem(**row._asdict()) for row in rows]

    async def gallery_item(self, job_id: int) -> GalleryItem | None:
        """The gallery entry of a job; None when it has none or it was removed."""
        async with self._reading() as session:
            row = (await session.execute(_GALLERY_ITEMS.where(GalleryEntry.job_id == job_id))).one_or_none()
            return GalleryItem(**row._asdict()) if row is not None else None

    async def claim_feature(self, message_link: str) -> bool:
        """Mark the entry posted in this message featured; False when it already was (or has no entry),
        so that of several likes reaching the threshold at once, or again later, one features it."""
        query = update(GalleryEntry).where(GalleryEntry.message_link == message_link, GalleryEntry.featured_at.is_(None))
        async with self._writing() as session:
            return (await session.execute(query.values(featured_at=utcnow()))).rowcount == 1

    async def job_of_post(self, message_link: str) -> int | None:
        """The job whose result was posted in this message (and is still in a gallery), else None."""
        query = select(GalleryEntry.job_id).where(GalleryEntry.message_link == message_link, GalleryEntry.removed_at.is_(None))
        async with self._reading() as session:
            return (await session.execute(query)).scalar_one_or_none()

    async def remove_gallery_entries(self, message_links: Iterable[str]) -> int:
        """Mark the entries posted in these messages removed (their messages were deleted); returns
        how many were still in a gallery. Most deleted messages carry no result: those cost one read."""
        links = sorted(set(message_links))
        if not links:
            return 0
        shown = (GalleryEntry.message_link.in_(links), GalleryEntry.removed_at.is_(None))
        async with self._reading() as session:
            if (await session.execute(select(GalleryEntry.id).where(*shown).limit(1))).first() is None:
                return 0
        async with self._writing() as session:
            return (await session.execute(update(GalleryEntry).where(*shown).values(removed_at=utcnow()))).rowcount

    # -- stats --------------------------------------------------------------------------------

    async def stats(self, guild_id: str | None = None) -> Stats:
        """Counts over all guilds, or one guild's."""
        job_filter = [] if guild_id is None else [Job.guild_id == str(guild_id)]
        entry_filter = [GalleryEntry.removed_at.is_(None)] + ([] if guild_id is None else [GalleryEntry.guild_id == str(guild_id)])
        async with self._reading() as session:
            by_status = await session.execute(select(Job.status, func.count()).where(*job_filter).group_by(Job.status))
            by_kind = await session.execute(select(Job.kind, func.count()).where(*job_filter).group_by(Job.kind))
            users = await session.execute(select(func.count(func.distinct(Job.user_id))).where(*job_filter))
            entries = await session.execute(
                select(func.count(), func.coalesce(func.sum(GalleryEntry.likes), 0)).where(*entry_filter)
            )
            entry_count, like_count = entries.one()
            return Stats(
                jobs_by_status={status: int(n) for status, n in by_status.all()},
                jobs_by_kind={kind: int(n) for kind, n in by_kind.all()},
                users=int(users.scalar_one()),
                gallery_entries=int(entry_count),
                likes=int(like_count),
            )


_RECORD_COLUMNS = [
    getattr(Job, name)
    for name in (
        "id", "user_id", "guild_id", "channel_id", "kind", "params", "seed", "status", "error",
        "created_at", "started_at", "finished_at", "timings", "result_location", "result_message_link",
        "owner", "lease_expires_at", "delivery", "delivery_attempts", "delivery_tried_at", "delivery_error", "reply_to",
    )
]  # fmt: skip


def _job_record(job: Job, *, inputs: bool) -> JobRecord:
    values = {column.key: getattr(job, column.key) for column in _RECORD_COLUMNS}
    if inputs:
        values.update(image=job.image, guide=job.guide)
    return JobRecord(**values)


# GalleryItem's fields: the entry's own, and from its job who asked, the seed and the result file.
# Entries whose message was deleted are left out here, so no listing can show them.
_GALLERY_ITEMS = (
    select(
        GalleryEntry.id, GalleryEntry.job_id, GalleryEntry.guild_id, GalleryEntry.channel_id, GalleryEntry.message_link,
        GalleryEntry.kind, GalleryEntry.params, GalleryEntry.likes, GalleryEntry.created_at,
        Job.user_id, Job.seed, Job.result_location,
    )
    .join(Job, Job.id == GalleryEntry.job_id)
    .where(GalleryEntry.removed_at.is_(None))
)


def _orphaned(now: float) -> Any:
    """SQL condition: no process holds the job (never held, released, or its lease has run out)."""
    return or_(Job.owner.is_(None), Job.lease_expires_at.is_(None), Job.lease_expires_at < now)


def _now(now: float | None) -> float:
    return time.time() if now is None else float(now)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
