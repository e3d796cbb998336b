"""Servers' settings, and what a member could start now under them (`!quota`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select

from ..guild_settings import GuildSettings, RateLimits
from .database import Database, insert_ignore
from .jobs import ACTIVE_STATUSES, effective_limits, gcra_available, guild_key, guild_settings_from_row, is_exempt, user_key
from .models import GuildSettingsRow, Job, RateLimitState
from .records import Quota

__all__ = ["GuildRows"]

_FIELDS = {f for f in GuildSettings.__dataclass_fields__ if f != "guild_id"}


class GuildRows:
    def __init__(self, db: Database, *, limits: RateLimits) -> None:
        self.db = db
        self.limits = limits

    async def get(self, guild_id: str) -> GuildSettings:
        """The server's stored overrides (all None when it has none)."""
        async with self.db.reading() as session:
            return guild_settings_from_row(str(guild_id), await session.get(GuildSettingsRow, str(guild_id)))

    async def change(self, guild_id: str, **changes: Any) -> GuildSettings:
        """Set the given fields (None resets one to the default) and return the result."""
        unknown = set(changes) - _FIELDS
        assert not unknown, f"unknown guild setting(s) {sorted(unknown)}; the fields are bot.guild_settings.GuildSettings'"
        if "exempt_role_ids" in changes:  # Discord ids arrive as ints from discord.py; the store keeps strings
            changes["exempt_role_ids"] = [str(role) for role in changes["exempt_role_ids"] or ()]
        if changes.get("gallery_channel_id") is not None:
            changes["gallery_channel_id"] = str(changes["gallery_channel_id"])
        async with self.db.writing() as session:
            # Create-if-missing then lock: two first-time changes of one server on PostgreSQL would
            # otherwise both insert its row, and the second would fail on the primary key.
            await insert_ignore(session, GuildSettingsRow.__table__,
                                {"guild_id": str(guild_id), "exempt_role_ids": [], "updated_at": self.db.now})
            row = await session.get(GuildSettingsRow, str(guild_id), with_for_update=True)
            assert row is not None, "the row was just inserted or already existed"
            for name, value in changes.items():
                setattr(row, name, value)
            row.updated_at = self.db.now
            await session.flush()
            return guild_settings_from_row(str(guild_id), row)

    def limits_of(self, settings: GuildSettings | None) -> RateLimits:
        """The limits that apply in a server: the bot's defaults with its overrides."""
        return effective_limits(settings, self.limits)

    async def quota(self, user_id: str, guild_id: str | None = None, *, roles: Iterable[str] = (),
                    now: float | None = None) -> Quota:
        """What the user could start right now, without consuming anything."""
        async with self.db.reading() as session:
            now = await self.db.read_clock(session, now)  # the clock admission's buckets run on too
            settings = guild_settings_from_row(guild_id, await session.get(GuildSettingsRow, guild_id)) if guild_id else None
            limits = effective_limits(settings, self.limits)
            exempt = is_exempt(settings, roles)
            keys = [user_key(user_id)] + ([guild_key(guild_id)] if guild_id is not None else [])
            rows = await session.execute(select(RateLimitState.key, RateLimitState.tat).where(RateLimitState.key.in_(keys)))
            tats = dict(rows.all())
            active = await session.execute(
                select(func.count()).select_from(Job).where(Job.user_id == user_id, Job.status.in_(ACTIVE_STATUSES)))
            active_jobs = int(active.scalar_one())
        user_available, user_next_in = (gcra_available(tats.get(user_key(user_id)), now, burst=limits.user_burst,
                                                       interval=limits.user_refill_seconds)
                                        if limits.user_burst > 0 else (None, 0.0))
        guild_available = None
        if guild_id is not None and limits.guild_jobs_per_hour > 0:
            per_hour = limits.guild_jobs_per_hour
            guild_available, _ = gcra_available(tats.get(guild_key(guild_id)), now, burst=per_hour, interval=3600.0 / per_hour)
        return Quota(exempt=exempt, user_available=user_available, user_burst=limits.user_burst, user_next_in=user_next_in,
                     guild_available=guild_available, active_jobs=active_jobs, max_active_jobs=limits.max_active_jobs)
