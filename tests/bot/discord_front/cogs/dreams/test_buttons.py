"""Asking again from a result or a photo (bot/discord_front/cogs/dreams/buttons.py): the buttons under
a result (re-roll, dream deeper, like, delete), which keep working after a restart, and the context
menus (Apps > Dream this, Dream deeper, Dream avatar).

The end-to-end tests run the real bot against the local fake Discord, most with the real engine on
a warm worker; what asking again makes of a job record is checked on `again` directly."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import pytest_asyncio

from bot.commands import Request
from bot.discord_front.cogs.dreams.buttons import MOST_ITERATIONS, again
from bot.store import JobRecord, RateLimits
from tests.bot.discord_front.helpers import (
    SMALL,
    STAND_INS,
    bot_said,
    decoded,
    job_of,
    posted_result,
    result_recorded,
)
from tests.bot.discord_world import LIMIT, open_world

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def world(tmp_path, executor):
    async with open_world(tmp_path, executor, RateLimits(user_burst=10, max_active_jobs=5)) as world:
        yield world


@pytest_asyncio.fixture(loop_scope="module")
async def quick(tmp_path, fake_runner):
    """A world whose jobs the fake runner makes: start its bot with `quick.bot(**STAND_INS)`."""
    async with open_world(tmp_path, fake_runner, RateLimits(user_burst=10, max_active_jobs=5)) as world:
        yield world


@pytest.fixture
def photo(photo_bytes):
    return photo_bytes("chelsea.png", (144, 96))


# -- the result buttons ------------------------------------------------------------------------------


async def test_buttons_keep_working_after_a_restart(world, photo):
    fake = world.fake
    async with world.bot():
        await fake.dispatch_message(f"!dream {SMALL}", attachments=[fake.add_attachment(photo, "cat.png")])
        first = await fake.wait_for_upload()
    result = next(m for m in fake.messages if int(m["id"]) == first.message_id)
    async with world.bot():  # a new process: nothing in memory knows the old message
        interaction = await fake.dispatch_button("dream:reroll:1", message=result, user=fake.alice)
        response = await fake.wait_for_interaction_response(interaction)
        assert response.type == 4 and "job #2" in response.data["content"]
        second = await fake.wait_for_upload(start=1)
        assert decoded(second.data).size == (96, 64) and second.data != first.data
        deeper = await fake.dispatch_button("dream:deeper:1", message=result, user=fake.alice)
        assert "job #3" in (await fake.wait_for_interaction_response(deeper)).data["content"]
        third = await fake.wait_for_upload(start=2)
        # One iteration more of the same job: its command says so and reproduces it from the photo.
        message = next(m for m in fake.messages if int(m["id"]) == third.message_id)
        assert f"`!dream {SMALL} iterations:2 seed:{(await world.store.jobs.get(1)).seed}`" in message["content"]
    first, rerolled, deeper_job = [await world.store.jobs.get(i) for i in (1, 2, 3)]
    assert rerolled.seed != first.seed
    assert deeper_job.seed == first.seed and deeper_job.image == first.image
    assert deeper_job.params == first.params | {"iterations": 2}


async def test_delete_is_for_the_requester_or_moderators_and_likes_fill_the_gallery(world, photo):
    fake = world.fake
    async with world.bot():
        await fake.dispatch_message(f"!dream {SMALL}", attachments=[fake.add_attachment(photo, "cat.png")], author=fake.alice)
        upload = await fake.wait_for_upload()
        result = next(m for m in fake.messages if int(m["id"]) == upload.message_id)
        for user in (fake.owner, fake.bob, fake.bob, fake.alice):
            await fake.dispatch_button("dream:like:1", message=result, user=user)
        await fake.wait_for(lambda: len(fake.interaction_responses) == 4, LIMIT)
        replies = sorted(r.data["content"] for r in fake.interaction_responses)
        assert replies[0].startswith("you already liked this") and sum("⭐ liked" in r for r in replies) == 2
        assert replies[1] == "you cannot like your own result", "alice asked for it"
        await fake.dispatch_message("!gallery top")
        await bot_said(fake, "(2 likes)")
        refusal = await fake.dispatch_button("dream:delete:1", message=result, user=fake.bob)
        assert "only the person who asked" in (await fake.wait_for_interaction_response(refusal)).data["content"]
        assert not fake.deleted
        await fake.dispatch_button("dream:delete:1", message=result, user=fake.alice)
        await fake.wait_for(lambda: fake.deleted, LIMIT)


async def test_a_moderator_may_delete_anyones_result(quick):
    fake = quick.fake
    async with quick.bot(**STAND_INS):
        result = await posted_result(quick, author=fake.alice)
        pressed = await fake.dispatch_button(f"dream:delete:{job_of(result)}", message=result, user=fake.owner)
        await fake.wait_for(lambda: int(result["id"]) in fake.deleted, LIMIT, what="the result deleted")
        assert (await fake.wait_for_interaction_response(pressed)).type == 6, "deferred, with nothing to say"


@pytest.mark.parametrize("action", ["reroll", "deeper", "delete"])
async def test_a_button_of_a_job_no_longer_known_says_so_privately(quick, action):
    fake = quick.fake
    async with quick.bot(**STAND_INS):
        pressed = await fake.dispatch_button(f"dream:{action}:404", user=fake.alice)  # a bot message from before the store
        response = await fake.wait_for_interaction_response(pressed)
    assert response.data["content"] == "that job is no longer known" and response.data["flags"] & 64
    assert fake.deleted == [] and (await quick.store.gallery.stats()).jobs == 0


async def test_the_like_button_says_so_when_likes_are_not_counted(quick):
    fake = quick.fake
    async with quick.bot(**STAND_INS) as client:
        result = await posted_result(quick, author=fake.alice)
        await client.unload_extension("bot.discord_front.cogs.gallery")  # say, it failed to load
        pressed = await fake.dispatch_button(f"dream:like:{job_of(result)}", message=result, user=fake.bob)
        response = await fake.wait_for_interaction_response(pressed)
    assert response.data["content"] == "likes are not counted right now" and response.data["flags"] & 64
    assert (await quick.store.gallery.item(job_of(result))).likes == 0


# -- what asking again asks for --------------------------------------------------------------------------


class _Asked:
    """Stands in for the Dreams cog and the interaction: records what `again` asks for or answers."""

    def __init__(self, stored: tuple[bytes, str] | None = None) -> None:
        self.asked: list[tuple[Request, list[bytes]]] = []
        self.answered: list[tuple[str, bool]] = []
        self.response = self

        async def result(record: JobRecord) -> tuple[bytes, str] | None:
            return stored

        self.bot = SimpleNamespace(service=SimpleNamespace(delivery=SimpleNamespace(result=result)))

    async def ask_again(self, interaction, request: Request, images: list[bytes]) -> None:
        self.asked.append((request, images))

    async def send_message(self, text: str, *, ephemeral: bool = False) -> None:
        self.answered.append((text, ephemeral))


def record(kind: str, params: dict, *, seed: int = 7, image: bytes | None = None, guide: bytes | None = None) -> JobRecord:
    return JobRecord(id=1, user_id="1", guild_id="2", channel_id="3", kind=kind, params=params, seed=seed, status="done",
                     error=None, created_at=0.0, started_at=0.0, finished_at=1.0, timings=None,
                     result_location="job-1.png", result_message_link=None, result_type="image/png", image=image, guide=guide)


async def asked_again(job: JobRecord, *, deeper: bool, stored: tuple[bytes, str] | None = None) -> _Asked:
    asked = _Asked(stored)
    await again(asked, asked, job, deeper=deeper)  # type: ignore[arg-type]
    return asked


async def test_a_reroll_asks_for_the_same_job_with_a_new_seed():
    params = {"layer": "deep", "strength": "2"}
    dream = await asked_again(record("dream", params, image=b"photo", guide=b"guide"), deeper=False)
    assert dream.asked == [(Request("dream", params), [b"photo", b"guide"])] and dream.answered == []
    assert dream.asked[0][0].seed is None, "the compiler picks a new seed"
    clip = await asked_again(record("video", {"frames": "12"}, image=b"clip"), deeper=False)
    assert clip.asked == [(Request("dream", {"frames": "12"}), [b"clip"])], "users ask for a dream on a clip"
    render = await asked_again(record("visualize", {"target": "banana"}), deeper=False)
    assert render.asked == [(Request("visualize", {"target": "banana"}), [])]


async def test_dream_deeper_on_a_dream_is_the_same_job_one_iteration_deeper():
    deeper = await asked_again(record("dream", {"layer": "deep", "iterations": 2}, seed=42, image=b"photo"), deeper=True)
    assert deeper.asked == [(Request("dream", {"layer": "deep", "iterations": 3}, seed=42), [b"photo"])]
    first = await asked_again(record("dream", {}, seed=5, image=b"photo"), deeper=True)
    assert first.asked == [(Request("dream", {"iterations": 2}, seed=5), [b"photo"])], "a dream of one iteration goes to two"


async def test_dream_deeper_stops_at_the_most_iterations():
    deepest = await asked_again(record("dream", {"iterations": MOST_ITERATIONS}, image=b"photo"), deeper=True)
    assert deepest.asked == []
    [(text, private)] = deepest.answered
    assert f"already {MOST_ITERATIONS} iterations deep" in text and private


async def test_dream_deeper_on_a_render_dreams_on_its_result_with_its_model():
    render = record("visualize", {"target": "banana", "model": "googlenet"})
    deeper = await asked_again(render, deeper=True, stored=(b"rendered png", "image/png"))
    assert deeper.asked == [(Request("dream", {"model": "googlenet"}), [b"rendered png"])]
    gone = await asked_again(render, deeper=True, stored=None)
    assert gone.asked == [] and gone.answered == [("that result is no longer stored, so I cannot dream deeper", True)]
    expired = await asked_again(replace(render, result_removed="expired"), deeper=True, stored=(b"rendered png", "image/png"))
    line = ("result #1 has expired: its file was deleted after the bot's retention period, so I cannot dream deeper on it; "
            "Re-roll makes a new one")
    assert expired.asked == [] and expired.answered == [(line, True)], "one clear line, whatever is left in the folder"


# -- the context menus -----------------------------------------------------------------------------------


async def test_dream_this_on_another_users_photo(world, photo):
    fake = world.fake
    async with world.bot():
        posted = await fake.dispatch_message("look at my cat", author=fake.bob,
                                             attachments=[fake.add_attachment(photo, "cat.png")])
        plain = await fake.dispatch_message("no photo here", author=fake.bob)
        refused = await fake.dispatch_context_menu("Dream this", plain, user=fake.alice)
        response = await fake.wait_for_interaction_response(refused)
        assert response.data["content"] == "that message has no photo to dream on" and response.data["flags"] & 64
        menu = await fake.dispatch_context_menu("Dream this", posted, user=fake.alice)
        assert (await fake.wait_for_interaction_response(menu)).type == 5  # deferred while the photo downloads
        await fake.wait_for_edit(lambda e: "job #1 (dream)" in e.payload.get("content", ""))  # progress on the ack
        upload = await fake.wait_for_upload()
        assert decoded(upload.data).size == (144, 96)
        message = next(m for m in fake.messages if int(m["id"]) == upload.message_id)
        assert message["content"].startswith(f"<@{fake.alice['id']}> job #1") and "`!dream seed:" in message["content"]
        deeper = await fake.dispatch_context_menu("Dream deeper", posted, user=fake.alice)
        assert (await fake.wait_for_interaction_response(deeper)).type == 5
        await fake.wait_for_upload(start=1)
        message = next(m for m in fake.messages if int(m["id"]) == fake.uploads[1].message_id)
        assert "`!dream layer:" in message["content"], "deeper: the deep preset, not the default layer"
    job = await world.store.jobs.get(1)
    assert (job.user_id, job.kind) == (fake.alice["id"], "dream"), "alice asked, not bob"
    assert (await world.store.jobs.get(2)).params["layer"] != job.params["layer"]


async def test_dream_deeper_on_a_result_adds_one_iteration_up_to_the_most(world, photo):
    fake = world.fake
    async with world.bot():
        await fake.dispatch_message(f"!dream {SMALL}", attachments=[fake.add_attachment(photo, "cat.png")])
        first = await fake.wait_for_upload()
        result = next(m for m in fake.messages if int(m["id"]) == first.message_id)
        await result_recorded(world.store, 1)
        menu = await fake.dispatch_context_menu("Dream deeper", result, user=fake.alice)
        assert "job #2" in (await fake.wait_for_interaction_response(menu)).data["content"]
        await fake.wait_for_upload(start=1)
        await fake.dispatch_message(f"!dream {SMALL} iterations:8", attachments=[fake.add_attachment(photo, "cat.png")])
        deepest = await fake.wait_for_upload(start=2)
        result = next(m for m in fake.messages if int(m["id"]) == deepest.message_id)
        button = await fake.dispatch_button("dream:deeper:3", message=result, user=fake.alice)
        response = await fake.wait_for_interaction_response(button)
        assert "already 8 iterations deep" in response.data["content"] and response.data["flags"] & 64
    first_job, deeper_job = await world.store.jobs.get(1), await world.store.jobs.get(2)
    assert deeper_job.params == first_job.params | {"iterations": 2} and deeper_job.seed == first_job.seed
    assert (await world.store.gallery.stats()).jobs == 3, "nothing is admitted past the most iterations"


async def test_dream_avatar_dreams_on_the_users_avatar(world, photo_bytes):
    fake = world.fake
    fake.set_avatar(fake.bob, photo_bytes("astronaut.png", (96, 96)))
    async with world.bot():
        menu = await fake.dispatch_context_menu("Dream avatar", fake.bob, user=fake.alice)
        assert (await fake.wait_for_interaction_response(menu)).type == 5
        upload = await fake.wait_for_upload()
    assert decoded(upload.data).size == (96, 96)
    assert any(r.path.startswith(f"avatars/{fake.bob['id']}/") for r in fake.cdn_requests)
    assert (await world.store.jobs.get(1)).user_id == fake.alice["id"]
