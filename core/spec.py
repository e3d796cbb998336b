"""Compile a request once: raw options, inputs and seed -> a typed, resolved, priced `JobSpec`.

Every front (Discord, console, CLI) hands what the user typed to `compile_job` before anything is
admitted, so a typo or an impossible job costs the user nothing and gets one line with a
suggestion. Each rule lives here once: option ranges (through core.params), model, layer, channel
and class names (checked against the registry's metadata; no weights are loaded), how many images
each kind takes, the seed's range, and the job's cost (core.cost). Workers trust the result.
"""

from __future__ import annotations

import difflib
import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from .clips import DEFAULT_CLIP_LIMITS, ClipLimits, probe_clip
from .cost import job_cost
from .errors import InvalidParameter, MissingImage, quoted
from .images import DEFAULT_MAX_PIXELS, is_clip, probe_image
from .jobs import JOB_KINDS, JobCost, JobSpec
from .models.classes import imagenet_classes, resolve_class
from .models.registry import ModelEntry, get_entry, resolve_layers
from .params import (
    TARGET_DREAM_DEFAULTS, DreamParams, JobParams, VideoParams, VisualizeParams, ZoomParams, option_name, params_from_dict,
    validate_params,
)

__all__ = [
    "SEED_MAX", "INPUTS", "Inputs", "check_inputs", "compile_job", "check_options", "restore_job", "input_kind",
    "resolve_names", "parse_seed", "default_params",
]

SEED_MAX = 2**31 - 1  # seeds are shown to users and typed back; 31 bits keep them short and portable


@dataclass(frozen=True)
class Inputs:
    """The images a kind takes, in order: the first `needed` of `slots` must be given, the rest may."""

    needed: int
    slots: tuple[tuple[str, str], ...]  # (name, what it is) of each image it takes, in order
    label: str  # the job as a refusal names it
    needs: str  # what a refusal says is missing
    takes: str  # what a refusal says it takes

    @property
    def most(self) -> int:
        return len(self.slots)


# Each kind's inputs: a dream's photo (or clip) then an optional guide; a zoom's optional photo.
INPUTS: dict[str, Inputs] = {
    "dream": Inputs(1, (("image", "the photo (or short video) to dream on"),
                        ("guide", "a second photo whose features the dream leans towards")),
                    "dream", "a photo to dream on", "a photo and at most one guide image"),
    "visualize": Inputs(0, (), "visualize", "", "no image"),
    "zoom": Inputs(0, (("image", "the photo to start from (default: noise)"),), "zoom", "", "at most one image"),
    "video": Inputs(1, (("image", "the clip to dream on"),), "a dream on a video", "a clip to dream on", "no guide image"),
}


def check_inputs(kind: str, count: int) -> None:
    """Refuse `count` inputs for `kind`: MissingImage when too few, InvalidParameter when too many."""
    inputs = INPUTS[kind]
    if count < inputs.needed:
        raise MissingImage(f"{inputs.label} needs {inputs.needs}")
    if count > inputs.most:
        raise InvalidParameter(f"{inputs.label} takes {inputs.takes}, got {count} images")


def parse_seed(raw: Any) -> int:
    """A seed from 0 to SEED_MAX from an int or the text a user typed; InvalidParameter otherwise."""
    try:
        seed = int(str(raw).strip()) if not isinstance(raw, int) else raw
    except ValueError:
        raise InvalidParameter(f"seed must be a whole number from 0 to {SEED_MAX}, got {quoted(raw)}") from None
    if not 0 <= seed <= SEED_MAX:
        raise InvalidParameter(f"seed must be from 0 to {SEED_MAX}, got {quoted(seed)}")
    return seed


def resolve_names(kind: str, params: JobParams, given: Collection[str] = ()) -> JobParams:
    """`params` with the model, layers and class written the one canonical way, after checking them.

    "mid" becomes the model's layer ("block8"), "Banana" becomes "banana": equal jobs get equal
    params, which is what batching and the store compare. A dream on a preset with option defaults
    (`ModelEntry.preset_options`: "deep" brings more strength and octaves) gets them for the options
    not named in `given` (the options the user gave), so the params say what will run. Raises
    UnknownModel, UnknownLayer, UnknownClass or InvalidParameter, each with the closest valid names.
    """
    entry = get_entry(params.model)
    if isinstance(params, VisualizeParams):
        if params.mask and params.style != "natural":
            raise InvalidParameter("mask needs style:natural (the vivid style has no transparency mask)")
        return replace(params, model=entry.name, target=imagenet_classes()[resolve_class(params.target)])
    if isinstance(params, DreamParams) and params.target:
        params = _toward_class(entry, params, given)
    layers = resolve_layers(entry, params.layer)
    if isinstance(params, (DreamParams, VideoParams)):
        for layer in layers:
            count = entry.channels[layer]
            bad = [c for c in params.channel if not 0 <= c < count]
            if bad:
                raise InvalidParameter(f"{layer} has channels 0-{count - 1}; got {quoted(bad[0])}")
    if isinstance(params, DreamParams):
        preset = entry.preset_options.get(params.layer.strip().lower(), {})
        params = replace(params, **{name: value for name, value in preset.items() if name not in given})
    return replace(params, model=entry.name, layer=",".join(layers))


def _toward_class(entry: ModelEntry, params: DreamParams, given: Collection[str]) -> DreamParams:
    """A dream with a target: its class named canonically, the layer it reads (the class scores) and
    TARGET_DREAM_DEFAULTS for the options not in `given`. Any other layer, or a channel, is refused."""
    target = imagenet_classes()[resolve_class(params.target)]
    if "layer" in given and resolve_layers(entry, params.layer) != ("logits",):
        raise InvalidParameter(f"a dream with a target works on the class scores, not a layer: drop layer:{params.layer}")
    if params.channel:
        raise InvalidParameter("a dream with a target works on the class scores, not channels: drop channel")
    defaults = {name: value for name, value in TARGET_DREAM_DEFAULTS.items() if name not in given}
    return replace(params, target=target, layer="logits", **defaults)


def default_params(kind: str, model: str, **chosen: Any) -> JobParams:
    """The params a job of `kind` on `model` gets when the user gives no option but `chosen` (names resolved).

    chosen: options that change other defaults, such as a dream's target (TARGET_DREAM_DEFAULTS).
    """
    return resolve_names(kind, validate_params(kind, {"model": model, **chosen}), set(chosen))


def check_options(kind: str, options: Mapping[str, Any] | None = None, *, seed: Any = None) -> JobParams:
    """The checks of `compile_job` that need no input: option values, names and the seed.

    A front that must download inputs first calls this before downloading, so a typo costs nothing
    at all; `compile_job` runs the same checks as its first step.
    """
    if kind not in JOB_KINDS:
        raise InvalidParameter(f"unknown job kind {quoted(kind)}; expected one of {', '.join(JOB_KINDS)}")
    if seed is not None:
        parse_seed(seed)
    try:
        return _checked(kind, options)
    except InvalidParameter:
        video_names = {f.name for f in fields(VideoParams)}
        unknown = [name for name in options or {} if option_name(name) not in video_names]
        if kind != "dream":
            raise
        if unknown:
            # Suggest among the options of a dream on a photo or on a clip (`blendd` -> blend).
            dream_names = {f.name for f in fields(DreamParams)}
            if option_name(unknown[0]) in dream_names:
                raise  # known to photos: the error is about its value
            close = difflib.get_close_matches(option_name(unknown[0]), sorted(dream_names | video_names), n=1)
            if close:
                raise InvalidParameter(f"unknown option {quoted(unknown[0])} for dream (did you mean {close[0]}?)") from None
            raise
        # A dream's input may turn out to be a clip, which takes more options (blend, flow...):
        # before the input is seen, a dream's options are right when they are right for either.
        return _checked("video", options)


def _checked(kind: str, options: Mapping[str, Any] | None) -> JobParams:
    """Options checked for exactly `kind`; a photo's dream given a clip's options says so."""
    try:
        given = {option_name(name) for name in options or {}}
        return resolve_names(kind, validate_params(kind, dict(options or {})), given)
    except InvalidParameter:
        if kind == "dream" and options:
            dream_names, video_names = {f.name for f in fields(DreamParams)}, {f.name for f in fields(VideoParams)}
            only_video = [k for k in options if option_name(k) not in dream_names and option_name(k) in video_names]
            if only_video:
                raise InvalidParameter(f"{', '.join(only_video)}: for videos only, and the input is a photo") from None
        if kind == "video" and options:
            dream_names, video_names = {f.name for f in fields(DreamParams)}, {f.name for f in fields(VideoParams)}
            only_photo = [k for k in options if option_name(k) in dream_names and option_name(k) not in video_names]
            if only_photo:
                raise InvalidParameter(f"{', '.join(only_photo)}: for photos only, and the input is a video") from None
        raise


def input_kind(kind: str, images: Sequence[bytes]) -> str:
    """The kind a request runs as, by its input's content: a dream on a clip is a "video" job.

    A clip is known by its bytes (`core.clips.is_clip`), never by its name: a PNG named .mp4 is a photo.
    """
    if kind in ("dream", "video") and images:
        return "video" if is_clip(images[0]) else "dream"
    return kind


def compile_job(
    kind: str,
    options: Mapping[str, Any] | None = None,
    *,
    images: Sequence[bytes] = (),
    seed: Any = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    clip_limits: ClipLimits = DEFAULT_CLIP_LIMITS,
) -> JobSpec:
    """The one way to make a `JobSpec`.

    options: raw values by parameter name (text from chat or argv, or typed values); unknown names,
    bad values and unknown model/layer/class names raise a DreamError whose text is one line for
    the user. images: the photo, then the guide (dream), or an optional start photo (zoom); only
    their headers are read, to check them and to price the job. A dream whose input is a clip
    compiles to a "video" job (`input_kind`); its container's metadata is checked against
    `clip_limits` and prices it. seed: None picks one at random.
    """
    kind = input_kind(kind, images)
    if kind == "video":
        return _compile_video(options, images, seed, clip_limits)
    if kind not in JOB_KINDS:
        raise InvalidParameter(f"unknown job kind {quoted(kind)}; expected one of {', '.join(JOB_KINDS)}")
    params = _checked(kind, options)
    check_inputs(kind, len(images))
    if isinstance(params, DreamParams) and len(images) > 1 and "," in params.layer:
        raise InvalidParameter("a guided dream uses exactly one layer")
    if isinstance(params, DreamParams) and len(images) > 1 and params.target:
        raise InvalidParameter("a dream takes a target class or a guide image, not both")
    sizes = [probe_image(image, max_pixels=max_pixels) for image in images]
    image, guide = (list(images) + [None, None])[:2]
    seed = secrets.randbelow(SEED_MAX + 1) if seed is None else parse_seed(seed)
    assert isinstance(params, (DreamParams, VisualizeParams, ZoomParams)), f"no params class for {kind}"
    cost = job_cost(kind, params, sizes[0] if sizes else None)
    return JobSpec(kind=kind, params=params, image=image, guide=guide, seed=seed, cost=cost)  # type: ignore[arg-type]


def _compile_video(options: Mapping[str, Any] | None, images: Sequence[bytes], seed: Any, limits: ClipLimits) -> JobSpec:
    params = _checked("video", options)
    check_inputs("video", len(images))
    seed = secrets.randbelow(SEED_MAX + 1) if seed is None else parse_seed(seed)
    assert isinstance(params, VideoParams), "check_options('video') returns VideoParams"
    return JobSpec(kind="video", params=params, image=images[0], seed=seed, cost=_video_cost(params, images[0], limits))


def _video_cost(params: VideoParams, clip: bytes, limits: ClipLimits = DEFAULT_CLIP_LIMITS) -> JobCost:
    info = probe_clip(clip, limits=limits)
    return job_cost("video", params, info.size, frames=info.frames)


def restore_job(kind: str, params: Mapping[str, Any], *, seed: int, image: bytes | None = None, guide: bytes | None = None) -> JobSpec:
    """A stored job's spec again (restart recovery): its params were compiled once and are trusted;
    only the price is worked out anew, as the rates may have changed."""
    typed = params_from_dict(kind, dict(params))
    if kind == "video":
        assert image is not None, "a stored video job keeps its clip"
        return JobSpec(kind="video", params=typed, image=image, seed=seed, cost=_video_cost(typed, image))
    size = probe_image(image) if image is not None else None
    return JobSpec(kind=kind, params=typed, image=image, guide=guide, seed=seed, cost=job_cost(kind, typed, size))  # type: ignore[arg-type]
