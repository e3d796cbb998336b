"""A job as plain data: what crosses a process boundary and goes into the store, and how its
progress is counted.

Only `JobSpec`, `JobResult` and `ProgressEvent` cross a process boundary: they are small,
picklable dataclasses of bytes, numbers, strings and frozen params. A `JobSpec` is made by
`core.spec.compile_job`, which checks every name and range once; everything after trusts it.
Its `JobCost` is the work it takes (core.cost counts it); `Rates` turn work into seconds on a
device (also core.cost). A job's progress is one honest fraction of the whole: each piece of work
fills a `Span` of it, and `monotonic` keeps the fraction from ever going back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Hashable, Literal

if TYPE_CHECKING:
    from .params import JobParams

__all__ = [
    "JobKind", "JobSpec", "JobCost", "Rates", "JobResult", "ProgressEvent", "ProgressCallback", "CancelCheck", "JOB_KINDS",
    "FILE_EXTENSIONS", "MIME_TYPES", "Span", "monotonic", "report_stage",
]

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
    cost: JobCost | None = None  # work it takes (core.cost counts it); None only for specs built by hand in tests

    @property
    def batch_key(self) -> Hashable | None:
        """Jobs with equal keys may share passes: dreams without a guide and with equal params.

        The seed and the photo may differ; the runner puts only photos of one fitted size in one pass.
        """
        if self.kind != "dream" or self.guide is not None:
            return None
        return (self.kind, self.params)


@dataclass(frozen=True)
class JobCost:
    """The work in one job, independent of the device it runs on.

    Per-step image arithmetic (roll, normalise, step, octave resizes, a zoom's frame warp, a
    render's Fourier image and transforms) is not in `pixels`: it runs in the same timed stage as
    the passes and grows with the same pixel-steps, so the network rate absorbs it, and keeping
    `pixels` to decoding and encoding lets `RateMeter` learn each rate from its own stage.
    Not counted: a guided dream's one forward pass over its guide (at most 512 px, no backward).
    """

    network: float  # GFLOP through the network: forward + backward over every step, octave, tile (with margins), frame and render crop
    passes: int  # network passes (steps x tiles x octaves x frames; render steps count RENDER_STEP_PASSES); each has a fixed cost
    decode: float  # PNG-encode-equivalent megapixels of decoding and fitting the input photo
    encode: float  # PNG-encode-equivalent megapixels of encoding the output (an animation: budget retries included)

    @property
    def pixels(self) -> float:
        """All image handling outside the network loop, in PNG-encode-equivalent megapixels."""
        return self.decode + self.encode


@dataclass(frozen=True)
class Rates:
    """How fast one kind of device does each kind of work."""

    gflops_per_second: float  # network work, forward + backward
    seconds_per_pass: float  # fixed cost of one pass whatever its size: Python and kernel launches
    megapixels_per_second: float  # decoding and encoding (PNG-encode-equivalent megapixels)
    overhead_seconds: float  # per job: building the objective, classification, result metadata


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

    stage: str  # e.g. "octave 2/4", "render", "frame 3/12", "encode", and "done" (1.0) once the result is whole
    step: int  # steps done within the stage
    total: int  # steps in the stage
    fraction: float = 0.0  # of the whole job, 0..1
    eta: float | None = None  # seconds left, when a front's service has estimated it


ProgressCallback = Callable[[ProgressEvent], None]
CancelCheck = Callable[[], bool]


# -- progress: spans of the whole job, and a fraction that never goes back ---------------------------


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


def report_done(progress: ProgressCallback | None) -> None:
    """The job's last event: its result is whole, 100% (encoding began before that, at its predicted share)."""
    if progress is not None:
        progress(ProgressEvent("done", 1, 1, 1.0))
