"""Plain records the store hands out: no ORM objects leave a session, so nothing lazy-loads later.

    StoreError        base of the store's errors; str(error) is one line
    ├── NotFound      no such job or gallery entry (or not the asker's)
    └── SchemaOutdated  the database is not at the revision this code needs
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Admission", "JobRecord", "GalleryItem", "LikeResult", "Quota", "Stats", "StoreError", "NotFound", "SchemaOutdated",
]


class StoreError(Exception):
    """Base of the store's errors; str(error) is one line."""


class NotFound(StoreError):
    pass


class SchemaOutdated(StoreError):
    pass


@dataclass(frozen=True)
class Admission:
    """Whether a job was admitted, and its id; or which rule refused it and how long until it would not.

    refusal: "active_jobs", "user_rate", "server_rate" or "over_time_cap"; the service words it.
    """

    allowed: bool
    retry_after: float = 0.0  # seconds; 0 when allowed or when the wait depends on a job finishing
    refusal: str = ""
    limit: float = 0.0  # the limit that refused it: the active-job cap, the server's jobs per hour, the time cap
    job_id: int | None = None


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
    created_at: float  # epoch seconds, the database's clock, as are the two below
    started_at: float | None
    finished_at: float | None
    timings: dict[str, float] | None
    result_location: str | None
    result_message_link: str | None
    owner: str | None = None  # the bot process holding it while queued or running (see LeaseRows.claim)
    lease_expires_at: float | None = None  # epoch seconds of the database's clock; past it, another process may adopt it
    delivery: str | None = None  # where its result went (models.DELIVERY_STATES); None: nothing to post
    delivery_attempts: int = 0  # posts of the result tried so far
    delivery_tried_at: float | None = None  # epoch seconds the last try began
    delivery_error: str | None = None  # why the last try failed, or why it is undeliverable
    reply_to: str | None = None  # the message id the result answers (the request, or its acknowledgement)
    front: str | None = None  # which front asked: "discord" or "console" (None: a job from before 0008)
    command: str | None = None  # the command that makes the same result, without the prefix: "dream layer:deep seed:7"
    result_type: str | None = None  # the result's media type ("image/png", "video/mp4")
    result_removed: str | None = None  # why its result file is gone: "expired" or "missing" (None: kept)
    exempt: bool = False  # the asker had one of the server's exempt roles (the bot's own time cap applies)
    # Inputs are loaded by the methods that say so; listings leave them None.
    image: bytes | None = field(default=None, repr=False)
    guide: bytes | None = field(default=None, repr=False)


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
    created_at: float  # epoch seconds, the database's clock
    # From the entry's job: who asked, the seed and command that make it again, and where its file is.
    user_id: str
    seed: int
    command: str | None
    result_location: str | None
    result_type: str | None
    result_removed: str | None = None  # "expired" (the retention sweep deleted its file) or "missing"; None: kept


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
