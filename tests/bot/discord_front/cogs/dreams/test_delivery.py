"""Nothing lost across outages and restarts (bot/discord_front/cogs/dreams/delivery.py): a result
Discord refused is posted again, once, as a reply to its request (after a restart too); when its
channel is gone the requester gets it by DM, or the reason is kept; jobs a stopped process left
unfinished are announced and run again, or given up when nobody can receive them.

The real bot against the local fake Discord. Jobs run with the real engine on a warm worker; the
tests of what the sweep does with a result already in the store make no job run."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from bot.results import LocalResults
from bot.store import RateLimits
from core.spec import compile_job
from tests.bot.discord_front.helpers import SMALL, bot_said, decoded, delivery_ended
from tests.bot.discord_world import LIMIT, open_world
from tests.bot.fake_runners import fake_spec
from tests.bot.rows import add_job

pytestmark = pytest.mark.asyncio(loop_scope="module")
NO_RETRY = 3600.0  # seconds: a first run that must not try again by itself before the restart


@pytest_asyncio.fixture(loop_scope="module")
async def world(tmp_path, executor):
    async with open_world(tmp_path, executor, RateLimits(user_burst=10, max_active_jobs=5)) as world:
        yield world


@pytest.fixture
def photo(photo_bytes):
    return photo_bytes("chelsea.png", (144, 96))


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


# -- results posted again ----------------------------------------------------------------------------------


async def test_a_result_refused_at_finish_time_is_posted_once_after_a_restart(world, photo):
    fake = world.fake
    request = await dream_refused_by_an_outage(world, photo)
    async with world.bot(delivery_retry_seconds=0.1):
        upload = await fake.wait_for_upload()
        # A sweep reads what is due when it starts, so a result added once job #1 is up is posted by a later
        # sweep: two such results, one after the other, mean two more sweeps had their chance to post job #1 again.
        for _ in range(2):
            later = await finished_unposted(world, photo)
            assert (await delivery_ended(world.store, later)).delivery == "posted"
    assert [u.data == photo for u in fake.uploads] == [False, True, True], "job #1 posted once, then each later result"
    assert decoded(upload.data).size == (96, 64)
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


async def finished_unposted(world, data: bytes | None) -> int:
    """A job of alice's in the fake's channel that finished with `data` as its result (None: its file
    is gone since) and whose result is still to post, as a process that stopped right after it left it."""
    fake, store = world.fake, world.store
    job_id = await add_job(store, fake_spec("dream"), user_id=fake.alice["id"], guild_id=str(fake.guild_id),
                           channel_id=str(fake.channel_id), command="dream steps:1 seed:0")
    location = f"job-{job_id}.png"
    if data is not None:
        location = await LocalResults(world.settings.results_dir).save(job_id, data, "image/png")
    assert await store.jobs.finish(job_id, {"total": 1.0}, location, "image/png")
    assert (await store.jobs.get(job_id)).delivery == "pending"
    return job_id


async def test_a_result_refused_again_is_kept_and_posted_by_a_later_sweep(world, photo):
    fake = world.fake
    job_id = await finished_unposted(world, photo)
    fake.fail_next_upload(status=503)  # Discord is still away at the first sweep
    async with world.bot(delivery_retry_seconds=0.1):
        job = await delivery_ended(world.store, job_id)
    assert (job.delivery, job.delivery_attempts, job.delivery_error) == ("posted", 3, None), "the 2nd try failed, the 3rd posted"
    assert len(fake.rejected_uploads) == 1 and len(fake.uploads) == 1 and fake.uploads[0].data == photo
    message = next(m for m in fake.messages if int(m["id"]) == fake.uploads[0].message_id)
    assert message["content"] == f"<@{fake.alice['id']}> job #{job_id}\n`!dream steps:1 seed:0`"
    assert job.result_message_link.endswith(message["id"])


async def test_a_result_whose_file_is_gone_is_recorded_as_undeliverable(world):
    fake = world.fake
    job_id = await finished_unposted(world, None)
    async with world.bot(delivery_retry_seconds=0.1):
        job = await delivery_ended(world.store, job_id)
    assert (job.delivery, job.delivery_error) == ("undeliverable", "its result file is gone")
    assert fake.uploads == [] and fake.messages == [] and fake.rejected_uploads == []


# -- jobs a stopped process left unfinished ------------------------------------------------------------------


async def test_jobs_interrupted_by_a_shutdown_run_again_after_the_restart(world, photo):
    fake = world.fake
    async with world.bot():
        await fake.dispatch_message("!dream steps:20 octaves:2 max_side:160", attachments=[fake.add_attachment(photo, "cat.png")])
        await fake.wait_for(lambda: world.executor.running(), LIMIT)
    # The bot closed mid-job; the job must not be lost.
    await fake.wait_for(lambda: not world.executor.running(), LIMIT)
    assert (await world.store.jobs.get(1)).status in ("queued", "running")
    async with world.bot():
        await bot_said(fake, "interrupted by a restart")
        upload = await fake.wait_for_upload()
        assert decoded(upload.data).size == (144, 96)
    assert (await world.store.jobs.get(1)).status == "done"


async def test_an_unfinished_job_whose_channel_is_gone_is_given_up_with_the_reason(world):
    fake, store = world.fake, world.store
    gone = fake.add_text_channel("gone")
    await fake.delete_channel(gone)
    # Long enough that it cannot finish before the bot finds its channel gone.
    spec = compile_job("visualize", {"target": "banana", "size": 64, "steps": 2000})
    job_id = await add_job(store, spec, user_id=fake.alice["id"], guild_id=str(fake.guild_id), channel_id=gone["id"])
    async with world.bot(max_job_seconds=3600):  # within the cap a recovered job is held to again: only its channel stops it
        async with asyncio.timeout(LIMIT):
            while (job := await store.jobs.get(job_id)).status in ("queued", "running"):
                await asyncio.sleep(0.05)
        await fake.wait_for(lambda: not world.executor.running() and not world.executor.queued(), LIMIT,
                            what="the worker to drop the job")
    assert (job.status, job.error) == ("failed", "its channel is gone")
    assert fake.messages == [] and fake.uploads == [], "nothing announced or posted anywhere"


async def test_a_post_repeated_by_another_process_is_the_same_message_thanks_to_its_nonce(world, photo):
    from sqlalchemy import update

    from bot.store.models import Job
    fake = world.fake
    async with world.bot():
        await fake.dispatch_message(f"!dream {SMALL}", attachments=[fake.add_attachment(photo, "cat.png")])
        first = await fake.wait_for_upload()
        await delivery_ended(world.store, 1)
    # As if the poster had died after Discord took the post, before the store heard of it.
    async with world.store.database.writing() as session:
        await session.execute(update(Job).where(Job.id == 1).values(delivery="pending", result_message_link=None,
                                                                    lease_expires_at=None))
    async with world.bot(delivery_retry_seconds=0.1):
        await fake.wait_for(lambda: fake.deduplicated_posts, LIMIT, what="the post to be tried again")
        job = await delivery_ended(world.store, 1)
    assert fake.deduplicated_posts == [first.message_id], "Discord answered the repeat with the first message"
    assert len(fake.uploads) == 1, "one message carries the result"
    assert job.result_message_link.endswith(str(first.message_id))


async def test_a_post_under_way_when_the_bot_stops_is_finished_and_recorded(world, photo):
    """Discord has the post but has not answered yet when the bot stops: the bot waits for the
    answer and records where the result went, or the next process would post it again."""
    fake = world.fake
    answers = fake.hold_upload_answers()
    async with world.bot(delivery_retry_seconds=NO_RETRY) as bot:
        await fake.dispatch_message(f"!dream {SMALL}", attachments=[fake.add_attachment(photo, "cat.png")])
        upload = await fake.wait_for_upload()  # in Discord; its answer is held
        following = set(bot.get_cog("Dreams")._tasks)  # what unloading cancels: following job #1, the sweep
        stopping = asyncio.create_task(bot.remove_cog("Dreams"))
        await fake.wait_for(lambda: all(task.done() for task in following), LIMIT, what="the following cancelled")
        assert not stopping.done(), "the stop waits for the post under way"
        answers.set()
        await stopping
    job = await world.store.jobs.get(1)
    assert (job.status, job.delivery) == ("done", "posted")
    assert job.result_message_link.endswith(str(upload.message_id)) and len(fake.uploads) == 1
    assert fake.messages[0]["content"].startswith("✅ job #1 done"), "the acknowledgement says how it ended"


async def test_a_slow_first_post_is_not_posted_again_by_another_process_sweeping(tmp_path, executor, photo):
    """Bot A's first post of job #1 is in Discord, its answer slow; bot B sweeps for results to post
    all along. A keeps renewing its hold on the job while it posts, so B never tries job #1, even
    after A's first hold would have run out (leases of 1 s here)."""
    async with open_world(tmp_path, executor, RateLimits(user_burst=10, max_active_jobs=5), lease_seconds=1.0) as world:
        fake, store = world.fake, world.store
        answers = fake.hold_upload_answers(times=1)
        # A sweeps once, when ready; B every 0.1 s, with no wait between tries.
        async with world.bot(delivery_interval=NO_RETRY, heartbeat_seconds=0.2):
            await fake.dispatch_message(f"!dream {SMALL}", attachments=[fake.add_attachment(photo, "cat.png")])
            upload = await fake.wait_for_upload()  # A's post is in Discord; its answer is held
            first_hold_ends = (await store.jobs.get(1)).lease_expires_at
            async with world.bot(delivery_interval=0.1, delivery_retry_seconds=0.0, heartbeat_seconds=0.2) as bot_b:
                async with asyncio.timeout(LIMIT):  # on the store's clock, the one holds run on
                    while await database_time(store) <= first_hold_ends + 1.0:
                        await asyncio.sleep(0.05)
                # A result B can post: a sweep that posts it began after A's first hold ran out.
                bait = await finished_unposted(world, photo)
                assert (await delivery_ended(store, bait)).owner == bot_b.service.owner
                assert (await store.jobs.get(1)).delivery == "pending", "job #1 is still A's to post"
            answers.set()
            job = await delivery_ended(store, 1)
        assert fake.deduplicated_posts == [], "B never tried job #1"
        assert [u.message_id for u in fake.uploads if u.data != photo] == [upload.message_id]
        assert (job.delivery, job.delivery_attempts) == ("posted", 1), "posted by A's first try, the only one"
        assert job.result_message_link.endswith(str(upload.message_id))


async def database_time(store) -> float:
    from sqlalchemy import select

    async with store.database.reading() as session:
        return float((await session.execute(select(store.database.now))).scalar_one())
