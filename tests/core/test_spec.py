"""Compiling a request (core.spec): raw options, inputs and seed become one typed, resolved, priced
`JobSpec`, or one line that says what is wrong, before anything runs."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from bot.commands import CommandError, parse_command
from core.cost import job_cost
from core.errors import (
    DreamError,
    ImageTooLarge,
    InvalidImage,
    InvalidParameter,
    MissingImage,
    UnknownClass,
    UnknownLayer,
    UnknownModel,
)
from core.jobs import JOB_KINDS, JobSpec
from core.params import (
    TARGET_DREAM_DEFAULTS,
    DreamParams,
    VideoParams,
    VisualizeParams,
    ZoomParams,
    as_dict,
)
from core.spec import (
    INPUTS,
    SEED_MAX,
    check_inputs,
    check_options,
    compile_job,
    default_params,
    input_kind,
    parse_seed,
    resolve_names,
    restore_job,
)


def job_error(text: str) -> str:
    """The one line a job command gets, from the parser or, for its values, from compile_job."""
    try:
        request = parse_command(text)
        compile_job(request.name, request.params, seed=request.seed, images=[PHOTO] if request.name == "dream" else [])
    except (CommandError, DreamError) as exc:
        return str(exc)
    raise AssertionError(f"{text!r} was accepted")


def _png(size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size).save(out, "PNG")
    return out.getvalue()


PHOTO = _png()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("!dream strength:99", "strength must be between"),
        ("!dream strenght:2", "did you mean strength?"),
        ("!dream steps:many", "steps must be a whole number"),
        ("!dream seed:-1", "seed must be from 0 to 2147483647"),
        ("!dream seed:2147483648", "seed must be from 0"),
        ("!zoom seed:abc", "seed must be a whole number"),
        ("!dream layer:blok8", "unknown layer 'blok8' for efficientnet-lite0; closest: block8"),
        ("!dream model:googlenett", "closest: googlenet"),
        ("!dream channel:500", "block8 has channels 0-111; got 500"),
        ("!visualize xyzzy", "unknown class 'xyzzy'"),
        ("!zoom layer:deepp", "closest: deep"),
    ],
)
def test_job_values_are_checked_once_when_compiled(text, message):
    line = job_error(text)
    assert message in line and "\n" not in line


# -- compile_job ------------------------------------------------------------------------------------


def test_a_compiled_dream_has_every_parameter_typed_resolved_and_priced():
    spec = compile_job("dream", {"Layer": "MID", "strength": "2", "channel": "3,5", "model": "EfficientNet-Lite0"},
                       images=[PHOTO], seed="7")
    assert isinstance(spec, JobSpec) and spec.kind == "dream" and spec.seed == 7
    assert spec.params == DreamParams(layer="block8", strength=2.0, channel=(3, 5), model="efficientnet-lite0")
    assert spec.image == PHOTO and spec.guide is None
    assert spec.cost == job_cost("dream", spec.params, (64, 48))
    json.dumps(as_dict(spec.params))  # what the store keeps


def test_equal_requests_compile_to_equal_params_however_they_were_spelt():
    """Batching and the store compare params: "mid" and "block8", "Banana" and "banana" are one job."""
    assert compile_job("dream", {"layer": "mid"}, images=[PHOTO]).params == compile_job("dream", {"layer": "block8"}, images=[PHOTO]).params
    assert compile_job("visualize", {"target": "Banana"}).params == compile_job("visualize", {"target": "954"}).params
    assert compile_job("zoom", {"layer": "shallow, block3"}).params.layer == "block3"


def test_a_seed_is_drawn_when_none_is_given():
    seeds = {compile_job("visualize", {}).seed for _ in range(8)}
    assert all(0 <= seed <= SEED_MAX for seed in seeds) and len(seeds) > 1


@pytest.mark.parametrize(("raw", "seed"), [(0, 0), ("42", 42), (" 42 ", 42), (SEED_MAX, SEED_MAX), (str(SEED_MAX), SEED_MAX)])
def test_seeds_from_text_or_numbers(raw, seed):
    assert parse_seed(raw) == seed


@pytest.mark.parametrize("raw", [-1, SEED_MAX + 1, "abc", "1.5", "", "9" * 1000])
def test_a_bad_seed_is_one_short_line(raw):
    with pytest.raises(InvalidParameter, match="seed must be") as info:
        parse_seed(raw)
    assert "\n" not in str(info.value) and len(str(info.value)) < 120


def test_an_unknown_kind_is_refused_by_name():
    for check in (lambda: compile_job("painting"), lambda: check_options("painting")):
        with pytest.raises(InvalidParameter, match="unknown job kind 'painting'; expected one of dream, visualize, zoom, video"):
            check()


def test_a_guided_dream_takes_one_layer_and_no_target():
    assert compile_job("dream", {"layer": "block8"}, images=[PHOTO, _png((32, 32))]).guide is not None
    with pytest.raises(InvalidParameter, match="a guided dream uses exactly one layer"):
        compile_job("dream", {"layer": "block3,block8"}, images=[PHOTO, PHOTO])
    with pytest.raises(InvalidParameter, match="a target class or a guide image, not both"):
        compile_job("dream", {"target": "banana"}, images=[PHOTO, PHOTO])


def test_inputs_are_checked_from_their_headers_only():
    with pytest.raises(InvalidImage):
        compile_job("dream", {}, images=[b"not an image"])
    with pytest.raises(ImageTooLarge):
        compile_job("dream", {}, images=[_png((200, 200))], max_pixels=100 * 100)
    assert compile_job("zoom", {}, images=[PHOTO]).cost == job_cost("zoom", ZoomParams(), (64, 48))


# -- inputs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "count", "error", "message"),
    [
        ("dream", 0, MissingImage, "dream needs a photo to dream on"),
        ("dream", 3, InvalidParameter, "dream takes a photo and at most one guide image, got 3 images"),
        ("visualize", 1, InvalidParameter, "visualize takes no image, got 1 images"),
        ("zoom", 2, InvalidParameter, "zoom takes at most one image, got 2 images"),
        ("video", 0, MissingImage, "a dream on a video needs a clip to dream on"),
        ("video", 2, InvalidParameter, "a dream on a video takes no guide image, got 2 images"),
    ],
)
def test_each_kind_refuses_too_few_or_too_many_inputs(kind, count, error, message):
    with pytest.raises(error) as info:
        check_inputs(kind, count)
    assert str(info.value) == message


def test_every_kind_takes_the_inputs_its_table_says():
    assert set(INPUTS) == set(JOB_KINDS)
    for kind, inputs in INPUTS.items():
        assert 0 <= inputs.needed <= inputs.most == len(inputs.slots)
        for count in range(inputs.needed, inputs.most + 1):
            check_inputs(kind, count)  # no error
    assert [name for name, _ in INPUTS["dream"].slots] == ["image", "guide"]


def test_a_photo_is_a_dream_whatever_the_kind_asked_for_and_a_render_takes_no_input():
    assert input_kind("dream", [PHOTO]) == "dream" and input_kind("video", [PHOTO]) == "dream"
    assert input_kind("dream", []) == "dream" and input_kind("visualize", []) == "visualize"
    assert input_kind("zoom", [PHOTO]) == "zoom"


# -- checks before the inputs are downloaded ---------------------------------------------------------


def test_options_are_checked_without_inputs_as_compile_job_checks_them():
    assert check_options("dream", {"layer": "mid", "strength": "2"}, seed="5") == compile_job(
        "dream", {"layer": "mid", "strength": "2"}, images=[PHOTO], seed=5).params
    with pytest.raises(InvalidParameter, match="seed must be from 0"):
        check_options("dream", {}, seed=-1)
    with pytest.raises(UnknownLayer, match="closest: block8"):
        check_options("zoom", {"layer": "blok8"})


def test_a_dream_s_clip_options_pass_until_the_input_turns_out_to_be_a_photo():
    early = check_options("dream", {"blend": "0.5", "strength": "2"})
    assert isinstance(early, VideoParams) and early.blend == 0.5 and early.strength == 2.0
    with pytest.raises(InvalidParameter) as info:
        compile_job("dream", {"blend": "0.5", "strength": "2"}, images=[PHOTO])
    assert str(info.value) == "blend: for videos only, and the input is a photo"
    with pytest.raises(InvalidParameter, match="strength must be between"):
        check_options("dream", {"blend": "0.5", "strength": "20"})  # still checked against either's ranges
    with pytest.raises(InvalidParameter, match="unknown option 'blendd' for dream"):
        check_options("dream", {"blendd": "0.5"})  # an option of neither kind


# -- names ---------------------------------------------------------------------------------------------


def test_names_are_resolved_against_the_registry_without_loading_weights():
    assert resolve_names("dream", DreamParams(model=" GoogLeNet", layer="mid")) == DreamParams(model="googlenet", layer="inception4c")
    assert resolve_names("visualize", VisualizeParams(target="Anemone_Fish")).target == "anemone fish"
    with pytest.raises(UnknownModel):
        resolve_names("zoom", ZoomParams(model="alexnet"))
    with pytest.raises(UnknownClass):
        resolve_names("visualize", VisualizeParams(target="xyzzy"))
    with pytest.raises(InvalidParameter, match="block3 has channels 0-39; got 40"):
        resolve_names("video", VideoParams(layer="block3", channel=(40,)))
    with pytest.raises(InvalidParameter, match="mask needs style:natural"):
        resolve_names("visualize", VisualizeParams(style="vivid", mask=True))


def test_default_params_are_a_kind_s_defaults_on_a_model_with_names_resolved():
    assert default_params("dream", "googlenet") == DreamParams(model="googlenet", layer="inception4c")
    assert default_params("zoom", "EfficientNet-Lite0") == ZoomParams(layer="block8")
    assert default_params("visualize", "googlenet") == VisualizeParams(model="googlenet")
    toward = default_params("dream", "efficientnet-lite0", target="Banana")
    assert toward == DreamParams(target="banana", layer="logits", **TARGET_DREAM_DEFAULTS)


# -- restoring a stored job ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "options", "images"),
    [("dream", {"strength": 2, "channel": "1,2"}, [PHOTO]), ("dream", {"layer": "block4"}, [PHOTO, _png((40, 40))]),
     ("visualize", {"target": "starfish", "size": 96}, []), ("zoom", {"frames": 6, "loop": "seamless"}, [PHOTO]),
     ("zoom", {"frames": 6}, [])],
)
def test_a_stored_job_is_restored_as_it_was_compiled(kind, options, images):
    spec = compile_job(kind, options, images=images, seed=9)
    stored = json.loads(json.dumps(as_dict(spec.params)))
    image, guide = (images + [None, None])[:2]
    assert restore_job(kind, stored, seed=9, image=image, guide=guide) == spec
