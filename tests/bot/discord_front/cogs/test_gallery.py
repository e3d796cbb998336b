"""The gallery cog (bot/discord_front/cogs/gallery.py) end to end against the local fake Discord:
`!gallery` in either order, likes by the Like button and by ⭐ reactions (never the requester's own,
never on anything but the bot's results), featuring in the gallery channel once at the threshold,
and results leaving the gallery when their message is deleted.

The first tests dream with the real engine on a warm worker; the others have their results made by
the fake runner, since the engine is not what they are about."""

from __future__ import annotations

import discord
import pytest
from sqlalchemy import update
import pytest_asyncio

from bot.results import LocalResults
from bot.service import Retention
from bot.store.models import Job
from bot.store import RateLimits
from tests.bot.discord_front.helpers import (
    SMALL,
    STAND_INS,
    STAR,
    bot_said,
    delivery_ended,
    eventually,
    job_of,
    likes_become,
    message_link,
    posted_result,
)
from tests.bot.discord_world import open_world
from tests.bot.fake_runners import fake_spec
from tests.bot.rows import add_job

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def world(tmp_path, executor):
    async with open_world(tmp_path, executor, RateLimits(user_burst=10, max_active_jobs=5)) as world:
        yield world


@pytest_asyncio.fixture(loop_scope="module")
async def quick(tmp_path, fake_runner):
    """A world whose jobs the fake runner makes: start its bot with `quick.bot(**STAND_INS)`."""
    async with open_world(tmp_path, fake_runner, RateLimits(user_burst=20, max_active_jobs=5)) as world:
        world.carol = world.fake.add_user("carol")  # one more member to like results, added before the bot connects
        yield world


@pytest.fixture
def photo(photo_bytes):
    return photo_bytes("chelsea.png", (144, 96))


# -- likes and featuring, with the real engine ---------------------------------------------------------


async def test_results_reaching_the_like_threshold_are_featured_in_the_gallery_channel(world, photo):
    fake = world.fake
    best = fake.add_text_channel("best-dreams")
    async with world.bot():
        await fake.dispatch_message(f"!settings gallery_channel:<#{best['id']}> like_threshold:2", author=fake.owner)
        await bot_said(fake, "featured at 2 likes")
        await fake.dispatch_message(f"!dream {SMALL}", attachments=[fake.add_attachment(photo, "a.png")])
        upload = await fake.wait_for_upload()
        result = next(m for m in fake.messages if int(m["id"]) == upload.message_id)
        await fake.dispatch_button("dream:like:1", message=result, user=fake.owner)
        await fake.dispatch_button("dream:like:1", message=result, user=fake.bob)
        featured = await bot_said(fake, "⭐ 2 likes")
        assert featured["channel_id"] == best["id"] and featured["attachments"]


async def test_a_star_counts_as_a_like_and_taking_it_back_removes_it(world, photo):
    fake = world.fake
    star = "\N{WHITE MEDIUM STAR}"
    best = fake.add_text_channel("best-dreams")
    async with world.bot():
        await fake.dispatch_message(f"!settings gallery_channel:<#{best['id']}> like_threshold:2", author=fake.owner)
        await fake.wait_for_message(lambda m: "featured at 2 likes" in m["content"])
        await fake.dispatch_message(f"!dream {SMALL}", attachments=[fake.add_attachment(photo, "cat.png")], author=fake.alice)
        upload = await fake.wait_for_upload()
        result = next(m for m in fake.messages if int(m["id"]) == upload.message_id)
        await delivery_ended(world.store, 1)  # recorded as posted: a star finds its job from here on
        await fake.dispatch_reaction(result, star, user=fake.alice)  # the requester's own: never counted
        await fake.dispatch_reaction(result, "\N{THUMBS UP SIGN}", user=fake.bob)  # not a star
        await fake.dispatch_reaction(result, star, user=fake.bob)
        await likes_become(world.store, 1, 1)
        await fake.dispatch_button("dream:like:1", message=result, user=fake.bob)  # one like per user, either way
        assert "you already liked this (1 likes)" in (await fake.wait_for_interaction_response()).data["content"]
        await fake.dispatch_button("dream:like:1", message=result, user=fake.owner)
        featured = await fake.wait_for_message(lambda m: "⭐ 2 likes" in m["content"])
        assert featured["channel_id"] == best["id"], "the threshold applies to stars and buttons together"
        await fake.dispatch_reaction_removal(result, star, user=fake.bob)
        await likes_become(world.store, 1, 1)
        await fake.dispatch_reaction_removal(result, star, user=fake.alice)  # never counted, so nothing to take back
        await fake.dispatch_reaction(result, star, user=fake.bob)
        await likes_become(world.store, 1, 2)
    assert sum("⭐ 2 likes" in m["content"] for m in fake.messages) == 1, "featured once"


# -- !gallery ---------------------------------------------------------------------------------------------


async def in_the_gallery(world, *, likes: int, guild_id: int | None = None, link: str | None = None) -> tuple[int, str]:
    """A finished job posted on a server (default the fake's) and in its gallery, with `likes`; (job, link).
    link: the message it was posted in (default: a made-up one)."""
    store, fake = world.store, world.fake
    guild = str(guild_id or fake.guild_id)
    job_id = await add_job(store, fake_spec("dream"), user_id=fake.alice["id"], guild_id=guild, channel_id=str(fake.channel_id))
    location = await LocalResults(world.settings.results_dir).save(job_id, b"png", "image/png")  # listed only with its file
    assert await store.jobs.finish(job_id, {"total": 1.0}, location, "image/png")
    link = link or f"https://discord.com/channels/{guild}/{fake.channel_id}/{900_000 + job_id}"
    entry = await store.gallery.add(job_id, link, channel_id=str(fake.channel_id))
    for fan in range(likes):
        await store.gallery.like(entry, f"fan-{fan}")
    return job_id, link


def links_in(text: str) -> list[str]:
    return [line.rsplit(": ", 1)[1] for line in text.splitlines()]


async def test_gallery_lists_this_servers_results_newest_or_most_liked_first(quick):
    fake = quick.fake
    _, plain = await in_the_gallery(quick, likes=1)
    _, loved = await in_the_gallery(quick, likes=3)
    _, newest = await in_the_gallery(quick, likes=0)
    await in_the_gallery(quick, likes=9, guild_id=fake.guild_id + 1)  # another server's
    async with quick.bot(**STAND_INS):
        await fake.dispatch_message("!gallery")
        recent = await bot_said(fake, "likes)")
        assert links_in(recent["content"]) == [newest, loved, plain]
        await fake.dispatch_message("!gallery top")
        top = await fake.wait_for_message(lambda m: "likes)" in m["content"] and m["id"] != recent["id"])
        assert links_in(top["content"]) == [loved, plain, newest]
        assert "(3 likes)" in top["content"].splitlines()[0] and "dream" in top["content"]
        interaction = await fake.dispatch_slash_command("gallery", {"order": "top"})
        assert (await fake.wait_for_interaction_response(interaction)).data["content"] == top["content"]


async def test_gallery_shows_an_expired_result_as_expired_and_hides_one_whose_file_was_deleted(quick):
    fake, store = quick.fake, quick.store
    expired, expired_link = await in_the_gallery(quick, likes=2)
    by_hand, _ = await in_the_gallery(quick, likes=1)
    _, kept_link = await in_the_gallery(quick, likes=0)
    await store.jobs.posted(expired, expired_link, channel_id=str(fake.channel_id), in_guild=True)  # its delivery is over
    async with store.database.writing() as session:
        await session.execute(update(Job).where(Job.id == expired).values(finished_at=Job.finished_at - 31 * 86400))
    results = LocalResults(quick.settings.results_dir)
    assert (await Retention(store=store, results=results, days=30).prune()).files == 1
    (results.folder / f"job-{by_hand}.png").unlink()
    async with quick.bot(**STAND_INS):
        await fake.dispatch_message("!gallery")
        listed = (await bot_said(fake, "likes")).get("content").splitlines()
    assert links_in("\n".join(listed)) == [kept_link, expired_link]
    assert "(2 likes; expired)" in listed[1] and "expired" not in listed[0]


async def test_gallery_refuses_an_order_it_does_not_know_and_works_on_servers_only(quick):
    fake = quick.fake
    async with quick.bot(**STAND_INS):
        await fake.dispatch_message("!gallery")
        await bot_said(fake, "the gallery is empty")
        await fake.dispatch_message("!gallery best")
        await bot_said(fake, "the gallery order is recent or top, got 'best'")
        await fake.dispatch_message("!gallery", channel=fake.open_dm(fake.alice))
        answer = await bot_said(fake, "the gallery belongs to a server")
        assert answer["channel_id"] == fake.open_dm(fake.alice)["id"]


# -- likes: buttons and stars, with the fake runner ----------------------------------------------------------


async def test_the_like_button_of_a_result_no_longer_known_is_refused_privately(quick):
    fake = quick.fake
    async with quick.bot(**STAND_INS):
        pressed = await fake.dispatch_button("dream:like:99", user=fake.bob)  # on a bot message the store never recorded
        response = await fake.wait_for_interaction_response(pressed)
    assert response.data["content"] == "that result is no longer known" and response.data["flags"] & 64
    assert (await quick.store.gallery.stats()).gallery_entries == 0


async def test_only_stars_on_the_bots_results_count_and_never_the_bots_own(quick):
    fake = quick.fake
    async with quick.bot(**STAND_INS):
        result = await posted_result(quick, author=fake.alice)
        job = job_of(result)
        # Someone's own post of a photo, whose link the gallery happens to know: not the bot's, so no like.
        theirs = await fake.dispatch_message("my own cat", author=fake.bob)
        other_job, _ = await in_the_gallery(quick, likes=0, link=message_link(fake, theirs))
        await fake.dispatch_reaction(theirs, STAR, user=fake.owner)
        await fake.dispatch_reaction(result, STAR, user=fake.bot_user)  # the bot's own reaction
        await fake.dispatch_reaction(result, STAR, user=fake.owner)
        await likes_become(quick.store, job, 1)
        await fake.dispatch_reaction(result, STAR, user=fake.bob)
        await likes_become(quick.store, job, 2)
    assert (await quick.store.gallery.item(other_job)).likes == 0, "a star on a message the bot did not post"
    assert (await quick.store.gallery.item(job)).likes == 2, "the bot's own star is no like"


async def test_a_result_is_featured_once_at_the_threshold_and_only_with_a_gallery_channel(quick):
    fake = quick.fake
    best = fake.add_text_channel("best-dreams")
    async with quick.bot(**STAND_INS):
        await fake.dispatch_message("!settings like_threshold:2", author=fake.owner)
        await bot_said(fake, "gallery channel: none, featured at 2 likes")
        unfeatured = await posted_result(quick, author=fake.alice)
        for fan in (fake.owner, fake.bob):
            await fake.dispatch_button(f"dream:like:{job_of(unfeatured)}", message=unfeatured, user=fan)
        await likes_become(quick.store, job_of(unfeatured), 2)  # the threshold, but nowhere to feature it

        await fake.dispatch_message(f"!settings gallery_channel:<#{best['id']}>", author=fake.owner)
        await bot_said(fake, f"gallery channel: <#{best['id']}>")
        result = await posted_result(quick, author=fake.alice)
        job = job_of(result)
        await fake.dispatch_button(f"dream:like:{job}", message=result, user=fake.bob)
        await likes_become(quick.store, job, 1)
        await fake.dispatch_button(f"dream:like:{job}", message=result, user=fake.owner)
        featured = await bot_said(fake, "⭐ 2 likes")
        await fake.dispatch_reaction(result, STAR, user=quick.carol)
        await likes_become(quick.store, job, 3)
        await fake.dispatch_button(f"dream:like:{job_of(unfeatured)}", message=unfeatured, user=quick.carol)
        # The older result passes the threshold again (3 likes) now that there is a channel: featured then.
        again = await bot_said(fake, "⭐ 3 likes")
    assert featured["channel_id"] == best["id"] and featured["content"] == f"⭐ 2 likes: {message_link(fake, result)}"
    assert [a["filename"] for a in featured["attachments"]] == [result["attachments"][0]["filename"]], "the result's file"
    assert again["content"] == f"⭐ 3 likes: {message_link(fake, unfeatured)}"
    in_best = [m["content"] for m in fake.messages if m["channel_id"] == best["id"]]
    assert in_best == [featured["content"], again["content"]], "each featured once, neither before its threshold"


# -- deleted results leave the gallery --------------------------------------------------------------------


async def test_a_result_whose_message_is_deleted_leaves_the_gallery(quick):
    fake, store = quick.fake, quick.store
    async with quick.bot(**STAND_INS):
        first, second, third = [await posted_result(quick) for _ in range(3)]
        chatter = await fake.dispatch_message("nice dreams")
        await fake.delete_message(chatter)  # no result in it: nothing changes
        await fake.delete_message(first)  # as a member (or the Delete button) deletes it
        await eventually(lambda: _gone(store, job_of(first)), "the deleted result to leave the gallery")
        await fake.dispatch("MESSAGE_DELETE_BULK", {"ids": [second["id"], chatter["id"]], "channel_id": second["channel_id"],
                                                    "guild_id": str(fake.guild_id)})
        await eventually(lambda: _gone(store, job_of(second)), "a result deleted in bulk to leave it too")
        await fake.dispatch_message("!gallery")
        listing = await bot_said(fake, "likes)")
        await fake.dispatch_reaction(third, STAR, user=fake.bob)
        await likes_become(store, job_of(third), 1)
    assert links_in(listing["content"]) == [message_link(fake, third)]
    assert await store.gallery.job_of_post(message_link(fake, first)) is None, "a star on it would find no job"
    assert (await store.gallery.stats()).gallery_entries == 1


async def _gone(store, job_id: int) -> bool:
    return await store.gallery.item(job_id) is None


# -- each server's name and icon, for the web gallery ---------------------------------------------------


async def test_the_servers_name_and_icon_are_kept_as_seen_and_follow_a_rename(quick):
    fake, store = quick.fake, quick.store
    guild = str(fake.guild_id)
    fake.world.guilds[fake.guild_id].icon = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
    async with quick.bot(**STAND_INS):
        await eventually(lambda: _named(store, guild, fake.world.guilds[fake.guild_id].name), "the server's name kept")
        kept = await store.guilds.get(guild)
        # discord.py's address of the icon (Discord's CDN; here the fake's, which stands in for it)
        assert kept.icon_url == f"{discord.Asset.BASE}/icons/{guild}/a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6.png?size=128"
        await fake.update_guild(fake.guild_id, name="Dream Team <3", icon="ffeeddccbbaa99887766554433221100")
        await eventually(lambda: _named(store, guild, "Dream Team <3"), "the new name kept")
        assert (await store.guilds.get(guild)).icon_url.endswith("/ffeeddccbbaa99887766554433221100.png?size=128")
        assert (await store.guilds.get(guild)).prefix is None, "no setting changed by it"


async def _named(store, guild_id: str, name: str) -> bool:
    return (await store.guilds.get(guild_id)).name == name
