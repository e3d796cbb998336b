"""What the store's tests share: specs, limits, and jobs recorded the way the product records them
(JobRows.admit, which admits and records a job in one transaction)."""

from __future__ import annotations

from bot.store import Admission, Asker, RateLimits, Store
from core.jobs import JobSpec
from core.params import validate_params

NOW = 1_700_000_000.0
NO_LIMITS = RateLimits(user_burst=0, guild_jobs_per_hour=0, max_active_jobs=0)  # a "no limits" store
NO_CAP = 1e9  # the bot's time cap, in tests about something else: no job is over it


def spec(kind: str = "dream", seed: int = 1, image: bytes | None = b"\x89PNG fake") -> JobSpec:
    params = validate_params(kind, {"layer": "block13", "strength": 2.0} if kind != "visualize" else {"steps": 20})
    return JobSpec(kind=kind, params=params, image=image, seed=seed)


async def admit(store: Store, asker: Asker, job: JobSpec | None = None, *, predicted: float = 0.0,
                max_seconds: float = NO_CAP, **options) -> Admission:
    """Ask for a job as `asker`; only the limits decide, unless a test sets the time cap."""
    return await store.jobs.admit(job if job is not None else spec(), asker, predicted=predicted,
                                  max_seconds=max_seconds, **options)


async def new_job(store: Store, job: JobSpec, asker: Asker, *, owner: str | None = None, **options) -> int:
    """Record a queued job on a store without limits (opened with NO_LIMITS); its id."""
    admission = await admit(store, asker, job, owner=owner, **options)
    assert admission.allowed and admission.job_id is not None, f"open the store with NO_LIMITS: {admission}"
    return admission.job_id
