"""A video attached to !dream, end to end: the real discord.py client, a fake Discord, the real engine."""

from __future__ import annotations

import pytest

from bot.store import RateLimits
from core.clips import probe_clip
from tests.bot.discord_world import open_world
from tests.clip_making import encode_video, pan_and_zoom

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def clip(photo_path):
    return encode_video(pan_and_zoom(photo_path("chelsea.png"), 12, (128, 96)), fps=12, audio_seconds=1.0)


async def test_a_video_attachment_is_dreamt_and_posted_inline_as_mp4(tmp_path, executor, clip):
    async with open_world(tmp_path, executor, RateLimits(user_burst=10, max_active_jobs=5)) as world:
        fake = world.fake
        async with world.bot():
            await fake.dispatch_message("!dream steps:1 octaves:1 blend:0.7", attachments=[fake.add_attachment(clip, "walk.mp4", "video/mp4")])
            upload = await fake.wait_for_upload()
            assert upload.filename.endswith(".mp4")  # Discord plays an .mp4 inline
            info = probe_clip(upload.data)
            assert (info.width, info.height, info.frames, info.fps, info.has_audio) == (128, 96, 12, 12.0, True)
            reply = next(m for m in fake.messages if int(m["id"]) == upload.message_id)
            assert "`!dream steps:1 octaves:1 blend:0.7 seed:" in reply["content"]
            assert any(m["content"].startswith("🌀 job #1 (video)") for m in fake.messages)
            buttons = [c["custom_id"] for row in reply["components"] for c in row["components"]]
            assert "dream:deeper:1" not in buttons
        job = await world.store.jobs.get(1)
        assert job.kind == "video" and job.status == "done"


async def test_a_bad_video_option_is_refused_before_the_download(tmp_path, executor):
    async with open_world(tmp_path, executor, RateLimits(user_burst=10, max_active_jobs=5)) as world:
        fake = world.fake
        async with world.bot():
            await fake.dispatch_message("!dream blend:3", attachments=[fake.add_attachment(b"\x00" * 64, "walk.mp4", "video/mp4")])
            said = await fake.wait_for_message(lambda m: "blend must be between 0 and 0.95" in m["content"])
            assert "\n" not in said["content"]
        assert fake.cdn_requests == [], "refused from the options alone: the clip was never downloaded"
