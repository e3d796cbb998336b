"""Going deeper: dream on the dream, zooming in a little between passes.

The 2015 post's feedback loop ("whatever you see there, I want more of it"): each pass amplifies
what the previous pass drew, so faint patterns grow into objects. A small zoom between passes (the
size is kept, as a zoom frame's) moves the detail to new places, so the network keeps finding new
things instead of only sharpening the old ones.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import torch

from .dream import DreamSettings, dream_batch
from .errors import JobCancelled
from .jobs import CancelCheck, ProgressCallback
from .models.network import TappedNetwork
from .objectives import Objective
from .progress import Span
from .zoom import zoom_step

__all__ = ["ITERATION_ZOOM", "dream_deeper"]

# Enlargement of the centre between passes: the post's zoom dreams use about this per frame; over
# the most passes a dream allows (8) the view narrows to 1/1.05^7 = 71% of the photo's width.
ITERATION_ZOOM = 1.05


def dream_deeper(
    net: TappedNetwork,
    objective: Objective,
    images: Sequence[torch.Tensor],
    settings: DreamSettings,
    generators: Sequence[torch.Generator],
    *,
    iterations: int,
    zoom: float = ITERATION_ZOOM,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    span: Span = Span(),
    timings: dict[str, float] | None = None,
    **dream_options: Any,
) -> list[torch.Tensor]:
    """`dream_batch` run `iterations` times, each pass on the previous one's output zoomed by `zoom`.

    images, generators: as `dream_batch` takes them (one (1, 3, H, W) image in [0, 1] and one
    generator per dream); each generator is drawn from pass after pass, so a batch equals separate
    calls. Each pass fills an equal part of `span`; cancelling stops within a pass or between two.
    timings: if given, gets "zoom", the seconds spent warping between passes (pixel work, which
    the cost model prices apart from the network's). dream_options: passed on to `dream_batch`
    (precision, graphs, graph_key...). Returns one image per input, in order.
    """
    assert iterations >= 1, "a dream makes at least one pass"
    current = list(images)
    warping = 0.0
    for index in range(iterations):
        if index:
            if should_cancel is not None and should_cancel():
                raise JobCancelled("the job was cancelled")
            started = time.perf_counter()
            current = [zoom_step(image, zoom) for image in current]
            warping += time.perf_counter() - started
        prefix = f"pass {index + 1}/{iterations} " if iterations > 1 else ""
        current = dream_batch(net, objective, current, settings, generators, progress=progress, should_cancel=should_cancel,
                              stage_prefix=prefix, span=span.part(index, iterations), **dream_options)
    if timings is not None:
        timings["zoom"] = timings.get("zoom", 0.0) + warping
    return current
