"""A job as plain data, and the one function every executor backend calls to run it.

Only `JobSpec`, `JobResult` and `ProgressEvent` cross a process boundary: they are small,
picklable dataclasses of bytes, numbers and strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

__all__ = ["JobKind", "JobSpec", "JobResult", "ProgressEvent", "ProgressCallback", "CancelCheck", "JOB_KINDS"]

JobKind = Literal["dream", "visualize", "zoom"]
JOB_KINDS: tuple[str, ...] = ("dream", "visualize", "zoom")


@dataclass(frozen=True)
class JobSpec:
    """What to run. `params` holds only JSON-compatible values (see core.params for the keys)."""

    kind: JobKind
    params: dict[str, Any] = field(default_factory=dict)
    image: bytes | None = None  # the photo to dream on (dream; optional for zoom)
    guide: bytes | None = None  # optional guide image (dream)
    seed: int = 0


@dataclass(frozen=True)
class JobResult:
    data: bytes
    mime_type: str  # "image/png", "image/jpeg" or "image/gif"
    metadata: dict[str, Any] = field(default_factory=dict)  # resolved parameters, sizes, class probability...
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def extension(self) -> str:
        return {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}[self.mime_type]


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # e.g. "octave 2/4", "render", "frame 3/12", "encode"
    step: int
    total: int


ProgressCallback = Callable[[ProgressEvent], None]
CancelCheck = Callable[[], bool]
