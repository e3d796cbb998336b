"""A job as plain data (core.jobs): specs, results and progress events cross process boundaries as
they are; a job's progress is one fraction that each piece of work fills a span of, never going back."""

from __future__ import annotations

import pickle

import pytest

from core.jobs import (
    FILE_EXTENSIONS,
    JOB_KINDS,
    MIME_TYPES,
    JobCost,
    JobResult,
    JobSpec,
    ProgressEvent,
    Span,
    monotonic,
    report_stage,
)
from core.params import DreamParams, VisualizeParams


def test_the_monotonic_guard_holds_the_highest_fraction():
    seen: list[float] = []
    report = monotonic(lambda e: seen.append(e.fraction))
    for fraction in (0.1, 0.5, 0.2, 0.6):
        report(ProgressEvent("step", 1, 1, fraction))
    assert seen == [0.1, 0.5, 0.5, 0.6]
    assert Span(0.2, 0.6).part(1, 4) == Span(0.3, 0.4) and Span().head(0.9).at(0.5) == 0.45


def test_a_held_back_event_keeps_what_it_says_but_its_fraction():
    seen: list[ProgressEvent] = []
    report = monotonic(seen.append)
    first, late = ProgressEvent("octave 2/2", 3, 5, 0.7, eta=4.0), ProgressEvent("octave 1/2", 1, 5, 0.2, eta=9.0)
    report(first)
    report(late)
    assert seen[0] is first  # nothing to change: passed on as it is
    assert seen[1] == ProgressEvent("octave 1/2", 1, 5, 0.7, eta=9.0)
    assert monotonic(None) is None


def test_each_guard_has_its_own_highest_fraction():
    a, b = [], []
    report_a, report_b = monotonic(lambda e: a.append(e.fraction)), monotonic(lambda e: b.append(e.fraction))
    report_a(ProgressEvent("x", 0, 1, 0.8))
    report_b(ProgressEvent("x", 0, 1, 0.1))
    assert a == [0.8] and b == [0.1]


def test_a_span_maps_its_piece_onto_the_whole_and_clamps_outside_it():
    span = Span(0.2, 0.6)
    assert [span.at(f) for f in (0.0, 0.5, 1.0)] == pytest.approx([0.2, 0.4, 0.6])
    assert span.at(-3.0) == 0.2 and span.at(7.0) == 0.6  # a piece never reports outside its span
    parts = [span.part(i, 4) for i in range(4)]
    assert parts[0].start == 0.2 and parts[-1].end == pytest.approx(0.6)
    assert all(p.end == pytest.approx(q.start) for p, q in zip(parts, parts[1:]))  # equal parts, no gap, no overlap
    assert all(p.end - p.start == pytest.approx(0.1) for p in parts)
    head = Span(0.5, 1.0).head(0.8)
    assert head == Span(0.5, pytest.approx(0.9))
    assert Span().part(2, 3).head(0.5).at(1.0) == pytest.approx(5 / 6)  # spans compose


def test_report_stage_sends_one_event_at_its_fraction_or_nothing():
    seen: list[ProgressEvent] = []
    report_stage(seen.append, "encode", 0.93)
    assert seen == [ProgressEvent("encode", 0, 1, 0.93)]
    report_stage(None, "encode", 0.93)  # no callback: nothing to do, nothing raised


def test_each_file_type_has_one_extension_and_back():
    assert len(set(FILE_EXTENSIONS.values())) == len(FILE_EXTENSIONS)
    for mime, extension in FILE_EXTENSIONS.items():
        assert MIME_TYPES[extension] == mime and JobResult(b"", mime).extension == extension
    assert {"image/png", "image/jpeg", "image/gif", "image/webp", "video/mp4"} <= set(FILE_EXTENSIONS)


def test_a_cost_counts_decoding_and_encoding_as_its_pixels():
    cost = JobCost(network=12.5, passes=40, decode=0.25, encode=1.5)
    assert cost.pixels == pytest.approx(1.75)


def test_dreams_that_differ_only_in_seed_and_photo_share_a_batch_key():
    params = DreamParams(layer="block8")
    one = JobSpec("dream", params, image=b"photo one", seed=1)
    other = JobSpec("dream", params, image=b"photo two", seed=2)
    assert one.batch_key is not None and one.batch_key == other.batch_key
    assert JobSpec("dream", DreamParams(layer="block8", strength=2.0), image=b"x").batch_key != one.batch_key
    assert JobSpec("dream", params, image=b"x", guide=b"g").batch_key is None  # a guide's features are its own
    assert JobSpec("visualize", VisualizeParams()).batch_key is None
    assert "video" in JOB_KINDS and "dream" in JOB_KINDS


def test_specs_results_and_events_cross_a_process_boundary_as_they_are():
    spec = JobSpec("dream", DreamParams(channel=(1, 2)), image=b"\x89PNG", seed=7, cost=JobCost(1.0, 2, 0.5, 0.5))
    result = JobResult(b"data", "image/png", {"seed": 7, "params": {"channel": [1, 2]}}, {"total": 1.5})
    event = ProgressEvent("frame 3/12", 2, 5, 0.4, eta=12.0)
    for value in (spec, result, event):
        assert pickle.loads(pickle.dumps(value)) == value
