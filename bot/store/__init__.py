"""The store: users, server settings, rate limits, jobs and the gallery, in one database.

`Store.open(url)` gives the parts, each the rows of one concern: `jobs` (admission to result),
`leases` (which process holds a job), `deliveries` (results still to post), `gallery` (posted
results, likes, stats), `guilds` (server settings, quotas) and `retention` (result files that
expire, or were found gone). SQLAlchemy 2.x async; SQLite by
default. The schema is owned by the Alembic revisions in the package's migrations (see `migrate`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..guild_settings import GuildSettings, RateLimits
from .database import Database, async_url
from .deliveries import DeliveryRows
from .gallery import ORDERS, GalleryRows, Order
from .guilds import GuildRows
from .jobs import Asker, JobRows, gcra_decide
from .leases import DEFAULT_LEASE_SECONDS, LeaseRows, check_heartbeat
from .migrate import current_revision, head_revision, upgrade, upgrade_async
from .models import MAX_ID
from .retention import ResultFileRow, RetentionRows
from .records import Admission, GalleryItem, JobRecord, LikeResult, NotFound, Quota, SchemaOutdated, Stats, StoreError

__all__ = [
    "Store", "Database", "Asker", "JobRows", "LeaseRows", "DeliveryRows", "GalleryRows", "GuildRows", "RetentionRows",
    "ResultFileRow",
    "Admission", "GalleryItem", "GuildSettings", "JobRecord", "LikeResult", "NotFound", "Quota", "RateLimits",
    "SchemaOutdated", "Stats", "StoreError", "DEFAULT_LEASE_SECONDS", "check_heartbeat", "MAX_ID", "ORDERS", "Order",
    "async_url", "upgrade", "upgrade_async", "gcra_decide",
]


class Store:
    """The database's parts, one concern each, over one engine. Open with `async with Store.open(url) as store:`.

    limits: the bot's default rate limits (servers override them); lease_seconds: how long a
    process's hold on a job lasts unless renewed.
    """

    def __init__(self, database: Database, *, limits: RateLimits | None = None,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.database = database
        self.limits = limits or RateLimits()
        self.lease_seconds = lease_seconds
        self.jobs = JobRows(database, limits=self.limits, lease_seconds=lease_seconds)
        self.leases = LeaseRows(database, lease_seconds=lease_seconds)
        self.deliveries = DeliveryRows(database, lease_seconds=lease_seconds)
        self.gallery = GalleryRows(database)
        self.guilds = GuildRows(database, limits=self.limits)
        self.retention = RetentionRows(database)

    async def ping(self) -> None:
        """Raise when the database cannot be reached (a health check)."""
        from sqlalchemy import select

        async with self.database.reading() as session:
            await session.execute(select(1))

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, *, limits: RateLimits | None = None, upgrade: bool = False,
                   lease_seconds: float = DEFAULT_LEASE_SECONDS, **engine_options: Any) -> AsyncIterator[Store]:
        """Create the engine for `url`, optionally migrate to head, and dispose of it on exit.

        Without `upgrade`, a database not at the head revision raises SchemaOutdated, so a missing
        migration is one clear line rather than "no such table" later.
        """
        if upgrade:
            await upgrade_async(url)
        database = Database.open(url, **engine_options)
        try:
            if not upgrade:
                current, head = await current_revision(database.engine), head_revision()
                if current != head:
                    raise SchemaOutdated(f"database schema is at revision {current or 'none'}, this code needs {head}; "
                                         "run the migrations (dreambot db upgrade)")
            yield cls(database, limits=limits, lease_seconds=lease_seconds)
        finally:
            await database.dispose()
