"""Time caps on jobs: which cap applies to whom, and the one line that explains a refusal.

A job's predicted seconds on the device in use (`Executor.predict`) must fit its cap before it is
admitted. The bot's MAX_JOB_SECONDS bounds everything; a server's admins may set a lower cap, and
members of the server's exempt roles may go up to the bot's.
"""

from __future__ import annotations

from core.jobs import JobSpec

from .store import wait_text

__all__ = ["job_time_cap", "over_cap_reason", "LOWER_HINTS"]

# What to ask for less of, per kind, in the words of its options.
LOWER_HINTS = {
    "dream": "a smaller max_side, fewer steps or fewer octaves",
    "visualize": "a smaller size or fewer steps",
    "zoom": "fewer frames or a smaller size",
    "video": "a shorter clip, a smaller max_side or fewer steps",
}


def job_time_cap(global_cap: float, guild_cap: float | None, *, exempt: bool) -> float:
    """Seconds a job of this requester may be predicted to take."""
    if exempt or guild_cap is None:
        return global_cap
    return min(global_cap, guild_cap)


def over_cap_reason(spec: JobSpec, predicted: float, cap: float) -> str:
    return (f"this {spec.kind} would take about {wait_text(predicted)} here, over the {wait_text(cap)} limit; "
            f"ask for {LOWER_HINTS[spec.kind]}")
