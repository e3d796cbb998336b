"""Dense optical flow between frames, warping by it, and where it can be trusted.

OpenCV's DIS flow needs no model weights and runs in milliseconds on small frames. A pixel's flow
is trusted only where the forward and backward flows agree (the round trip comes back to where it
started): elsewhere the pixel was hidden in the previous frame (revealed by motion, or it entered
through an edge), and nothing from that frame belongs there.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Motion", "estimate_motion", "warp", "warp_error", "mean_change"]

# The round trip p -> p + back(p) -> that + forward(there) must come back within this tolerance:
# a fixed half pixel for rounding, plus a share of the motion, as fast motion has larger errors.
_ROUND_TRIP_PIXELS = 0.5
_ROUND_TRIP_SHARE = 0.01


@dataclass(frozen=True)
class Motion:
    """How the next frame relates to the previous one."""

    back: np.ndarray  # (H, W, 2) float32: for each pixel of the next frame, its (dx, dy) into the previous one
    consistent: np.ndarray  # (H, W) float32, 1 where `back` is trusted, 0 where the pixel was hidden before


def _gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def _dense_flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32: where each pixel of `source` (grey uint8) is found in `target`."""
    # A fresh DIS object per call: it holds no state we want, and callers may run in threads.
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(source, target, None)


def _sample_map(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height, width = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return xs + flow[..., 0], ys + flow[..., 1]


def warp(image: np.ndarray, back: np.ndarray) -> np.ndarray:
    """`image` (H, W, C) of the previous frame moved into the next one along `back` (see `Motion`)."""
    map_x, map_y = _sample_map(back)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def estimate_motion(previous: np.ndarray, current: np.ndarray) -> Motion:
    """The motion from `previous` to `current` (each (H, W, 3) uint8 RGB) with its trusted pixels."""
    before, after = _gray(previous), _gray(current)
    back = _dense_flow(after, before)
    forward = _dense_flow(before, after)
    forward_there = warp(forward, back)  # the forward flow read where each pixel came from
    round_trip = back + forward_there
    error = (round_trip ** 2).sum(-1)
    tolerance = _ROUND_TRIP_SHARE * ((back ** 2).sum(-1) + (forward_there ** 2).sum(-1)) + _ROUND_TRIP_PIXELS
    map_x, map_y = _sample_map(back)
    height, width = back.shape[:2]
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return Motion(back, ((error <= tolerance) & inside).astype(np.float32))


def warp_error(outputs: list[np.ndarray], inputs: list[np.ndarray]) -> float:
    """How much an output clip flickers: the mean |output t - output t-1 moved by the inputs' motion|
    on trusted pixels, over all consecutive pairs, on a 0-1 scale.

    The motion comes from the inputs, so the measure asks whether the outputs move as the scene does.
    """
    total, count = 0.0, 0.0
    for t in range(1, len(outputs)):
        motion = estimate_motion(inputs[t - 1], inputs[t])
        moved = warp(outputs[t - 1].astype(np.float32), motion.back)
        difference = np.abs(moved - outputs[t].astype(np.float32)).mean(-1) / 255
        total += float((difference * motion.consistent).sum())
        count += float(motion.consistent.sum())
    return total / max(count, 1.0)


def mean_change(outputs: list[np.ndarray], inputs: list[np.ndarray]) -> float:
    """How much the dream changed each frame: mean |output - input| on a 0-1 scale."""
    return float(np.mean([np.abs(o.astype(np.float32) - i.astype(np.float32)).mean() / 255 for o, i in zip(outputs, inputs)]))
