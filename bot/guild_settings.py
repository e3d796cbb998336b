"""A server's settings, in one place: their names, the values each takes, how an admin's words
become a value, and the bot's defaults they override (a server's override replaces the default;
store.jobs.effective_limits applies them).

The chat parser takes `!settings` options by these names, the settings cog turns an admin's text
into values with `parse_setting`, the service checks the time cap against the bot's own, and the
store keeps `GuildSettings` field by field. A setting left unset (None) follows the bot's default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from core.errors import quoted
from core.params import on_or_off

__all__ = [
    "PREFIX_LENGTH", "RateLimits", "GuildSettings", "Setting", "SETTINGS", "SettingError", "parse_setting", "setting_names",
]

PREFIX_LENGTH = 16  # the longest command prefix, the bot's own (COMMAND_PREFIX) or a server's


class SettingError(ValueError):
    """An admin's value a setting does not take; str(error) is one line for them."""


@dataclass(frozen=True)
class RateLimits:
    """Admission limits; 0 switches a limit off. A server's settings override these field by field."""

    user_burst: int = 3  # jobs a user can start back to back
    user_refill_seconds: float = 60.0  # one more job allowed every this many seconds
    guild_jobs_per_hour: int = 30  # across all users of one server, refilled evenly over the hour
    max_active_jobs: int = 2  # queued + running jobs of one user


@dataclass(frozen=True)
class GuildSettings:
    """One server's settings as stored; None (or empty) means the bot's default."""

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
    # Not settings: the server's name and icon as the Discord front last saw them (for the web).
    name: str | None = None
    icon_url: str | None = None

Kind = Literal["whole", "seconds", "switch", "prefix", "role", "channel"]


@dataclass(frozen=True)
class Setting:
    """One setting as an admin names it (`!settings user_burst:5`), and the `GuildSettings` field it sets."""

    name: str
    field: str
    kind: Kind
    low: float = 0  # whole numbers and seconds: the range an admin may give
    high: float = 0
    help: str = ""


SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("prefix", "prefix", "prefix", help=f"the command prefix, up to {PREFIX_LENGTH} characters without spaces"),
    Setting("user_burst", "user_burst", "whole", 0, 1000, "jobs a member can start back to back (0: no limit)"),
    Setting("user_refill_seconds", "user_refill_seconds", "seconds", 1, 86_400, "seconds until a member may start one more"),
    Setting("guild_jobs_per_hour", "guild_jobs_per_hour", "whole", 0, 100_000, "jobs per hour for the whole server (0: no limit)"),
    Setting("max_active_jobs", "max_active_jobs", "whole", 0, 1000, "queued and running jobs per member (0: no limit)"),
    Setting("max_job_seconds", "max_job_seconds", "seconds", 1, 86_400, "the longest a job may be expected to take, up to the bot's"),
    Setting("exempt_role", "exempt_role_ids", "role", help="a role whose members skip the limits"),
    Setting("gallery_channel", "gallery_channel_id", "channel", help="where well-liked results are reposted"),
    Setting("like_threshold", "like_threshold", "whole", 0, 1_000_000, "likes that feature a result (0: never)"),
    Setting("public_gallery", "public_gallery", "switch", help="on: the server's gallery is on the web"),
    Setting("public_names", "public_names", "switch", help="on: the web gallery shows who asked"),
)}


def setting_names() -> tuple[str, ...]:
    return tuple(SETTINGS)


def parse_setting(name: str, text: str) -> Any:
    """The value of setting `name` from an admin's `text`: a number in its range, on/off, or a
    prefix. Roles and channels are Discord's to look up, so their text comes back as it is.
    Raises SettingError with one line for anything else."""
    setting = SETTINGS[name]
    if setting.kind in ("role", "channel"):
        return text
    if setting.kind == "prefix":
        if not 1 <= len(text) <= PREFIX_LENGTH or any(c.isspace() for c in text):
            raise SettingError(f"a prefix is 1 to {PREFIX_LENGTH} characters without spaces, got {quoted(text)}")
        return text
    if setting.kind == "switch":
        switch = on_or_off(text)
        if switch is None:
            raise SettingError(f"{name} is on or off, got {quoted(text)}")
        return switch
    return _number(setting, text)


def _number(setting: Setting, text: str) -> int | float:
    whole = setting.kind == "whole"
    try:
        value: int | float = int(text) if whole else float(text)
    except ValueError:
        value = float("nan")
    if value != value or not setting.low <= value <= setting.high:
        what = "a whole number" if whole else "a number of seconds"
        raise SettingError(f"{setting.name} is {what} from {setting.low:g} to {setting.high:g}, got {quoted(text)}")
    return value
