"""`!settings` (bot/discord_front/cogs/settings.py): a server's admins see and change its settings;
nobody else can, and a change that is refused changes nothing; roles and channels are looked up on
the server; the answer shows the settings as they apply and fits a message at its largest.

The real bot against the local fake Discord: the first test runs jobs with the real engine on a warm
worker; the others run no job, so their worker runs the fake runner."""

from __future__ import annotations

import pytest
import pytest_asyncio

from bot.discord_front.cogs.settings import settings_words
from bot.store import GuildSettings, RateLimits
from tests.bot.discord_front.helpers import SMALL, bot_said
from tests.bot.discord_world import open_world
from tests.bot.service.helpers import LONGEST_PREFIX, fits

IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")  # only on async tests: the module has plain ones too


@pytest_asyncio.fixture(loop_scope="module")
async def world(tmp_path, executor):
    async with open_world(tmp_path, executor, RateLimits(user_burst=10, max_active_jobs=5)) as world:
        yield world


@pytest_asyncio.fixture(loop_scope="module")
async def quick(tmp_path, fake_runner):
    async with open_world(tmp_path, fake_runner, RateLimits(user_burst=10, max_active_jobs=5)) as world:
        world.best = world.fake.add_text_channel("best-dreams")  # before the bot connects, so it sees the channel
        yield world


@pytest.fixture
def photo(photo_bytes):
    return photo_bytes("chelsea.png", (144, 96))


DEFAULTS = ("prefix !; per user 10 jobs, one more every 60 s, 5 at once; 30 per hour for the server; jobs up to 120 s; "
            "exempt roles: 0; gallery channel: none, featured at no likes; web gallery: off")


@IN_MODULE_LOOP
async def test_admins_set_the_prefix_and_limits_others_cannot(world, photo):
    fake = world.fake
    async with world.bot():
        await fake.dispatch_message("!settings prefix:? user_burst:1 user_refill_seconds:3600", author=fake.bob)
        await bot_said(fake, "you need the Manage Server permission")
        await fake.dispatch_message("!settings prefix:? user_burst:1 user_refill_seconds:3600", author=fake.owner)
        await bot_said(fake, "prefix ?; per user 1 jobs")
        await fake.dispatch_message("?models")
        await bot_said(fake, "efficientnet-lite0:")
        await fake.dispatch_message(f"?dream {SMALL}", attachments=[fake.add_attachment(photo, "a.png")])
        await fake.wait_for_upload()
        await fake.dispatch_message(f"?dream {SMALL}", attachments=[fake.add_attachment(photo, "b.png")])
        await bot_said(fake, "you can start another job in")
    async with world.bot():  # settings live in the store, not in memory
        await fake.dispatch_message("?quota")
        await bot_said(fake, "you can start 0 of 1 jobs now")


def test_the_settings_answer_fits_at_its_largest():
    current = GuildSettings("9" * 20, prefix=LONGEST_PREFIX, exempt_role_ids=tuple("9" * 20 for _ in range(10**4)),
                            gallery_channel_id="9" * 20, like_threshold=10**9)
    limits = RateLimits(user_burst=10**9, user_refill_seconds=1.0e9 + 0.123, guild_jobs_per_hour=10**9, max_active_jobs=10**9)
    web = "web gallery: on at <https://" + "g" * 200 + ".example/servers/" + "9" * 20 + ">, with who asked"
    assert fits(settings_words(current, limits, 1.0e9 + 0.5, prefix=LONGEST_PREFIX, web=web))


async def answer_to(fake, text: str, author: dict, **where) -> str:
    """The bot's answer to `text` (its next message)."""
    seen = len(fake.messages)
    await fake.dispatch_message(text, author=author, **where)
    return (await fake.wait_for_message(start=seen))["content"]


@IN_MODULE_LOOP
async def test_only_server_managers_see_or_change_the_settings(quick):
    fake, guild = quick.fake, str(quick.fake.guild_id)
    async with quick.bot() as client:
        refused = "you need the Manage Server permission for that"
        assert await answer_to(fake, "!settings", fake.bob) == refused, "not even to see them"
        assert await answer_to(fake, "!settings prefix:? user_burst:1", fake.bob) == refused
        interaction = await fake.dispatch_slash_command("settings", {"options": "user_burst:1"}, user=fake.alice)
        assert (await fake.wait_for_interaction_response(interaction)).data["content"] == refused
        in_a_dm = await answer_to(fake, "!settings prefix:?", fake.alice, channel=fake.open_dm(fake.alice))
        assert in_a_dm in ("that works on servers only", refused), "no server's settings to see or change in a DM"
        assert (await answer_to(fake, "!models", fake.bob)).startswith("efficientnet-lite0: "), "the prefix is still !"
        assert await answer_to(fake, "!settings", fake.owner) == DEFAULTS
        assert client.prefixes[fake.guild_id] == "!"
    assert await quick.store.guilds.get(guild) == GuildSettings(guild, name=fake.world.guilds[fake.guild_id].name), \
        "no setting changed (the server's name is kept as the bot saw it)"


@IN_MODULE_LOOP
@pytest.mark.parametrize(("options", "why"), [
    ("prefix:? user_burst:abc", "user_burst is a whole number from 0 to 1000, got 'abc'"),
    ("user_burst:5 max_job_seconds:500", "max_job_seconds is at most 120, the bot's own limit"),
    ("like_threshold:3 gallery_channel:nowhere", "this server has no text channel 'nowhere'"),
    ("exempt_role:vip user_burst:5", "this server has no role 'vip'"),
    ("prefix:?? colour:red", "!settings has no option 'colour'; it takes prefix:, user_burst:,"),
    ("public_gallery:maybe", "public_gallery is on or off, got 'maybe'"),
])
async def test_a_refused_change_changes_nothing(quick, options, why):
    fake, guild = quick.fake, str(quick.fake.guild_id)
    async with quick.bot() as client:
        answer = await answer_to(fake, f"!settings {options}", fake.owner)
        assert answer.startswith(why) and "\n" not in answer
        assert await answer_to(fake, "!settings", fake.owner) == DEFAULTS, "nothing else of the request was applied"
        assert client.prefixes[fake.guild_id] == "!"
    assert await quick.store.guilds.get(guild) == GuildSettings(guild, name=fake.world.guilds[fake.guild_id].name), \
        "no setting changed (the server's name is kept as the bot saw it)"


@IN_MODULE_LOOP
async def test_roles_and_channels_are_looked_up_on_the_server(quick):
    fake, guild = quick.fake, str(quick.fake.guild_id)
    bot_role = fake.world.guilds[fake.guild_id].roles[1]  # the role Discord gives the bot: one every server has
    async with quick.bot():
        assert "exempt roles: 1;" in await answer_to(fake, "!settings exempt_role:Dreambot", fake.owner)
        assert "exempt roles: 1;" in await answer_to(fake, f"!settings exempt_role:<@&{bot_role['id']}>", fake.owner), \
            "the same role named again is kept once"
        answer = await answer_to(fake, "!settings gallery_channel:best-dreams like_threshold:3", fake.owner)
        assert f"gallery channel: <#{quick.best['id']}>, featured at 3 likes;" in answer
    settings = await quick.store.guilds.get(guild)
    assert (settings.exempt_role_ids, settings.gallery_channel_id, settings.like_threshold) == \
        ((bot_role["id"],), quick.best["id"], 3)


@IN_MODULE_LOOP
async def test_the_web_gallery_is_summed_up_as_the_server_set_it(quick):
    fake = quick.fake
    async with quick.bot():
        assert (await answer_to(fake, "!settings public_gallery:on", fake.owner)).endswith("; web gallery: on, without who asked")
        assert (await answer_to(fake, "!settings public_names:on", fake.owner)).endswith("; web gallery: on, with who asked")
        assert (await answer_to(fake, "!settings public_gallery:off", fake.owner)).endswith("; web gallery: off")
