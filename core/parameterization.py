"""Image parameterisations for renders from noise. Each returns `(params, image_fn)`.

`fourier_image` (the vivid style) is a soft natural-image prior: the image is optimised as a
Fourier spectrum scaled by 1/frequency (so low frequencies, i.e. correlated neighbouring pixels,
are cheap and high-frequency static is expensive), in a decorrelated colour space, squashed into
[0, 1] with a sigmoid. The optimiser is free to pump any frequency up, which is where the
saturated, high-contrast look comes from.

`phase_image` (the natural style, after MACO: Fel et al., NeurIPS 2023) is a hard prior: the
magnitude of every frequency is fixed to the mean spectrum of photos (core/natural_spectrum.npz,
made by scripts/natural_spectrum.py) and only the phases, plus the mean colour, are optimised.
The render can move structure around but cannot change how much of each frequency and colour
there is, so its contrast and colourfulness stay those of photos.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["fourier_image", "phase_image", "natural_spectrum", "decorrelate", "NATURAL_SPECTRUM_PATH", "COLOR_SQRT_COVARIANCE", "frequencies"]

NATURAL_SPECTRUM_PATH = Path(__file__).with_name("natural_spectrum.npz")

# Square root of the colour covariance of ImageNet photos (rows: R, G, B), so that independent
# channels of the parameterisation become naturally correlated colours.
COLOR_SQRT_COVARIANCE = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])


def decorrelate(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) centred RGB -> the decorrelated channels that `phase_image` optimises (its inverse)."""
    return torch.einsum("bchw,dc->bdhw", rgb, torch.linalg.inv(COLOR_SQRT_COVARIANCE).to(rgb))


def _recorrelate(channels: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bchw,dc->bdhw", channels, COLOR_SQRT_COVARIANCE.to(channels))


def frequencies(height: int, width: int) -> torch.Tensor:
    """Each rfft2 bin's frequency in cycles per pixel, (H, W//2+1)."""
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
    freqs = frequencies(height, width)
    scale = 1.0 / freqs.clamp(min=1.0 / max(height, width)) ** decay_power  # (H, W//2+1)
    spectrum = (torch.randn(batch, 3, *freqs.shape, 2, generator=generator) * init_std).to(device).requires_grad_(True)
    scale = scale.to(device)
    color = (COLOR_SQRT_COVARIANCE / COLOR_SQRT_COVARIANCE.norm(dim=0).max()).to(device)

    def image_fn() -> torch.Tensor:
        spatial = torch.fft.irfftn(scale * torch.view_as_complex(spectrum), s=(height, width), norm="ortho")
        spatial = spatial / 4.0  # (B, 3, H, W) roughly unit variance
        colored = torch.einsum("bchw,dc->bdhw", spatial, color)
        return torch.sigmoid(colored)

    return [spectrum], image_fn


@lru_cache(maxsize=1)
def _stored_spectrum() -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(NATURAL_SPECTRUM_PATH) as stored:
        magnitude = torch.from_numpy(stored["magnitude"].astype(np.float32))  # (3, N, N//2+1), rfft layout
        mean_rgb = torch.from_numpy(stored["mean_rgb"].astype(np.float32))  # (3,)
    return magnitude, mean_rgb


def natural_spectrum(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The photos' mean Fourier magnitude on the rfft grid of a height x width image, and their mean colour.

    Magnitudes are stored for one size and sampled here at the same normalised frequencies, which
    keeps each pixel's variance (orthonormal FFT): a render of any size has photos' contrast.
    """
    magnitude, mean_rgb = _stored_spectrum()
    stored = magnitude.shape[1]
    # Lay the stored rows out from the lowest frequency (-1/2) to the highest, so sampling is monotonic.
    centred = torch.fft.fftshift(magnitude, dim=1)[None]  # (1, 3, N, N//2+1)
    fy = torch.fft.fftfreq(height)  # (height,) in [-1/2, 1/2)
    fx = torch.fft.rfftfreq(width)  # (width//2+1,) in [0, 1/2]
    # grid_sample's coordinates: -1 and 1 are the centres of the first and last stored samples.
    row_lo, row_hi = float(torch.fft.fftshift(torch.fft.fftfreq(stored))[0]), float(torch.fft.fftshift(torch.fft.fftfreq(stored))[-1])
    y = (fy - row_lo) / (row_hi - row_lo) * 2 - 1
    x = fx / 0.5 * 2 - 1
    grid = torch.stack(torch.meshgrid(y, x, indexing="ij")[::-1], dim=-1)[None]  # (1, H, W//2+1, 2) as (x, y)
    sampled = F.grid_sample(centred, grid, mode="bilinear", padding_mode="border", align_corners=True)[0]
    sampled[:, 0, 0] = 0.0  # the mean colour is a parameter of its own
    return sampled, mean_rgb


def phase_image(
    height: int,
    width: int,
    generator: torch.Generator,
    *,
    device: str | torch.device = "cpu",
) -> tuple[list[torch.Tensor], Callable[[], torch.Tensor]]:
    """Returns ([phase, colour], image_fn) where image_fn() is (1, 3, H, W) in [0, 1].

    phase: the Fourier phases of the three decorrelated channels (random at the start, so the
    start is photo-like noise); colour: the mean colour (starting at the photos'). The image is
    their inverse FFT with the photos' magnitudes, back in RGB, around the mean colour, softly
    limited to [0, 1] so that little is clipped to pure black or white.
    """
    magnitude, mean_rgb = natural_spectrum(height, width)
    magnitude = magnitude.to(device)
    phase = ((torch.rand(1, *magnitude.shape, generator=generator) * 2 - 1) * torch.pi).to(device).requires_grad_(True)
    colour = torch.logit(mean_rgb.clamp(0.05, 0.95)).reshape(1, 3, 1, 1).to(device).requires_grad_(True)

    def image_fn() -> torch.Tensor:
        spectrum = torch.polar(magnitude.expand_as(phase), phase)
        channels = torch.fft.irfft2(spectrum, s=(height, width), norm="ortho")  # (1, 3, H, W)
        rgb = torch.sigmoid(colour) + _recorrelate(channels)
        # Slope 1 around the middle, flattening toward 0 and 1: detail is kept, clipping is rare.
        return 0.5 + 0.5 * torch.tanh(2.0 * (rgb - 0.5))

    return [phase, colour], image_fn
