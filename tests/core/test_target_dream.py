"""Dreams toward a class (`!dream target:banana`): the class emerges while the photo stays recognisable.

The full check, the post's nine classes on each of three photos at the defaults, is
`benchmarks/target_dreams.py` (about two minutes on a 2-core CPU); here each class once, on one
of the three photos, at half the default size.
"""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.image_measures import luminance_correlation, mean_change
from benchmarks.transfer import random_views, transfer_score
from bot.commands import reproduce_command
from core.dream import DreamSettings, dream, natural_step
from core.errors import InvalidParameter, UnknownClass
from core.images import decode_image, fit_longest_side, to_tensor
from core.jobs import JobResult
from core.models.classes import imagenet_classes
from core.objectives import class_logit_objective
from core.params import TARGET_DREAM_DEFAULTS, DreamParams, as_dict
from core.render import classify
from core.runner import dream_settings
from core.spec import compile_job, restore_job
from tests.clip_making import encode_video, pan_and_zoom

# Each of the post's nine classes once, spread over the three photos.
DREAMS = [
    ("chelsea.png", "hartebeest"), ("chelsea.png", "anemone fish"), ("chelsea.png", "screw"),
    ("astronaut.png", "measuring cup"), ("astronaut.png", "starfish"), ("astronaut.png", "parachute"),
    ("coffee.png", "ant"), ("coffee.png", "banana"), ("coffee.png", "dumbbell"),
]
SIDE = 256  # half the default max_side: a quarter of the work
# Every seed must pass. Over seeds 0-4 (2-core AVX-512 CPU) the nine dreams gave the class at
# p >= 0.97, a luminance correlation of 0.86-0.98 and a mean change of 15.2-18.0 levels: the
# bounds below sit far outside that spread, so a pass is not a lucky seed.
SEEDS = (0, 1, 2)


@pytest.mark.parametrize("photo, target", DREAMS)
def test_the_class_emerges_and_the_photo_stays_recognisable(runner, lite0, photo_bytes, photo, target):
    data = photo_bytes(photo)
    source = fit_longest_side(decode_image(data).rgb, SIDE)
    before = classify(lite0, to_tensor(source))
    index = imagenet_classes().index(target)
    assert int(before.argmax()) != index  # the photo was not that class to begin with
    for seed in SEEDS:
        result = runner.run(compile_job("dream", {"target": target, "max_side": SIDE}, images=[data], seed=seed))
        dreamt = decode_image(result.data).rgb  # as the user gets it: 8 bits per channel
        assert dreamt.size == source.size
        after = classify(lite0, to_tensor(dreamt))
        top1 = imagenet_classes()[int(after.argmax())]
        assert top1 == target, f"{photo} toward {target}, seed {seed}: top-1 {top1}"
        assert result.metadata["class_name"] == target and result.metadata["top1_name"] == target
        assert abs(result.metadata["probability"] - float(after[index])) < 1e-3
        assert luminance_correlation(dreamt, source) >= 0.5, f"seed {seed}"
        assert mean_change(dreamt, source) >= 6.0, f"seed {seed}"


def _high_frequency_share(change: torch.Tensor) -> float:
    """The share of a change (1, 3, H, W) that a 5x5 box blur removes: static scores near 1, broad shapes near 0."""
    blurred = torch.nn.functional.avg_pool2d(change, 5, stride=1, padding=2, count_include_pad=False)
    return float((change - blurred).abs().mean() / change.abs().mean())


def _colour_share(change: torch.Tensor) -> float:
    """The share of a change that is not a change of grey level (equal in all three channels)."""
    grey = change.mean(dim=1, keepdim=True)
    return float((change - grey).abs().mean() / change.abs().mean())


def test_natural_steps_are_broad_and_photo_coloured_where_raw_ones_are_static(lite0, photo_path):
    photo = to_tensor(fit_longest_side(Image.open(photo_path("chelsea.png")).convert("RGB"), 128))
    shaped = replace(dream_settings(DreamParams(target="banana", layer="logits")), steps=5, octaves=3)
    raw = replace(shaped, smoothing=0.0, pull=0.0)
    objective = class_logit_objective(imagenet_classes().index("banana"))
    changes = {name: dream(lite0, objective, photo, settings, torch.Generator().manual_seed(0)) - photo
               for name, settings in (("raw", raw), ("shaped", shaped))}
    assert _high_frequency_share(changes["shaped"]) < 0.85 * _high_frequency_share(changes["raw"])
    assert _colour_share(changes["shaped"]) < 0.8 * _colour_share(changes["raw"])
    # The step itself: a gradient of pure static comes out smoother.
    static = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    assert _high_frequency_share(natural_step(static, 1.0)) < 0.75 * _high_frequency_share(static)


def test_the_pull_keeps_the_dream_near_the_photo(lite0, photo_path):
    photo = to_tensor(fit_longest_side(Image.open(photo_path("coffee.png")).convert("RGB"), 96))
    objective = class_logit_objective(imagenet_classes().index("starfish"))
    settings = DreamSettings(steps=4, octaves=2, strength=2.0, smoothing=1.0)
    free = dream(lite0, objective, photo, settings, torch.Generator().manual_seed(0))
    pulled = dream(lite0, objective, photo, replace(settings, pull=0.3), torch.Generator().manual_seed(0))
    assert float((pulled - photo).abs().mean()) < 0.6 * float((free - photo).abs().mean())


def test_target_dreams_on_different_photos_share_passes_each_pulled_to_its_own(runner, photo_bytes):
    photos = [photo_bytes(name, (96, 64)) for name in ("chelsea.png", "coffee.png")]
    options = {"target": "banana", "steps": 3, "octaves": 2}
    specs = [compile_job("dream", options, images=[photo], seed=3) for photo in photos]
    together = runner.run_batch(specs)
    alone = [runner.run(spec) for spec in specs]
    # A target dream's steps are chaotic: a kernel's rounding can move a batched result a few levels
    # from its solo run (seen: 4/255 on average under ATEN_CPU_CAPABILITY=default). So compare what
    # each dream changed: a batched change follows its own photo's solo change (correlation 0.82 or
    # more over seeds 1-8 and both kernel sets) and owes nothing to the other photo's (|r| < 0.05).
    changes = []
    for batched, single, photo in zip(together, alone, photos):
        assert isinstance(batched, JobResult), batched
        assert batched.metadata["batch_size"] == 2
        original = to_tensor(decode_image(photo).rgb)
        changes.append([(to_tensor(decode_image(result.data).rgb) - original).flatten().numpy() for result in (batched, single)])
        assert luminance_correlation(decode_image(batched.data).rgb, decode_image(photo).rgb) > 0.8
    for own, other in (changes, changes[::-1]):
        assert np.corrcoef(own[0], own[1])[0, 1] > 0.6
        assert abs(np.corrcoef(own[0], other[1])[0, 1]) < 0.2


# -- options, names and prices ----------------------------------------------------------------------------


def _png() -> bytes:
    array = np.full((48, 64, 3), 120, np.uint8)
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()


def test_a_target_is_named_canonically_and_brings_its_defaults():
    params = compile_job("dream", {"target": "Banana"}, images=[_png()]).params
    assert params.target == "banana" and params.layer == "logits" and params.channel == ()
    assert params.max_side == TARGET_DREAM_DEFAULTS["max_side"] and params.strength == TARGET_DREAM_DEFAULTS["strength"]
    assert compile_job("dream", {"target": "954"}, images=[_png()]).params == params
    given = compile_job("dream", {"target": "banana", "max_side": 300, "strength": 1.5, "layer": "logits"}, images=[_png()]).params
    assert (given.max_side, given.strength) == (300, 1.5)
    plain = compile_job("dream", {}, images=[_png()]).params  # no target: the layer dream's defaults
    assert (plain.target, plain.layer, plain.max_side, plain.strength) == ("", "block8", DreamParams().max_side, DreamParams().strength)


def test_an_unknown_class_is_one_line_with_suggestions():
    with pytest.raises(UnknownClass) as caught:
        compile_job("dream", {"target": "dumbel"}, images=[_png()])
    assert "\n" not in str(caught.value) and "dumbbell" in str(caught.value)


@pytest.mark.parametrize("options, images, words", [
    ({"target": "banana", "layer": "deep"}, 1, "drop layer:deep"),
    ({"target": "banana", "channel": "3"}, 1, "drop channel"),
    ({"target": "banana"}, 2, "target class or a guide image, not both"),
])
def test_what_a_target_does_not_combine_with_is_one_line(options, images, words):
    with pytest.raises(InvalidParameter) as caught:
        compile_job("dream", options, images=[_png()] * images)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_a_clip_with_a_target_is_one_line(photo_path):
    clip = encode_video(pan_and_zoom(photo_path("chelsea.png"), frames=4))
    with pytest.raises(InvalidParameter) as caught:
        compile_job("dream", {"target": "banana"}, images=[clip])
    assert str(caught.value) == "target: for photos only, and the input is a video"


def test_the_reproduce_command_and_a_restart_give_the_same_job():
    spec = compile_job("dream", {"target": "anemone fish", "steps": 12}, images=[_png()], seed=9)
    command = reproduce_command(spec)
    assert command == "!dream target:'anemone fish' steps:12 seed:9"
    restored = restore_job("dream", as_dict(spec.params), seed=9, image=spec.image)
    assert restored.params == spec.params and restored.cost == spec.cost


def test_a_target_dream_is_priced_to_the_class_scores():
    photo = _png()
    plain = compile_job("dream", {"max_side": 512}, images=[photo]).cost
    toward = compile_job("dream", {"target": "banana", "strength": 1.0}, images=[photo]).cost
    assert toward.passes == plain.passes + 1  # the same steps, and one look at the result
    assert toward.network > plain.network  # the passes run to the logits, not the mid layer


# -- the transfer score (benchmarks/transfer.py): does the class hold up under other views? ---------------


def test_random_views_are_seeded_crops_within_bounds_through_jpeg(photo_path):
    photo = fit_longest_side(Image.open(photo_path("chelsea.png")).convert("RGB"), 256)
    views = random_views(photo, count=8, seed=3)
    assert len(views) == 8 and all(view.mode == "RGB" for view in views)
    for number, view in enumerate(views):
        scale = 0.8 if number % 4 >= 2 else 1.0  # half of them scaled down to 0.8x
        assert 0.6 * scale * 256 - 2 <= view.width <= scale * 256 + 1 and 0.6 * scale * 170 - 2 <= view.height <= scale * 170 + 1
    same = random_views(photo, count=8, seed=3)
    assert [np.asarray(v).tobytes() for v in views] == [np.asarray(v).tobytes() for v in same], "the views are the seed's"
    assert [v.size for v in random_views(photo, count=8, seed=4)] != [v.size for v in views], "another seed, other views"


def test_the_transfer_score_is_the_share_of_views_that_keep_the_class(lite0, photo_path):
    """A real photo keeps its own class in most views (measured 0.875-0.94 over seeds 0-2 at this
    size), and a class it never shows in none."""
    photo = fit_longest_side(Image.open(photo_path("chelsea.png")).convert("RGB"), 256)
    own = int(classify(lite0, to_tensor(photo)).argmax())
    for seed in (0, 1, 2):
        assert transfer_score(lite0, photo, own, count=16, seed=seed) >= 0.75, seed
    assert transfer_score(lite0, photo, imagenet_classes().index("banana"), count=16) == 0.0
