"""ORM tables. They must match migrations/versions exactly (tests/bot/store/test_models.py checks this).

Ids from Discord (users, guilds, channels, roles) are kept as strings: they exceed 2**53 and the
console front uses names, not numbers. Times are epoch seconds (floats); those that record when
something happened come from the database's clock (see database.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "User", "GuildSettingsRow", "RateLimitState", "Job", "GalleryEntry", "Like", "JOB_STATUSES",
           "DELIVERY_STATES", "RESULT_REMOVALS", "MAX_ID"]

JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")
MAX_ID = 2**31 - 1  # ids are 32-bit integer columns: a larger number names no row (and PostgreSQL refuses it)
# Where a finished job's result went: still to post, posted, sent to its requester by DM because
# its channel is gone, or nowhere (the reason is in delivery_error). NULL: nothing to post (console).
DELIVERY_STATES = ("pending", "posted", "sent_by_dm", "undeliverable")
# Why a finished job's result file is gone: deleted by the retention sweep, or found gone (deleted
# by hand). NULL: its file is kept.
RESULT_REMOVALS = ("expired", "missing")

# Explicit constraint names, so the migrations can name the same constraints and later batch
# migrations on SQLite (which recreate tables) can find them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)


class GuildSettingsRow(Base):
    """Per-guild overrides; NULL means "use the default from Settings"."""

    __tablename__ = "guild_settings"

    guild_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    prefix: Mapped[str | None] = mapped_column(String(16))
    user_burst: Mapped[int | None] = mapped_column(Integer)
    user_refill_seconds: Mapped[float | None] = mapped_column(Float)
    guild_jobs_per_hour: Mapped[int | None] = mapped_column(Integer)
    max_active_jobs: Mapped[int | None] = mapped_column(Integer)
    exempt_role_ids: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    gallery_channel_id: Mapped[str | None] = mapped_column(String(64))
    like_threshold: Mapped[int | None] = mapped_column(Integer)
    # Added in 0003: a lower cap than the bot's on one job's predicted seconds.
    max_job_seconds: Mapped[float | None] = mapped_column(Float)
    # Added in 0005: the server's gallery is on the web, and (apart from that) who made each result.
    public_gallery: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    public_names: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)
    # Added in 0012: the server's name and icon as the bot last saw them (for the web gallery).
    name: Mapped[str | None] = mapped_column(String(100))
    icon_url: Mapped[str | None] = mapped_column(Text)


class RateLimitState(Base):
    """One GCRA bucket: `tat` is the theoretical arrival time (epoch seconds) of the next request."""

    __tablename__ = "rate_limit_state"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)  # "user:<id>" or "guild:<id>"
    tat: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("status IN (" + ", ".join(f"'{s}'" for s in JOB_STATUSES) + ")", name="status"),
        Index("ix_jobs_user_id_status", "user_id", "status"),
        Index("ix_jobs_status_id", "status", "id"),
        Index("ix_jobs_guild_id", "guild_id"),
        Index("ix_jobs_owner", "owner"),
        Index("ix_jobs_status_finished_at", "status", "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64), ForeignKey("users.id"), nullable=False)
    guild_id: Mapped[str | None] = mapped_column(String(64))
    channel_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    seed: Mapped[int] = mapped_column(Integer, nullable=False)
    # Inputs are kept so queued jobs can be re-run after a restart; they are capped by the fronts.
    image: Mapped[bytes | None] = mapped_column(LargeBinary)
    guide: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    timings: Mapped[dict[str, float] | None] = mapped_column(JSON)
    result_location: Mapped[str | None] = mapped_column(Text)
    # Added in 0002: the link of the message that carries the result.
    result_message_link: Mapped[str | None] = mapped_column(Text)
    # Added in 0004: the bot process that holds this queued or running job, and until when (epoch
    # seconds) unless it renews the lease. NULL owner or a past expiry: any process may adopt it.
    owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[float | None] = mapped_column(Float)
    # Added in 0006: whether the result reached its channel (DELIVERY_STATES), how many posts were
    # tried, when the last began (epoch seconds) and why the last failed.
    delivery: Mapped[str | None] = mapped_column(String(16), index=True)
    delivery_attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    delivery_tried_at: Mapped[float | None] = mapped_column(Float)
    delivery_error: Mapped[str | None] = mapped_column(Text)
    # Added in 0007: the message the result answers (the request, or its acknowledgement), if any.
    reply_to: Mapped[str | None] = mapped_column(String(64))
    # Added in 0008: the front that asked ("discord", "console"), the command that makes the same
    # result (without the prefix), and the result's media type.
    front: Mapped[str | None] = mapped_column(String(16))
    command: Mapped[str | None] = mapped_column(Text)
    result_type: Mapped[str | None] = mapped_column(String(32))
    # Added in 0010: why its result file is gone (RESULT_REMOVALS), and when that was recorded.
    result_removed: Mapped[str | None] = mapped_column(String(16))
    result_removed_at: Mapped[float | None] = mapped_column(Float)
    # Added in 0011: whether the member who asked had one of the server's exempt roles then.
    exempt: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())


class GalleryEntry(Base):
    __tablename__ = "gallery_entries"
    __table_args__ = (
        Index("ix_gallery_entries_guild_id_created_at", "guild_id", "created_at"),
        Index("ix_gallery_entries_guild_id_likes", "guild_id", "likes"),
        Index("ix_gallery_entries_message_link", "message_link"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # One entry per job, which makes adding an entry idempotent.
    job_id: Mapped[int] = mapped_column(Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, unique=True)
    guild_id: Mapped[str | None] = mapped_column(String(64))
    channel_id: Mapped[str | None] = mapped_column(String(64))
    message_link: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    # Denormalised count, changed in the same transaction as the likes rows, for cheap "top".
    likes: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    # Added in 0005: when its Discord message was deleted; a removed entry is in no gallery.
    removed_at: Mapped[float | None] = mapped_column(Float)
    # Added in 0006: when it was reposted in its server's gallery channel (it is, once).
    featured_at: Mapped[float | None] = mapped_column(Float)


class Like(Base):
    __tablename__ = "likes"

    entry_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("gallery_entries.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
