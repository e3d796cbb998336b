from __future__ import annotations

import json

import pytest

from bot.commands import COMMANDS, HELP, JOB_COMMANDS, CommandError, Request, command_help, parse_command
from core.params import as_dict, validate_params


def test_dream_options_resolve_to_the_full_parameter_set():
    request = parse_command("!dream layer:deep strength:2 octaves:4 model:googlenet seed:7")
    assert request.name == "dream" and request.seed == 7 and request.args == ()
    expected = as_dict(validate_params("dream", {"layer": "deep", "strength": 2, "octaves": 4, "model": "googlenet"}))
    assert request.params == expected
    assert request.params["steps"] == 10  # a default the user did not type is still recorded
    assert "seed" not in request.params
    json.dumps(request.params)  # stored as JSON


def test_equals_sign_and_case_are_accepted():
    assert parse_command("!Zoom frames=12 Zoom:1.1").params["frames"] == 12
    assert parse_command("!zoom frames:12 zoom:1.1").params["zoom"] == pytest.approx(1.1)


@pytest.mark.parametrize(
    ("text", "target"),
    [("!visualize banana", "banana"), ("!visualize anemone fish", "anemone fish"), ("!visualize 954", "954"),
     ('!visualize target:"anemone fish"', "anemone fish"), ("!visualize don't", "don't")],
)
def test_visualize_target_from_free_words(text, target):
    request = parse_command(text)
    assert request.name == "visualize" and request.params["target"] == target


def test_custom_prefix_and_text_not_for_us():
    assert parse_command("?quota", prefix="?") == Request("quota")
    assert parse_command("!quota", prefix="?") is None
    for text in ("hello", "", "!", "!!!", "! dream", "  "):
        assert parse_command(text) is None


@pytest.mark.parametrize(
    ("text", "name", "params", "args"),
    [
        ("!models", "models", {}, ()),
        ("!layers", "layers", {}, ()),
        ("!layers googlenet", "layers", {"model": "googlenet"}, ("googlenet",)),
        ("!layers model:googlenet", "layers", {"model": "googlenet"}, ()),
        ("!classes fish", "classes", {"search": "fish"}, ("fish",)),
        ("!classes anemone fish", "classes", {"search": "anemone fish"}, ("anemone", "fish")),
        ("!queue", "queue", {}, ()),
        ("!cancel", "cancel", {}, ()),
        ("!cancel 12", "cancel", {"job_id": 12}, ("12",)),
        ("!cancel #12", "cancel", {"job_id": 12}, ("#12",)),
        ("!quota", "quota", {}, ()),
        ("!gallery", "gallery", {"order": "recent"}, ()),
        ("!gallery top", "gallery", {"order": "top"}, ("top",)),
        ("!stats", "stats", {}, ()),
        ("!help", "help", {}, ()),
        ("!help dream", "help", {"command": "dream"}, ("dream",)),
        ("!help !zoom", "help", {"command": "zoom"}, ("!zoom",)),
    ],
)
def test_other_commands(text, name, params, args):
    request = parse_command(text)
    assert (request.name, request.params, request.args, request.seed) == (name, params, args, None)
    assert not request.is_job


def test_every_command_parses_and_has_one_line_of_help_with_an_example():
    assert set(COMMANDS) == set(HELP)
    for name in COMMANDS:
        text = HELP[name]
        assert "\n" not in text and "e.g. !" in text
        example = text.rsplit("e.g. ", 1)[1]
        assert parse_command(example).name == name, example  # the examples themselves must parse
    assert all(parse_command(f"!{name}").is_job for name in JOB_COMMANDS)


def test_help_lines_use_the_prefix_and_list_options():
    lines = command_help("dream", prefix="?")
    assert lines[0].startswith("?dream:") and "!" not in lines[0]
    assert any(line.strip().startswith("strength:") for line in lines)
    assert any(line.strip().startswith("seed:") for line in lines)
    assert len(command_help()) == len(COMMANDS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("!dreem", "unknown command 'dreem' (did you mean !dream?)"),
        ("!visualise banana", "(did you mean !visualize?)"),
        ("!xyzzy", "unknown command 'xyzzy'; try !help"),
        ("!dream strength:99", "strength must be between"),
        ("!dream strenght:2", "did you mean strength?"),
        ("!dream steps:many", "steps must be a whole number"),
        ("!dream seed:-1", "seed must be from 0 to 2147483647"),
        ("!dream seed:2147483648", "seed must be from 0"),
        ("!zoom seed:abc", "seed must be a whole number"),
        ("!dream banana", "unexpected 'banana' for !dream"),
        ("!dream layer:deep layer:mid", "given twice"),
        ("!visualize target:banana fish", "not both"),
        ("!classes", "!classes needs a search word"),
        ("!cancel abc", "a job id is a positive number"),
        ("!cancel 0", "a job id is a positive number"),
        ("!models extra", "!models takes no words"),
        ("!queue verbose:1", "!queue has no option 'verbose'"),
        ("!gallery best", "the gallery order is recent or top"),
        ("!help dreem", "no help for 'dreem' (did you mean !dream?)"),
    ],
)
def test_errors_are_one_line_and_say_what_was_expected(text, message):
    with pytest.raises(CommandError) as info:
        parse_command(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_error_suggestion_uses_the_guild_prefix():
    with pytest.raises(CommandError, match=r"did you mean \?dream\?"):
        parse_command("?dreem", prefix="?")
