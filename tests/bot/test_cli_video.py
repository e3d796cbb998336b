"""`dreambot dream clip.mp4 -o out.mp4`: a clip in, a clip out; every bad clip one line on stderr."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.clips import probe_clip
from tests.clip_making import encode_video, pan_and_zoom

QUICK = ("--steps", "1", "--octaves", "1", "--device", "cpu")


@pytest.fixture(scope="module")
def clip_frames(photo_path):
    return pan_and_zoom(photo_path("chelsea.png"), 12, (128, 96))


@pytest.fixture
def clip(tmp_path, clip_frames):
    path = tmp_path / "clip.mp4"
    path.write_bytes(encode_video(clip_frames, fps=12, audio_seconds=1.0))
    return path


def test_a_clip_dreams_into_an_mp4_with_its_frames_rate_and_sound(run, clip, tmp_path):
    code, out, err = run("dream", clip, "-o", tmp_path / "out.mp4", "--blend", "0.5", "--flow", "off", *QUICK)
    assert code == 0, err
    info = probe_clip((tmp_path / "out.mp4").read_bytes())
    assert (info.width, info.height, info.frames, info.fps, info.has_audio) == (128, 96, 12, 12.0, True)
    assert "12 frames" in out and "with sound" in out


def test_a_clip_dreams_into_a_gif(run, clip, tmp_path):
    code, _, err = run("dream", clip, "-o", tmp_path / "out.gif", *QUICK)
    assert code == 0, err
    assert Image.open(tmp_path / "out.gif").n_frames == 12


def test_a_png_named_mp4_is_dreamt_as_a_photo(run, photo_path, tmp_path):
    named = tmp_path / "photo.mp4"
    Image.open(photo_path("chelsea.png")).resize((96, 64)).save(named, "PNG")
    code, _, err = run("dream", named, "-o", tmp_path / "out.png", *QUICK)
    assert code == 0, err
    assert Image.open(tmp_path / "out.png").size == (96, 64)


def test_the_output_of_a_clip_must_be_a_clip(fails, clip, tmp_path):
    assert ".mp4" in fails("dream", clip, "-o", tmp_path / "out.png", *QUICK)


def test_a_bad_blend_is_one_line(fails, clip, tmp_path):
    assert "blend must be between 0 and 0.95" in fails("dream", clip, "-o", tmp_path / "out.mp4", "--blend", "2", *QUICK)


def test_video_options_on_a_photo_are_one_line(fails, photo_path, tmp_path):
    line = fails("dream", photo_path("chelsea.png"), "-o", tmp_path / "out.png", "--flow", "off", *QUICK)
    assert "for videos only" in line


def test_too_long(fails, tmp_path):
    tiny = [np.full((24, 32, 3), i * 10, np.uint8) for i in range(23)]
    (tmp_path / "long.mp4").write_bytes(encode_video(tiny, fps=2))  # 11.5 s
    line = fails("dream", tmp_path / "long.mp4", "-o", tmp_path / "out.mp4", *QUICK)
    assert "long.mp4" in line and "the limit is 10 s" in line


def test_too_many_pixels(fails, tmp_path):
    (tmp_path / "big.mp4").write_bytes(encode_video([np.zeros((1104, 2000, 3), np.uint8)], fps=1))
    line = fails("dream", tmp_path / "big.mp4", "-o", tmp_path / "out.mp4", *QUICK)
    assert "big.mp4" in line and "2000x1104" in line


def test_truncated(fails, clip, tmp_path):
    data = clip.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    line = fails("dream", tmp_path / "cut.mp4", "-o", tmp_path / "out.mp4", *QUICK)
    assert "cut.mp4" in line and "damaged or truncated" in line


def test_not_a_video(fails, tmp_path):
    (tmp_path / "notes.mp4").write_text("not a video at all\n")
    line = fails("dream", tmp_path / "notes.mp4", "-o", tmp_path / "out.mp4", *QUICK)
    assert "notes.mp4" in line
