"""The store: users, guild settings, rate limits, jobs and the gallery in one database.

SQLAlchemy 2.x async; SQLite by default, any DATABASE_URL with an async driver. The schema is owned
by the Alembic revisions in migrations/ (see `migrate`).
"""

from __future__ import annotations

from ._admission import wait_text
from ._engine import async_url
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
    StoreError,
)
from ._store import DEFAULT_LEASE_SECONDS, Store
from .migrate import upgrade, upgrade_async
from .models import MAX_ID

__all__ = [
    "Admission",
    "GalleryItem",
    "GuildSettings",
    "JobRecord",
    "LikeResult",
    "NotFound",
    "Quota",
    "RateLimits",
    "SchemaOutdated",
    "Stats",
    "Store",
    "DEFAULT_LEASE_SECONDS",
    "MAX_ID",
    "StoreError",
    "async_url",
    "upgrade",
    "upgrade_async",
    "wait_text",
]
