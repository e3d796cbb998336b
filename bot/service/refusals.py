"""Why a job was refused, in one line for the user: the rule that refused it, and what to change
or how long to wait."""

from __future__ import annotations

from dataclasses import dataclass

from core.jobs import JobSpec

from ..commands import wait_text
from ..store import Admission

__all__ = ["Denied", "refusal_words"]

# What to ask for less of when a job is over its time cap, per kind, in the words of its options.
_LOWER_HINTS = {
    "dream": "a smaller max_side, fewer steps or fewer octaves",
    "visualize": "a smaller size or fewer steps",
    "zoom": "fewer frames or a smaller size",
    "video": "a shorter clip, a smaller max_side or fewer steps",
}
# Refusals that pass with time (a rate limit refills, a job ends, the bot comes back), as
# `Denied.why` names them; any other refusal stands until the request changes.
_PASS_WITH_TIME = ("active_jobs", "user_rate", "server_rate", "stopping")


@dataclass(frozen=True)
class Denied:
    reason: str  # one line for the user
    retry_after: float = 0.0
    why: str = ""  # which rule refused it (service.metrics.REFUSAL_REASONS), "" for others

    @property
    def passes_with_time(self) -> bool:
        """Whether waiting alone lets the same request through later (fronts mark those as a wait)."""
        return self.why in _PASS_WITH_TIME


def refusal_words(admission: Admission, spec: JobSpec, predicted: float) -> str:
    """The one line for a job the store refused, by the rule that refused it."""
    if admission.refusal == "over_time_cap":
        return (f"this {spec.kind} would take about {wait_text(predicted)} here, over the {wait_text(admission.limit)} "
                f"limit; ask for {_LOWER_HINTS[spec.kind]}")
    if admission.refusal == "active_jobs":
        jobs = "job" if admission.limit == 1 else "jobs"
        return f"you already have {admission.limit:g} {jobs} queued or running; wait for one to finish or cancel one"
    if admission.refusal == "server_rate":
        return (f"this server has reached its limit of {admission.limit:g} jobs per hour; "
                f"try again in {wait_text(admission.retry_after)}")
    return f"you can start another job in {wait_text(admission.retry_after)}"
