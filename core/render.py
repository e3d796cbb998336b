"""Class renders from noise: optimise a parameterised image so the network sees one class."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import JobCancelled
from .jobs import CancelCheck, ProgressCallback, ProgressEvent
from .models.network import TappedNetwork
from .objectives import Objective
from .progress import Span
from .parameterization import fourier_image
from .transforms import compose, standard_transforms

__all__ = ["RenderSettings", "render", "classify"]


@dataclass(frozen=True)
class RenderSettings:
    size: int = 224
    steps: int = 256
    lr: float = 0.05
    batch: int = 1  # transformed copies per step
    decay_power: float = 1.5  # higher: smoother images (stronger natural-image prior)


def render(
    net: TappedNetwork,
    objective: Objective,
    settings: RenderSettings,
    generator: torch.Generator,
    *,
    device: str | torch.device = "cpu",
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    span: Span = Span(),
) -> torch.Tensor:
    """Optimise from noise with Adam; returns the final image (1, 3, size, size) in [0, 1].

    span: the part of the job's progress the steps fill.
    """
    params, image_fn = fourier_image(settings.size, settings.size, generator, decay_power=settings.decay_power, device=device)
    optimizer = torch.optim.Adam(params, lr=settings.lr)
    transform = compose(standard_transforms(generator))
    for step in range(settings.steps):
        if should_cancel is not None and should_cancel():
            raise JobCancelled("the job was cancelled")
        optimizer.zero_grad(set_to_none=True)
        image = image_fn()
        # Copies are transformed independently (their sizes differ), so each gets its own pass.
        for copy in range(settings.batch):
            loss = -objective(net(transform(image), objective.layers)) / settings.batch
            loss.backward(retain_graph=copy < settings.batch - 1)  # the last copy frees the image's graph
        optimizer.step()
        if progress is not None:
            progress(ProgressEvent("render", step + 1, settings.steps, span.at((step + 1) / settings.steps)))
    with torch.no_grad():
        return image_fn()[:1]


@torch.no_grad()
def classify(net: TappedNetwork, image: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities (1000,) of image (1, 3, H, W) in [0, 1]."""
    return net(image, ["logits"])["logits"].softmax(dim=-1)[0]
