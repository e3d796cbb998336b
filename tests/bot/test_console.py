"""The console front end to end: real photo, bundled model, SQLite, warm worker process."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.console import run_console
from bot.settings import load_settings
from bot.store import Store
from core.spec import compile_job
from tests.bot.rows import add_job


@pytest.fixture
def settings(tmp_path):
    return load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        results_dir=tmp_path / "results",
        device="cpu",
        workers=1,
        user_burst=2,
        user_refill_seconds=3600,
        _env_file=None,
    )


async def _chat(settings, *lines: str) -> list[str]:
    out = io.StringIO()
    code = await run_console(settings, stdin=io.StringIO("".join(line + "\n" for line in lines)), stdout=out, wait=True)
    assert code == 0
    return out.getvalue().splitlines()


async def test_console_runs_jobs_and_denies_past_the_limit(settings, photo_path):
    chelsea = photo_path("chelsea.png")
    lines = await _chat(
        settings,
        f"!dream {chelsea} steps:2 octaves:2 max_side:160 seed:4",
        "visualize banana steps:10 size:64",
        f"!dream {chelsea} steps:1",
        "!dream no/such/photo.png",
        "!dreem",
        "!quota",
    )
    text = "\n".join(lines)
    assert "Traceback" not in text
    done = [line for line in lines if " done" in line]
    assert len(done) == 2, text
    dream_png = settings.results_dir / "job-1.png"
    assert Image.open(dream_png).size == (160, 106)
    assert Image.open(settings.results_dir / "job-2.png").size == (64, 64)
    assert any(line.startswith("job 1: [") for line in lines), "progress is shown while a job runs"
    assert any(line.startswith("denied: you can start another job in") for line in lines)
    assert "error: no such file: no/such/photo.png" in lines
    assert "error: unknown command 'dreem' (did you mean !dream?)" in lines
    assert any("you can start 0 of 2 jobs now" in line for line in lines)


async def test_console_reruns_jobs_left_unfinished_by_a_previous_run(settings, photo_bytes):
    async with Store.open(settings.database_url, upgrade=True) as store:
        spec = compile_job("dream", {"steps": 1, "octaves": 1, "max_side": 96}, images=[photo_bytes("coffee.png")], seed=9)
        job_id = await add_job(store, spec, user_id="console:you", front="console")
        await store.jobs.mark_running(job_id)  # the previous console died here
    lines = await _chat(settings)
    assert any("unfinished" in line and f"job {job_id}" in line for line in lines), lines
    assert any(line.startswith(f"job {job_id} done") for line in lines), lines
    assert Image.open(settings.results_dir / f"job-{job_id}.png").size == (96, 64)
    async with Store.open(settings.database_url) as store:
        assert (await store.jobs.get(job_id)).status == "done"
