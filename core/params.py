"""Typed, validated parameters of each job kind: the one place that knows names, defaults and ranges.

Every front passes raw values (strings from chat or argv, or already-typed values) through
`validate_params`, which coerces and range-checks them and raises `InvalidParameter` with one line
that says what was expected. The engine's functions take the resulting dataclasses.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints

from .errors import InvalidParameter, quoted

__all__ = [
    "DreamParams", "TARGET_DREAM_DEFAULTS", "VisualizeParams", "ZoomParams", "VideoParams", "JobParams", "PARAMS_BY_KIND",
    "validate_params", "param_help", "as_dict", "params_from_dict", "fields_for", "option_name", "on_or_off", "MOST_CHANNELS",
]


def _spec(default: Any, lo: float | None = None, hi: float | None = None, help: str = "", choices: tuple[str, ...] = (),
          most: int | None = None) -> Any:
    """A parameter: its default, range (lo, hi), help line, choices, and for a list the most items it takes."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "help": help, "choices": choices, "most": most})


_ON, _OFF = ("on", "yes", "true", "1"), ("off", "no", "false", "0")


def on_or_off(text: str) -> bool | None:
    """True for on, yes, true or 1; False for off, no, false or 0 (any case); None for other words.
    Every switch reads this way: job options, server settings, command-line flags."""
    word = text.strip().lower()
    return True if word in _ON else False if word in _OFF else None


MOST_CHANNELS = 16  # channels one dream may amplify together (a longer list would not fit a reply's command line)


# A dream with a target (core.spec.resolve_names fills these in for the options a user did not give):
# the class scores see the photo at about the network's training scale (224 px) rather than as
# tiles of a large photo, each classified alone, and stronger steps make the class show, not just
# flip the network's answer.
TARGET_DREAM_DEFAULTS: dict[str, Any] = {"max_side": 512, "strength": 2.0}


@dataclass(frozen=True)
class DreamParams:
    model: str = _spec("efficientnet-lite0", help="network name (see `models`)")
    layer: str = _spec("mid", help="preset (shallow, mid, deep) or layer name(s), comma-separated")
    channel: tuple[int, ...] = _spec((), help="channel index(es) in the layer, comma-separated", most=MOST_CHANNELS)
    strength: float = _spec(1.0, 0.05, 10.0, "step size multiplier")
    steps: int = _spec(10, 1, 100, "gradient steps per octave")
    octaves: int = _spec(4, 1, 8, "pyramid levels")
    octave_scale: float = _spec(1.4, 1.1, 2.0, "size ratio between octaves")
    max_side: int = _spec(2048, 64, 4096, "output's longest side in pixels")
    tile: int = _spec(512, 128, 2048, "tile size in pixels; larger images are dreamt tile by tile")
    jitter: int = _spec(32, 0, 128, "random roll in pixels before each step")
    target: str = _spec("", help="ImageNet class to make emerge in the photo (see `classes`); then max_side defaults to "
                        f"{TARGET_DREAM_DEFAULTS['max_side']} and strength to {TARGET_DREAM_DEFAULTS['strength']:g}")
    iterations: int = _spec(1, 1, 8, "dream on the dream this many times, zooming in a little between passes")





def _as_in_dream(name: str, default: Any = dataclasses.MISSING, help: str = "") -> Any:
    """The photo dream's option `name`, with its range and choices, for another kind: the same
    option means the same there, perhaps with another default or help line."""
    dream_field = DreamParams.__dataclass_fields__[name]
    metadata = dict(dream_field.metadata, **({"help": help} if help else {}))
    return field(default=dream_field.default if default is dataclasses.MISSING else default, metadata=metadata)


@dataclass(frozen=True)
class VisualizeParams:
    model: str = _as_in_dream("model")
    target: str = _spec("banana", help="ImageNet class name or index (see `classes`)")
    style: str = _spec("natural", help="natural (photo-like colours and spectrum) or vivid (saturated, detailed)", choices=("natural", "vivid"))
    size: int = _spec(224, 64, 1024, "side of the square render in pixels")
    # 160: measured over the post's nine classes and nine others, seeds 0-4, natural renders keep
    # their looks and their class (benchmarks/renders.py) at 0.6x the time of the 256 used before.
    steps: int = _spec(160, 10, 2000, "optimiser steps")
    lr: float = _spec(0.05, 0.001, 1.0, "optimiser learning rate")
    mask: bool = _spec(False, help="natural style: make the parts the network ignores transparent (PNG alpha)")


@dataclass(frozen=True)
class ZoomParams:
    model: str = _as_in_dream("model")
    layer: str = _as_in_dream("layer")
    frames: int = _spec(24, 1, 240, "number of frames in the animation")
    zoom: float = _spec(1.05, 1.0, 1.5, "zoom factor per frame")
    rotate: float = _spec(0.0, -15.0, 15.0, "rotation in degrees per frame")
    size: int = _spec(320, 64, 1024, "longest side of the frames in pixels")
    steps: int = _spec(5, 1, 50, "gradient steps per octave for each frame")
    octaves: int = _spec(2, 1, 6, "pyramid levels for each frame")
    strength: float = _as_in_dream("strength")
    frame_ms: int = _spec(80, 20, 1000, "display time of each frame in milliseconds")
    max_bytes: int = _spec(10 * 1024 * 1024, 64 * 1024, 500 * 1024 * 1024, "byte budget of the animation")
    loop: str = _spec("plain", help="plain, or seamless (the last frame leads back into the first)", choices=("plain", "seamless"))
    format: str = _spec("auto", help="auto (the best that fits the budget), gif, webp or mp4", choices=("auto", "gif", "webp", "mp4"))


@dataclass(frozen=True)
class VideoParams:
    """A dream on a clip (see core/video.py). Its dream options mean what a photo's mean, with
    smaller defaults, as every frame is dreamt. A clip takes every option of a photo's dream but
    `target` and `iterations`, which core.spec refuses with one line ("for photos only")."""

    model: str = _as_in_dream("model")
    layer: str = _as_in_dream("layer")
    channel: tuple[int, ...] = _as_in_dream("channel")
    strength: float = _as_in_dream("strength", 1.5)
    steps: int = _as_in_dream("steps", 6, "gradient steps per octave on the first frame (a third of them on later frames)")
    octaves: int = _as_in_dream("octaves", 3, "pyramid levels of the first frame (later frames carry its detail)")
    octave_scale: float = _as_in_dream("octave_scale")
    max_side: int = _as_in_dream("max_side", 320, "frames' longest side in pixels")
    tile: int = _as_in_dream("tile", help="tile size in pixels; larger frames are dreamt tile by tile")
    jitter: int = _as_in_dream("jitter", 16)
    blend: float = _spec(0.8, 0.0, 0.95, "share of the previous frame's dream each frame starts from (0: each frame alone)")
    flow: bool = _spec(True, help="carry the dream along the motion (optical flow); off: blend it in place")
    format: str = _spec("mp4", help="output: mp4 (with the sound), gif or webp", choices=("mp4", "gif", "webp"))
    max_bytes: int = _spec(10 * 1024 * 1024, 256 * 1024, 500 * 1024 * 1024, "byte budget of the output")


JobParams = DreamParams | VisualizeParams | ZoomParams | VideoParams
PARAMS_BY_KIND: dict[str, type] = {"dream": DreamParams, "visualize": VisualizeParams, "zoom": ZoomParams, "video": VideoParams}


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    try:
        if kind is bool:
            if isinstance(raw, str):
                switch = on_or_off(raw)
                if switch is None:
                    raise ValueError(raw)
                return switch
            return bool(raw)
        if kind is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(raw)
        if kind is float:
            value = float(raw)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(raw)
            return value
        if kind == tuple[int, ...]:
            items = raw.split(",") if isinstance(raw, str) else list(raw) if not isinstance(raw, int) else [raw]
            return tuple(int(item) for item in items if str(item).strip() != "")
        return str(raw).strip()
    except (TypeError, ValueError):
        expected = {int: "a whole number", float: "a number", bool: "true or false"}.get(kind, "comma-separated whole numbers")
        raise InvalidParameter(f"{name} must be {expected}, got {quoted(raw)}") from None


def option_name(text: str) -> str:
    """An option's name as every front reads it: "Max-Side" and "max_side" are the same option."""
    return text.replace("-", "_").lower()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def validate_params(kind: str, raw: dict[str, Any] | None = None):
    """Coerce and range-check `raw` into the dataclass of `kind`; unknown keys are an error."""
    if kind not in PARAMS_BY_KIND:
        raise InvalidParameter(f"unknown job kind {quoted(kind)}; expected one of {', '.join(PARAMS_BY_KIND)}")
    cls = PARAMS_BY_KIND[kind]
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        name = option_name(key)
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f"; expected one of {', '.join(known)}"
            raise InvalidParameter(f"unknown option {quoted(key)} for {kind}{hint}")
        coerced = _coerce(name, hints[name], value)
        most = known[name].metadata["most"]
        if most is not None and len(coerced) > most:
            raise InvalidParameter(f"{name} takes at most {most} values, got {len(coerced)}")
        lo, hi = known[name].metadata["lo"], known[name].metadata["hi"]
        if (lo is not None and coerced < lo) or (hi is not None and coerced > hi):
            raise InvalidParameter(f"{name} must be between {_number(lo)} and {_number(hi)}, got {quoted(coerced)}")
        if isinstance(coerced, str) and not coerced and known[name].default != "":
            raise InvalidParameter(f"{name} must not be empty")
        choices = known[name].metadata["choices"]
        if choices and coerced.lower() not in choices:
            raise InvalidParameter(f"{name} must be one of {', '.join(choices)}, got {quoted(coerced)}")
        if choices:
            coerced = coerced.lower()
        values[name] = coerced
    return cls(**values)


def param_help(kind: str) -> list[tuple[str, Any, str]]:
    """(name, default, help) for each parameter of `kind`, for help screens."""
    return [(f.name, f.default, f.metadata["help"]) for f in fields(PARAMS_BY_KIND[kind])]


def as_dict(params: Any) -> dict[str, Any]:
    """JSON-compatible dict of a params dataclass (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(params).items()}


def params_from_dict(kind: str, data: dict[str, Any]):
    """The params dataclass of `kind` back from `as_dict`'s output (say, a stored job), by field name.

    Trusts `data`: it was compiled once already. Keys the dataclass no longer has are dropped, so a
    job stored by an older version still loads; lists become tuples again.
    """
    cls = PARAMS_BY_KIND[kind]
    names = {f.name for f in fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names})


def fields_for(target: type, params: Any) -> Any:
    """Build the settings dataclass `target` from the same-named fields of `params` (never by position)."""
    names = {f.name for f in fields(target)}
    return target(**{k: v for k, v in dataclasses.asdict(params).items() if k in names})
