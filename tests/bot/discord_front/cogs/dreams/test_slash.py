"""The typed slash commands (bot/discord_front/cogs/dreams/slash.py) and the prefix parser agree:
the same options give the same compiled job. End to end against the local fake Discord: the options
are typed with the parser's ranges, classes and layers autocomplete, and a typed /visualize makes
the picture its prefix twin makes (the real engine on a warm worker)."""

from __future__ import annotations

import pytest
import pytest_asyncio

from bot.commands import job_request, parse_words
from bot.store import RateLimits
from core.errors import InvalidParameter
from core.spec import compile_job
from tests.bot.discord_front.helpers import decoded
from tests.bot.discord_world import open_world

IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")  # only on async tests: the module has plain ones too


@pytest_asyncio.fixture(loop_scope="module")
async def world(tmp_path, executor):
    async with open_world(tmp_path, executor, RateLimits(user_burst=10, max_active_jobs=5)) as world:
        yield world


@pytest.mark.parametrize("kind, typed, words", [
    ("zoom", {"frames": 12, "zoom": 1.1, "seed": 3}, ["frames:12", "zoom:1.1", "seed:3"]),
    ("visualize", {"target": "anemone fish", "size": 64, "steps": 12, "seed": 7},
     ["anemone", "fish", "size:64", "steps:12", "seed:7"]),
    ("visualize", {"target": None, "lr": 0.1, "seed": 1}, ["lr:0.1", "seed:1"]),
])
def test_typed_options_compile_to_the_job_the_parser_makes(kind, typed, words):
    defaults = {"model": "efficientnet-lite0"}
    slash, prefix = job_request(kind, typed, defaults=defaults), parse_words(kind, words, defaults=defaults)
    compiled = [compile_job(kind, r.params, seed=r.seed) for r in (slash, prefix)]
    assert compiled[0] == compiled[1]


def test_a_typed_option_out_of_range_is_refused_with_the_parsers_words():
    with pytest.raises(InvalidParameter, match="octaves must be between 1 and 8"):
        compile_job("dream", job_request("dream", {"octaves": 99}).params, images=[])


@IN_MODULE_LOOP
async def test_class_names_autocomplete_by_substring_and_typo(world):
    fake = world.fake
    async with world.bot():
        typed = await fake.dispatch_autocomplete("visualize", "target", "anem")
        response = await fake.wait_for_interaction_response(typed)
        assert response.type == 8
        names = [choice["name"] for choice in response.data["choices"]]
        # Names starting with what was typed, then names containing it, and no near-misses besides.
        assert names == ["anemone fish", "sea anemone"]
        typo = await fake.dispatch_autocomplete("visualize", "target", "anemne fish")
        assert "anemone fish" in [c["name"] for c in (await fake.wait_for_interaction_response(typo)).data["choices"]]
        layers = await fake.dispatch_autocomplete("dream", "layer", "", {"model": "googlenet"})
        values = [c["value"] for c in (await fake.wait_for_interaction_response(layers)).data["choices"]]
        assert values[:3] == ["shallow", "mid", "deep"] and "inception4c" in values, "presets, then the model's layers"


@IN_MODULE_LOOP
async def test_slash_options_are_typed_with_the_parsers_ranges(world):
    from dataclasses import fields

    from core.params import DreamParams, VideoParams

    async with world.bot() as client:
        options = {o["name"]: o for o in client.tree.get_command("dream").to_dict(client.tree)["options"]}
    for f in fields(DreamParams):
        option = options[f.name]
        if f.metadata["lo"] is not None:
            assert (option["min_value"], option["max_value"]) == (f.metadata["lo"], f.metadata["hi"]), f.name
    assert options["image"]["type"] == 11 and options["image"]["required"] and options["guide"]["type"] == 11
    formats = VideoParams.__dataclass_fields__["format"].metadata["choices"]
    assert [c["value"] for c in options["format"]["choices"]] == list(formats)
    assert options["layer"]["autocomplete"] and options["model"]["autocomplete"]
    assert options["target"]["autocomplete"], "a dream's target completes class names, as /visualize's does"


@IN_MODULE_LOOP
async def test_typed_slash_visualize_with_a_class_agrees_with_the_prefix_command(world):
    fake = world.fake
    async with world.bot():
        interaction = await fake.dispatch_slash_command("visualize", {"target": "anemone fish", "size": 64, "steps": 12,
                                                                      "seed": 7})
        assert (await fake.wait_for_interaction_response(interaction)).type == 5  # deferred, then the result
        upload = await fake.wait_for_upload()
        assert decoded(upload.data).size == (64, 64)
        message = next(m for m in fake.messages if int(m["id"]) == upload.message_id)
        assert "seen as anemone fish" in message["content"]
        assert "`!visualize anemone fish size:64 steps:12 seed:7`" in message["content"]
        await fake.dispatch_message("!visualize anemone fish size:64 steps:12 seed:7")
        again = await fake.wait_for_upload(start=1)
    slash_job, prefix_job = await world.store.jobs.get(1), await world.store.jobs.get(2)
    assert (slash_job.params, slash_job.seed) == (prefix_job.params, prefix_job.seed)
    assert again.data == upload.data, "the same request, so the same picture"
