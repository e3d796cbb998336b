"""Does a class put into an image hold up when the image is looked at differently? The transfer
score of issue 26: the share of random test-time views, none of them the optimisation's own, in
which the bundled network still sees the class as its top-1.

Each view is a random crop (60-100% of each side, anywhere), half of them mirrored, half of them
scaled down to 0.8x, and every one saved as a JPEG at quality 70 and read back, then classified at
its own size. The views come from `seed`, so two images are judged on the same views.
"""

from __future__ import annotations

import io
import random

import torch
from PIL import Image

from core.images import to_tensor
from core.models.registry import TappedNetwork
from core.render import classify

__all__ = ["random_views", "transfer_score", "VIEWS"]

VIEWS = 32
JPEG_QUALITY = 70


def random_views(image: Image.Image, count: int = VIEWS, seed: int = 0) -> list[Image.Image]:
    """`count` views of `image` (RGB): crop, maybe mirrored, maybe 0.8x, then through JPEG q70."""
    rng = random.Random(seed)
    width, height = image.size
    views = []
    for number in range(count):
        w, h = round(width * rng.uniform(0.6, 1.0)), round(height * rng.uniform(0.6, 1.0))
        left, top = rng.randint(0, width - w), rng.randint(0, height - h)
        view = image.crop((left, top, left + w, top + h))
        if number % 2:
            view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if number % 4 >= 2:
            view = view.resize((max(1, round(w * 0.8)), max(1, round(h * 0.8))), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        view.save(buffer, "JPEG", quality=JPEG_QUALITY)
        views.append(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return views


@torch.no_grad()
def transfer_score(net: TappedNetwork, image: Image.Image, class_index: int, count: int = VIEWS, seed: int = 0) -> float:
    """The share (0-1) of `count` test-time views of `image` whose top-1 class is `class_index`."""
    seen = sum(int(classify(net, to_tensor(view)).argmax()) == class_index for view in random_views(image, count, seed))
    return seen / count
