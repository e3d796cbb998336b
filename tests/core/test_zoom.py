from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageSequence

from core.spec import compile_job
from core.zoom import encode_gif


def _frames(data: bytes) -> tuple[Image.Image, list[np.ndarray]]:
    gif = Image.open(io.BytesIO(data))
    frames = [np.asarray(f.convert("RGB"), dtype=np.float32) / 255 for f in ImageSequence.Iterator(gif)]
    return gif, frames


@pytest.mark.parametrize("start", ["photo", "noise"])
def test_zoom_gif_has_the_frames_loops_and_is_continuous(runner, photo_bytes, start):
    image = photo_bytes("coffee.png", (120, 80)) if start == "photo" else None
    params = {"frames": 6, "size": 120, "steps": 2, "octaves": 2, "rotate": 2}
    result = runner.run(compile_job("zoom", params, images=[image] if image else [], seed=1))
    gif, frames = _frames(result.data)
    assert result.mime_type == "image/gif" and gif.format == "GIF"
    assert gif.n_frames == 6 and gif.info.get("loop") == 0
    assert len(result.data) <= 10 * 1024 * 1024
    # Each frame grows out of the previous one: neighbours correlate far more than a frame and a shifted copy.
    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a.mean(axis=2).ravel(), b.mean(axis=2).ravel())[0, 1])

    neighbours = [corr(a, b) for a, b in zip(frames, frames[1:])]
    unrelated = [corr(f, np.roll(f, f.shape[0] // 2, axis=(0, 1))) for f in frames]
    assert min(neighbours) > 0.4
    assert np.mean(neighbours) > np.mean(unrelated) + 0.3


def test_zoom_respects_a_tight_byte_budget(runner):
    params = {"frames": 8, "size": 160, "steps": 1, "octaves": 1, "max_bytes": 64 * 1024}
    result = runner.run(compile_job("zoom", params, seed=2))
    assert len(result.data) <= 64 * 1024
    gif, _ = _frames(result.data)
    assert gif.n_frames == result.metadata["frames"] >= 1 and gif.info.get("loop") == 0


def test_encode_gif_shrinks_colours_then_size_then_frames():
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)) for _ in range(6)]
    roomy, report = encode_gif(frames, 10 * 1024 * 1024)
    assert report.colors == 256 and report.frames == 6 and report.size == (96, 96) and len(roomy) == report.bytes

    for budget in (len(roomy) // 2, len(roomy) // 8, 4096):
        data, report = encode_gif(frames, budget)
        assert len(data) <= budget, f"{len(data)} > {budget}"
        gif = Image.open(io.BytesIO(data))
        assert gif.n_frames == report.frames and gif.size == report.size
    assert report.frames < 6 or report.size < (96, 96)
