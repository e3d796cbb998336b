"""A clip given to the console by its path: the same video job as on Discord, its MP4 among the results."""

from __future__ import annotations

import io

from bot.console import run_console
from bot.settings import load_settings
from core.clips import probe_clip
from tests.clip_making import encode_video, pan_and_zoom


async def test_a_clip_path_dreams_into_an_mp4(tmp_path, photo_path):
    settings = load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", results_dir=tmp_path / "results",
                             device="cpu", workers=1, _env_file=None)
    clip = tmp_path / "walk.mp4"
    clip.write_bytes(encode_video(pan_and_zoom(photo_path("chelsea.png"), 8, (96, 72)), fps=8))
    out = io.StringIO()
    lines = [f"!dream {clip} steps:1 octaves:1 flow:off", f"!dream {tmp_path / 'missing.mp4'}"]
    assert await run_console(settings, stdin=io.StringIO("\n".join(lines) + "\n"), stdout=out, wait=True) == 0
    text = out.getvalue()
    assert "Traceback" not in text and "job 1 done" in text, text
    assert f"error: no such file: {tmp_path / 'missing.mp4'}" in text
    info = probe_clip((settings.results_dir / "job-1.mp4").read_bytes())
    assert (info.width, info.height, info.frames, info.fps) == (96, 72, 8, 8.0)
