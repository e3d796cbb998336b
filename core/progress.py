"""One honest percentage per job: spans of the whole that each piece of work fills, and a guard
that keeps the fraction from ever going back.

A job's work is nested (frames hold octaves, octaves hold steps); each level hands the level below
the `Span` of the job's progress it owns, so the innermost loop reports a fraction of the whole job.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .jobs import ProgressCallback, ProgressEvent

__all__ = ["Span", "monotonic", "report_stage"]


@dataclass(frozen=True)
class Span:
    """The part [start, end] of a job's progress that one piece of work fills."""

    start: float = 0.0
    end: float = 1.0

    def at(self, fraction: float) -> float:
        """The job's fraction once `fraction` (0..1) of this piece is done."""
        return self.start + (self.end - self.start) * min(1.0, max(0.0, fraction))

    def part(self, index: int, count: int) -> Span:
        """The index-th of `count` equal parts of this span (frames of a zoom)."""
        return Span(self.at(index / count), self.at((index + 1) / count))

    def head(self, share: float) -> Span:
        """The first `share` of this span (the work before encoding)."""
        return Span(self.start, self.at(share))


def monotonic(callback: ProgressCallback | None) -> ProgressCallback | None:
    """`callback` seeing a fraction that never decreases (a batch retried alone starts over, say)."""
    if callback is None:
        return None
    highest = 0.0

    def report(event: ProgressEvent) -> None:
        nonlocal highest
        highest = max(highest, event.fraction)
        callback(event if event.fraction == highest else replace(event, fraction=highest))

    return report


def report_stage(progress: ProgressCallback | None, stage: str, fraction: float) -> None:
    """A one-off event, such as "encode", at `fraction` of the whole job."""
    if progress is not None:
        progress(ProgressEvent(stage, 0, 1, fraction))
