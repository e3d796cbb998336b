"""Jobs in the database, from admission to the posted result, and the rules that admit them.

A job is admitted and recorded in one write transaction: the requester's server settings (time
cap, rate limits, exempt roles), their token buckets and their active-job count are read and
changed together, so no other admission, from this process or another, can slip in between. The
buckets are GCRA's: each is one number, its theoretical arrival time `tat` (the moment it would be
full again); a request at `now` fits when `max(tat, now) + interval - burst * interval <= now`, and
takes it one interval further.

Atomicity comes from the database: on SQLite the transaction began with BEGIN IMMEDIATE (see
database.py); on PostgreSQL the bucket rows are locked with SELECT ... FOR UPDATE, and the user's
bucket row also serialises the count of their active jobs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.jobs import JOB_KINDS, JobSpec
from core.params import as_dict

from ..guild_settings import GuildSettings, RateLimits
from .database import Database, insert_ignore
from .models import GalleryEntry, GuildSettingsRow, Job, RateLimitState, User
from .records import Admission, JobRecord, NotFound

__all__ = ["JobRows", "Asker", "ACTIVE_STATUSES", "RECORD_COLUMNS", "job_record", "records", "guild_settings_from_row",
           "effective_limits", "is_exempt", "time_cap", "gcra_decide", "gcra_available", "user_key", "guild_key", "add_gallery_entry"]

ACTIVE_STATUSES = ("queued", "running")
_EPS = 1e-9  # float slack: a request exactly when a token refills is not refused by rounding


@dataclass(frozen=True)
class Asker:
    """Who asks for a job, where, and what answers them: what the store records with it."""

    user_id: str
    guild_id: str | None = None
    channel_id: str | None = None
    roles: tuple[str, ...] = ()
    front: str = "console"  # "discord" or "console": which front recovers the job after a restart
    reply_to: str | None = None  # the message the result answers


class JobRows:
    """The jobs table. Every method is one short transaction; `owner` arguments make a change
    conditional on this process still holding the job (see leases.py)."""

    def __init__(self, db: Database, *, limits: RateLimits, lease_seconds: float) -> None:
        self.db = db
        self.limits = limits
        self.lease_seconds = lease_seconds

    async def admit(self, spec: JobSpec, asker: Asker, *, predicted: float, max_seconds: float, owner: str | None = None,
                    command: str | None = None, now: float | None = None) -> Admission:
        """Check the job against the asker's time cap and limits and, when they allow it, record it
        queued (held by `owner`, when given) and consume from the limits; all in one transaction.

        predicted: seconds the job is expected to take; max_seconds: the bot's own cap, which a
        server may lower and its exempt roles may use in full. Refused, nothing is consumed.
        """
        async with self.db.writing() as session:
            now = await self.db.read_clock(session, now)  # as for every lease and bucket: one clock for all processes
            settings = await _settings(session, asker.guild_id)
            exempt = is_exempt(settings, asker.roles)
            cap = time_cap(settings, max_seconds, exempt=exempt)
            if predicted > cap:
                return Admission(False, refusal="over_time_cap", limit=cap)
            if not exempt:
                refused = await _take_tokens(session, asker, effective_limits(settings, self.limits), now)
                if refused is not None:
                    return refused
            job_id = await self._insert(session, spec, asker, owner, command, now, exempt)
            return Admission(True, job_id=job_id, limit=cap)

    async def _insert(self, session: AsyncSession, spec: JobSpec, asker: Asker, owner: str | None, command: str | None,
                      now: float, exempt: bool) -> int:
        assert spec.kind in JOB_KINDS, f"unknown job kind {spec.kind!r}; compile specs with core.spec.compile_job"
        await insert_ignore(session, User.__table__, {"id": asker.user_id, "created_at": self.db.now})
        job = Job(
            user_id=asker.user_id, guild_id=asker.guild_id, channel_id=asker.channel_id, kind=spec.kind,
            params=as_dict(spec.params), seed=spec.seed, image=spec.image, guide=spec.guide, status="queued",
            created_at=self.db.now, owner=owner, lease_expires_at=now + self.lease_seconds if owner is not None else None,
            reply_to=asker.reply_to, front=asker.front, command=command, exempt=exempt,
        )
        session.add(job)
        await session.flush()
        return job.id

    async def mark_running(self, job_id: int, *, owner: str | None = None) -> bool:
        """queued -> running; False when the job is no longer queued (cancelled meanwhile) or, with
        `owner`, no longer held by that process."""
        return await self._transition(job_id, ("queued",), owner, status="running", started_at=self.db.now)

    async def finish(self, job_id: int, timings: dict[str, float], location: str, result_type: str, *,
                     owner: str | None = None) -> bool:
        """-> done, its result kept at `location`; False when the job was cancelled or had already
        ended, or another process holds it now: a job is finished, hence posted, once.

        A job with a channel is then due to be posted: finishing counts as its first try (see
        DeliveryRows.claim), which its finisher makes at once.
        """
        has_channel = Job.channel_id.is_not(None)
        return await self._transition(
            job_id, ACTIVE_STATUSES, owner, status="done", finished_at=self.db.now, timings=dict(timings),
            result_location=location, result_type=result_type,
            delivery=case((has_channel, "pending"), else_=None), delivery_attempts=case((has_channel, 1), else_=0),
            delivery_tried_at=case((has_channel, self.db.now), else_=None),
            # The finisher posts next: its hold starts afresh, and it renews it while posting (LeaseRows.renew).
            lease_expires_at=self.db.now + self.lease_seconds,
        )

    async def fail(self, job_id: int, error: str, *, owner: str | None = None) -> bool:
        """-> failed with a one-line `error`; False when it had already ended or another process holds it."""
        return await self._transition(job_id, ACTIVE_STATUSES, owner, status="failed", finished_at=self.db.now, error=error)

    async def cancel(self, job_id: int, user_id: str | None = None) -> bool:
        """-> cancelled. True when it was queued or running (the caller then stops the work); False
        when it had already ended. NotFound when there is no such job or, with `user_id`, it is
        someone else's (so ids of others' jobs are not confirmed)."""
        async with self.db.writing() as session:
            query = update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE_STATUSES))
            if user_id is not None:
                query = query.where(Job.user_id == str(user_id))
            if (await session.execute(query.values(status="cancelled", finished_at=self.db.now))).rowcount == 1:
                return True
            asker = (await session.execute(select(Job.user_id).where(Job.id == job_id))).scalar_one_or_none()
            if asker is None or (user_id is not None and asker != str(user_id)):
                raise NotFound(f"no job #{job_id} of yours")
            return False

    async def posted(self, job_id: int, message_link: str, *, channel_id: str | None, in_guild: bool) -> None:
        """The result was posted in this message: its delivery is over and, on a server, it enters
        the gallery (adding it twice keeps one entry)."""
        async with self.db.writing() as session:
            await session.execute(update(Job).where(Job.id == job_id).values(
                result_message_link=message_link, delivery="posted", delivery_error=None))
            if in_guild:
                await add_gallery_entry(session, job_id, message_link, channel_id, self.db.now)

    async def answered_in(self, job_id: int, message_id: str) -> None:
        """The message a job's result answers (its acknowledgement, once sent); a later post replies to it."""
        async with self.db.writing() as session:
            await session.execute(update(Job).where(Job.id == job_id).values(reply_to=str(message_id)))

    async def get(self, job_id: int) -> JobRecord | None:
        """A job with its inputs; None when there is none."""
        async with self.db.reading() as session:
            job = await session.get(Job, job_id)
            return job_record(job, inputs=True) if job else None

    async def active(self, user_id: str) -> list[JobRecord]:
        """The user's queued and running jobs, oldest first (inputs not loaded)."""
        query = select(*RECORD_COLUMNS).where(Job.user_id == str(user_id), Job.status.in_(ACTIVE_STATUSES))
        async with self.db.reading() as session:
            return [JobRecord(**row._asdict()) for row in await session.execute(query.order_by(Job.id))]

    async def counts(self) -> dict[tuple[str, str], int]:
        """How many jobs there are of each (kind, status), over all servers."""
        async with self.db.reading() as session:
            rows = await session.execute(select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status))
            return {(kind, status): int(n) for kind, status, n in rows.all()}

    async def _transition(self, job_id: int, from_statuses: Sequence[str], held_by: str | None, **values: Any) -> bool:
        # One conditional UPDATE: the status (and owner) check and the change cannot interleave with
        # a cancel or another process adopting the job.
        async with self.db.writing() as session:
            query = update(Job).where(Job.id == job_id, Job.status.in_(from_statuses))
            if held_by is not None:
                query = query.where(Job.owner == held_by)
            return (await session.execute(query.values(**values))).rowcount == 1


# -- admission: token buckets and the active-job cap ----------------------------------------------


def is_exempt(settings: GuildSettings | None, roles: Iterable[str]) -> bool:
    """Whether a member with these roles skips the server's limits (its exempt roles)."""
    return bool(settings and set(map(str, roles)) & set(settings.exempt_role_ids))


def time_cap(settings: GuildSettings | None, bot_cap: float, *, exempt: bool) -> float:
    """Seconds a member's job may be predicted to take: the server's cap, at most the bot's;
    the bot's own for exempt members and outside servers."""
    if exempt or settings is None or settings.max_job_seconds is None:
        return bot_cap
    return min(bot_cap, settings.max_job_seconds)


def effective_limits(settings: GuildSettings | None, defaults: RateLimits) -> RateLimits:
    """The limits that apply in a server: the bot's `defaults` with the server's overrides."""
    if settings is None:
        return defaults
    overrides = {name: getattr(settings, name) for name in _LIMIT_FIELDS if getattr(settings, name) is not None}
    return replace(defaults, **overrides) if overrides else defaults


_LIMIT_FIELDS = tuple(f.name for f in fields(RateLimits))


def user_key(user_id: str) -> str:
    return f"user:{user_id}"


def guild_key(guild_id: str) -> str:
    return f"guild:{guild_id}"


async def _take_tokens(session: AsyncSession, asker: Asker, limits: RateLimits, now: float) -> Admission | None:
    """Consume one token from each of the asker's buckets (and check their active jobs); the
    refusal when any limit says no, in which case nothing is consumed."""
    buckets = {user_key(asker.user_id): (limits.user_burst, limits.user_refill_seconds, "user_rate")}
    if asker.guild_id is not None and limits.guild_jobs_per_hour > 0:
        per_hour = limits.guild_jobs_per_hour
        buckets[guild_key(asker.guild_id)] = (per_hour, 3600.0 / per_hour, "server_rate")
    # Lock before counting: the user's bucket row is what serialises their concurrent admissions.
    tats = await _locked_buckets(session, buckets)
    if limits.max_active_jobs > 0:
        active = select(func.count()).select_from(Job).where(Job.user_id == asker.user_id, Job.status.in_(ACTIVE_STATUSES))
        if int((await session.execute(active)).scalar_one()) >= limits.max_active_jobs:
            return Admission(False, refusal="active_jobs", limit=limits.max_active_jobs)
    moved: dict[str, float] = {}
    refusals = []
    for key, (burst, interval, refusal) in buckets.items():
        if burst <= 0:
            continue  # this limit is off
        tat, retry_after = gcra_decide(tats[key], now, burst=burst, interval=interval)
        if retry_after > 0:
            refusals.append(Admission(False, retry_after=retry_after, refusal=refusal, limit=burst))
        moved[key] = tat
    if refusals:  # nothing is consumed unless every limit agrees; the longest wait is the one to tell
        return max(refusals, key=lambda admission: admission.retry_after)
    for key, tat in moved.items():
        await session.execute(update(RateLimitState).where(RateLimitState.key == key).values(tat=tat, updated_at=now))
    return None


async def _locked_buckets(session: AsyncSession, buckets: dict[str, Any]) -> dict[str, float]:
    """tat of each bucket, created if missing (tat 0: a full bucket) and locked, in key order."""
    keys = sorted(buckets)  # one global lock order, so two admissions can never deadlock
    for key in keys:
        await insert_ignore(session, RateLimitState.__table__, {"key": key, "tat": 0.0, "updated_at": 0.0})
    query = select(RateLimitState.key, RateLimitState.tat).where(RateLimitState.key.in_(keys)).order_by(RateLimitState.key)
    return {key: tat for key, tat in (await session.execute(query.with_for_update())).all()}


def gcra_decide(tat: float | None, now: float, *, burst: int, interval: float) -> tuple[float, float]:
    """Whether one request at `now` fits a bucket in state `tat` (None: never used): (the bucket's
    new tat, 0) when it does, (its unchanged tat, seconds until it would) when it does not."""
    base = now if tat is None else max(tat, now)
    # Seconds until a request fits: computed from differences, so that epoch-sized times and long
    # intervals do not lose the small numbers to rounding.
    wait = (base - now) - (burst - 1) * interval
    if wait > _EPS:
        return (now if tat is None else tat), wait
    return base + interval, 0.0


def gcra_available(tat: float | None, now: float, *, burst: int, interval: float) -> tuple[int, float]:
    """(requests a bucket allows right now, seconds until the next one refills; 0 when full)."""
    if tat is None or tat <= now:
        return burst, 0.0
    used = (tat - now) / interval
    tokens = max(0, math.floor(burst - used + _EPS))
    next_in = (tat - now) - math.floor((tat - now) / interval + _EPS) * interval
    return tokens, next_in if next_in > _EPS else interval


# -- rows to records ---------------------------------------------------------------------------------


async def _settings(session: AsyncSession, guild_id: str | None) -> GuildSettings | None:
    if guild_id is None:
        return None
    return guild_settings_from_row(guild_id, await session.get(GuildSettingsRow, guild_id))


def guild_settings_from_row(guild_id: str, row: GuildSettingsRow | None) -> GuildSettings:
    if row is None:
        return GuildSettings(guild_id=guild_id)
    return GuildSettings(
        guild_id=guild_id, prefix=row.prefix, user_burst=row.user_burst, user_refill_seconds=row.user_refill_seconds,
        guild_jobs_per_hour=row.guild_jobs_per_hour, max_active_jobs=row.max_active_jobs,
        exempt_role_ids=tuple(str(r) for r in row.exempt_role_ids or ()), gallery_channel_id=row.gallery_channel_id,
        like_threshold=row.like_threshold, max_job_seconds=row.max_job_seconds, public_gallery=row.public_gallery,
        public_names=row.public_names, name=row.name, icon_url=row.icon_url,
    )


async def add_gallery_entry(session: AsyncSession, job_id: int, message_link: str, channel_id: str | None,
                            now: ColumnElement[float]) -> int:
    """Add a finished job to its server's gallery (its id; the same again for the same job), made at `now`."""
    job = (await session.execute(select(Job.guild_id, Job.channel_id, Job.kind, Job.params).where(Job.id == job_id))).one_or_none()
    if job is None:
        raise NotFound(f"no job #{job_id}")
    await insert_ignore(session, GalleryEntry.__table__, {
        "job_id": job_id, "guild_id": job.guild_id, "channel_id": channel_id or job.channel_id, "message_link": message_link,
        "kind": job.kind, "params": job.params, "likes": 0, "created_at": now,
    })
    return (await session.execute(select(GalleryEntry.id).where(GalleryEntry.job_id == job_id))).scalar_one()


RECORD_COLUMNS = [getattr(Job, name) for name in (
    "id", "user_id", "guild_id", "channel_id", "kind", "params", "seed", "status", "error", "created_at", "started_at",
    "finished_at", "timings", "result_location", "result_message_link", "owner", "lease_expires_at", "delivery",
    "delivery_attempts", "delivery_tried_at", "delivery_error", "reply_to", "front", "command", "result_type",
    "result_removed", "exempt",
)]


def job_record(job: Job, *, inputs: bool) -> JobRecord:
    values = {column.key: getattr(job, column.key) for column in RECORD_COLUMNS}
    if inputs:
        values.update(image=job.image, guide=job.guide)
    return JobRecord(**values)


def records(rows: Iterable[Any]) -> list[JobRecord]:
    """Rows selected with RECORD_COLUMNS as records (inputs not loaded)."""
    return [JobRecord(**row._asdict()) for row in rows]
