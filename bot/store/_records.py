"""Plain records the store hands out: no ORM objects leave a session, so nothing lazy-loads later."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

__all__ = [
    "RateLimits",
    "Admission",
    "JobRecord",
    "GuildSettings",
    "GalleryItem",
    "LikeResult",
    "Quota",
    "Stats",
    "StoreError",
    "NotFound",
    "SchemaOutdated",
]


class StoreError(Exception):
    """Base of the store's errors; str(error) is one line."""


class NotFound(StoreError):
    pass


class SchemaOutdated(StoreError):
    pass


@dataclass(frozen=True)
class RateLimits:
    """Admission limits; 0 switches a limit off. Guild settings override these field by field."""

    user_burst: int = 3  # jobs a user can start back to back
    user_refill_seconds: float = 60.0  # one more job allowed every this many seconds
    guild_jobs_per_hour: int = 30  # across all users of one guild, refilled evenly over the hour
    max_active_jobs: int = 2  # queued + running jobs of one user


@dataclass(frozen=True)
class Admission:
    allowed: bool
    retry_after: float = 0.0  # seconds; 0 when allowed or when the wait depends on a job finishing
    reason: str = ""  # one line for the user when refused
    job_id: int | None = None  # set by admit_and_create_job when allowed
    refusal: str = ""  # which limit refused it: "active_jobs", "user_rate" or "server_rate" (for metrics)


@dataclass(frozen=True)
class JobRecord:
    id: int
    user_id: str
    guild_id: str | None
    channel_id: str | None
    kind: str
    params: dict[str, Any]
    seed: int
    status: str
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    timings: dict[str, float] | None
    result_location: str | None
    result_message_link: str | None
    owner: str | None = None  # the bot process holding it while queued or running (see Store.claim_job)
    lease_expires_at: float | None = None  # epoch seconds; past it, another process may adopt the job
    delivery: str | None = None  # where its result went (models.DELIVERY_STATES); None: nothing to post
    delivery_attempts: int = 0  # posts of the result tried so far
    delivery_tried_at: float | None = None  # epoch seconds the last try began
    delivery_error: str | None = None  # why the last try failed, or why it is undeliverable
    reply_to: str | None = None  # the message id the result answers (the request, or its acknowledgement)
    # Inputs are loaded by get_job, jobs_to_recover and claim_job only; listings leave them None.
    image: bytes | None = field(default=None, repr=False)
    guide: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class GuildSettings:
    guild_id: str
    prefix: str | None = None
    user_burst: int | None = None
    user_refill_seconds: float | None = None
    guild_jobs_per_hour: int | None = None
    max_active_jobs: int | None = None
    exempt_role_ids: tuple[str, ...] = ()
    gallery_channel_id: str | None = None
    like_threshold: int | None = None
    max_job_seconds: float | None = None  # None: the bot's MAX_JOB_SECONDS
    public_gallery: bool = False  # the gallery is on the web (`dreambot web`)
    public_names: bool = False  # the web gallery shows who made each result

    def limits(self, defaults: RateLimits) -> RateLimits:
        """`defaults` with this guild's overrides applied."""
        overrides = {
            name: getattr(self, name)
            for name in ("user_burst", "user_refill_seconds", "guild_jobs_per_hour", "max_active_jobs")
            if getattr(self, name) is not None
        }
        return replace(defaults, **overrides)


@dataclass(frozen=True)
class GalleryItem:
    id: int
    job_id: int
    guild_id: str | None
    channel_id: str | None
    message_link: str
    kind: str
    params: dict[str, Any]
    likes: int
    created_at: datetime
    # From the entry's job: who asked, the seed that reproduces it, and where its file is.
    user_id: str
    seed: int
    result_location: str | None


@dataclass(frozen=True)
class LikeResult:
    added: bool  # False when this user had already liked the entry
    likes: int  # the entry's count afterwards


@dataclass(frozen=True)
class Quota:
    exempt: bool
    user_available: int | None  # jobs the user could start now, ignoring the active cap; None: no limit
    user_burst: int
    user_next_in: float  # seconds until one more refills; 0 when full
    guild_available: int | None  # None outside a guild or when the guild limit is off
    active_jobs: int
    max_active_jobs: int


@dataclass(frozen=True)
class Stats:
    jobs_by_status: dict[str, int]
    jobs_by_kind: dict[str, int]
    users: int  # distinct users with at least one job
    gallery_entries: int
    likes: int

    @property
    def jobs(self) -> int:
        return sum(self.jobs_by_status.values())
