"""Compute the natural-image spectrum that natural class renders keep fixed (MACO), from photos.

    .venv/bin/python scripts/natural_spectrum.py [--out PATH]   # default: rewrites core/natural_spectrum.npz

Photos: scikit-image's bundled colour photos (no download). Each is cut into square crops at a
few scales, resized to SIZE, centred, and moved into the decorrelated colour space that renders
are parameterised in (`core.parameterization`); the file keeps the mean Fourier magnitude of each
channel over all crops (orthonormal FFT, Hann-windowed so the crops' borders add no cross) and
the photos' mean colour. Renders then optimise only the phase, so their power spectrum, and with
it their contrast and colourfulness, is that of photos.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.image_measures import as_array, reference_photo  # noqa: E402
from core.parameterization import NATURAL_SPECTRUM_PATH, decorrelate  # noqa: E402

SIZE = 256
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right")
CROP_SCALES = (1.0, 0.75, 0.5)  # of the photo's shorter side
CROPS_PER_SCALE = 4


def _photo(name: str) -> torch.Tensor:
    if name == "motorcycle_right":  # the stereo pair's other view: more of the same kind of scene
        from skimage import data

        return torch.from_numpy(as_array(data.stereo_motorcycle()[1])).permute(2, 0, 1).float()
    return torch.from_numpy(as_array(reference_photo(name))).permute(2, 0, 1).float()  # (3, H, W)


def _crops(photo: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
    height, width = photo.shape[1:]
    crops = []
    for scale in CROP_SCALES:
        side = int(min(height, width) * scale)
        for _ in range(CROPS_PER_SCALE if scale < 1.0 else 1):
            top = int(torch.randint(0, height - side + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - side + 1, (1,), generator=generator))
            crop = photo[None, :, top : top + side, left : left + side]
            crops.append(F.interpolate(crop, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)[0])
    return crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=NATURAL_SPECTRUM_PATH)
    out = parser.parse_args().out
    generator = torch.Generator().manual_seed(0)
    window = torch.hann_window(SIZE, periodic=False)
    window2d = window[:, None] * window[None, :]
    window_rms = float(window2d.pow(2).mean().sqrt())
    magnitudes, means = [], []
    for name in PHOTOS:
        photo = _photo(name)
        means.append(photo.mean(dim=(1, 2)))
        for crop in _crops(photo, generator):
            centred = crop - crop.mean(dim=(1, 2), keepdim=True)
            channels = decorrelate(centred[None])[0]  # (3, SIZE, SIZE)
            spectrum = torch.fft.rfft2(channels * window2d / window_rms, norm="ortho")
            magnitudes.append(spectrum.abs())
    magnitude = torch.stack(magnitudes).mean(dim=0)
    magnitude[:, 0, 0] = 0.0  # the mean colour is kept apart
    np.savez_compressed(
        out,
        magnitude=magnitude.numpy().astype(np.float16),
        mean_rgb=torch.stack(means).mean(dim=0).numpy().astype(np.float32),
        photos=np.array(PHOTOS),
    )
    print(f"wrote {out} from {len(magnitudes)} crops of {len(PHOTOS)} photos; {out.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
