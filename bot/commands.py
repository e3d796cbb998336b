"""One parser from chat text to plain-data requests, shared by every front (Discord, console, CLI).

    !dream layer:deep strength:2 octaves:4 seed:7     -> Request("dream", {"layer": "deep", ...}, seed="7")
    !visualize anemone fish                            -> Request("visualize", {"target": "anemone fish"})
    !cancel 12                                         -> Request("cancel", {"job_id": 12})

Options are `key:value` or `key=value`; other words are free words. A job command's options stay
as typed: `core.spec.compile_job` checks and prices them, once, for every front. Every error here
is a CommandError with one line.
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import DreamError, quoted
from core.jobs import JobSpec
from core.params import as_dict, option_name, param_help
from core.spec import SEED_MAX, default_params

from .guild_settings import SETTINGS
from .store import MAX_ID, ORDERS

__all__ = [
    "Request", "CommandError", "CommandHelp", "HELP", "COMMANDS", "JOB_COMMANDS",
    "parse_command", "parse_words", "job_request", "split_words", "command_help", "command_summaries", "reproduce_command",
    "wait_text", "ordinal",
]

JOB_COMMANDS = ("dream", "visualize", "zoom")



@dataclass(frozen=True)
class CommandHelp:
    """What `!help` and the slash commands say about a command, written with the default prefix "!"
    (command_help() substitutes a guild's own)."""

    summary: str  # what it does, in at most 100 characters: a slash command's description, a line of `!help`
    example: str  # a command that parses (tested)
    details: str = ""  # more for `!help NAME` alone: usage too long for a summary


HELP: dict[str, CommandHelp] = {
    "dream": CommandHelp("dream on the attached photo or short video", "!dream layer:deep strength:2 octaves:4 seed:7",
                         "a video also takes blend: and flow:; target:CLASS makes a class emerge in a photo"),
    "visualize": CommandHelp("render what the network sees as an ImageNet class", "!visualize anemone fish"),
    "zoom": CommandHelp("an endless zoom (on the attached photo, or noise) as WebP, MP4 or GIF",
                        "!zoom frames:12 loop:seamless format:mp4"),
    "models": CommandHelp("list the networks you can dream with", "!models"),
    "layers": CommandHelp("list the layers and presets of a network", "!layers efficientnet-lite0"),
    "classes": CommandHelp("search the ImageNet class names for !visualize", "!classes fish"),
    "queue": CommandHelp("show the jobs waiting and running", "!queue"),
    "cancel": CommandHelp("cancel one of your jobs (without an id: your latest)", "!cancel 12"),
    "quota": CommandHelp("show how many jobs you can start now", "!quota"),
    "gallery": CommandHelp("show this server's gallery, newest or most liked", "!gallery top"),
    "stats": CommandHelp("show this server's numbers", "!stats"),
    "settings": CommandHelp("server admins: show or change this server's settings", "!settings user_burst:5 max_job_seconds:60",
                            "; ".join(f"{s.name}: {s.help}" for s in SETTINGS.values())),
    "help": CommandHelp("help on all commands or one", "!help dream"),
}
COMMANDS: tuple[str, ...] = tuple(HELP)

_OPTION = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*)[:=](.*)$", re.DOTALL)


class CommandError(DreamError):
    """A chat command that cannot be understood; str(error) is one line for the user."""


@dataclass(frozen=True)
class Request:
    """A parsed command. For job commands `params` are the options as typed (compile_job checks them)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    args: tuple[str, ...] = ()  # the free (non key:value) words, as typed
    seed: int | str | None = None  # job commands only; None lets the compiler pick one

    @property
    def is_job(self) -> bool:
        return self.name in JOB_COMMANDS


def parse_command(text: str, prefix: str = "!", *, defaults: dict[str, Any] | None = None) -> Request | None:
    """Parse `text`; None when it is not addressed to us (no prefix, or nothing after it).

    `defaults` are job parameters the user did not give (e.g. the deployment's model).
    """
    text = text.strip()
    if not prefix or not text.startswith(prefix):
        return None
    body = text[len(prefix):]
    # "!!!" or "! hello" are not commands for us: stay silent rather than answer "unknown command".
    if not body or not body[0].isalnum():
        return None
    words = split_words(body)
    return parse_words(words[0], words[1:], prefix, defaults=defaults)


def parse_words(name: str, words: list[str], prefix: str = "!", *, defaults: dict[str, Any] | None = None) -> Request:
    """Parse a command already split into words (see `split_words`); fronts that pull attachments
    or links out of the words first call this, so the text is split once."""
    name = name.lower()
    if name not in HELP:
        raise CommandError(f"unknown command {quoted(name)}{_suggest(name, prefix)}")
    options, free = _options(words)
    if name in JOB_COMMANDS:
        options = _with_defaults(name, options, defaults)
    return _PARSERS[name](name, options, free, prefix)


def job_request(name: str, options: Mapping[str, Any], prefix: str = "!", *, defaults: dict[str, Any] | None = None) -> Request:
    """The request for a job command whose options arrive one by one, already typed (Discord's slash
    options; None: not given): the same conversion as the parser's, so both fronts agree."""
    assert name in JOB_COMMANDS, f"{name} is not a job command"
    given = {key: value for key, value in options.items() if value is not None}
    return _job(name, _with_defaults(name, given, defaults), [], prefix)


def _with_defaults(name: str, options: Mapping[str, Any], defaults: dict[str, Any] | None) -> dict[str, Any]:
    """`options` over the deployment's `defaults` (say, its model) for the options `name` takes."""
    known = {p for p, _, _ in param_help(name)}
    return {k: str(v) for k, v in (defaults or {}).items() if k in known} | dict(options)


def command_help(name: str | None = None, prefix: str = "!") -> list[str]:
    """Lines of help: one per command, or for one command its line, its details and one line per option."""
    def line(command: str) -> str:
        what = HELP[command]
        return f"{prefix}{command}: {what.summary}, e.g. {_with_prefix(what.example, prefix)}"

    if name is None:
        return [line(command) for command in COMMANDS]
    name = name.removeprefix(prefix).lower()
    if name not in HELP:
        raise CommandError(f"no help for {quoted(name)}{_suggest(name, prefix)}")
    lines = [line(name)]
    if HELP[name].details:
        lines.append(f"  {HELP[name].details}")
    if name in JOB_COMMANDS:
        lines += [f"  {option}:{default!r} - {text}" for option, default, text in param_help(name)]
        if name == "dream":  # a dream on a clip runs as a video job, which takes a few more options
            photo_options = {option for option, _, _ in param_help("dream")}
            lines += [f"  {option}:{default!r} - videos: {text}" for option, default, text in param_help("video") if option not in photo_options]
        lines.append(f"  seed:<0..{SEED_MAX}> - repeat a result exactly")
    return lines


def command_summaries(prefix: str = "!") -> list[tuple[str, str, str]]:
    """(command, what it does, an example with `prefix`) for every command, as `command_help` words them."""
    return [(command, HELP[command].summary, _with_prefix(HELP[command].example, prefix)) for command in COMMANDS]


def _with_prefix(text: str, prefix: str) -> str:
    """Help text written with "!" as a guild with `prefix` reads it."""
    return text.replace("!", prefix)


def reproduce_command(spec: JobSpec, prefix: str = "!") -> str:
    """The shortest command that gives the same result: the options that differ from the defaults, and the seed."""
    return _command_for(spec.kind, spec.params, spec.seed, prefix)


def _command_for(kind: str, typed: Any, seed: int, prefix: str) -> str:
    params = as_dict(typed)
    # Layers default per model ("mid" is block8 on one, inception4c on another): compare with that model's.
    # A dream's target brings its own defaults (core.params.TARGET_DREAM_DEFAULTS): compare with those.
    chosen = {"target": typed.target} if kind == "dream" and typed.target else {}
    defaults = as_dict(default_params(kind, typed.model, **chosen)) | {"model": type(typed)().model}
    parts = [f"{prefix}{'dream' if kind == 'video' else kind}"]  # a video is a dream on a clip
    if kind == "visualize":
        parts.append(str(params.pop("target")))
    if chosen:
        parts.append(f"target:{shlex.quote(str(params.pop('target')))}")
    for key, value in params.items():
        if defaults.get(key) != value:
            shown = ",".join(map(str, value)) if isinstance(value, list) else value
            parts.append(f"{key}:{shlex.quote(str(shown))}")
    parts.append(f"seed:{seed}")
    return " ".join(parts)


def split_words(body: str) -> list[str]:
    # Quotes group words ("target:anemone fish"); an apostrophe in "don't" must not break parsing.
    try:
        return shlex.split(body)
    except ValueError:
        return body.split()


def _options(words: list[str]) -> tuple[dict[str, str], list[str]]:
    options: dict[str, str] = {}
    free: list[str] = []
    for word in words:
        match = _OPTION.match(word)
        if match is None or word.lower().startswith(("http:", "https:")):
            free.append(word)
            continue
        key, value = option_name(match.group(1)), match.group(2)
        if key in options:
            raise CommandError(f"option {key} given twice; give it once")
        options[key] = value
    return options, free


def _suggest(name: str, prefix: str) -> str:
    close = difflib.get_close_matches(name, COMMANDS, n=1, cutoff=0.6)
    return f" (did you mean {prefix}{close[0]}?)" if close else f"; try {prefix}help"


def _job(name: str, options: dict[str, str], free: list[str], prefix: str) -> Request:
    raw: dict[str, Any] = dict(options)
    seed = raw.pop("seed", None)
    if name == "visualize" and free:
        # The class is the free words, so "!visualize anemone fish" needs no quotes.
        if "target" in raw:
            raise CommandError(f"give the class once, as words or as target:, not both; see {prefix}help visualize")
        raw["target"] = " ".join(free)
    elif free:
        raise CommandError(
            f"unexpected {quoted(' '.join(free))} for {prefix}{name}; options look like key:value, see {prefix}help {name}"
        )
    return Request(name, raw, tuple(free), seed)


def _plain(
    allowed_options: tuple[str, ...] = (), max_free: int | None = 0, *, required: str = ""
) -> Callable[[str, dict[str, str], list[str], str], Request]:
    """A parser for a command without job parameters: some named options and up to `max_free`
    words (None: any number); with `required`, a word or an option must be given."""

    def parse(name: str, options: dict[str, str], free: list[str], prefix: str) -> Request:
        for key in options:
            if key not in allowed_options:
                expected = f"; it takes {', '.join(o + ':' for o in allowed_options)}" if allowed_options else ""
                raise CommandError(f"{prefix}{name} has no option {quoted(key)}{expected}")
        if max_free is not None and len(free) > max_free:
            raise CommandError(f"{prefix}{name} takes {_count(max_free)}, got {quoted(' '.join(free))}; e.g. {_example(name, prefix)}")
        if required and not free and not options:
            raise CommandError(f"{prefix}{name} needs {required}; e.g. {_example(name, prefix)}")
        return Request(name, dict(options), tuple(free))

    return parse


def _count(n: int) -> str:
    return "no words" if n == 0 else "one word" if n == 1 else f"up to {n} words"


def _example(name: str, prefix: str) -> str:
    return _with_prefix(HELP[name].example, prefix)


def _layers(name: str, options: dict[str, str], free: list[str], prefix: str) -> Request:
    request = _plain(("model",), 1)(name, options, free, prefix)
    model = request.params.get("model") or (free[0] if free else None)
    return Request(name, {"model": model} if model else {}, request.args)


def _classes(name: str, options: dict[str, str], free: list[str], prefix: str) -> Request:
    # Class names have several words ("anemone fish"), so every free word is part of the search.
    request = _plain(("search",), None, required="a search word")(name, options, free, prefix)
    search = (request.params.get("search") or " ".join(free)).strip()
    if not search:
        raise CommandError(f"{prefix}{name} needs a search word; e.g. {_example(name, prefix)}")
    return Request(name, {"search": search}, request.args)


def _cancel(name: str, options: dict[str, str], free: list[str], prefix: str) -> Request:
    request = _plain(("job", "id"), 1)(name, options, free, prefix)
    raw = (free[0] if free else None) or options.get("job") or options.get("id")
    if raw is None:
        return Request(name, {}, ())
    digits = raw.removeprefix("#")
    job_id = int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 10 else 0
    if not 1 <= job_id <= MAX_ID:
        raise CommandError(f"a job id is a positive number like 12, got {quoted(raw)}")
    return Request(name, {"job_id": job_id}, request.args)


def _gallery(name: str, options: dict[str, str], free: list[str], prefix: str) -> Request:
    request = _plain(("order",), 1)(name, options, free, prefix)
    order = (free[0] if free else options.get("order", "recent")).lower()
    if order not in ORDERS:
        raise CommandError(f"the gallery order is {' or '.join(ORDERS)}, got {quoted(order)}")
    return Request(name, {"order": order}, request.args)


def _help(name: str, options: dict[str, str], free: list[str], prefix: str) -> Request:
    request = _plain((), 1)(name, options, free, prefix)
    if not free:
        return Request(name, {}, ())
    topic = free[0].removeprefix(prefix).lower()
    if topic not in HELP:
        raise CommandError(f"no help for {quoted(topic)}{_suggest(topic, prefix)}")
    return Request(name, {"command": topic}, request.args)


_PARSERS: dict[str, Callable[[str, dict[str, str], list[str], str], Request]] = {
    "dream": _job,
    "visualize": _job,
    "zoom": _job,
    "settings": _plain(tuple(SETTINGS), 0),
    "models": _plain(),
    "layers": _layers,
    "classes": _classes,
    "queue": _plain(),
    "cancel": _cancel,
    "quota": _plain(),
    "gallery": _gallery,
    "stats": _plain(),
    "help": _help,
}


# -- waits and places in words, as every front says them --------------------------------------------


def wait_text(seconds: float) -> str:
    """'42 s', '3 min 5 s', '2 h 10 min' for a wait of `seconds` (rounded up)."""
    total = max(1, math.ceil(seconds))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        minutes, secs = divmod(total, 60)
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, rest = divmod(total, 3600)
    minutes = math.ceil(rest / 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
