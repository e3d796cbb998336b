"""The web gallery seen from Discord: admins publish it, result posts link to their page, and a
result whose message is deleted leaves the gallery. The real bot against the fake Discord, with a
warm worker running the real engine on tiny dreams."""

from __future__ import annotations

import asyncio
import os
import signal
import socket

import aiohttp
import pytest
import pytest_asyncio

from bot.executor import LocalProcessExecutor
from bot.settings import load_settings
from bot.store import RateLimits
from tests.bot.discord_world import LIMIT, open_world
from tests.fake_discord import FakeDiscord, patch_discord_urls

pytestmark = pytest.mark.asyncio(loop_scope="module")
SMALL = "steps:2 octaves:2 max_side:96"
PUBLIC_URL = "https://dreams.example.org"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def executor():
    async with LocalProcessExecutor(workers=1, device="cpu", warm_models=("efficientnet-lite0",)) as pool:
        yield pool


@pytest_asyncio.fixture(loop_scope="module")
async def world(tmp_path, executor):
    async with open_world(tmp_path, executor, RateLimits(user_burst=10, max_active_jobs=5)) as world:
        world.settings = world.settings.model_copy(update={"public_url": PUBLIC_URL})
        yield world


async def eventually(check, what: str) -> None:
    """Wait for an async condition (the bot records a post or a deletion just after Discord sees it)."""
    async with asyncio.timeout(LIMIT):
        while not await check():
            await asyncio.sleep(0.05)


async def test_a_published_gallery_is_linked_from_results_and_loses_deleted_ones(world, photo_bytes):
    fake, photo = world.fake, photo_bytes("chelsea.png", (144, 96))
    said = lambda text: fake.wait_for_message(lambda m: text in m["content"])  # noqa: E731

    async def dream() -> dict:
        await fake.dispatch_message(f"!dream {SMALL}", attachments=[fake.add_attachment(photo, "cat.png")])
        upload = await fake.wait_for_upload(start=len(fake.uploads))
        return next(m for m in fake.messages if int(m["id"]) == upload.message_id)

    async with world.bot() as client:
        gallery = client.service.public  # what the web front serves
        await fake.dispatch_message("!settings public_gallery:on", author=fake.alice)
        await said("you need the Manage Server permission")
        private = await dream()
        assert PUBLIC_URL not in private["content"], "no link to a page that would be a 404"

        await fake.dispatch_message("!settings public_gallery:maybe", author=fake.owner)
        await said("public_gallery is on or off, got 'maybe'")
        await fake.dispatch_message("!settings public_gallery:on", author=fake.owner)
        await said(f"web gallery: on at <{PUBLIC_URL}/servers/{fake.guild_id}>, without who asked")
        public = await dream()
        assert f"\n<{PUBLIC_URL}/results/2>" in public["content"]
        await eventually(lambda: _shown(gallery, 2), "the second result on the web")
        assert await gallery.result(1) is not None, "the first result is public now too"

        # A member deletes the post in Discord (not through the bot's button): the event is all the bot sees.
        await fake.dispatch("MESSAGE_DELETE", {"id": public["id"], "channel_id": public["channel_id"],
                                               "guild_id": str(fake.guild_id)})
        await eventually(lambda: _gone(gallery, 2), "the deleted result to leave the web gallery")
        await fake.dispatch("MESSAGE_DELETE_BULK", {"ids": [private["id"]], "channel_id": private["channel_id"],
                                                    "guild_id": str(fake.guild_id)})
        await eventually(lambda: _gone(gallery, 1), "a result deleted in bulk to leave it too")
        await fake.dispatch_message("!gallery")
        await said("the gallery is empty")


async def _shown(gallery, job_id: int) -> bool:
    return await gallery.result(job_id) is not None


async def _gone(gallery, job_id: int) -> bool:
    return await gallery.result(job_id) is None


async def test_dreambot_run_with_web_serves_the_gallery_beside_the_bot(tmp_path):
    from bot.discord_front.run import run_bot

    with socket.socket() as probe:  # a port free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", results_dir=tmp_path / "r",
                             device="cpu", workers=1, discord_token="fake-token", web_port=port, _env_file=None)
    async with FakeDiscord(default_timeout=LIMIT) as fake, aiohttp.ClientSession() as session:
        with patch_discord_urls(fake):
            running = asyncio.create_task(run_bot(settings, web=True))
            await fake.wait_for(lambda: fake.identifies, LIMIT)

            async def healthy() -> dict | None:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        return await response.json() if response.status == 200 else None
                except aiohttp.ClientConnectionError:
                    return None

            async with asyncio.timeout(LIMIT):
                while (health := await healthy()) is None:
                    await asyncio.sleep(0.1)
            assert health["checks"] == {"database": "ok", "workers": "1 live"}, "the bot's own workers are judged"
            os.kill(os.getpid(), signal.SIGTERM)
            assert await asyncio.wait_for(running, LIMIT) == 0
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"http://127.0.0.1:{port}/healthz")
