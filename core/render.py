"""Class renders from noise: optimise a parameterised image so the network sees one class."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import JobCancelled
from .jobs import CancelCheck, ProgressCallback, ProgressEvent, Span
from .models.registry import TappedNetwork
from .objectives import Objective
from .params import VisualizeParams
from .parameterization import fourier_image, phase_image
from .transforms import compose, random_crops, standard_transforms

__all__ = ["RenderSettings", "NaturalRenderSettings", "render", "render_natural", "classify"]


_VISUALIZE = VisualizeParams()  # the engine's defaults are a render's: core.params holds them, once


@dataclass(frozen=True)
class RenderSettings:
    size: int = _VISUALIZE.size
    steps: int = _VISUALIZE.steps
    lr: float = _VISUALIZE.lr
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


@dataclass(frozen=True)
class NaturalRenderSettings:
    size: int = _VISUALIZE.size
    steps: int = _VISUALIZE.steps
    lr: float = _VISUALIZE.lr  # scaled by PHASE_LR_SCALE: phases are radians
    crops: int = 2  # random crops per step, one batched forward pass
    min_crop: float = 0.6  # crop sides, as a share of the render's side
    max_crop: float = 1.0
    noise: float = 0.05  # Gaussian noise on the crops: robustness against adversarial detail
    input_size: int = 224  # the side crops are resized to before the network


PHASE_LR_SCALE = 4.0


def render_natural(
    net: TappedNetwork,
    objective: Objective,
    settings: NaturalRenderSettings,
    generator: torch.Generator,
    *,
    device: str | torch.device = "cpu",
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    span: Span = Span(),
) -> tuple[torch.Tensor, torch.Tensor]:
    """MACO: optimise only the Fourier phases (and mean colour) of an image with photos' spectrum.

    Each step scores `settings.crops` random crops of the image, batched in one forward pass, with
    a little noise added; NAdam steps the phases. Returns (image, importance): the final image
    (1, 3, size, size) in [0, 1] and, per pixel, the accumulated magnitude of the objective's
    gradient (1, 1, size, size) scaled to [0, 1], which says where the network looked (MACO's
    transparency mask).
    """
    size = settings.size
    params, image_fn = phase_image(size, size, generator, device=device)
    optimizer = torch.optim.NAdam(params, lr=settings.lr * PHASE_LR_SCALE)
    importance = torch.zeros(1, 1, size, size, device=device)
    for step in range(settings.steps):
        if should_cancel is not None and should_cancel():
            raise JobCancelled("the job was cancelled")
        optimizer.zero_grad(set_to_none=True)
        image = image_fn()
        image.retain_grad()
        crops = random_crops(image, settings.crops, (settings.min_crop, settings.max_crop), settings.input_size, generator)
        crops = crops + settings.noise * torch.randn(crops.shape, generator=generator).to(crops.device)
        loss = -objective(net(crops, objective.layers))
        loss.backward()
        optimizer.step()
        assert image.grad is not None, "the image is a non-leaf whose gradient was retained"
        importance += image.grad.abs().sum(dim=1, keepdim=True)
        if progress is not None:
            progress(ProgressEvent("render", step + 1, settings.steps, span.at((step + 1) / settings.steps)))
    with torch.no_grad():
        return image_fn(), _normalised_importance(importance)


def _normalised_importance(importance: torch.Tensor) -> torch.Tensor:
    """Smooth the accumulated gradient a little and scale it so its 99th percentile is 1."""
    side = importance.shape[-1]
    radius = max(1, side // 64)
    blurred = torch.nn.functional.avg_pool2d(importance, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
    top = torch.quantile(blurred.flatten(), 0.99).clamp(min=1e-12)
    return (blurred / top).clamp(0, 1)


@torch.no_grad()
def classify(net: TappedNetwork, image: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities (1000,) of image (1, 3, H, W) in [0, 1]."""
    return net(image, ["logits"])["logits"].softmax(dim=-1)[0]
