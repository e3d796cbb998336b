"""Image parameterisations for renders from noise. Each returns `(params, image_fn)`.

`fourier_image` is the natural-image prior: the image is optimised as a Fourier spectrum scaled by
1/frequency (so low frequencies, i.e. correlated neighbouring pixels, are cheap and high-frequency
static is expensive), in a decorrelated colour space, squashed into [0, 1] with a sigmoid.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["fourier_image"]

# Square root of the colour covariance of ImageNet photos (rows: R, G, B), so that independent
# channels of the parameterisation become naturally correlated colours.
_COLOR_SQRT_COVARIANCE = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])


def _frequencies(height: int, width: int) -> torch.Tensor:
    fy = torch.fft.fftfreq(height)[:, None]  # (H, 1)
    fx = torch.fft.rfftfreq(width)[None, :]  # (1, W//2+1)
    return torch.sqrt(fy * fy + fx * fx)  # (H, W//2+1)


def fourier_image(
    height: int,
    width: int,
    generator: torch.Generator,
    *,
    batch: int = 1,
    init_std: float = 0.01,
    decay_power: float = 1.0,
    device: str | torch.device = "cpu",
) -> tuple[list[torch.Tensor], Callable[[], torch.Tensor]]:
    """Returns ([spectrum], image_fn) where image_fn() is (batch, 3, H, W) in [0, 1]."""
    freqs = _frequencies(height, width)
    scale = 1.0 / freqs.clamp(min=1.0 / max(height, width)) ** decay_power  # (H, W//2+1)
    spectrum = (torch.randn(batch, 3, *freqs.shape, 2, generator=generator) * init_std).to(device).requires_grad_(True)
    scale = scale.to(device)
    color = (_COLOR_SQRT_COVARIANCE / _COLOR_SQRT_COVARIANCE.norm(dim=0).max()).to(device)

    def image_fn() -> torch.Tensor:
        spatial = torch.fft.irfftn(scale * torch.view_as_complex(spectrum), s=(height, width), norm="ortho")
        spatial = spatial / 4.0  # (B, 3, H, W) roughly unit variance
        colored = torch.einsum("bchw,dc->bdhw", spatial, color)
        return torch.sigmoid(colored)

    return [spectrum], image_fn
