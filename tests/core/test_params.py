"""Job parameters (core.params): names, defaults and ranges in one place; raw values coerced and
checked with one line that says what was expected; the engine's settings take the same defaults."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from core.dream import DreamSettings
from core.errors import InvalidParameter
from core.params import (
    MOST_CHANNELS,
    PARAMS_BY_KIND,
    DreamParams,
    VideoParams,
    VisualizeParams,
    ZoomParams,
    as_dict,
    fields_for,
    on_or_off,
    option_name,
    param_help,
    params_from_dict,
    validate_params,
)
from core.render import NaturalRenderSettings, RenderSettings
from core.video import CoherenceSettings
from core.zoom import ZoomSettings


def _error(kind: str, raw: dict) -> str:
    with pytest.raises(InvalidParameter) as info:
        validate_params(kind, raw)
    message = str(info.value)
    assert "\n" not in message and len(message) < 200, message
    return message


# -- coercion ------------------------------------------------------------------------------------------


def test_text_from_chat_becomes_typed_values():
    p = validate_params("dream", {"strength": "2.5", "steps": " 12 ", "channel": "3, 7,", "model": " googlenet ", "layer": "deep"})
    assert p == DreamParams(strength=2.5, steps=12, channel=(3, 7), model="googlenet", layer="deep")
    assert type(p.steps) is int and type(p.strength) is float
    assert validate_params("visualize", {"mask": "Yes", "style": "VIVID"}) == VisualizeParams(mask=True, style="vivid")
    assert validate_params("video", {"flow": "off"}).flow is False


def test_typed_values_are_taken_as_they_are():
    p = validate_params("dream", {"steps": 12.0, "strength": 3, "channel": [4, 5]})
    assert (p.steps, p.strength, p.channel) == (12, 3.0, (4, 5)) and type(p.strength) is float
    assert validate_params("dream", {"channel": 9}).channel == (9,)
    assert validate_params("dream", {"channel": ""}).channel == ()
    assert validate_params("visualize", {"mask": True}).mask is True
    assert validate_params("dream") == validate_params("dream", {}) == DreamParams()


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("dream", {"steps": "many"}, "steps must be a whole number, got 'many'"),
        ("dream", {"steps": "7.5"}, "steps must be a whole number, got '7.5'"),
        ("dream", {"steps": 7.5}, "steps must be a whole number, got 7.5"),
        ("dream", {"strength": "strong"}, "strength must be a number, got 'strong'"),
        ("dream", {"strength": "nan"}, "strength must be a number, got 'nan'"),
        ("dream", {"strength": "inf"}, "strength must be a number, got 'inf'"),
        ("dream", {"channel": "1,two"}, "channel must be comma-separated whole numbers, got '1,two'"),
        ("visualize", {"mask": "maybe"}, "mask must be true or false, got 'maybe'"),
    ],
)
def test_a_value_of_the_wrong_type_is_one_line_saying_what_was_expected(kind, raw, expected):
    assert _error(kind, raw) == expected


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("dream", {"strength": "99"}, "strength must be between 0.05 and 10, got 99.0"),
        ("dream", {"strength": 0.01}, "strength must be between 0.05 and 10, got 0.01"),
        ("dream", {"steps": 0}, "steps must be between 1 and 100, got 0"),
        ("dream", {"octave_scale": 2.5}, "octave_scale must be between 1.1 and 2, got 2.5"),
        ("visualize", {"size": 1025}, "size must be between 64 and 1024, got 1025"),
        ("zoom", {"rotate": -16}, "rotate must be between -15 and 15, got -16.0"),
        ("video", {"blend": 1}, "blend must be between 0 and 0.95, got 1.0"),
    ],
)
def test_a_value_out_of_range_names_the_range(kind, raw, expected):
    assert _error(kind, raw) == expected


def test_the_ends_of_a_range_are_in_it():
    assert validate_params("dream", {"strength": 0.05, "steps": 100}) == DreamParams(strength=0.05, steps=100)
    assert validate_params("zoom", {"rotate": "-15", "zoom": "1"}) == ZoomParams(rotate=-15.0, zoom=1.0)


def test_choices_empty_names_and_long_lists_are_refused():
    assert _error("visualize", {"style": "cubist"}) == "style must be one of natural, vivid, got 'cubist'"
    assert _error("zoom", {"format": "avi"}) == "format must be one of auto, gif, webp, mp4, got 'avi'"
    assert _error("dream", {"layer": "  "}) == "layer must not be empty"
    assert validate_params("dream", {"target": ""}).target == ""  # an option whose default is empty may be empty
    too_many = ",".join(str(i) for i in range(MOST_CHANNELS + 1))
    assert _error("dream", {"channel": too_many}) == f"channel takes at most {MOST_CHANNELS} values, got {MOST_CHANNELS + 1}"
    assert len(validate_params("dream", {"channel": too_many.rsplit(",", 1)[0]}).channel) == MOST_CHANNELS


def test_unknown_options_and_kinds_suggest_what_there_is():
    assert _error("dream", {"strenght": 2}) == "unknown option 'strenght' for dream (did you mean strength?)"
    message = _error("zoom", {"xyzzy": 1})
    assert message.startswith("unknown option 'xyzzy' for zoom; expected one of model, layer, frames")
    assert _error("painting", {}) == "unknown job kind 'painting'; expected one of dream, visualize, zoom, video"


def test_hostile_values_are_quoted_short():
    for raw in ({"steps": "9" * 5000 + "x"}, {"strength": "line\nbreak" * 100}, {"x" * 5000: 1}):
        message = _error("dream", raw)
        assert len(message) < 200 and "\n" not in message


# -- names and switches ------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["max_side", "Max-Side", "MAX_SIDE", "max-side"])
def test_an_option_is_the_same_however_it_is_spelt(spelling):
    assert option_name(spelling) == "max_side"
    assert validate_params("dream", {spelling: "256"}).max_side == 256


@pytest.mark.parametrize(("word", "value"), [
    ("on", True), ("yes", True), ("true", True), ("1", True), (" ON ", True), ("Yes", True), ("TRUE", True),
    ("off", False), ("no", False), ("false", False), ("0", False), ("Off", False), (" NO", False),
    ("maybe", None), ("", None), ("2", None), ("onn", None), ("y", None),
])
def test_on_or_off_words(word, value):
    assert on_or_off(word) is value


# -- storing and restoring -----------------------------------------------------------------------------


ODD_ONES = {
    "dream": DreamParams(model="googlenet", layer="inception4c", channel=(1, 5), strength=2.5, target="banana", iterations=3),
    "visualize": VisualizeParams(target="starfish", style="vivid", size=96, mask=True),
    "zoom": ZoomParams(frames=12, zoom=1.1, rotate=-2.5, loop="seamless", format="gif"),
    "video": VideoParams(channel=(7,), blend=0.5, flow=False, format="webp"),
}


@pytest.mark.parametrize("kind", list(PARAMS_BY_KIND))
def test_params_survive_json_and_come_back_equal(kind):
    for params in (PARAMS_BY_KIND[kind](), ODD_ONES[kind]):
        stored = json.loads(json.dumps(as_dict(params)))
        assert params_from_dict(kind, stored) == params
        assert validate_params(kind, stored) == params  # what was stored passes the checks again
    assert isinstance(as_dict(ODD_ONES[kind]), dict) and not any(isinstance(v, tuple) for v in as_dict(ODD_ONES[kind]).values())


def test_a_job_stored_by_an_older_version_still_loads():
    stored = {**as_dict(DreamParams(strength=3.0)), "retired_option": 5}
    assert params_from_dict("dream", stored) == DreamParams(strength=3.0)
    assert params_from_dict("dream", {"steps": 4}) == DreamParams(steps=4)  # options added since take their defaults


def test_fields_for_takes_same_named_fields_only():
    settings = fields_for(DreamSettings, DreamParams(steps=3, strength=2.0, octaves=2))
    assert (settings.steps, settings.strength, settings.octaves) == (3, 2.0, 2)
    assert fields_for(ZoomSettings, ZoomParams(frames=5, loop="seamless")) == ZoomSettings(frames=5, zoom=1.05, rotate=0.0, loop="seamless")


@pytest.mark.parametrize("kind", list(PARAMS_BY_KIND))
def test_every_parameter_has_one_line_of_help_and_its_default(kind):
    help_lines = param_help(kind)
    assert [name for name, _, _ in help_lines] == [f.name for f in fields(PARAMS_BY_KIND[kind])]
    defaults = PARAMS_BY_KIND[kind]()
    for name, default, text in help_lines:
        assert text and "\n" not in text, name
        assert default == getattr(defaults, name)


# -- one home for each option's range and each default --------------------------------------------------


def _shared(kind: type) -> list[str]:
    dream = {f.name for f in fields(DreamParams)}
    return [f.name for f in fields(kind) if f.name in dream]


# Options that mean the same wherever they appear. A zoom's and a render's steps and octaves are
# their own (per frame, or an optimiser's), with ranges of their own; a clip's are a photo's.
SAME_MEANING = ("model", "layer", "channel", "strength", "octave_scale", "max_side", "tile", "jitter")


@pytest.mark.parametrize(("kind", "names"), [
    (VideoParams, tuple(f.name for f in fields(VideoParams) if f.name in DreamParams.__dataclass_fields__)),
    (ZoomParams, SAME_MEANING),
    (VisualizeParams, SAME_MEANING),
])
def test_an_option_shared_with_the_photo_dream_has_its_range(kind, names):
    dream = {f.name: f for f in fields(DreamParams)}
    present = [f for f in fields(kind) if f.name in names]
    assert "model" in [f.name for f in present]
    for f in present:
        for key in ("lo", "hi", "choices", "most"):
            assert f.metadata[key] == dream[f.name].metadata[key], f"{kind.__name__}.{f.name} {key}"


def test_video_and_zoom_share_the_photo_dream_s_options_with_their_own_defaults():
    assert set(_shared(VideoParams)) == {"model", "layer", "channel", "strength", "steps", "octaves", "octave_scale", "max_side",
                                         "tile", "jitter"}
    assert set(_shared(ZoomParams)) >= {"model", "layer", "strength", "steps", "octaves"}
    video, dream = VideoParams(), DreamParams()
    assert (video.strength, video.steps, video.octaves, video.max_side, video.jitter) == (1.5, 6, 3, 320, 16)
    assert (dream.strength, dream.steps, dream.octaves, dream.max_side, dream.jitter) == (1.0, 10, 4, 2048, 32)
    assert video.octave_scale == dream.octave_scale and video.tile == dream.tile and video.model == dream.model
    assert _error("video", {"strength": 11}) == "strength must be between 0.05 and 10, got 11.0"
    assert _error("video", {"channel": ",".join("1" * (MOST_CHANNELS + 1))}).startswith("channel takes at most")


@pytest.mark.parametrize(
    ("settings", "params"),
    [(DreamSettings, DreamParams), (RenderSettings, VisualizeParams), (NaturalRenderSettings, VisualizeParams),
     (ZoomSettings, ZoomParams), (CoherenceSettings, VideoParams)],
)
def test_the_engine_s_settings_default_to_the_params_defaults(settings, params):
    names = {f.name for f in fields(settings)} & {f.name for f in fields(params)}
    assert names, f"{settings.__name__} shares no option with {params.__name__}"
    engine, user = settings(), params()
    assert {n: getattr(engine, n) for n in names} == {n: getattr(user, n) for n in names}
    # The settings built from default params equal the default settings: nothing else differs.
    assert fields_for(settings, user) == engine
