"""!zoom end to end: the real discord.py client, a fake Discord, the real engine; each format posted as a file Discord shows inline."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.store import RateLimits
from core.clips import probe_clip
from tests.bot.discord_world import open_world

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_zoom_with_format_mp4_is_posted_as_mp4_and_one_by_default_as_webp(tmp_path, executor):
    async with open_world(tmp_path, executor, RateLimits(user_burst=10, max_active_jobs=5)) as world:
        fake = world.fake
        async with world.bot():
            await fake.dispatch_message("!zoom frames:4 size:64 steps:1 octaves:1 loop:seamless format:mp4")
            upload = await fake.wait_for_upload()
            assert upload.filename.endswith(".mp4")  # Discord plays an .mp4 inline
            info = probe_clip(upload.data)
            assert (info.container, info.frames, info.size, info.fps) == ("mp4", 4, (64, 64), 12.5)
            reply = next(m for m in fake.messages if int(m["id"]) == upload.message_id)
            assert "4 frames as MP4, a seamless loop\n`!zoom frames:4 size:64 steps:1 octaves:1 loop:seamless format:mp4 seed:" in reply["content"]

            await fake.dispatch_message("!zoom frames:3 size:64 steps:1 octaves:1")
            upload = await fake.wait_for_upload(start=1)
            assert upload.filename.endswith(".webp")  # auto: a short zoom is an animated WebP, shown inline as an image
            assert Image.open(io.BytesIO(upload.data)).n_frames == 3
        jobs = [await world.store.jobs.get(job_id) for job_id in (1, 2)]
        assert [(job.kind, job.status, job.result_location.rsplit(".", 1)[-1]) for job in jobs] == [("zoom", "done", "mp4"), ("zoom", "done", "webp")]
