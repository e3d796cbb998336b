"""Optical flow between frames (core.flow): the motion is found, warping by it lines frames up, and
only pixels seen in both frames are trusted."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.flow import estimate_motion, mean_change, warp, warp_error
from tests.clip_making import pan_and_zoom


@pytest.fixture(scope="module")
def frames(photo_path):
    return pan_and_zoom(photo_path("chelsea.png"), 24, (128, 96))


@pytest.fixture(scope="module")
def photo(photo_path) -> np.ndarray:
    return np.asarray(Image.open(photo_path("chelsea.png")).convert("RGB").resize((160, 120), Image.LANCZOS))


def _views(photo: np.ndarray, dx: int, dy: int, size=(96, 72)) -> tuple[np.ndarray, np.ndarray]:
    """Two windows of `photo`, the second `dx, dy` pixels further: the scene moves by -dx, -dy."""
    width, height = size
    x, y = 20, 20
    before = photo[y : y + height, x : x + width]
    after = photo[y + dy : y + dy + height, x + dx : x + dx + width]
    return np.ascontiguousarray(before), np.ascontiguousarray(after)


def test_motion_is_found_and_revealed_pixels_are_not_trusted(frames):
    motion = estimate_motion(frames[0], frames[1])
    assert motion.back.shape == (96, 128, 2)
    assert motion.consistent.mean() > 0.9  # a smooth pan: nearly everything is seen in both frames
    shifted = np.roll(frames[0], 6, axis=1)  # moved right: 6 columns enter on the left
    motion = estimate_motion(frames[0], shifted)
    assert motion.back[20:-20, 20:-20, 0].mean() == pytest.approx(-6, abs=0.5)
    assert motion.consistent[:, :4].mean() < 0.5 < motion.consistent[:, 20:-20].mean()


@pytest.mark.parametrize(("dx", "dy"), [(5, 0), (0, 4), (3, -2)])
def test_the_flow_between_a_view_and_a_shifted_one_is_the_shift(photo, dx, dy):
    before, after = _views(photo, dx, dy)
    motion = estimate_motion(before, after)
    inner = motion.back[12:-12, 12:-12]
    assert motion.back.dtype == np.float32 and motion.consistent.shape == before.shape[:2]
    assert float(np.median(inner[..., 0])) == pytest.approx(dx, abs=0.5)
    assert float(np.median(inner[..., 1])) == pytest.approx(dy, abs=0.5)


def test_warping_the_previous_frame_along_the_flow_lines_it_up_with_the_next(photo):
    before, after = _views(photo, 5, 3)
    motion = estimate_motion(before, after)
    moved = warp(before.astype(np.float32), motion.back)
    trusted = motion.consistent.astype(bool)
    assert trusted.mean() > 0.7
    unmoved_error = np.abs(before.astype(np.float32) - after).mean(-1)[trusted].mean()
    moved_error = np.abs(moved - after).mean(-1)[trusted].mean()
    assert moved_error < 0.3 * unmoved_error, (moved_error, unmoved_error)


def test_warp_moves_pixels_by_the_flow_and_zero_flow_moves_nothing():
    rng = np.random.default_rng(0)
    image = rng.random((20, 30, 3), dtype=np.float32)
    zero = np.zeros((20, 30, 2), np.float32)
    np.testing.assert_allclose(warp(image, zero), image, atol=1e-6)
    along = np.zeros((20, 30, 2), np.float32)
    along[..., 0], along[..., 1] = 3.0, -2.0  # each pixel comes from 3 right and 2 up in the previous frame
    moved = warp(image, along)
    np.testing.assert_allclose(moved[2:, :-3], image[:-2, 3:], atol=1e-5)
    np.testing.assert_allclose(moved[2:, -3:], np.repeat(image[:-2, -1:], 3, axis=1), atol=1e-5)  # edges are repeated


def test_warp_error_is_small_for_outputs_that_move_with_the_scene_and_large_for_ones_that_do_not(photo):
    inputs = [_views(photo, 3 * t, 0)[1] for t in range(3)]
    stuck = [inputs[0]] * 3  # an output that stays put while the scene pans
    assert warp_error(inputs, inputs) < 0.02
    assert warp_error(stuck, inputs) > 3 * warp_error(inputs, inputs)
    assert warp_error(stuck, stuck) == pytest.approx(0.0, abs=1e-3)  # a still scene and a still output: no flicker


def test_mean_change_is_the_mean_absolute_difference_on_a_0_to_1_scale():
    a = np.full((8, 8, 3), 100, np.uint8)
    b = np.full((8, 8, 3), 151, np.uint8)
    assert mean_change([a, a], [a, a]) == 0.0
    assert mean_change([b, a], [a, a]) == pytest.approx(0.1)  # 51/255 on one frame of two
    assert mean_change([a], [b]) == pytest.approx(0.2)
