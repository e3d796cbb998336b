"""Random transformations for class renders (core.transforms): what each does to an image's size and
content, that a seed fixes them, and that gradients pass through to the image."""

from __future__ import annotations

import pytest
import torch

from core.transforms import (
    compose,
    jitter,
    pad,
    random_crops,
    random_rotate,
    random_scale,
    standard_transforms,
)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _image(height: int = 32, width: int = 40, batch: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=_generator(seed))


def test_pad_surrounds_the_image_with_a_constant_border():
    x = _image(8, 10)
    out = pad(3, value=0.25)(x)
    assert out.shape == (1, 3, 14, 16)
    torch.testing.assert_close(out[:, :, 3:-3, 3:-3], x)
    border = torch.ones_like(out, dtype=torch.bool)
    border[:, :, 3:-3, 3:-3] = False
    assert torch.all(out[border] == 0.25)
    assert torch.all(pad(2)(x)[:, :, 0] == 0.5)  # grey by default


def test_jitter_is_a_crop_at_a_random_offset_of_at_most_its_pixels():
    x = _image(20, 24)
    shift = jitter(4, _generator())
    offsets = set()
    for _ in range(200):
        out = shift(x)
        assert out.shape == (1, 3, 16, 20)
        matches = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(out, x[:, :, dy:dy + 16, dx:dx + 20])]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) == 25  # every offset from 0 to 4 each way comes up


def test_random_scale_picks_one_of_its_scales_and_keeps_flat_images_flat():
    x = torch.full((2, 3, 20, 30), 0.3)
    seen = set()
    scale = random_scale([0.5, 1.5], _generator())
    for _ in range(20):
        out = scale(x)
        seen.add(tuple(out.shape[-2:]))
        torch.testing.assert_close(out, torch.full_like(out, 0.3))
    assert seen == {(10, 15), (30, 45)}
    assert random_scale([0.01], _generator())(x).shape[-2:] == (8, 8)  # never below 8 pixels


def test_random_rotate_keeps_the_size_and_a_zero_angle_keeps_the_image():
    x = _image(24, 24, batch=2)
    torch.testing.assert_close(random_rotate([0], _generator())(x), x, rtol=1e-5, atol=1e-5)
    flat = torch.full((1, 3, 24, 24), 0.7)
    turned = random_rotate([13], _generator())(flat)
    assert turned.shape == flat.shape
    torch.testing.assert_close(turned, flat)  # reflection padding: no black corners


def test_a_right_angle_turns_the_square_image_a_quarter_and_back():
    x = _image(16, 16)
    quarter = random_rotate([90], _generator())(x)
    assert any(torch.allclose(quarter, torch.rot90(x, k, dims=(2, 3)), atol=1e-5) for k in (1, -1))
    back = random_rotate([-90], _generator())(quarter)
    torch.testing.assert_close(back, x, rtol=1e-5, atol=1e-5)


def test_compose_applies_in_order_and_nothing_is_the_identity():
    x = _image(10, 10)
    doubled, plus_one = (lambda t: t * 2), (lambda t: t + 1)
    torch.testing.assert_close(compose([doubled, plus_one])(x), x * 2 + 1)
    torch.testing.assert_close(compose([plus_one, doubled])(x), (x + 1) * 2)
    assert compose([])(x) is x


def test_the_standard_transforms_are_fixed_by_the_seed_and_pass_gradients():
    x = _image(64, 64).requires_grad_(True)

    def transformed(seed: int) -> torch.Tensor:
        return compose(standard_transforms(_generator(seed)))(x)

    first = transformed(1)
    side = first.shape[-1]
    assert first.shape[:2] == (1, 3) and first.shape[-2] == side and 64 <= side <= 88  # padded 24, cropped 12, scaled by 0.9-1.1
    assert torch.equal(first, transformed(1))
    assert any(not torch.equal(first, transformed(seed)) for seed in (2, 3, 4))
    first.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_whole_crops_at_the_image_size_are_the_image():
    image = _image(32, 32)
    crops = random_crops(image, 3, (1.0, 1.0), 32, _generator())
    assert crops.shape == (3, 3, 32, 32)
    for crop in crops:
        torch.testing.assert_close(crop, image[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sides", [(0.3, 0.6), (0.6, 1.0)])
def test_crops_stay_inside_the_image_and_pass_gradients(sides):
    """On a left-to-right ramp, a crop that left the image would fold back (reflection padding):
    every crop must rise across its width and cover about its share of the ramp."""
    side = 64
    ramp = torch.linspace(0, 1, side).expand(1, 3, side, side).clone().requires_grad_(True)
    crops = random_crops(ramp, 16, sides, 24, _generator())
    assert crops.shape == (16, 3, 24, 24)
    rows = crops[:, 0, 12].detach()  # the middle row of each crop
    assert torch.all(rows[:, 1:] > rows[:, :-1])
    spans = rows[:, -1] - rows[:, 0]
    assert torch.all(spans > sides[0] * 0.8) and torch.all(spans < sides[1])
    crops.sum().backward()
    assert float(ramp.grad.abs().sum()) > 0
