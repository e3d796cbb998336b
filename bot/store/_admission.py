"""The admission decision, run inside one write transaction of the caller.

Atomicity comes from the database, not from this process: on SQLite the transaction began with
BEGIN IMMEDIATE (see _engine), so no other connection can write between our read and our write;
on PostgreSQL the bucket rows are locked with SELECT ... FOR UPDATE, and the user's bucket row
also serialises the count of their active jobs. Several bot processes can share one database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from . import _gcra
from ._records import Admission, GuildSettings, RateLimits
from ._sql import insert_ignore
from .models import GuildSettingsRow, Job, RateLimitState

__all__ = [
    "ACTIVE_STATUSES",
    "admit_locked",
    "bucket_states",
    "count_active",
    "guild_key",
    "guild_settings_from_row",
    "guild_settings_in",
    "user_key",
    "wait_text",
]

ACTIVE_STATUSES = ("queued", "running")


def wait_text(seconds: float) -> str:
    """'42 s', '3 min 5 s', '2 h 10 min' for a wait of `seconds` (rounded up)."""
    total = max(1, math.ceil(seconds))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        minutes, secs = divmod(total, 60)
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, rest = divmod(total, 3600)
    minutes = math.ceil(rest / 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def guild_settings_from_row(guild_id: str, row: GuildSettingsRow | None) -> GuildSettings:
    if row is None:
        return GuildSettings(guild_id=guild_id)
    return GuildSettings(
        guild_id=guild_id,
        prefix=row.prefix,
        user_burst=row.user_burst,
        user_refill_seconds=row.user_refill_seconds,
        guild_jobs_per_hour=row.guild_jobs_per_hour,
        max_active_jobs=row.max_active_jobs,
        exempt_role_ids=tuple(str(r) for r in row.exempt_role_ids or ()),
        gallery_channel_id=row.gallery_channel_id,
        like_threshold=row.like_threshold,
        max_job_seconds=row.max_job_seconds,
        public_gallery=row.public_gallery,
        public_names=row.public_names,
    )


async def guild_settings_in(session: AsyncSession, guild_id: str | None) -> GuildSettings | None:
    if guild_id is None:
        return None
    return guild_settings_from_row(guild_id, await session.get(GuildSettingsRow, guild_id))


async def count_active(session: AsyncSession, user_id: str) -> int:
    query = select(func.count()).select_from(Job).where(Job.user_id == user_id, Job.status.in_(ACTIVE_STATUSES))
    return int((await session.execute(query)).scalar_one())


async def bucket_states(session: AsyncSession, keys: Iterable[str], *, lock: bool) -> dict[str, float]:
    """tat of each existing bucket; with `lock`, rows are created if missing and locked, in key order."""
    keys = sorted(set(keys))  # one global lock order, so two admissions can never deadlock
    if not keys:
        return {}
    if lock:
        # A new bucket row with tat 0 is a full bucket; creating it first gives FOR UPDATE a row to lock.
        for key in keys:
            await insert_ignore(session, RateLimitState.__table__, {"key": key, "tat": 0.0, "updated_at": 0.0})
    query = select(RateLimitState.key, RateLimitState.tat).where(RateLimitState.key.in_(keys)).order_by(RateLimitState.key)
    if lock:
        query = query.with_for_update()  # rendered on PostgreSQL; SQLite already holds the write lock
    return {key: tat for key, tat in (await session.execute(query)).all()}


def user_key(user_id: str) -> str:
    return f"user:{user_id}"


def guild_key(guild_id: str) -> str:
    return f"guild:{guild_id}"


async def admit_locked(
    session: AsyncSession,
    user_id: str,
    guild_id: str | None,
    roles: Iterable[str],
    now: float,
    defaults: RateLimits,
) -> Admission:
    """Decide and, when allowed, consume; the caller's transaction must be a write transaction."""
    settings = await guild_settings_in(session, guild_id)
    limits = settings.limits(defaults) if settings else defaults
    if settings and set(map(str, roles)) & set(settings.exempt_role_ids):
        return Admission(True, 0.0, "exempt role")

    keys = [user_key(user_id)]
    if guild_id is not None and limits.guild_jobs_per_hour > 0:
        keys.append(guild_key(guild_id))
    # Lock before counting: the user's bucket row is what serialises their concurrent admissions.
    tats = await bucket_states(session, keys, lock=True)

    if limits.max_active_jobs > 0:
        active = await count_active(session, user_id)
        if active >= limits.max_active_jobs:
            jobs = "job" if limits.max_active_jobs == 1 else "jobs"
            return Admission(
                False,
                0.0,
                f"you already have {limits.max_active_jobs} {jobs} queued or running; wait for one to finish or cancel one",
                refusal="active_jobs",
            )

    decisions: dict[str, _gcra.Decision] = {}
    refusals: list[tuple[float, str, str]] = []
    if limits.user_burst > 0:
        decision = _gcra.decide(
            tats[user_key(user_id)], now, burst=limits.user_burst, interval=limits.user_refill_seconds
        )
        decisions[user_key(user_id)] = decision
        if not decision.allowed:
            refusals.append((decision.retry_after, f"you can start another job in {wait_text(decision.retry_after)}", "user_rate"))
    if guild_id is not None and limits.guild_jobs_per_hour > 0:
        per_hour = limits.guild_jobs_per_hour
        decision = _gcra.decide(tats[guild_key(guild_id)], now, burst=per_hour, interval=3600.0 / per_hour)
        decisions[guild_key(guild_id)] = decision
        if not decision.allowed:
            refusals.append(
                (
                    decision.retry_after,
                    f"this server has reached its limit of {per_hour} jobs per hour; "
                    f"try again in {wait_text(decision.retry_after)}",
                    "server_rate",
                )
            )
    if refusals:
        # Nothing is consumed unless every limit agrees; report the longest wait.
        retry_after, reason, refusal = max(refusals)
        return Admission(False, retry_after, reason, refusal=refusal)

    for key, decision in decisions.items():
        await session.execute(
            update(RateLimitState).where(RateLimitState.key == key).values(tat=decision.tat, updated_at=now)
        )
    return Admission(True, 0.0, "")
