"""Discord as people expect it, end to end against the local fake Discord: results that Discord
refused are posted later (after a restart too), star reactions count as likes, typed slash
commands with autocomplete, context menus, and help as an embed."""

from __future__ import annotations

import asyncio
import io

import pytest
import pytest_asyncio
from PIL import Image

from bot.executor import LocalProcessExecutor
from bot.store import RateLimits
from tests.bot.discord_world import LIMIT, open_world

pytestmark = pytest.mark.asyncio(loop_scope="module")
SMALL = "steps:2 octaves:2 max_side:96"
NO_RETRY = 3600.0  # seconds: a first run that must not try again by itself before the restart


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def executor():
    async with LocalProcessExecutor(workers=1, device="cpu", warm_models=("efficientnet-lite0",)) as pool:
        yield pool


@pytest_asyncio.fixture(loop_scope="module")
async def world(tmp_path, executor):
    async with open_world(tmp_path, executor, RateLimits(user_burst=10, max_active_jobs=5)) as world:
        yield world


@pytest.fixture
def photo(photo_bytes):
    return photo_bytes("chelsea.png", (144, 96))


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def dream_refused_by_an_outage(world, photo) -> dict:
    """A first run of the bot whose result upload gets HTTP 503; it must not retry by itself.
    Returns the message that asked for the dream."""
    fake = world.fake
    async with world.bot(delivery_retry_seconds=NO_RETRY):
        fake.fail_next_upload(status=503)
        request = await fake.dispatch_message(f"!dream {SMALL}", attachments=[fake.add_attachment(photo, "cat.png")])
        await fake.wait_for_edit(lambda e: "Discord refused the result (HTTP 503)" in e.payload.get("content", ""))
    assert fake.uploads == [] and len(fake.rejected_uploads) == 1
    job = await world.store.jobs.get(1)
    assert (job.status, job.delivery, job.delivery_error) == ("done", "pending", "HTTP 503")
    return request


async def result_recorded(store, job_id: int) -> None:
    """Once the store links the job to its result post (just after the upload)."""
    async with asyncio.timeout(LIMIT):
        while (await store.jobs.get(job_id)).result_message_link is None:
            await asyncio.sleep(0.05)


async def delivery_ended(store, job_id: int):
    """The job once its result is no longer pending: posted, sent by DM or undeliverable."""
    async with asyncio.timeout(LIMIT):
        while (job := await store.jobs.get(job_id)).delivery == "pending":
            await asyncio.sleep(0.05)
    return job


async def test_a_result_refused_at_finish_time_is_posted_once_after_a_restart(world, photo):
    fake = world.fake
    request = await dream_refused_by_an_outage(world, photo)
    async with world.bot(delivery_retry_seconds=0.1):
        upload = await fake.wait_for_upload()
        await asyncio.sleep(1.0)  # several more sweeps: none may post it again
    assert len(fake.uploads) == 1 and decoded(upload.data).size == (96, 64)
    message = next(m for m in fake.messages if int(m["id"]) == upload.message_id)
    assert message["message_reference"]["message_id"] == request["id"], "posted again as a reply to the request"
    assert message["content"].startswith(f"<@{fake.alice['id']}> job #1") and "`!dream" in message["content"]
    assert [c["custom_id"] for row in message["components"] for c in row["components"]][0] == "dream:reroll:1"
    job = await world.store.jobs.get(1)
    assert (job.delivery, job.delivery_attempts) == ("posted", 2)
    assert job.result_message_link.endswith(str(upload.message_id))


async def test_a_result_posted_again_after_its_request_was_deleted_is_a_plain_message(world, photo):
    fake = world.fake
    request = await dream_refused_by_an_outage(world, photo)
    await fake.delete_message(request)
    async with world.bot(delivery_retry_seconds=0.1):
        upload = await fake.wait_for_upload()
        job = await delivery_ended(world.store, 1)
    message = next(m for m in fake.messages if int(m["id"]) == upload.message_id)
    assert message.get("message_reference") is None and message["content"].startswith(f"<@{fake.alice['id']}> job #1")
    assert (job.delivery, job.delivery_attempts) == ("posted", 2)


async def test_a_slash_dream_posted_again_replies_to_its_acknowledgement(world, photo):
    fake = world.fake
    async with world.bot(delivery_retry_seconds=NO_RETRY):
        # discord.py retries a webhook's 5xx by itself: a 404 makes the interaction's follow-up fail for good.
        fake.fail_next_upload(status=404)
        interaction = await fake.dispatch_slash_command(
            "dream", {"image": fake.add_attachment(photo, "cat.png"), "steps": 2, "octaves": 1, "max_side": 96})
        deferred = await fake.wait_for_interaction_response(interaction)  # its message becomes the acknowledgement
        await fake.wait_for_edit(lambda e: "Discord refused the result (HTTP 404)" in e.payload.get("content", ""))
    async with world.bot(delivery_retry_seconds=0.1):
        upload = await fake.wait_for_upload()
    message = next(m for m in fake.messages if int(m["id"]) == upload.message_id)
    assert message["message_reference"]["message_id"] == str(deferred.message_id)


@pytest.mark.parametrize("dms_open", [True, False], ids=["dms-open", "dms-closed"])
async def test_when_the_channel_is_gone_the_requester_gets_a_dm_or_the_reason_is_kept(world, photo, dms_open):
    fake = world.fake
    await dream_refused_by_an_outage(world, photo)
    await fake.delete_channel(fake.channel_id)
    if not dms_open:
        fake.close_dms(fake.alice)
    async with world.bot(delivery_retry_seconds=0.1):
        job = await delivery_ended(world.store, 1)
    if dms_open:
        assert (job.delivery, job.delivery_error) == ("sent_by_dm", "its channel is gone")
        dm = next(m for m in fake.messages if "could not post it: its channel is gone" in m["content"])
        assert dm["channel_id"] == fake.open_dm(fake.alice)["id"] and len(fake.uploads) == 1
    else:
        assert (job.delivery, job.delivery_error) == ("undeliverable", "its channel is gone, and the requester's DMs are closed")
        assert fake.uploads == []


async def likes_become(store, job_id: int, count: int) -> None:
    async with asyncio.timeout(LIMIT):
        while (item := await store.gallery.item(job_id)) is None or item.likes != count:
            await asyncio.sleep(0.05)


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
