"""One honest percentage per job: it covers every frame, octave and step, and never goes back."""

from __future__ import annotations

import pytest

from core.jobs import ProgressEvent
from core.jobs import Span, monotonic
from core.cost import work_share
from core.spec import compile_job


def _fractions(runner, spec) -> list[ProgressEvent]:
    events: list[ProgressEvent] = []
    runner.run(spec, progress=events.append)
    return events


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("dream", {"steps": 3, "octaves": 3, "max_side": 96}),
        ("visualize", {"steps": 12, "size": 64}),
        ("zoom", {"frames": 4, "size": 64, "steps": 2, "octaves": 2}),
    ],
)
def test_progress_of_every_kind_rises_to_the_end_and_never_goes_back(runner, photo_bytes, kind, options):
    images = [photo_bytes("chelsea.png", (96, 64))] if kind == "dream" else []
    spec = compile_job(kind, options, images=images, seed=0)
    events = _fractions(runner, spec)
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions), f"{kind} progress went back: {fractions}"
    assert 0 < fractions[0] < 0.5 and fractions[-1] <= 1.0
    # Encoding comes last and gets the share of the job the cost model predicts for it.
    assert events[-1].stage == "encode" and events[-1].fraction == pytest.approx(work_share(spec.cost))


def test_zoom_progress_covers_all_frames_not_each_frame_on_its_own(runner):
    events = _fractions(runner, compile_job("zoom", {"frames": 4, "size": 64, "steps": 2, "octaves": 2}, seed=0))
    work = [e for e in events if e.stage.startswith("frame")]
    ends = {e.stage.split(" octave")[0]: e.fraction for e in work}  # the last event of each frame
    encode = events[-1].fraction
    # Each frame fills an equal part of the work before encoding.
    assert [round(ends[f"frame {i}/4"] / encode, 6) for i in range(1, 5)] == [0.25, 0.5, 0.75, 1.0]


def test_the_monotonic_guard_holds_the_highest_fraction():
    seen: list[float] = []
    report = monotonic(lambda e: seen.append(e.fraction))
    for fraction in (0.1, 0.5, 0.2, 0.6):
        report(ProgressEvent("step", 1, 1, fraction))
    assert seen == [0.1, 0.5, 0.5, 0.6]
    assert Span(0.2, 0.6).part(1, 4) == Span(0.3, 0.4) and Span().head(0.9).at(0.5) == 0.45
