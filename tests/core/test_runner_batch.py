"""JobRunner.run_batch: dreams that differ only in seed and photo share passes; everything else runs alone."""

from __future__ import annotations

import pytest
import torch

from dataclasses import replace

from core.errors import InvalidImage, JobCancelled
from core.images import decode_image, to_tensor
from core.jobs import JobResult, ProgressEvent
from core.spec import compile_job

TINY = {"steps": 2, "octaves": 2, "max_side": 96}


def pixels(result: JobResult) -> torch.Tensor:
    return to_tensor(decode_image(result.data).rgb)


def test_a_batch_of_same_size_dreams_equals_separate_runs(runner, photo_bytes):
    photos = [photo_bytes(name, (96, 64)) for name in ("chelsea.png", "coffee.png", "astronaut.png")]
    specs = [compile_job("dream", TINY, images=[photo], seed=seed) for photo, seed in zip(photos, (5, 6, 7))]
    events: list[list[ProgressEvent]] = [[], [], []]
    settled: list[int] = []
    together = runner.run_batch(specs, [e.append for e in events], None, on_outcome=lambda i, _: settled.append(i))
    alone = [runner.run(spec) for spec in specs]
    assert sorted(settled) == [0, 1, 2]
    for batched, single, spec in zip(together, alone, specs):
        assert isinstance(batched, JobResult), batched
        assert batched.metadata["batch_size"] == 3 and batched.metadata["seed"] == spec.seed
        assert batched.metadata["params"] == single.metadata["params"] and batched.metadata["size"] == [96, 64]
        assert float((pixels(batched) - pixels(single)).abs().mean()) < 1 / 255
    # Every job sees the group's steps, then its own encode.
    for job_events in events:
        assert [(e.stage, e.step) for e in job_events[:-1]] == [(f"octave {o}/2", s) for o in (1, 2) for s in (1, 2)]
        assert job_events[-1].stage == "encode"
        assert [e.fraction for e in job_events] == sorted(e.fraction for e in job_events)


def test_a_mixed_batch_puts_each_outcome_in_its_slot(runner, photo_bytes):
    small, large = photo_bytes("chelsea.png", (64, 48)), photo_bytes("coffee.png", (96, 64))
    specs = [
        compile_job("dream", TINY, images=[small], seed=1),
        compile_job("visualize", {"size": 64, "steps": 10}, seed=2),
        compile_job("dream", TINY, images=[large], seed=3),  # another size: runs alone
        # A spec whose photo got damaged after it was compiled: only its own job fails.
        replace(compile_job("dream", TINY, images=[small], seed=4), image=b"not an image"),
        compile_job("dream", {**TINY, "strength": 2}, images=[small], seed=5),  # other params: its own group
        compile_job("dream", TINY, images=[small], seed=6),  # joins the first
    ]
    out = runner.run_batch(specs)
    assert [type(o).__name__ for o in out] == ["JobResult", "JobResult", "JobResult", "InvalidImage", "JobResult", "JobResult"]
    assert isinstance(out[3], InvalidImage) and "batch_size" not in out[4].metadata
    first, visual, alone, last = out[0], out[1], out[2], out[5]
    assert first.metadata["batch_size"] == last.metadata["batch_size"] == 2
    assert first.metadata["size"] == last.metadata["size"] == [64, 48] and first.data != last.data
    assert "batch_size" not in alone.metadata and alone.metadata["size"] == [96, 64]
    assert visual.metadata["kind"] == "visualize" and "class_name" in visual.metadata
    assert alone.data == runner.run(specs[2]).data  # a job alone in a batch runs exactly as `run`
    for result in (first, alone, last):
        assert decode_image(result.data).rgb.size == tuple(result.metadata["size"])
    assert decode_image(visual.data).rgb.size == (64, 64)


def test_a_cancelled_job_in_a_group_gets_cancelled_and_the_others_finish(runner, photo_bytes):
    photo = photo_bytes("chelsea.png", (64, 48))
    specs = [compile_job("dream", TINY, images=[photo], seed=seed) for seed in (1, 2, 3)]
    steps: list[ProgressEvent] = []
    out = runner.run_batch(specs, [steps.append, None, None], [None, lambda: True, None])
    assert isinstance(out[0], JobResult) and isinstance(out[1], JobCancelled) and isinstance(out[2], JobResult)
    assert len([e for e in steps if e.stage != "encode"]) == 4  # the group ran to its end for the others
    # Only when every job of the group is cancelled does the group stop early.
    seen: list[ProgressEvent] = []
    out = runner.run_batch(specs, [seen.append, None, None], [lambda: True] * 3)
    assert all(isinstance(o, JobCancelled) for o in out) and seen == []


def test_run_batch_needs_one_callback_entry_per_spec(runner):
    with pytest.raises(AssertionError, match="one progress and one should_cancel"):
        runner.run_batch([compile_job("visualize"), compile_job("visualize")], [None])
