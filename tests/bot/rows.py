"""Test set-up: jobs recorded as the service records them, without anyone's rate limits."""

from __future__ import annotations

from bot.store import Asker, JobRows, RateLimits, Store
from core.jobs import JobSpec

__all__ = ["add_job"]

_UNLIMITED = RateLimits(user_burst=0, guild_jobs_per_hour=0, max_active_jobs=0)


async def add_job(store: Store, spec: JobSpec, *, user_id: str, guild_id: str | None = None, channel_id: str | None = None,
                  owner: str | None = None, front: str = "discord", command: str | None = None,
                  now: float | None = None) -> int:
    """A queued job in `store` (held by `owner`, when given); its id."""
    rows = JobRows(store.database, limits=_UNLIMITED, lease_seconds=store.lease_seconds)
    admission = await rows.admit(spec, Asker(user_id, guild_id, channel_id, front=front), predicted=0.0,
                                 max_seconds=float("inf"), owner=owner, command=command, now=now)
    assert admission.allowed and admission.job_id is not None
    return admission.job_id
