"""Video dreams that hold still where the scene does: each frame starts from the previous frame's
dreamt detail, carried along the scene's motion.

For frame t (t > 0) with input x_t and the previous input and output x_{t-1}, y_{t-1}:

    detail  = y_{t-1} - x_{t-1}                     what the dream added to the previous frame
    carried = warp(detail, motion x_t -> x_{t-1})   moved to where the scene went (flow on);
                                                    left in place with flow off (a plain blend)
    start   = x_t + blend * trusted * carried        revealed pixels (untrusted) start from x_t alone
    y_t     = dream(start)                           a few steps at full size refresh the detail

The first frame gets the whole dream (every octave and step); later frames only a third of the
steps at full size, so most of their detail is the carried one and new detail grows in slowly.
blend 0 dreams each frame alone, each in full: the baseline that flickers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Hashable

import numpy as np
import torch

from .dream import DreamSettings, StepGraphs, dream
from .errors import JobCancelled
from .flow import estimate_motion, warp
from .jobs import CancelCheck, ProgressCallback, Span
from .models.registry import TappedNetwork
from .objectives import Objective
from .params import VideoParams

__all__ = ["CoherenceSettings", "dream_clip", "refresh_settings"]


_VIDEO = VideoParams()  # the engine's defaults are a video job's: core.params holds them, once


@dataclass(frozen=True)
class CoherenceSettings:
    blend: float = _VIDEO.blend  # share of the previous frame's detail each frame starts from (0: each frame alone)
    flow: bool = _VIDEO.flow  # move that detail along the motion; off: blend it where it was
    # A carried frame's dream: this share of the steps, at full size only (see `refresh_settings`).
    # A third at blend 0.8 keeps the detail's strength steady: each frame keeps 80% and adds some.
    refresh_share: float = 1 / 3
    refresh_octaves: int = 1


def refresh_settings(settings: DreamSettings, coherence: CoherenceSettings) -> DreamSettings:
    """The dream of a frame that starts from carried detail: a few steps at full size refresh it.

    A full dream would draw a new set of detail on every frame, and the carried detail would only
    dilute the flicker; the smaller octaves' large structures come with the carried detail instead.
    """
    return replace(settings, octaves=coherence.refresh_octaves, steps=max(1, round(settings.steps * coherence.refresh_share)))


def _tensor(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).to(device)  # (1, 3, H, W)


def _array(image: torch.Tensor) -> np.ndarray:
    return image[0].permute(1, 2, 0).cpu().numpy()  # (H, W, 3)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


def dream_clip(
    net: TappedNetwork,
    objective: Objective,
    frames: list[np.ndarray],
    settings: DreamSettings,
    coherence: CoherenceSettings,
    generator: torch.Generator,
    *,
    device: torch.device | str = "cpu",
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    span: Span = Span(),
    precision: str = "fp32",
    graphs: StepGraphs | None = None,
    graph_key: Hashable | None = None,
    timings: dict[str, float] | None = None,
) -> list[np.ndarray]:
    """Dream every frame of a clip; returns one (H, W, 3) uint8 frame per input frame, in order.

    frames: (H, W, 3) uint8 RGB, all one size. Each frame fills an equal part of `span`; the job is
    cancelled between frames (and between steps, inside `dream`). timings: when given, the seconds
    spent on motion are added under "flow".
    """
    device = torch.device(device)
    outputs: list[np.ndarray] = []
    previous_input: np.ndarray | None = None
    previous_detail: np.ndarray | None = None  # (H, W, 3) float32 on a 0-1 scale
    count = len(frames)
    for index, frame in enumerate(frames):
        if should_cancel is not None and should_cancel():
            raise JobCancelled("the job was cancelled")
        current = frame.astype(np.float32) / 255
        start = current
        if previous_detail is not None and coherence.blend > 0:
            started = time.perf_counter()
            if coherence.flow:
                motion = estimate_motion(previous_input, frame)
                carried = warp(previous_detail, motion.back) * motion.consistent[..., None]
            else:
                carried = previous_detail
            start = np.clip(current + coherence.blend * carried, 0, 1)
            if timings is not None:
                timings["flow"] = timings.get("flow", 0.0) + time.perf_counter() - started
        step_settings = settings if index == 0 or coherence.blend == 0 else refresh_settings(settings, coherence)
        out = dream(
            net, objective, _tensor(np.ascontiguousarray(start), device), step_settings, generator,
            progress=progress, should_cancel=should_cancel, stage_prefix=f"frame {index + 1}/{count} ",
            span=span.part(index, count), precision=precision, graphs=graphs, graph_key=graph_key,
        )
        result = _array(out.detach())
        outputs.append(_to_uint8(result))
        previous_input, previous_detail = frame, result - current
    return outputs
