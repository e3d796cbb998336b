"""A job as plain data: what crosses a process boundary and goes into the store.

Only `JobSpec`, `JobResult` and `ProgressEvent` cross a process boundary: they are small,
picklable dataclasses of bytes, numbers, strings and frozen params. A `JobSpec` is made by
`core.spec.compile_job`, which checks every name and range once; everything after trusts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Hashable, Literal

if TYPE_CHECKING:
    from .cost import JobCost
    from .params import JobParams

__all__ = ["JobKind", "JobSpec", "JobResult", "ProgressEvent", "ProgressCallback", "CancelCheck", "JOB_KINDS", "FILE_EXTENSIONS", "MIME_TYPES"]

JobKind = Literal["dream", "visualize", "zoom", "video"]
# "video" is a dream whose input is a clip: users ask for a dream, and compile_job tells the two apart by the input.
JOB_KINDS: tuple[str, ...] = ("dream", "visualize", "zoom", "video")


@dataclass(frozen=True)
class JobSpec:
    """What to run: a compiled job (see `core.spec.compile_job`); workers trust it as it is."""

    kind: JobKind
    params: JobParams  # the frozen params dataclass of `kind`, names resolved
    image: bytes | None = None  # the photo to dream on (dream; optional for zoom), or the clip (video)
    guide: bytes | None = None  # optional guide image (dream)
    seed: int = 0
    cost: JobCost | None = None  # work it takes (core.cost); None only for specs built by hand in tests

    @property
    def batch_key(self) -> Hashable | None:
        """Jobs with equal keys may share passes: dreams without a guide and with equal params.

        The seed and the photo may differ; the runner puts only photos of one fitted size in one pass.
        """
        if self.kind != "dream" or self.guide is not None:
            return None
        return (self.kind, self.params)


@dataclass(frozen=True)
class JobResult:
    data: bytes
    mime_type: str  # "image/png", "image/jpeg", "image/gif", "image/webp" or "video/mp4"
    metadata: dict[str, Any] = field(default_factory=dict)  # resolved parameters, sizes, class probability...
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def extension(self) -> str:
        return FILE_EXTENSIONS[self.mime_type]


# A result's file name ends with the extension of its type (the web gallery reads the type back from it).
FILE_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp", "video/mp4": "mp4"}
MIME_TYPES = {extension: mime for mime, extension in FILE_EXTENSIONS.items()}  # a stored result's type, from its file name


@dataclass(frozen=True)
class ProgressEvent:
    """How far one job is. `fraction` covers the whole job (all frames, octaves and steps, and
    encoding), weighted by the work each part takes, and never goes back."""

    stage: str  # e.g. "octave 2/4", "render", "frame 3/12", "encode"
    step: int  # steps done within the stage
    total: int  # steps in the stage
    fraction: float = 0.0  # of the whole job, 0..1
    eta: float | None = None  # seconds left, when a front's service has estimated it


ProgressCallback = Callable[[ProgressEvent], None]
CancelCheck = Callable[[], bool]
