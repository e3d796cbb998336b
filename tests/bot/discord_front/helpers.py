"""What the Discord front's tests share: waiting on the store and the fake Discord, reading results
back, and results run by the fake runner (tests/bot/fake_runners.py) when the engine is not the point.

A world whose executor runs FAKE_RUNNER starts its bot with `world.bot(**STAND_INS)`: a `!dream`
then runs in milliseconds and is posted, recorded and buttoned like any other result.
"""

from __future__ import annotations

import asyncio
import io
import re

from PIL import Image

from tests.bot.discord_world import LIMIT, World
from tests.bot.fake_runners import fake_compile, fake_describe, fake_restore

__all__ = [
    "FAKE_RUNNER",
    "SMALL",
    "STAND_INS",
    "STAR",
    "bot_said",
    "decoded",
    "delivery_ended",
    "eventually",
    "job_of",
    "likes_become",
    "message_link",
    "posted_result",
    "result_recorded",
]

SMALL = "steps:2 octaves:2 max_side:96"  # a real dream of a second or two
FAKE_RUNNER = "tests.bot.fake_runners:FakeRunner"
STAND_INS = {"compile": fake_compile, "restore": fake_restore, "describe": fake_describe}
STAR = "\N{WHITE MEDIUM STAR}"


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def bot_said(fake, text):
    return fake.wait_for_message(lambda m: text in m["content"])


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


async def likes_become(store, job_id: int, count: int) -> None:
    async with asyncio.timeout(LIMIT):
        while (item := await store.gallery.item(job_id)) is None or item.likes != count:
            await asyncio.sleep(0.05)


async def eventually(check, what: str) -> None:
    """Wait for an async condition of the store (the bot records things just after Discord sees them)."""
    try:
        async with asyncio.timeout(LIMIT):
            while not await check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def job_of(message: dict) -> int:
    """The job number a result post names ('<@1> job #12 ...')."""
    match = re.search(r"job #(\d+)", message["content"])
    assert match is not None, message["content"]
    return int(match[1])


async def posted_result(world: World, *, author: dict | None = None) -> dict:
    """A `!dream` by `author` (default alice) run by the fake runner, posted by the bot; its message,
    once the store has recorded the post (so the gallery knows it)."""
    fake = world.fake
    start = len(fake.uploads)
    photo = fake.add_attachment(b"\x89PNG stands in for a photo", "cat.png", "image/png")
    await fake.dispatch_message("!dream steps:1", attachments=[photo], author=author)
    upload = await fake.wait_for_upload(start=start)
    message = next(m for m in fake.messages if int(m["id"]) == upload.message_id)
    await result_recorded(world.store, job_of(message))
    return message


def message_link(fake, message: dict) -> str:
    """A message's link as discord.py writes `Message.jump_url` (what the store records)."""
    return f"https://discord.com/channels/{message.get('guild_id') or fake.guild_id}/{message['channel_id']}/{message['id']}"
