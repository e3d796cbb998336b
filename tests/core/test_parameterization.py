"""Image parameterisations for renders from noise (core.parameterization): the Fourier grid, the
vivid style's 1/f spectrum, the natural style's photo magnitudes with free phases, and the colour
decorrelation both share."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.image_measures import blown_out_share, colourfulness
from core.images import to_pil
from core.parameterization import (
    COLOR_SQRT_COVARIANCE,
    NATURAL_SPECTRUM_PATH,
    decorrelate,
    fourier_image,
    frequencies,
    natural_spectrum,
    phase_image,
)

ROOT = Path(__file__).resolve().parents[2]


def test_phase_only_images_have_the_spectrum_and_colour_of_photos():
    """Before any step, a natural render is random phases over photos' magnitudes: photo-like
    colourfulness, nothing blown out, and whatever the phases, the same power at each frequency."""
    powers = []
    for seed in (0, 1):
        _, image_fn = phase_image(128, 128, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            image = image_fn()
        pil = to_pil(image)
        assert 35 <= colourfulness(pil) <= 75 and blown_out_share(pil) <= 0.02
        grey = image.mean(dim=1)[0] - image.mean()
        powers.append(torch.fft.rfft2(grey).abs().pow(2)[:8, :8].sum().item() / torch.fft.rfft2(grey).abs().pow(2).sum().item())
    assert abs(powers[0] - powers[1]) < 0.1 and powers[0] > 0.3  # most power in the lowest frequencies, as in photos
    magnitude, mean_rgb = natural_spectrum(300, 200)
    assert magnitude.shape == (3, 300, 101) and float(magnitude[:, 0, 0].abs().max()) == 0.0
    assert torch.all((0.2 < mean_rgb) & (mean_rgb < 0.7))


def test_the_shipped_spectrum_is_what_the_script_computes(tmp_path):
    out = tmp_path / "spectrum.npz"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "natural_spectrum.py"), "--out", str(out)], check=True, cwd=ROOT,
                   capture_output=True)
    with np.load(out) as fresh, np.load(NATURAL_SPECTRUM_PATH) as shipped:
        assert np.allclose(fresh["magnitude"].astype(np.float32), shipped["magnitude"].astype(np.float32), rtol=0.01, atol=1e-4)
        assert np.allclose(fresh["mean_rgb"], shipped["mean_rgb"], atol=1e-4)


def test_fourier_prior_prefers_smooth_images():
    """The parameterisation's random images have far less high-frequency energy than pixel noise."""
    _, image_fn = fourier_image(64, 64, torch.Generator().manual_seed(0), init_std=1.0, decay_power=1.5)
    with torch.no_grad():
        image = image_fn()
    noise = torch.rand(1, 3, 64, 64)

    def roughness(x: torch.Tensor) -> float:
        return float((x[..., 1:, :] - x[..., :-1, :]).abs().mean() / (x - x.mean()).abs().mean())

    assert image.shape == (1, 3, 64, 64) and 0 <= float(image.min()) and float(image.max()) <= 1
    assert roughness(image) < 0.5 * roughness(noise)


# -- the frequency grid ------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(8, 8), (9, 6), (1, 5)])
def test_frequencies_are_each_rfft_bin_s_distance_from_zero_in_cycles_per_pixel(height, width):
    grid = frequencies(height, width)
    assert grid.shape == torch.fft.rfft2(torch.zeros(height, width)).shape == (height, width // 2 + 1)
    for row in range(height):
        for column in range(width // 2 + 1):
            fy = min(row, height - row) / height  # rows past the middle are the negative frequencies
            fx = column / width
            assert float(grid[row, column]) == pytest.approx(math.hypot(fy, fx), abs=1e-6)
    assert float(grid[0, 0]) == 0.0 and float(grid.max()) <= math.sqrt(0.5) + 1e-6


# -- the vivid style: a 1/f spectrum -----------------------------------------------------------------


@pytest.mark.parametrize(("height", "width", "batch"), [(32, 32, 1), (33, 20, 2)])
def test_a_fourier_image_is_a_batch_of_rgb_in_0_1_from_one_spectrum(height, width, batch):
    params, image_fn = fourier_image(height, width, torch.Generator().manual_seed(0), batch=batch, init_std=1.0)
    (spectrum,) = params
    assert spectrum.shape == (batch, 3, height, width // 2 + 1, 2) and spectrum.requires_grad
    image = image_fn()
    assert image.shape == (batch, 3, height, width)
    assert 0 < float(image.detach().min()) and float(image.detach().max()) < 1
    image.mean().backward()
    assert spectrum.grad is not None and float(spectrum.grad.abs().sum()) > 0  # the optimiser reaches the spectrum


def test_a_fourier_image_is_set_by_its_generator():
    def image(seed: int) -> torch.Tensor:
        _, image_fn = fourier_image(32, 32, torch.Generator().manual_seed(seed), init_std=0.5)
        with torch.no_grad():
            return image_fn()

    assert torch.equal(image(3), image(3)) and not torch.equal(image(3), image(4))


def test_a_stronger_decay_gives_a_smoother_image():
    def roughness(decay: float) -> float:
        _, image_fn = fourier_image(64, 64, torch.Generator().manual_seed(0), init_std=1.0, decay_power=decay)
        with torch.no_grad():
            x = image_fn()
        return float((x[..., :, 1:] - x[..., :, :-1]).abs().mean() / (x - x.mean()).abs().mean())

    assert roughness(2.0) < roughness(1.0) < roughness(0.0)


# -- the natural style: photos' magnitudes, free phases ----------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(64, 64), (33, 20)])
def test_a_phase_image_optimises_phases_and_a_mean_colour_and_starts_at_photos_colour(height, width):
    params, image_fn = phase_image(height, width, torch.Generator().manual_seed(0))
    phase, colour = params
    assert phase.shape == (1, 3, height, width // 2 + 1) and colour.shape == (1, 3, 1, 1)
    assert phase.requires_grad and colour.requires_grad
    assert float(phase.detach().abs().max()) <= math.pi
    image = image_fn()
    assert image.shape == (1, 3, height, width) and 0 <= float(image.detach().min()) and float(image.detach().max()) <= 1
    _, mean_rgb = natural_spectrum(height, width)
    assert torch.allclose(image.detach().mean(dim=(0, 2, 3)), mean_rgb, atol=0.05)  # the spectrum has no mean of its own
    image.square().mean().backward()
    assert float(phase.grad.abs().sum()) > 0 and float(colour.grad.abs().sum()) > 0


def test_the_natural_spectrum_falls_with_frequency():
    magnitude, _ = natural_spectrum(96, 96)
    grid = frequencies(96, 96)
    low = magnitude[:, (grid > 0) & (grid < 0.05)].mean()
    high = magnitude[:, grid > 0.4].mean()
    assert float(low) > 10 * float(high)


# -- colour decorrelation ------------------------------------------------------------------------------


def test_decorrelate_undoes_the_photos_colour_mixing():
    channels = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    mixed = torch.einsum("bchw,dc->bdhw", channels, COLOR_SQRT_COVARIANCE)  # what a render's channels become in RGB
    torch.testing.assert_close(decorrelate(mixed), channels, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["chelsea.png", "coffee.png", "astronaut.png"])
def test_decorrelated_photo_channels_are_less_correlated_than_rgb(photo_path, name):
    rgb = torch.from_numpy(np.asarray(Image.open(photo_path(name)).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    centred = rgb - rgb.mean(dim=(2, 3), keepdim=True)

    def most_correlated(x: torch.Tensor) -> float:
        return float(torch.corrcoef(x[0].reshape(3, -1)).abs().triu(1).max())

    assert most_correlated(decorrelate(centred)) < most_correlated(centred) - 0.1
