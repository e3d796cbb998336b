"""How an image looks, in numbers: the measures that `make bench` and the quality tests share.

All take RGB arrays (H, W, 3) of uint8 or floats in [0, 1], or PIL images.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = [
    "as_array", "colourfulness", "blown_out_share", "mean_saturation", "luminance_correlation", "mean_change",
    "REFERENCE_PHOTOS", "reference_photo",
]

# Colour photos from scikit-image's data folder that renders are compared against.
REFERENCE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left")


def as_array(image) -> np.ndarray:
    """(H, W, 3) float64 in [0, 1] from a PIL image or an RGB array (uint8 or [0, 1] floats)."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    return array.astype(np.float64) / 255.0 if array.dtype == np.uint8 else array.astype(np.float64)


def colourfulness(image) -> float:
    """Hasler and Süsstrunk's (2003) colourfulness on the 0-255 scale: photos score about 30-80."""
    rgb = as_array(image) * 255.0
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def blown_out_share(image) -> float:
    """The share of channel values at 2/255 or below, or 253/255 or above (clipped to black or white)."""
    values = np.round(as_array(image) * 255.0)
    return float(((values <= 2) | (values >= 253)).mean())


def mean_saturation(image) -> float:
    """Mean HSV saturation, (max - min) / max per pixel (0 where the pixel is black)."""
    rgb = as_array(image)
    high, low = rgb.max(axis=2), rgb.min(axis=2)
    return float(np.where(high > 0, (high - low) / np.maximum(high, 1e-12), 0.0).mean())


def _luminance(image) -> np.ndarray:
    rgb = as_array(image)
    return rgb @ np.array([0.299, 0.587, 0.114])


def luminance_correlation(image, reference, factor: int = 8) -> float:
    """Pearson correlation of the two images' luminance, each block-averaged by `factor` (same size needed)."""
    a, b = _luminance(image), _luminance(reference)
    assert a.shape == b.shape, f"luminance_correlation needs equal sizes, got {a.shape} and {b.shape}"
    h, w = (a.shape[0] // factor) * factor, (a.shape[1] // factor) * factor

    def pooled(x: np.ndarray) -> np.ndarray:
        return x[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3)).ravel()

    return float(np.corrcoef(pooled(a), pooled(b))[0, 1])


def mean_change(image, reference) -> float:
    """Mean absolute difference per channel value, on the 0-255 scale."""
    return float(np.abs(as_array(image) - as_array(reference)).mean() * 255.0)


def reference_photo(name: str) -> Image.Image:
    """One of scikit-image's bundled photos as a PIL RGB image."""
    from skimage import data

    array = data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(data, name)()
    return Image.fromarray(array).convert("RGB")
