"""Servers' settings through the service: read, changed by admins (within the bot's own caps),
and the limits and time cap they make for a member."""

from __future__ import annotations

from typing import Any

from ..guild_settings import GuildSettings, RateLimits, SettingError
from ..store import Store
from ..store.jobs import time_cap

__all__ = ["Guilds"]


class Guilds:
    def __init__(self, *, store: Store, max_job_seconds: float) -> None:
        self.store, self.max_job_seconds = store, max_job_seconds

    async def get(self, guild_id: str) -> GuildSettings:
        return await self.store.guilds.get(guild_id)

    async def change(self, guild_id: str, **changes: Any) -> GuildSettings:
        """Change a server's settings (field names of GuildSettings); a time cap above the bot's own
        is refused with one line (SettingError)."""
        cap = changes.get("max_job_seconds")
        if cap is not None and not 0 < float(cap) <= self.max_job_seconds:
            raise SettingError(f"max_job_seconds is at most {self.max_job_seconds:g}, the bot's own limit")
        return await self.store.guilds.change(guild_id, **changes)

    async def seen(self, guild_id: str, name: str, icon_url: str | None) -> None:
        """The Discord front saw the server with this name and icon: kept for the web gallery
        (written only when they changed, since every server is seen at every start)."""
        known = await self.store.guilds.get(guild_id)
        name = name[:100]  # Discord's own limit; the column's
        if (known.name, known.icon_url) != (name, icon_url):
            await self.store.guilds.change(guild_id, name=name, icon_url=icon_url)

    def limits_of(self, settings: GuildSettings) -> RateLimits:
        """The rate limits that apply in a server: the bot's defaults with its overrides."""
        return self.store.guilds.limits_of(settings)

    def cap_of(self, settings: GuildSettings | None, *, exempt: bool = False) -> float:
        """The seconds a member's job may be predicted to take in a server."""
        return time_cap(settings, self.max_job_seconds, exempt=exempt)
