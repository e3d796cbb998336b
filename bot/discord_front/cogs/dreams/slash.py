"""Typed slash commands for the job commands, built from core/params.py.

Each option of `/dream`, `/visualize` and `/zoom` is the parameter of the same name: an integer or
number option with the parameter's range, a true/false option, a fixed list of choices (formats),
or text with autocomplete (models, layers and presets, ImageNet classes). Nothing here restates a
range, default or choice: they are read from the params dataclasses, so the slash and the prefix
commands cannot drift apart. The values go to `bot.commands.job_request`, the parser's own conversion.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import Field, fields
from typing import Any, Optional, get_type_hints

import discord
from discord import app_commands

from core.errors import DreamError
from core.models.classes import imagenet_classes, suggest_classes
from core.models.registry import MODELS, get_entry
from core.params import PARAMS_BY_KIND
from core.spec import INPUTS, SEED_MAX

__all__ = ["job_commands", "TypedJobHandler"]

# /dream also takes the options of a dream on a video: the same command runs both.
_ALSO = {"dream": ("video",)}
_MAX_CHOICES = 25  # Discord shows at most 25 suggestions

TypedJobHandler = Callable[[discord.Interaction, str, dict[str, Any], list[discord.Attachment]], Awaitable[None]]


def job_commands(descriptions: dict[str, str], run: TypedJobHandler) -> list[app_commands.Command]:
    """One typed slash command per job kind in `descriptions` (kind -> one line of help); each calls
    `run(interaction, kind, options given, attachments given)`."""
    return [_job_command(kind, description, run) for kind, description in descriptions.items()]


def _option_fields(kind: str) -> list[tuple[Field, Any]]:
    """(field, type) of every option `kind` takes, its own first, each name once."""
    found: dict[str, tuple[Field, Any]] = {}
    for source in (kind, *_ALSO.get(kind, ())):
        cls = PARAMS_BY_KIND[source]
        hints = get_type_hints(cls)
        for f in fields(cls):
            found.setdefault(f.name, (f, hints[f.name]))
    return list(found.values())


def _annotation(f: Field, kind: Any) -> Any:
    lo, hi = f.metadata["lo"], f.metadata["hi"]
    if kind in (int, float) and lo is not None and hi is not None:
        return app_commands.Range[kind, lo, hi]
    if kind in (int, float, bool):
        return kind
    return str  # names, comma-separated channel numbers, a choice


def _job_command(kind: str, description: str, run: TypedJobHandler) -> app_commands.Command:
    option_fields = _option_fields(kind)
    # An attachment option per image the kind takes (core.spec.INPUTS); the first `needed` are required.
    attachments = [(name, text, i < INPUTS[kind].needed) for i, (name, text) in enumerate(INPUTS[kind].slots)]
    parameters = [inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction)]
    for name, _, required in attachments:
        annotation = discord.Attachment if required else Optional[discord.Attachment]
        parameters.append(_keyword(name, annotation, inspect.Parameter.empty if required else None))
    for f, field_type in option_fields:
        parameters.append(_keyword(f.name, Optional[_annotation(f, field_type)], None))
    parameters.append(_keyword("seed", Optional[app_commands.Range[int, 0, SEED_MAX]], None))

    async def callback(interaction: discord.Interaction, **given: Any) -> None:
        files = [given.pop(name) for name, _, _ in attachments if given.get(name) is not None]
        for name, _, _ in attachments:
            given.pop(name, None)
        await run(interaction, kind, given, files)

    callback.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    described = {name: text for name, text, _ in attachments}
    described |= {f.name: _short(f.metadata["help"]) for f, _ in option_fields}
    described["seed"] = "repeat a result exactly"
    callback = app_commands.describe(**described)(callback)
    choices = {f.name: [app_commands.Choice(name=c, value=c) for c in f.metadata["choices"]]
               for f, _ in option_fields if f.metadata["choices"]}
    if choices:
        callback = app_commands.choices(**choices)(callback)
    command = app_commands.Command(name=kind, description=_short(description), callback=callback)
    names = {f.name for f, _ in option_fields}
    for name, suggest in (("model", _suggest_models), ("layer", _suggest_layers), ("target", _suggest_classes)):
        if name in names:
            command.autocomplete(name)(suggest)
    return command


def _keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


def _short(text: str) -> str:
    return text if len(text) <= 100 else text[:99] + "…"  # Discord's limit on descriptions


# -- autocomplete ------------------------------------------------------------------------------------


async def _suggest_models(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=name, value=name) for name in MODELS if current.lower() in name][:_MAX_CHOICES]


async def _suggest_layers(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """Presets first, then the layers of the model picked in the same command (else the default)."""
    model = getattr(interaction.namespace, "model", None) or interaction.client.settings.dream_model  # type: ignore[attr-defined]
    try:
        entry = get_entry(model)
    except DreamError:  # a half-typed model name: suggest nothing rather than fail the suggestion
        return []
    names = [f"{preset} ({layer})" for preset, layer in entry.presets.items()] + list(entry.layers)
    values = list(entry.presets) + list(entry.layers)
    return [app_commands.Choice(name=name, value=value) for name, value in zip(names, values)
            if current.lower() in name.lower()][:_MAX_CHOICES]


async def _suggest_classes(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """ImageNet classes by what is typed: names starting with it, containing it, or nearly spelling it."""
    names = imagenet_classes()
    # A name two classes share ("crane") goes by its index, which is never ambiguous.
    return [app_commands.Choice(name=name, value=name if names.count(name) == 1 else str(index))
            for index, name in suggest_classes(current, _MAX_CHOICES)]
