"""JobRunner: `run` turns a compiled spec into a result with one honest progress fraction; `run_batch`
runs dreams that differ only in seed and photo in shared passes, and everything else alone."""

from __future__ import annotations

import pytest
import torch

from dataclasses import replace

from core.cost import work_share
from core.errors import InvalidImage, JobCancelled
from core.images import decode_image, to_tensor
from core.jobs import JobResult, ProgressEvent
from core.params import DreamParams, as_dict
from core.runner import TARGET_STEP_SHAPING, build_dream_objective, dream_settings
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
    # Every job sees the group's steps, then its own encode, then its own end at 100%.
    for job_events in events:
        assert [(e.stage, e.step) for e in job_events[:-2]] == [(f"octave {o}/2", s) for o in (1, 2) for s in (1, 2)]
        assert [(e.stage, e.fraction) for e in job_events[-2:]] == [("encode", job_events[-2].fraction), ("done", 1.0)]
        assert job_events[-2].fraction < 1.0
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
    assert len([e for e in steps if e.stage not in ("encode", "done")]) == 4  # the group ran to its end for the others
    assert steps[-1].stage == "done" and steps[-1].fraction == 1.0
    # Only when every job of the group is cancelled does the group stop early.
    seen: list[ProgressEvent] = []
    out = runner.run_batch(specs, [seen.append, None, None], [lambda: True] * 3)
    assert all(isinstance(o, JobCancelled) for o in out) and seen == []


def test_run_batch_needs_one_callback_entry_per_spec(runner):
    with pytest.raises(AssertionError, match="one progress and one should_cancel"):
        runner.run_batch([compile_job("visualize"), compile_job("visualize")], [None])


# -- progress: one honest percentage per job, covering every frame, octave and step, never going back


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
    assert 0 < fractions[0] < 0.5
    # Encoding comes last and gets the share of the job the cost model predicts for it; then the job
    # ends at exactly 100%, once, when its result is whole.
    assert events[-2].stage == "encode" and events[-2].fraction == pytest.approx(work_share(spec.cost))
    assert [(e.stage, e.fraction) for e in events if e.fraction >= 1.0] == [("done", 1.0)]
    assert events[-1] == ProgressEvent("done", 1, 1, 1.0)


def test_zoom_progress_covers_all_frames_not_each_frame_on_its_own(runner):
    events = _fractions(runner, compile_job("zoom", {"frames": 4, "size": 64, "steps": 2, "octaves": 2}, seed=0))
    work = [e for e in events if e.stage.startswith("frame")]
    ends = {e.stage.split(" octave")[0]: e.fraction for e in work}  # the last event of each frame
    encode = events[-2].fraction
    # Each frame fills an equal part of the work before encoding.
    assert [round(ends[f"frame {i}/4"] / encode, 6) for i in range(1, 5)] == [0.25, 0.5, 0.75, 1.0]


# -- run: the result and what it says about itself --------------------------------------------------


def test_a_result_records_its_kind_seed_params_and_stage_timings(runner):
    spec = compile_job("visualize", {"target": "banana", "size": 64, "steps": 10, "style": "vivid"}, seed=11)
    result = runner.run(spec)
    assert result.mime_type == "image/png" and result.extension == "png"
    assert decode_image(result.data).rgb.size == (64, 64)
    meta = result.metadata
    assert (meta["kind"], meta["seed"], meta["params"]) == ("visualize", 11, as_dict(spec.params))
    assert meta["class_name"] == "banana" and 0.0 <= meta["probability"] <= 1.0 and meta["model"] == "efficientnet-lite0"
    assert {"render", "encode", "total"} <= set(result.timings)
    assert all(seconds >= 0 for seconds in result.timings.values())
    assert result.timings["total"] >= result.timings["render"] + result.timings["encode"] - 1e-6


def test_a_job_cancelled_before_its_first_step_raises_and_reports_no_step(runner, photo_bytes):
    spec = compile_job("dream", TINY, images=[photo_bytes("chelsea.png", (64, 48))], seed=1)
    events: list[ProgressEvent] = []
    with pytest.raises(JobCancelled):
        runner.run(spec, progress=events.append, should_cancel=lambda: True)
    assert [e for e in events if e.stage in ("encode", "done")] == []


def test_networks_load_once_per_runner_whatever_the_name_s_spelling(runner):
    assert runner.network("  EfficientNet-Lite0") is runner.network("efficientnet-lite0")


@pytest.mark.parametrize(
    ("layer", "channel", "target", "name"),
    [
        ("block8", (), "", "layer:block8"),
        ("block3,block8", (), "", "layer:block3 + layer:block8"),
        ("block8", (5, 1), "", "channel:block8:5 + channel:block8:1"),
        ("logits", (), "banana", "logit:954"),
    ],
)
def test_the_dream_objective_is_the_one_the_params_ask_for(runner, lite0, layer, channel, target, name):
    objective = build_dream_objective(lite0, "efficientnet-lite0", layer, channel, None, runner.device, target=target)
    assert objective.name == name
    assert objective.layers == tuple(layer.split(","))


def test_a_guided_dream_objective_reads_the_guides_features(runner, lite0, photo_path):
    from PIL import Image

    guides = [Image.open(photo_path(name)).convert("RGB") for name in ("coffee.png", "astronaut.png")]
    objectives = [build_dream_objective(lite0, "efficientnet-lite0", "block8", (), guide, runner.device) for guide in guides]
    assert [(o.name, o.layers) for o in objectives] == [("guide:block8", ("block8",))] * 2
    image = to_tensor(Image.open(photo_path("chelsea.png")).convert("RGB").resize((64, 48)))
    with torch.no_grad():
        activations = lite0(image, ["block8"])
        scores = [float(objective(activations)) for objective in objectives]
    assert all(score > 0 for score in scores) and scores[0] != pytest.approx(scores[1], rel=1e-3)  # each holds its own guide


def test_only_a_target_dream_gets_the_step_shaping():
    plain = dream_settings(DreamParams(strength=2.0))
    shaped = dream_settings(DreamParams(target="banana", layer="logits", strength=2.0))
    assert plain.smoothing == 0.0 and plain.pull == 0.0 and plain.strength == 2.0
    assert {"smoothing": shaped.smoothing, "pull": shaped.pull} == TARGET_STEP_SHAPING and shaped.strength == 2.0
