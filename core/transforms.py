"""Random transformations for robust class renders: factories returning `fn(images) -> images`, plus `compose`.

Each transform takes a `torch.Generator`, so a fixed seed gives the same render.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["Transform", "pad", "jitter", "random_scale", "random_rotate", "compose", "standard_transforms", "random_crops"]

Transform = Callable[[torch.Tensor], torch.Tensor]


def _choice(values: Sequence[float], generator: torch.Generator) -> float:
    return values[int(torch.randint(len(values), (1,), generator=generator))]


def pad(width: int, value: float = 0.5) -> Transform:
    return lambda x: F.pad(x, [width] * 4, mode="constant", value=value)


def jitter(pixels: int, generator: torch.Generator) -> Transform:
    """Random crop that shifts the image by up to `pixels` in each direction."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        dy, dx = torch.randint(0, pixels + 1, (2,), generator=generator).tolist()
        return x[:, :, dy : x.shape[2] - pixels + dy, dx : x.shape[3] - pixels + dx]

    return fn


def random_scale(scales: Sequence[float], generator: torch.Generator) -> Transform:
    def fn(x: torch.Tensor) -> torch.Tensor:
        s = _choice(scales, generator)
        size = (max(8, round(x.shape[2] * s)), max(8, round(x.shape[3] * s)))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    return fn


def random_rotate(degrees: Sequence[float], generator: torch.Generator) -> Transform:
    def fn(x: torch.Tensor) -> torch.Tensor:
        angle = math.radians(_choice(degrees, generator))
        cos, sin = math.cos(angle), math.sin(angle)
        theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)
        grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    return fn


def compose(transforms: Sequence[Transform]) -> Transform:
    def fn(x: torch.Tensor) -> torch.Tensor:
        for transform in transforms:
            x = transform(x)
        return x

    return fn


def standard_transforms(generator: torch.Generator) -> list[Transform]:
    """Pad, jitter, scale and rotate a little: the robustness that keeps renders from being static."""
    return [
        pad(12),
        jitter(8, generator),
        random_scale([1 + (i - 5) / 50 for i in range(11)], generator),
        random_rotate(list(range(-10, 11)) + [0] * 5, generator),
        jitter(4, generator),
    ]


def random_crops(image: torch.Tensor, count: int, sides: tuple[float, float], out: int, generator: torch.Generator) -> torch.Tensor:
    """`count` square crops of image (1, 3, S, S), each of a random side in `sides` (shares of S) at a
    random place, resampled to out x out: (count, 3, out, out), differentiable with respect to image."""
    share = sides[0] + (sides[1] - sides[0]) * torch.rand(count, generator=generator)  # (count,)
    centre = (1 - share)[:, None] * (torch.rand(count, 2, generator=generator) * 2 - 1)  # keeps each crop inside
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = share
    theta[:, :, 2] = centre
    grid = F.affine_grid(theta.to(image), [count, 3, out, out], align_corners=False)
    return F.grid_sample(image.expand(count, -1, -1, -1), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
