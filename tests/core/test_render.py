from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from benchmarks.image_measures import blown_out_share, colourfulness, mean_saturation
from core.errors import InvalidParameter
from core.images import decode_image, to_tensor
from core.spec import compile_job
from core.models.classes import imagenet_classes
from core.render import classify

# The classes the original Inceptionism post rendered from noise.
POST_CLASSES = ["hartebeest", "measuring cup", "ant", "starfish", "anemone fish", "banana", "parachute", "screw", "dumbbell"]
# Natural renders of all nine are measured by `make bench` (benchmarks/renders.py); the suite renders
# three at the defaults, banana among them, the class a first phase-only trial failed on.
NATURAL_SAMPLE = ["banana", "starfish", "parachute"]
# Renders are chaotic loops: the classes below go round seeds 0, 1 and 2, so every seed must pass.
# Measured on this project's 2-core CPU at the default 160 steps, the bounds sit outside the spread
# of their figures: vivid, all nine classes at seeds 0-2: p >= 0.9995 (the bound is 0.9); natural,
# the sample at each of seeds 0-4: each p >= 0.97 (bound 0.5), the sample's mean colourfulness
# 47.2-53.0 (35-75), mean saturation 0.42-0.51 (0.55), blown-out share 0 (0.08); the test's own
# mix of seeds: colourfulness 47.0, saturation 0.42 (default kernels) and 45.9, 0.38 (AVX2, one thread).
SEEDS = (0, 1, 2)


@pytest.mark.slow
@pytest.mark.parametrize("name, seed", [(name, SEEDS[i % len(SEEDS)]) for i, name in enumerate(POST_CLASSES)])
def test_vivid_render_is_seen_as_its_class(runner, lite0, name, seed):
    started = time.perf_counter()
    result = runner.run(compile_job("visualize", {"target": name, "style": "vivid"}, seed=seed))
    seconds = time.perf_counter() - started
    meta = result.metadata
    assert meta["class_name"] == name and meta["top1_name"] == name
    assert meta["probability"] >= 0.9
    # The PNG the user gets (8-bit, rounded) is still classified the same way.
    probabilities = classify(lite0, to_tensor(decode_image(result.data).rgb))
    assert imagenet_classes()[int(probabilities.argmax())] == name and float(probabilities.max()) >= 0.9
    print(f"\n{name}: p={meta['probability']:.4f} in {seconds:.1f} s")


@pytest.mark.slow
def test_default_natural_renders_are_seen_and_look_like_photos(runner, lite0):
    """The default style (MACO's phase-only render) meets the issue's targets on a sample of the
    post's classes, and is far tamer than the vivid style, whose colours are measured beside it."""
    natural, vivid = [], []
    for name, seed in zip(NATURAL_SAMPLE, SEEDS):
        result = runner.run(compile_job("visualize", {"target": name}, seed=seed))
        assert result.metadata["style"] == "natural"
        image = decode_image(result.data).rgb
        probabilities = classify(lite0, to_tensor(image))
        top = int(probabilities.argmax())
        print(f"\n{name}: p={float(probabilities[top]):.3f}, colourfulness {colourfulness(image):.1f}, "
              f"blown out {blown_out_share(image):.3f}, saturation {mean_saturation(image):.3f}")
        assert imagenet_classes()[top] == name and float(probabilities[top]) >= 0.5
        natural.append((colourfulness(image), blown_out_share(image), mean_saturation(image)))
        vivid_image = decode_image(runner.run(compile_job("visualize", {"target": name, "style": "vivid", "steps": 64}, seed=seed)).data).rgb
        vivid.append((colourfulness(vivid_image), blown_out_share(vivid_image), mean_saturation(vivid_image)))
    colour, blown, saturation = np.mean(natural, axis=0)
    assert 35 <= colour <= 75 and blown <= 0.08 and saturation <= 0.55
    assert blown < np.mean(vivid, axis=0)[1]


def test_render_is_deterministic_and_seeded(runner):
    for style in ("natural", "vivid"):
        params = {"target": "banana", "steps": 10, "size": 64, "style": style}
        first = runner.run(compile_job("visualize", params, seed=5))
        assert first.data == runner.run(compile_job("visualize", params, seed=5)).data
        assert first.data != runner.run(compile_job("visualize", params, seed=6)).data


def test_mask_adds_the_network_attention_as_alpha_and_keeps_the_picture(runner):
    params = {"target": "starfish", "steps": 20, "size": 96}
    plain = Image.open(io.BytesIO(runner.run(compile_job("visualize", params, seed=3)).data))
    masked = Image.open(io.BytesIO(runner.run(compile_job("visualize", {**params, "mask": "on"}, seed=3)).data))
    assert plain.mode == "RGB" and masked.mode == "RGBA" and masked.size == (96, 96)
    assert np.array_equal(np.asarray(masked.convert("RGB")), np.asarray(plain))
    alpha = np.asarray(masked.getchannel("A"), dtype=np.float64)
    assert alpha.max() == 255 and np.percentile(alpha, 10) < 128  # opaque where it looked, see-through elsewhere
    with pytest.raises(InvalidParameter, match="mask needs style:natural"):
        compile_job("visualize", {"target": "starfish", "style": "vivid", "mask": "on"})


def test_natural_render_goes_up_to_1024_pixels(runner):
    result = runner.run(compile_job("visualize", {"target": "banana", "size": 1024, "steps": 10}, seed=1))
    assert decode_image(result.data).rgb.size == (1024, 1024)
    with pytest.raises(InvalidParameter, match="size must be between 64 and 1024"):
        compile_job("visualize", {"target": "banana", "size": 1025})
