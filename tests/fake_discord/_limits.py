"""What Discord refuses: request bodies checked against the limits Discord documents, with the
error tree Discord answers (HTTP 400, code 50035 "Invalid Form Body").

The fake's REST routes call these on every body the bot sends, and the suite's fit test calls them
on texts rendered at their largest, so both hold the bot to the same rules. Each function returns
the ``errors`` tree (empty when the body is fine): the request's own shape, array indices as
string keys, and ``{"_errors": [{"code", "message"}]}`` at each leaf.

Followed (Discord's developer documentation, discord/discord-api-docs as of 2026-08):
- application commands, https://discord.com/developers/docs/interactions/application-commands
  #application-command-object-application-command-naming, ...-option-structure, ...-option-choice-structure,
  #slash-commands (the 8000-character total, raised from 4000 on 2024-02-20), #registering-a-command
  (100 CHAT_INPUT, 15 USER and 15 MESSAGE commands per scope, from 2026-03-03), #user-commands and
  #message-commands (no description);
- messages, https://discord.com/developers/docs/resources/message#create-message (content, nonce),
  #embed-object-embed-limits (each field and 6000 across a message's embeds),
  https://discord.com/developers/docs/components/reference (action rows, buttons, selects, custom_id);
- interactions, https://discord.com/developers/docs/interactions/receiving-and-responding
  #interaction-response-object-autocomplete (25 choices, names and string values 1-100).
The error codes and messages are those Discord's answers carry (reference#error-messages).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "CHAT_INPUT", "USER", "MESSAGE", "COMMAND_COUNTS", "COMMAND_SIZE", "CONTENT_LIMIT", "EMBED_TOTAL",
    "FormErrors", "command_list_errors", "command_count_error", "command_size", "message_errors", "autocomplete_errors", "embed_size",
]

CHAT_INPUT, USER, MESSAGE = 1, 2, 3
COMMAND_COUNTS = {CHAT_INPUT: 100, USER: 15, MESSAGE: 15}  # per scope (global, or one guild)
COMMAND_SIZE = 8000  # names, descriptions and choice names and values of one slash command together
NAME_LENGTH = 32
DESCRIPTION_LENGTH = 100
OPTIONS_MAX = 25
CHOICES_MAX = 25
CHOICE_LENGTH = 100
STRING_LENGTH_MAX = 6000  # min_length and max_length of a string option
CONTENT_LIMIT = 2000
EMBEDS_MAX = 10
EMBED_FIELDS_MAX = 25
EMBED_LIMITS = {"title": 256, "description": 4096, "field.name": 256, "field.value": 1024, "footer.text": 2048,
                "author.name": 256}
EMBED_TOTAL = 6000
ACTION_ROWS_MAX = 5
BUTTONS_PER_ROW = 5
CUSTOM_ID_LENGTH = 100
BUTTON_LABEL_LENGTH = 80
SELECT_OPTIONS_MAX = 25
ATTACHMENTS_MAX = 10
NONCE_LENGTH = 25

# Slash command and option names: letters, numbers, - _ ' and the Devanagari and Thai marks, in the
# lowercase form where a letter has one. (Python's re has no \p{...}: word characters stand for
# letters and numbers, and the two scripts' combining marks are listed.)
_SLASH_NAME = re.compile(r"^[-_'\w\u0900-\u097f\u0e00-\u0e7f]{1,32}$")
_OPTION_TYPES = set(range(1, 12))
_CHOICE_TYPES = {3, 4, 10}  # STRING, INTEGER, NUMBER
_AUTOCOMPLETE_TYPES = {3, 4, 10}
_INTEGER_RANGE = 2**53 - 1
_BUTTON, _ACTION_ROW, _STRING_SELECT = 2, 1, 3


class FormErrors:
    """An error tree built up by path: ``add(("3", "options", "0", "name"), code, message)``."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: tuple[str | int, ...], code: str, message: str) -> None:
        node = self.tree
        for part in path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def __bool__(self) -> bool:
        return bool(self.tree)

    def too_long(self, path: tuple[str | int, ...], limit: int) -> None:
        self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def bad_length(self, path: tuple[str | int, ...], low: int, high: int) -> None:
        self.add(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")


# -- application commands --------------------------------------------------------------------------


def command_list_errors(commands: list[dict[str, Any]]) -> dict[str, Any]:
    """The errors of a bulk overwrite (PUT .../commands): every command of the list, by its index,
    and the list as a whole (counts per type, names unique per type). Discord applies none of it
    when anything is wrong."""
    errors = FormErrors()
    if len(commands) > sum(COMMAND_COUNTS.values()):
        errors.too_long((), sum(COMMAND_COUNTS.values()))
    seen: set[tuple[int, str]] = set()
    for index, command in enumerate(commands):
        _command(errors, (index,), command)
        key = (int(command.get("type", CHAT_INPUT)), str(command.get("name", "")))
        if key in seen:
            errors.add((index, "name"), "APPLICATION_COMMANDS_DUPLICATE_NAME", "Application command names must be unique")
        seen.add(key)
    return errors.tree


def command_count_error(commands: list[dict[str, Any]]) -> str | None:
    """Discord's code-30032 message when a scope would hold more commands of one type than it may."""
    for kind, most in COMMAND_COUNTS.items():
        if sum(1 for c in commands if int(c.get("type", CHAT_INPUT)) == kind) > most:
            return f"Maximum number of application commands reached ({most})"
    return None


def _command(errors: FormErrors, path: tuple[str | int, ...], command: dict[str, Any]) -> None:
    kind = int(command.get("type", CHAT_INPUT))
    name = command.get("name")
    if not isinstance(name, str):
        errors.add(path + ("name",), "BASE_TYPE_REQUIRED", "This field is required")
        return
    description = command.get("description")
    if kind == CHAT_INPUT:
        _slash_name(errors, path + ("name",), name)
        _description(errors, path + ("description",), description, command_level=True)
        _options(errors, path, command.get("options") or [], depth=0)
        if command_size(command) > COMMAND_SIZE:
            errors.add(path, "APPLICATION_COMMAND_TOO_LARGE", f"Command exceeds maximum size ({COMMAND_SIZE})")
    else:
        if not 1 <= len(name) <= NAME_LENGTH:
            errors.bad_length(path + ("name",), 1, NAME_LENGTH)
        if description:
            errors.add(path + ("description",), "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION_INVALID",
                       "Context menu commands cannot have description")
        if command.get("options"):
            errors.add(path + ("options",), "APPLICATION_COMMAND_OPTIONS_INVALID", "Context menu commands cannot have options")


def _slash_name(errors: FormErrors, path: tuple[str | int, ...], name: str) -> None:
    if not _SLASH_NAME.fullmatch(name) or name != name.lower():
        errors.add(path, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")


def _description(errors: FormErrors, path: tuple[str | int, ...], description: Any, *, command_level: bool) -> None:
    if description is None:
        errors.add(path, "BASE_TYPE_REQUIRED", "This field is required")
    elif command_level and len(str(description)) > DESCRIPTION_LENGTH:
        errors.too_long(path, DESCRIPTION_LENGTH)
    elif not 1 <= len(str(description)) <= DESCRIPTION_LENGTH:
        errors.bad_length(path, 1, DESCRIPTION_LENGTH)


def _options(errors: FormErrors, path: tuple[str | int, ...], options: list[dict[str, Any]], *, depth: int) -> None:
    if len(options) > OPTIONS_MAX:
        errors.too_long(path + ("options",), OPTIONS_MAX)
    names: set[str] = set()
    optional_seen = False
    for index, option in enumerate(options):
        where = path + ("options", index)
        kind = option.get("type")
        if kind not in _OPTION_TYPES:
            errors.add(where + ("type",), "BASE_TYPE_CHOICES", "Value must be one of (1, ..., 11).")
            continue
        name = str(option.get("name", ""))
        _slash_name(errors, where + ("name",), name)
        if name in names:
            errors.add(where + ("name",), "APPLICATION_COMMAND_OPTION_NAME_NOT_UNIQUE", "Option names must be unique")
        names.add(name)
        _description(errors, where + ("description",), option.get("description"), command_level=False)
        if kind in (1, 2):  # a subcommand or a group: options of its own, one level each
            if depth >= (1 if kind == 1 else 0) + 1 or (kind == 2 and depth > 0):
                errors.add(where + ("type",), "APPLICATION_COMMAND_OPTION_TYPE_INVALID", "Sub-command nesting is invalid")
            _options(errors, where, option.get("options") or [], depth=depth + 1)
            continue
        required = bool(option.get("required", False))
        if required and optional_seen:
            errors.add(path + ("options", index), "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                       "Required options must be placed before non-required options")
        optional_seen |= not required
        _choices(errors, where, kind, option)
        _ranges(errors, where, kind, option)


def _choices(errors: FormErrors, where: tuple[str | int, ...], kind: int, option: dict[str, Any]) -> None:
    choices = option.get("choices") or []
    if choices and kind not in _CHOICE_TYPES:
        errors.add(where + ("choices",), "APPLICATION_COMMAND_OPTION_CHOICES_INVALID", "Choices are not allowed for this type")
    if option.get("autocomplete"):
        if kind not in _AUTOCOMPLETE_TYPES:
            errors.add(where + ("autocomplete",), "APPLICATION_COMMAND_AUTOCOMPLETE_INVALID_TYPE",
                       "Autocomplete is not supported for this option type")
        if choices:
            errors.add(where + ("autocomplete",), "APPLICATION_COMMAND_AUTOCOMPLETE_INVALID",
                       "Autocomplete cannot be set with choices")
    if len(choices) > CHOICES_MAX:
        errors.too_long(where + ("choices",), CHOICES_MAX)
    for position, choice in enumerate(choices):
        _choice(errors, where + ("choices", position), kind, choice)


def _choice(errors: FormErrors, where: tuple[str | int, ...], kind: int, choice: dict[str, Any]) -> None:
    if not 1 <= len(str(choice.get("name", ""))) <= CHOICE_LENGTH:
        errors.bad_length(where + ("name",), 1, CHOICE_LENGTH)
    value = choice.get("value")
    if kind == 3:
        if not isinstance(value, str) or not 1 <= len(value) <= CHOICE_LENGTH:
            errors.bad_length(where + ("value",), 1, CHOICE_LENGTH)
    elif kind == 4 and not (isinstance(value, int) and not isinstance(value, bool) and abs(value) <= _INTEGER_RANGE):
        errors.add(where + ("value",), "NUMBER_TYPE_COERCE", f"Value \"{value}\" is not int.")
    elif kind == 10 and not (isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= 2**53):
        errors.add(where + ("value",), "NUMBER_TYPE_COERCE", f"Value \"{value}\" is not a valid number.")


def _ranges(errors: FormErrors, where: tuple[str | int, ...], kind: int, option: dict[str, Any]) -> None:
    for key in ("min_value", "max_value"):
        value = option.get(key)
        if value is None:
            continue
        if kind not in (4, 10) or isinstance(value, bool) or not isinstance(value, (int, float)) \
                or (kind == 4 and not isinstance(value, int)) or abs(value) > 2**53:
            errors.add(where + (key,), "NUMBER_TYPE_COERCE", f"Value \"{value}\" is not valid for this option.")
    low, high = option.get("min_value"), option.get("max_value")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
        errors.add(where + ("min_value",), "NUMBER_TYPE_MAX", f"Must be less than or equal to {high}.")
    for key, lowest in (("min_length", 0), ("max_length", 1)):
        value = option.get(key)
        if value is None:
            continue
        if kind != 3 or not isinstance(value, int) or not lowest <= value <= STRING_LENGTH_MAX:
            errors.add(where + (key,), "NUMBER_TYPE_MAX", f"Must be between {lowest} and {STRING_LENGTH_MAX}.")


def command_size(command: dict[str, Any]) -> int:
    """The characters Discord counts against COMMAND_SIZE: the names and descriptions of the command
    and of its options at every depth, and every choice's name and value (each field at its longest
    localisation)."""
    def longest(item: dict[str, Any], field: str) -> int:
        values = [str(item.get(field) or "")] + [str(v) for v in (item.get(f"{field}_localizations") or {}).values()]
        return max(len(v) for v in values)

    total = longest(command, "name") + longest(command, "description")
    for option in command.get("options") or []:
        total += command_size(option)
        for choice in option.get("choices") or []:
            total += longest(choice, "name") + len(str(choice.get("value", "")))
    return total


# -- messages --------------------------------------------------------------------------------------


def message_errors(payload: dict[str, Any], files: int = 0) -> dict[str, Any]:
    """The errors of a message body (create, edit, webhook, interaction callback data): content,
    embeds, components, attachments and nonce. `files`: how many files the request uploads."""
    errors = FormErrors()
    content = payload.get("content")
    if content is not None and len(str(content)) > CONTENT_LIMIT:
        errors.too_long(("content",), CONTENT_LIMIT)
    embeds = payload.get("embeds") or []
    if len(embeds) > EMBEDS_MAX:
        errors.too_long(("embeds",), EMBEDS_MAX)
    for index, embed in enumerate(embeds):
        _embed(errors, ("embeds", index), embed)
    if sum(embed_size(e) for e in embeds) > EMBED_TOTAL:
        errors.add(("embeds",), "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {EMBED_TOTAL}")
    _components(errors, payload.get("components") or [])
    # `attachments` describes the new files (by their index) and the ones an edit keeps (by id).
    described = payload.get("attachments") or []
    if max(files, len(described)) > ATTACHMENTS_MAX:
        errors.too_long(("attachments",), ATTACHMENTS_MAX)
    nonce = payload.get("nonce")
    if nonce is not None:
        if not isinstance(nonce, (str, int)) or isinstance(nonce, bool):
            errors.add(("nonce",), "NONCE_TYPE_INVALID_TYPE", "This field must be a string or integer.")
        elif len(str(nonce)) > NONCE_LENGTH:
            errors.add(("nonce",), "NONCE_TYPE_TOO_LONG", f"Must be {NONCE_LENGTH} or fewer characters long.")
    return errors.tree


def embed_size(embed: dict[str, Any]) -> int:
    """The characters of an embed that count against EMBED_TOTAL (surrounding white space is not counted)."""
    total = len(str(embed.get("title") or "").strip()) + len(str(embed.get("description") or "").strip())
    total += len(str((embed.get("footer") or {}).get("text") or "").strip())
    total += len(str((embed.get("author") or {}).get("name") or "").strip())
    for field in embed.get("fields") or []:
        total += len(str(field.get("name") or "").strip()) + len(str(field.get("value") or "").strip())
    return total


def _embed(errors: FormErrors, path: tuple[str | int, ...], embed: dict[str, Any]) -> None:
    def check(where: tuple[str | int, ...], value: Any, limit_key: str) -> None:
        if value is not None and len(str(value).strip()) > EMBED_LIMITS[limit_key]:
            errors.too_long(path + where, EMBED_LIMITS[limit_key])

    check(("title",), embed.get("title"), "title")
    check(("description",), embed.get("description"), "description")
    check(("footer", "text"), (embed.get("footer") or {}).get("text"), "footer.text")
    check(("author", "name"), (embed.get("author") or {}).get("name"), "author.name")
    fields = embed.get("fields") or []
    if len(fields) > EMBED_FIELDS_MAX:
        errors.too_long(path + ("fields",), EMBED_FIELDS_MAX)
    for index, field in enumerate(fields):
        for key in ("name", "value"):
            value = field.get(key)
            if value is None or not str(value).strip():
                errors.add(path + ("fields", index, key), "BASE_TYPE_REQUIRED", "This field is required")
        check(("fields", index, "name"), field.get("name"), "field.name")
        check(("fields", index, "value"), field.get("value"), "field.value")


def _components(errors: FormErrors, rows: list[dict[str, Any]]) -> None:
    if len(rows) > ACTION_ROWS_MAX:
        errors.too_long(("components",), ACTION_ROWS_MAX)
    custom_ids: set[str] = set()
    for r, row in enumerate(rows):
        where = ("components", r)
        if row.get("type") != _ACTION_ROW:
            errors.add(where + ("type",), "COMPONENT_LAYOUT_WIDTH_EXCEEDED", "Top-level components must be action rows")
            continue
        items = row.get("components") or []
        selects = [item for item in items if item.get("type") != _BUTTON]
        if not items or len(items) > BUTTONS_PER_ROW or (selects and len(items) > 1):
            errors.bad_length(where + ("components",), 1, BUTTONS_PER_ROW if not selects else 1)
        for i, item in enumerate(items):
            _component(errors, where + ("components", i), item, custom_ids)


def _component(errors: FormErrors, where: tuple[str | int, ...], item: dict[str, Any], custom_ids: set[str]) -> None:
    custom_id, url = item.get("custom_id"), item.get("url")
    is_link = item.get("type") == _BUTTON and item.get("style") == 5
    if is_link:
        if not url or custom_id is not None:
            errors.add(where, "BUTTON_COMPONENT_URL_REQUIRED", "Link buttons need a url and no custom_id")
    elif custom_id is None or not 1 <= len(str(custom_id)) <= CUSTOM_ID_LENGTH:
        errors.bad_length(where + ("custom_id",), 1, CUSTOM_ID_LENGTH)
    elif custom_id in custom_ids:
        errors.add(where + ("custom_id",), "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id was already specified")
    if custom_id is not None:
        custom_ids.add(custom_id)
    if item.get("type") == _BUTTON:
        if item.get("label") is not None and len(str(item["label"])) > BUTTON_LABEL_LENGTH:
            errors.too_long(where + ("label",), BUTTON_LABEL_LENGTH)
        if not item.get("label") and not item.get("emoji"):
            errors.add(where, "BUTTON_COMPONENT_LABEL_OR_EMOJI_REQUIRED", "A button needs a label or an emoji")
    elif item.get("type") == _STRING_SELECT:
        options = item.get("options") or []
        if not 1 <= len(options) <= SELECT_OPTIONS_MAX:
            errors.bad_length(where + ("options",), 1, SELECT_OPTIONS_MAX)
        for o, option in enumerate(options):
            for key in ("label", "value", "description"):
                if option.get(key) is not None and len(str(option[key])) > CHOICE_LENGTH:
                    errors.too_long(where + ("options", o, key), CHOICE_LENGTH)


# -- interactions ----------------------------------------------------------------------------------


def autocomplete_errors(data: dict[str, Any], option_type: int = 3) -> dict[str, Any]:
    """The errors of an autocomplete answer (callback type 8): at most 25 choices, each a 1-100
    character name and a value of the option's type (a string of 1-100 characters for text)."""
    errors = FormErrors()
    choices = data.get("choices")
    if choices is None:
        errors.add(("data", "choices"), "BASE_TYPE_REQUIRED", "This field is required")
        return errors.tree
    if len(choices) > CHOICES_MAX:
        errors.too_long(("data", "choices"), CHOICES_MAX)
    for index, choice in enumerate(choices):
        _choice(errors, ("data", "choices", index), option_type, choice)
    return errors.tree
