"""The Discord front end to end: the real discord.py client against a local fake Discord.

A warm worker with the real engine serves the whole module; each test gets a fresh store, fake
Discord and bot. Jobs use tiny sizes so they take a second or two.
"""

from __future__ import annotations

import asyncio
import re
import time
import logging
import os
import signal

import pytest
import pytest_asyncio
from sqlalchemy.exc import OperationalError

from bot.settings import load_settings
from bot.store import RateLimits, SchemaOutdated, Store
from tests.bot.discord_front.helpers import SMALL, bot_said, decoded
from tests.bot.discord_world import LIMIT, open_world
from tests.fake_discord import FakeDiscord

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def photo(photo_bytes):
    return photo_bytes("chelsea.png", (144, 96))


@pytest_asyncio.fixture(loop_scope="module")
async def world(tmp_path, executor, request):
    limits = getattr(request, "param", RateLimits(user_burst=10, max_active_jobs=5))
    async with open_world(tmp_path, executor, limits) as world:
        yield world


async def test_dream_on_an_attachment_acknowledges_shows_progress_and_replies(world, photo):
    fake = world.fake
    async with world.bot():
        sent = await fake.dispatch_message("!dream steps:6 octaves:2 max_side:96", attachments=[fake.add_attachment(photo, "cat.png")])
        upload = await fake.wait_for_upload()
        assert decoded(upload.data).size == (96, 64)
        ack = next(m for m in fake.messages if m["content"].startswith("🌀 job #1"))
        reply = next(m for m in fake.messages if int(m["id"]) == upload.message_id)
        assert reply["message_reference"]["message_id"] == sent["id"]
        assert "`!dream steps:6 octaves:2 max_side:96 seed:" in reply["content"]
        buttons = [c["custom_id"] for row in reply["components"] for c in row["components"]]
        assert buttons == ["dream:reroll:1", "dream:deeper:1", "dream:like:1", "dream:delete:1"]
        await fake.wait_for_edit(lambda e: e.message_id == int(ack["id"]) and e.payload["content"].startswith("✅ job #1 done"))
        bar = re.compile(r"`[█░]{16} \d+%` octave \d/2")
        progress = [e for e in fake.edits if e.message_id == int(ack["id"]) and bar.search(e.payload.get("content", ""))]
        assert progress, "the acknowledgement is edited with progress"
    job = await world.store.jobs.get(1)
    assert job.status == "done" and job.result_message_link.endswith(reply["id"])


async def test_progress_edits_are_spaced_by_the_interval_and_the_latest_event_wins():
    """Events come far faster than Discord allows edits: at most one edit per interval, each with the
    newest event, and nothing queued behind the job."""
    from bot.discord_front.cogs.dreams.cog import ProgressMessage
    from core.jobs import ProgressEvent

    class Message:
        def __init__(self) -> None:
            self.edits: list[tuple[float, str]] = []

        async def edit(self, *, content: str) -> None:
            self.edits.append((time.monotonic(), content))

    message, interval = Message(), 0.2
    progress = ProgressMessage(message, "🌀 job #1 (dream)", interval=interval)  # type: ignore[arg-type]
    started, steps = time.monotonic(), 0
    while time.monotonic() - started < 6 * interval:
        steps += 1
        await progress.update(ProgressEvent("octave 1/1", steps, 10_000, min(1.0, steps / 10_000)))
        await asyncio.sleep(0.005)
    progress.stop()
    elapsed = time.monotonic() - started
    times = [at for at, _ in message.edits]
    assert 2 <= len(times) <= elapsed / interval + 1, (len(times), elapsed)
    assert all(b - a >= interval * 0.95 for a, b in zip(times, times[1:])), "edits are spaced by the interval"
    assert steps > 10 * len(times), "most events were dropped, not queued"
    assert message.edits[-1][1].endswith("octave 1/1") and "%" in message.edits[-1][1]


async def test_slash_command_dream(world, photo):
    fake = world.fake
    async with world.bot():
        interaction = await fake.dispatch_slash_command(
            "dream", {"image": fake.add_attachment(photo, "cat.png"), "steps": 2, "octaves": 2, "max_side": 96})
        response = await fake.wait_for_interaction_response(interaction)
        assert response.type == 5  # deferred while the image downloads
        upload = await fake.wait_for_upload()
        assert upload.via == "webhook" and decoded(upload.data).size == (96, 64)


async def test_visualize_banana(world):
    async with world.bot():
        await world.fake.dispatch_message("!visualize banana steps:12 size:64")
        upload = await world.fake.wait_for_upload()
        assert decoded(upload.data).size == (64, 64)
        message = next(m for m in world.fake.messages if int(m["id"]) == upload.message_id)
        assert "banana" in message["content"] and "`!visualize banana size:64 steps:12 seed:" in message["content"]


@pytest.mark.parametrize("world", [RateLimits(user_burst=1, user_refill_seconds=3600, max_active_jobs=5)], indirect=True)
async def test_a_rate_limited_user_is_told_when_to_come_back(world, photo):
    fake = world.fake
    async with world.bot():
        await fake.dispatch_message(f"!dream {SMALL}", attachments=[fake.add_attachment(photo, "a.png")])
        await fake.wait_for_upload()
        await fake.dispatch_message(f"!dream {SMALL}", attachments=[fake.add_attachment(photo, "b.png")])
        denial = await bot_said(fake, "you can start another job in")
        assert denial["content"].startswith("⏳")
    assert (await world.store.gallery.stats()).jobs == 1


async def test_echoed_text_cannot_ping(world):
    async with world.bot():
        await world.fake.dispatch_message("!visualize @everyone <@&123>")
        message = await bot_said(world.fake, "@everyone")
        assert message["mention_everyone"] is False and message["mention_roles"] == []


async def test_upload_413_is_retried_smaller_and_the_limit_is_respected(world, photo_bytes):
    fake = world.fake
    big_photo = photo_bytes("astronaut.png", (400, 400))
    async with world.bot() as client:
        fake.fail_next_upload()
        await fake.dispatch_message("!dream steps:1 octaves:1", attachments=[fake.add_attachment(big_photo, "big.png")])
        upload = await fake.wait_for_upload()
        (rejected,) = fake.rejected_uploads
        assert len(upload.data) < rejected.total_size and decoded(upload.data).size[0] > 0

        fake.set_upload_limit(60_000)  # the result PNG is larger: it must be re-encoded to fit
        await fake.dispatch_message("!dream steps:1 octaves:1", attachments=[fake.add_attachment(big_photo, "big.png")])
        fitted = await fake.wait_for_upload(start=1)
        assert len(fitted.data) <= 60_000 and decoded(fitted.data).format == "JPEG"
        message = next(m for m in fake.messages if int(m["id"]) == fitted.message_id)
        assert "to fit the upload limit" in message["content"]
        # Each upload was refused once (the forced 413; then the lower limit, which the bot learns only
        # from the refusal) and sent again smaller: two retries.
        assert client.service.metrics.registry.get_sample_value("dreambot_uploads_retried_total") == 2


async def test_gateway_disconnect_resumes_and_commands_still_work(world, photo):
    fake = world.fake
    async with world.bot():
        await fake.disconnect(code=4000)
        await fake.wait_for_resume()
        await fake.dispatch_message(f"!dream {SMALL}", attachments=[fake.add_attachment(photo, "cat.png")])
        await fake.wait_for_upload()
        assert len(fake.identifies) == 1 and len(fake.resumes) == 1


async def test_the_token_never_reaches_the_logs(world, photo, caplog):
    caplog.set_level(logging.DEBUG)
    async with world.bot():
        await world.fake.dispatch_message(f"!dream {SMALL}", attachments=[world.fake.add_attachment(photo, "cat.png")])
        await world.fake.wait_for_upload()
        await world.fake.disconnect(code=4000)
        await world.fake.wait_for_resume()
    assert caplog.records, "debug logging was captured"
    assert not any(world.fake.token in record.getMessage() for record in caplog.records)
    with_token = load_settings(discord_token=world.fake.token, _env_file=None)
    assert world.fake.token not in repr(with_token) and world.fake.token not in str(with_token.model_dump())


async def guild_name_recorded(database_url: str, guild_id: str) -> None:
    """Until the bot has recorded the server's name: discord.py makes each guild available, then
    fires on_ready, once guild_ready_timeout has passed since the last GUILD_CREATE. A signal, not a wait."""
    async with asyncio.timeout(LIMIT):
        while True:
            try:
                async with Store.open(database_url) as store:
                    if (await store.guilds.get(guild_id)).name is not None:
                        return
            except (SchemaOutdated, OperationalError):  # the bot has not migrated the database yet, or is migrating it
                pass
            await asyncio.sleep(0.05)


async def test_sigterm_stops_the_bot_cleanly_and_keeps_the_running_job(tmp_path, photo):
    from bot.discord_front.run import run_bot
    from tests.fake_discord import patch_discord_urls

    settings = load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", results_dir=tmp_path / "r",
                             device="cpu", workers=1, discord_token="fake-token", _env_file=None)
    async with FakeDiscord(default_timeout=LIMIT) as fake:
        with patch_discord_urls(fake):
            running = asyncio.create_task(run_bot(settings))
            await guild_name_recorded(settings.database_url, str(fake.guild_id))
            await fake.dispatch_message("!dream steps:40 octaves:2", attachments=[fake.add_attachment(photo, "cat.png")])
            await bot_said(fake, "job #1")
            os.kill(os.getpid(), signal.SIGTERM)
            assert await asyncio.wait_for(running, LIMIT) == 0
    async with Store.open(settings.database_url) as store:
        assert (await store.jobs.get(1)).status in ("queued", "running"), "the job waits for the next start"


async def test_a_limit_discord_announces_in_an_interaction_is_met_before_the_first_upload(world, photo_bytes):
    fake = world.fake
    big_photo = photo_bytes("astronaut.png", (400, 400))
    async with world.bot():
        await fake.dispatch_message("!dream steps:1 octaves:1", attachments=[fake.add_attachment(big_photo, "big.png")])
        first = await fake.wait_for_upload()
        assert len(first.data) > 60_000, "the result is over the lower limit below"
        fake.set_upload_limit(60_000)  # a server whose limit is lower than its tier says; interactions announce it
        result = next(m for m in fake.messages if int(m["id"]) == first.message_id)
        await fake.dispatch_button("dream:reroll:1", message=result, user=fake.alice)
        fitted = await fake.wait_for_upload(start=1)
    assert len(fitted.data) <= 60_000 and decoded(fitted.data).format == "JPEG"
    assert fake.rejected_uploads == [], "no upload was wasted on a 413"
