"""`dreambot dream --iterations N`: the dream on its own output, from the command line."""

from __future__ import annotations

from pathlib import Path

import skimage
from PIL import Image

CHELSEA = str(Path(skimage.__file__).parent / "data" / "chelsea.png")  # 451 x 300
TINY = ("--steps", "1", "--octaves", "1", "--max-side", "96", "--seed", "3")


def test_iterations_dream_on_the_dream(run, tmp_path):
    once, twice = tmp_path / "once.png", tmp_path / "twice.png"
    assert run("dream", CHELSEA, "-o", once, *TINY)[0] == 0
    code, stdout, stderr = run("dream", CHELSEA, "-o", twice, "--iterations", "2", *TINY)
    assert code == 0, stderr
    assert "wrote" in stdout
    with Image.open(once) as a, Image.open(twice) as b:
        assert a.size == b.size == (96, 64) and a.tobytes() != b.tobytes()


def test_too_many_iterations_is_one_line(fails, tmp_path):
    line = fails("dream", CHELSEA, "-o", tmp_path / "out.png", "--iterations", "9")
    assert "iterations must be between 1 and 8, got 9" in line
    assert not (tmp_path / "out.png").exists()
