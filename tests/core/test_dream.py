from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from core.dream import DreamSettings, dream, tiled_gradient
from core.errors import InvalidParameter, JobCancelled, UnknownLayer
from core.images import decode_image, to_tensor
from core.jobs import JobSpec
from core.objectives import channel_objective, guide_objective, layer_objective


@pytest.fixture(scope="module")
def astronaut(photo_bytes):
    return to_tensor(Image.open(io.BytesIO(photo_bytes("astronaut.png", (192, 160)))))


def _score(net, objective, image):
    with torch.no_grad():
        return float(objective(net(image, objective.layers)))


@pytest.mark.parametrize("layer", ["block3", "block8", "block13"])
def test_dream_raises_the_chosen_layers_objective(lite0, astronaut, layer):
    objective = layer_objective(layer)
    out = dream(lite0, objective, astronaut, DreamSettings(steps=4, octaves=2), torch.Generator().manual_seed(0))
    assert out.shape == astronaut.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    assert _score(lite0, objective, out) > 1.3 * _score(lite0, objective, astronaut)


def test_channel_objective_rises_more_than_its_neighbours(lite0, astronaut):
    chosen = channel_objective("block8", 7)
    out = dream(lite0, chosen, astronaut, DreamSettings(steps=4, octaves=2), torch.Generator().manual_seed(0))
    gain = _score(lite0, chosen, out) - _score(lite0, chosen, astronaut)
    other = channel_objective("block8", 8)
    assert gain > 0 and gain > abs(_score(lite0, other, out) - _score(lite0, other, astronaut))


def test_guided_dream_moves_features_toward_the_guide(lite0, astronaut, photo_bytes):
    guide = to_tensor(Image.open(io.BytesIO(photo_bytes("coffee.png", (128, 96)))))
    with torch.no_grad():
        features = lite0(guide, ["block8"])["block8"][0].flatten(1)  # (C, N)
    objective = guide_objective("block8", features)
    out = dream(lite0, objective, astronaut, DreamSettings(steps=4, octaves=2), torch.Generator().manual_seed(0))
    assert _score(lite0, objective, out) > 1.2 * _score(lite0, objective, astronaut)


def test_tiled_gradient_matches_the_whole_image(lite0, astronaut):
    objective = layer_objective("block8")
    whole = tiled_gradient(lite0, objective, astronaut, tile=512)
    tiled = tiled_gradient(lite0, objective, astronaut, tile=96)
    error = float((tiled - whole).abs().mean() / whole.abs().mean())
    assert error < 0.05, f"tiled gradient is {error:.1%} off"
    no_context = tiled_gradient(lite0, objective, astronaut, tile=96, margin=0)
    assert float((no_context - whole).abs().mean() / whole.abs().mean()) > 2 * error


def test_tiled_and_untiled_dreams_agree_closely(lite0, astronaut):
    objective = layer_objective("block8")
    settings = DreamSettings(steps=5, octaves=2)
    untiled = dream(lite0, objective, astronaut, settings, torch.Generator().manual_seed(3))
    tiled = dream(lite0, objective, astronaut, DreamSettings(steps=5, octaves=2, tile=128), torch.Generator().manual_seed(3))
    other_seed = dream(lite0, objective, astronaut, settings, torch.Generator().manual_seed(4))
    change = float((untiled - astronaut).abs().mean())
    difference = float((tiled - untiled).abs().mean())
    assert difference < 2.5 / 255, "tiles should change pixels by less than 2.5 levels on average"
    assert difference < 0.5 * float((other_seed - untiled).abs().mean())
    assert difference < 0.5 * change


def test_same_seed_same_bytes_other_seed_other_bytes(runner, photo_bytes):
    image = photo_bytes("chelsea.png", (160, 106))
    params = {"steps": 3, "octaves": 2}
    first = runner.run(JobSpec("dream", params, image=image, seed=11))
    again = runner.run(JobSpec("dream", params, image=image, seed=11))
    other = runner.run(JobSpec("dream", params, image=image, seed=12))
    assert first.data == again.data
    assert first.data != other.data


def test_output_keeps_aspect_and_is_capped(runner, photo_bytes):
    result = runner.run(JobSpec("dream", {"steps": 1, "octaves": 1, "max_side": 120}, image=photo_bytes("chelsea.png"), seed=0))
    decoded = decode_image(result.data)
    assert decoded.rgb.size == (120, 80)  # chelsea is 451x300
    assert result.metadata["source_size"] == [451, 300]


def test_transparency_survives(runner):
    img = Image.new("RGBA", (96, 64), (200, 120, 40, 255))
    img.paste((10, 200, 90, 0), (0, 0, 48, 64))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    result = runner.run(JobSpec("dream", {"steps": 1, "octaves": 1}, image=buf.getvalue(), seed=0))
    alpha = decode_image(result.data).alpha
    assert alpha is not None and alpha.getpixel((10, 10)) == 0 and alpha.getpixel((80, 10)) == 255


def test_guide_and_channels_through_the_runner(runner, photo_bytes):
    image, guide = photo_bytes("chelsea.png", (96, 64)), photo_bytes("coffee.png", (96, 64))
    result = runner.run(JobSpec("dream", {"steps": 1, "octaves": 1}, image=image, guide=guide, seed=0))
    assert result.metadata["objective"].startswith("guide:")
    result = runner.run(JobSpec("dream", {"steps": 1, "octaves": 1, "channel": "3,5"}, image=image, seed=0))
    assert "channel:block8:5" in result.metadata["objective"]
    with pytest.raises(InvalidParameter, match="channels 0-111"):
        runner.run(JobSpec("dream", {"channel": "500"}, image=image))
    with pytest.raises(UnknownLayer):
        runner.run(JobSpec("dream", {"layer": "nope"}, image=image))


def test_progress_and_cancel(runner, photo_bytes):
    image = photo_bytes("chelsea.png", (96, 64))
    events = []
    runner.run(JobSpec("dream", {"steps": 2, "octaves": 2}, image=image), progress=events.append)
    steps = [e for e in events if e.stage.startswith("octave")]
    assert [e.step for e in steps] == [1, 2, 3, 4] and steps[-1].total == 4
    with pytest.raises(JobCancelled):
        runner.run(JobSpec("dream", {}, image=image), should_cancel=lambda: len(events) > 5, progress=events.append)
