from __future__ import annotations

import json

import pytest

from bot.commands import COMMANDS, HELP, JOB_COMMANDS, CommandError, Request, command_help, parse_command, reproduce_command
from core.params import as_dict
from core.spec import compile_job


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48)).save(out, "PNG")
    return out.getvalue()


PHOTO = _png()


def test_job_options_stay_as_typed_and_compile_to_the_full_parameter_set():
    request = parse_command("!dream layer:deep strength:2 octaves:4 model:googlenet seed:7")
    assert request.name == "dream" and request.seed == "7" and request.args == ()
    assert request.params == {"layer": "deep", "strength": "2", "octaves": "4", "model": "googlenet"}
    spec = compile_job(request.name, request.params, images=[PHOTO], seed=request.seed)
    params = as_dict(spec.params)
    assert spec.seed == 7 and params["layer"] == "inception4e" and params["strength"] == 2.0
    assert params["steps"] == 10  # a default the user did not type is still recorded
    json.dumps(params)  # stored as JSON


def test_equals_sign_and_case_are_accepted():
    assert parse_command("!Zoom frames=12 Zoom:1.1").params["frames"] == "12"
    assert compile_job("zoom", parse_command("!zoom frames:12 zoom:1.1").params).params.zoom == pytest.approx(1.1)


def test_the_reproduce_command_lists_what_differs_from_the_defaults():
    spec = compile_job("dream", {"layer": "mid", "strength": "2", "steps": 10}, images=[PHOTO], seed=5)
    assert reproduce_command(spec) == "!dream strength:2.0 seed:5"  # mid and 10 steps are the defaults
    spec = compile_job("dream", {"model": "googlenet", "layer": "deep"}, images=[PHOTO], seed=5)
    assert reproduce_command(spec, "?") == "?dream model:googlenet layer:inception4e seed:5"
    spec = compile_job("visualize", {"target": "Anemone Fish", "size": 64}, seed=1)
    assert reproduce_command(spec) == "!visualize anemone fish size:64 seed:1"


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


def test_every_command_parses_and_has_a_short_summary_and_an_example():
    assert set(COMMANDS) == set(HELP)
    for name in COMMANDS:
        help = HELP[name]
        # The summary is the slash command's description too: one line, at most Discord's 100 characters.
        assert "\n" not in help.summary and 1 <= len(help.summary) <= 100, name
        assert "\n" not in help.details
        assert parse_command(help.example).name == name, help.example  # the examples themselves must parse
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
