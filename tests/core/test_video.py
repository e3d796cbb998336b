"""Video dreams: coherent along the motion, the clip's shape, rate and sound kept, progress and cancel by frame."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import torch

from core.clip_encoding import encode_clip
from core.clips import decode_clip, probe_clip
from core.dream import DreamSettings
from core.errors import JobCancelled
from core.flow import mean_change, warp_error
from core.params import VideoParams, fields_for
from core.runner import build_dream_objective
from core.spec import compile_job
from core.video import CoherenceSettings, dream_clip
from tests.clip_making import encode_video, pan_and_zoom

QUICK = {"steps": 1, "octaves": 1}  # the clip's handling, not the dream, is under test


@pytest.fixture(scope="module")
def frames(photo_path):
    return pan_and_zoom(photo_path("chelsea.png"), 24, (128, 96))


@pytest.fixture(scope="module")
def mp4(frames):
    return encode_video(frames, fps=24)


@pytest.fixture(scope="module")
def mp4_with_sound(frames):
    return encode_video(frames, fps=24, audio_seconds=1.0)


def test_flow_coherent_dreams_flicker_half_as_much_as_frames_dreamt_alone(runner, lite0, photo_path):
    """The issue's measure: the warp error of the output at the defaults, against each frame dreamt
    alone at the same settings and seed, on pixels that pass the consistency check."""
    small = encode_video(pan_and_zoom(photo_path("chelsea.png"), 24, (96, 72)))  # dreaming 24 frames alone is the slow part
    inputs = decode_clip(small, max_side=320).frames
    p = VideoParams()
    objective = build_dream_objective(lite0, p.model, "block8", (), None, runner.device)

    def run(blend: float, seed: int) -> list[np.ndarray]:
        coherence = CoherenceSettings(blend=blend)
        return dream_clip(lite0, objective, inputs, fields_for(DreamSettings, p), coherence, torch.Generator().manual_seed(seed))

    # Every seed must pass. Over seeds 0-4 the ratio was 0.426-0.430 and the change 5.43-5.50
    # levels: the bounds sit well outside that spread.
    for seed in (7, 8, 9):
        coherent, alone = run(p.blend, seed), run(0.0, seed)
        ratio = warp_error(coherent, inputs) / warp_error(alone, inputs)
        assert ratio <= 0.5, f"seed {seed}: flow-coherent warp error is {ratio:.2f}x dreaming each frame alone"
        assert mean_change(coherent, inputs) >= 4 / 255, f"seed {seed}"  # still visibly dreamt, not held still by doing nothing


def test_a_clip_keeps_its_frames_size_and_rate(runner, mp4):
    result = runner.run(compile_job("dream", QUICK, images=[mp4], seed=1))
    assert result.mime_type == "video/mp4" and result.extension == "mp4"
    info = probe_clip(result.data)
    assert (info.width, info.height, info.frames, info.fps) == (128, 96, 24, 24.0)
    with av.open(io.BytesIO(result.data)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
    assert result.data.find(b"moov") < result.data.find(b"mdat")  # fast start: the index comes first
    assert result.metadata["frames"] == 24 and result.metadata["kind"] == "video"


def test_the_sound_is_kept(runner, mp4_with_sound):
    result = runner.run(compile_job("dream", QUICK, images=[mp4_with_sound], seed=1))
    assert result.metadata["audio"] is True
    with av.open(io.BytesIO(result.data)) as container:
        audio = container.streams.audio[0]
        samples = np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio)])
    assert audio.codec_context.name == "aac" and audio.rate == 48000
    assert len(samples) == pytest.approx(48000, rel=0.1)  # a second of it
    spectrum = np.abs(np.fft.rfft(samples[4800:4800 + 24000]))
    assert np.argmax(spectrum) * 48000 / 24000 == pytest.approx(440, abs=4)  # the tone itself


def test_a_webm_with_opus_sound_becomes_an_mp4_with_aac(runner, frames):
    webm = encode_video(frames[:8], fps=8, codec="libvpx-vp9", container="webm", audio_seconds=1.0)
    result = runner.run(compile_job("dream", QUICK, images=[webm], seed=1))
    info = probe_clip(result.data)
    assert (info.container, info.frames, info.fps, info.has_audio) == ("mp4", 8, 8.0, True)


@pytest.mark.parametrize(("fmt", "mime"), [("gif", "image/gif"), ("webp", "image/webp")])
def test_gif_and_webp_when_asked(runner, mp4, fmt, mime):
    result = runner.run(compile_job("dream", {**QUICK, "format": fmt}, images=[mp4], seed=1))
    assert result.mime_type == mime
    assert probe_clip(result.data).frames == 24


def test_progress_counts_frames_and_cancel_stops_between_them(runner, mp4):
    spec = compile_job("dream", QUICK, images=[mp4], seed=1)
    events = []
    runner.run(spec, progress=events.append)
    fractions = [event.fraction for event in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[-2] > 0.9
    assert any(event.stage.startswith("frame 24/24") for event in events)
    seen = []

    def cancel_after_three_frames() -> bool:
        return sum(event.stage.startswith("frame 3/") for event in seen) > 0

    with pytest.raises(JobCancelled):
        runner.run(spec, progress=seen.append, should_cancel=cancel_after_three_frames)
    assert not any(event.stage.startswith("frame 5/") for event in seen)


def test_an_mp4_fits_its_budget_by_bitrate_then_size(frames):
    noisy = [np.clip(f.astype(int) + np.random.default_rng(i).integers(-60, 60, f.shape), 0, 255).astype(np.uint8)
             for i, f in enumerate(frames)]
    free, _, free_report = encode_clip(noisy, 24, "mp4", 50 << 20)
    data, _, report = encode_clip(noisy, 24, "mp4", len(free) // 3)
    assert len(data) <= len(free) // 3 and report.bitrate is not None and report.size == (128, 96)
    data, _, report = encode_clip(noisy, 24, "mp4", 2_500)
    assert len(data) <= 2_500 and report.size[0] < 128  # the bitrate's floor reached: smaller frames
    assert free_report.bitrate is None  # within budget, constant quality
