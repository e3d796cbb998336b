"""`dreambot dream PHOTO --target CLASS`: a class-guided dream from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
import skimage
from PIL import Image

from tests.clip_making import encode_video, pan_and_zoom

PHOTOS = Path(skimage.__file__).parent / "data"
CHELSEA = str(PHOTOS / "chelsea.png")  # 451 x 300
TINY = ("--steps", "2", "--octaves", "2", "--max-side", "96")


@pytest.fixture(autouse=True)
def _no_device_from_the_environment(monkeypatch):
    monkeypatch.delenv("DEVICE", raising=False)


def test_dream_toward_a_class_writes_a_png_and_says_how_it_is_seen(run, tmp_path):
    out = tmp_path / "out.png"
    code, stdout, stderr = run("dream", CHELSEA, "-o", out, "--target", "Banana", *TINY)
    assert code == 0, stderr
    assert stdout.startswith(f"wrote {out} (96x64, target banana p=") and "top-1 " in stdout
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (96, 64)


def test_an_unknown_target_is_one_line_with_the_closest_class(fails, tmp_path):
    line = fails("dream", CHELSEA, "-o", tmp_path / "out.png", "--target", "dumbel")
    assert "dumbel" in line and "dumbbell" in line


def test_a_target_and_a_guide_are_one_line(fails, tmp_path):
    line = fails("dream", CHELSEA, "-o", tmp_path / "out.png", "--target", "banana", "--guide", CHELSEA)
    assert "not both" in line


def test_a_target_on_a_video_is_one_line(fails, tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(encode_video(pan_and_zoom(PHOTOS / "chelsea.png", frames=4)))
    line = fails("dream", clip, "-o", tmp_path / "out.mp4", "--target", "banana")
    assert "target" in line and "photos only" in line
