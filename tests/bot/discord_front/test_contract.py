"""What Discord accepts: the whole command tree registers with a fake Discord as strict as the real
one (tests/fake_discord/_limits.py), and the texts the bot sends fit Discord's limits."""

from __future__ import annotations

import pytest
import pytest_asyncio

from bot.executor import LocalProcessExecutor
from bot.store import RateLimits
from tests.bot.discord_world import open_world
from tests.fake_discord._limits import COMMAND_SIZE, DESCRIPTION_LENGTH, command_list_errors, command_size

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def executor():
    # No job runs here: a fake runner keeps the worker light.
    async with LocalProcessExecutor(workers=1, device="cpu", runner_factory="tests.bot.fake_runners:FakeRunner") as pool:
        yield pool


@pytest_asyncio.fixture(loop_scope="module")
async def world(tmp_path, executor):
    async with open_world(tmp_path, executor, RateLimits()) as world:
        yield world


async def test_the_whole_command_tree_registers_with_a_strict_discord(world):
    fake = world.fake
    async with world.bot() as client:
        synced = await client.tree.sync()  # what `dreambot run --sync-commands` does
    assert fake.refused_command_syncs == []
    registered = fake.commands[None]
    assert len(synced) == len(registered) == 16
    slash = {c["name"] for c in registered if c["type"] == 1}
    menus = {c["name"] for c in registered if c["type"] == 3}
    assert {"dream", "visualize", "zoom", "settings", "help", "gallery"} <= slash
    assert menus == {"Dream this", "Dream deeper"} and {c["name"] for c in registered if c["type"] == 2} == {"Dream avatar"}
    for command in registered:
        assert command["type"] != 1 or 1 <= len(command["description"]) <= DESCRIPTION_LENGTH, command["name"]
        assert command_size(command) <= COMMAND_SIZE


async def test_the_strict_fake_refuses_a_description_over_100_characters_as_discord_does():
    too_long = {"name": "settings", "type": 1, "description": "x" * 101, "options": []}
    fine = {"name": "help", "type": 1, "description": "help on all commands or one", "options": []}
    errors = command_list_errors([fine, too_long])
    assert errors == {"1": {"description": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH",
                                                           "message": "Must be 100 or fewer in length."}]}}}
