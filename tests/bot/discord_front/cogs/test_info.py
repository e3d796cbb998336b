"""The informational commands on Discord (bot/discord_front/cogs/info.py): models, layers, classes,
queue, cancel, quota, stats and help, as prefix and slash commands, answered in the server's prefix;
the help as an embed with a field and an example per command.

The real bot against the local fake Discord; no job runs here, so the worker runs the fake runner."""

from __future__ import annotations

import pytest
import pytest_asyncio

from bot.commands import COMMANDS, Request
from bot.discord_front.cogs.info import help_embed
from bot.executor import LocalProcessExecutor
from bot.results import LocalResults
from bot.service import Service
from bot.store import RateLimits, Store
from tests.bot.discord_front.helpers import FAKE_RUNNER, bot_said
from tests.bot.discord_world import open_world
from tests.bot.service.helpers import LONGEST_IDS as ALICE
from tests.bot.service.helpers import LONGEST_PREFIX, Workers, fits
from tests.fake_discord._limits import message_errors

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def executor():
    async with LocalProcessExecutor(workers=1, runner_factory=FAKE_RUNNER) as pool:
        yield pool


@pytest_asyncio.fixture(loop_scope="module")
async def world(tmp_path, executor):
    async with open_world(tmp_path, executor, RateLimits(user_burst=10, max_active_jobs=5)) as world:
        yield world


@pytest.fixture
async def store(tmp_path):
    async with Store.open(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", upgrade=True,
                          limits=RateLimits(user_burst=0, guild_jobs_per_hour=0, max_active_jobs=0)) as opened:
        yield opened


@pytest.fixture
async def service(store, tmp_path):
    async with Service.open(store=store, executor=Workers(), results=LocalResults(tmp_path / "results"),  # type: ignore[arg-type]
                            prefix=LONGEST_PREFIX) as service:
        yield service


# -- help --------------------------------------------------------------------------------------------------


async def test_help_is_an_embed_with_a_field_and_an_example_per_command(world):
    from bot.commands import COMMANDS

    fake = world.fake
    async with world.bot():
        await fake.dispatch_message("!settings prefix:?", author=fake.owner)
        await fake.wait_for_message(lambda m: m["content"].startswith("prefix ?"))
        interaction = await fake.dispatch_slash_command("help")
        [embed] = (await fake.wait_for_interaction_response(interaction)).data["embeds"]
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert list(fields) == [f"?{name}" for name in COMMANDS]
    assert "`?visualize anemone fish`" in fields["?visualize"], "examples use the server's prefix"
    assert "Dream this" in embed["description"]


async def test_the_help_fits_an_embed_and_every_commands_help_fits_a_message(service):
    embed = help_embed(LONGEST_PREFIX).to_dict()
    assert message_errors({"embeds": [embed]}) == {}
    for name in (None, *COMMANDS):
        text = await service.answers.answer(Request("help", {"command": name} if name else {}), ALICE)
        assert fits(text), (name, len(text))


async def test_help_on_one_command_lists_its_options_in_the_servers_prefix(world):
    fake = world.fake
    await world.store.guilds.change(str(fake.guild_id), prefix="?")
    async with world.bot():
        await fake.dispatch_message("?help dream")
        dream = await bot_said(fake, "?dream: dream on the attached photo")
        await fake.dispatch_message("?help")
        embed = await fake.wait_for_message(lambda m: m["embeds"])
        await fake.dispatch_message("?help dreem")
        await bot_said(fake, "no help for 'dreem'")
        interaction = await fake.dispatch_slash_command("help", {"command": "dream"})
        slash = await fake.wait_for_interaction_response(interaction)
    lines = dream["content"].splitlines()
    assert len(lines) > 5 and any(line.strip().startswith("steps:") for line in lines), "a line per option"
    assert slash.data["content"] == dream["content"], "the slash twin answers the same"
    assert embed["embeds"][0]["fields"][0]["name"] == "?dream" and "`?help dream`" in embed["embeds"][0]["description"]


# -- the other informational commands ---------------------------------------------------------------------


async def test_each_informational_command_is_answered_in_the_channel(world):
    fake = world.fake
    asked = {
        "!models": "efficientnet-lite0: ",
        "!layers": "efficientnet-lite0 presets: shallow=block3, mid=block8, deep=block13\nlayers: ",
        "!layers googlenet": "googlenet presets: ",
        "!layers nonet": "unknown model 'nonet'",
        "!classes anemone": "2 classes: sea anemone (108), anemone fish (393)",
        "!classes zzqx": "no ImageNet class contains 'zzqx'",
        "!classes": "!classes needs a search word; e.g. !classes fish",
        "!queue": "0 running, 0 waiting",
        "!quota": "you can start 10 of 10 jobs now",
        "!stats": "0 jobs (none yet; none yet) by 0 users; 0 in the gallery, 0 likes",
        "!cancel": "you have no job to cancel",
        "!cancel 7": "you have no job 7",
        "!cancel seven": "a job id is a positive number like 12, got 'seven'",
    }
    answers = {}
    async with world.bot():
        for text, start in asked.items():
            seen = len(fake.messages)
            request = await fake.dispatch_message(text)
            answers[text] = await fake.wait_for_message(lambda m, start=start: m["content"].startswith(start), start=seen)
            assert answers[text]["channel_id"] == request["channel_id"]
    assert "jobs may take up to 2 min" in answers["!quota"]["content"]
    assert not any("Traceback" in m["content"] or "went wrong" in m["content"] for m in fake.messages)


async def test_the_slash_twins_answer_as_the_prefix_commands_do(world):
    fake = world.fake
    async with world.bot():
        await fake.dispatch_message("!layers googlenet")
        prefixed = await bot_said(fake, "googlenet presets")
        layers = await fake.dispatch_slash_command("layers", {"model": "googlenet"})
        assert (await fake.wait_for_interaction_response(layers)).data["content"] == prefixed["content"]
        classes = await fake.dispatch_slash_command("classes", {"search": "anemone fish"})
        assert (await fake.wait_for_interaction_response(classes)).data["content"] == "1 classes: anemone fish (393)"
        cancel = await fake.dispatch_slash_command("cancel", {"job": "3"}, user=fake.bob)
        assert (await fake.wait_for_interaction_response(cancel)).data["content"] == "you have no job 3"
