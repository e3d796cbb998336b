from __future__ import annotations

import time

import pytest
import torch

from core.images import decode_image, to_tensor
from core.spec import compile_job
from core.models.classes import imagenet_classes
from core.parameterization import fourier_image
from core.render import classify

# The classes the original Inceptionism post rendered from noise.
POST_CLASSES = ["hartebeest", "measuring cup", "ant", "starfish", "anemone fish", "banana", "parachute", "screw", "dumbbell"]


@pytest.mark.slow
@pytest.mark.parametrize("name", POST_CLASSES)
def test_default_render_is_seen_as_its_class(runner, lite0, name):
    started = time.perf_counter()
    result = runner.run(compile_job("visualize", {"target": name}, seed=0))
    seconds = time.perf_counter() - started
    meta = result.metadata
    assert meta["class_name"] == name and meta["top1_name"] == name
    assert meta["probability"] >= 0.9
    # The PNG the user gets (8-bit, rounded) is still classified the same way.
    probabilities = classify(lite0, to_tensor(decode_image(result.data).rgb))
    assert imagenet_classes()[int(probabilities.argmax())] == name and float(probabilities.max()) >= 0.9
    print(f"\n{name}: p={meta['probability']:.4f} in {seconds:.1f} s")


def test_render_is_deterministic_and_seeded(runner):
    params = {"target": "banana", "steps": 10, "size": 64}
    first = runner.run(compile_job("visualize", params, seed=5))
    assert first.data == runner.run(compile_job("visualize", params, seed=5)).data
    assert first.data != runner.run(compile_job("visualize", params, seed=6)).data


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
