"""How a job ended, as a front hears it (`JobOutcome`), and how the store tells it when this
process did not see the end itself: a job it no longer holds, or one that is not running here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.jobs import JobResult

from ..results import ResultStore
from ..store import Store

__all__ = ["JobOutcome", "lost_outcome", "recorded_outcome"]

_TAKEN_OVER = "another bot process took this job over after this one stalled; it posts the result"


@dataclass(frozen=True)
class JobOutcome:
    job_id: int
    status: Literal["done", "failed", "cancelled", "interrupted"]
    result: JobResult | None = None  # the result's bytes, type and metadata, when done here
    error: str | None = None  # one line for the user when not done
    command: str | None = None  # what makes the same result again, without the prefix
    location: str | None = None  # where the result store keeps it
    where: str | None = None  # the same, for a person: a file's path or an object's address


async def lost_outcome(store: Store, owner: str, job_id: int) -> JobOutcome:
    """How a job process `owner` no longer holds ended for it: cancelled (maybe from another process), or taken over."""
    record = await store.jobs.get(job_id)
    if record is None or record.status == "cancelled":
        return JobOutcome(job_id, "cancelled", error=f"job {job_id} was cancelled")
    if record.owner != owner:
        return JobOutcome(job_id, "interrupted", error=_TAKEN_OVER)
    return JobOutcome(job_id, "cancelled", error=f"job {job_id} is {record.status}")


async def recorded_outcome(store: Store, results: ResultStore, job_id: int) -> JobOutcome:
    """How a job that is not running here ended, from the store (it may have ended before anyone followed it)."""
    record = await store.jobs.get(job_id)
    if record is None or record.status in ("queued", "running"):
        status = record.status if record else "missing"
        return JobOutcome(job_id, "cancelled", error=f"job {job_id} is {status}, not running here")
    if record.status == "done":
        where = results.describe(record.result_location) if record.result_location else None
        return JobOutcome(job_id, "done", error=f"job {job_id} had finished already", command=record.command,
                          location=record.result_location, where=where)
    return JobOutcome(job_id, record.status, error=record.error or f"job {job_id} was {record.status}")  # type: ignore[arg-type]
