"""How far one `!dream` travels: the project's files that run while a photo dream is served, from
the Discord message to the posted reply, in the bot process and its worker, counted after a
warm-up job (tests/census.py). docs/architecture.md walks exactly these files."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
import pytest_asyncio

from bot.executor import LocalProcessExecutor
from bot.store import RateLimits
from tests.bot.discord_world import LIMIT, open_world
from tests.census import REPO_ROOT, Census

pytestmark = pytest.mark.asyncio(loop_scope="module")

MOST_FILES = 20
MOST_OUTSIDE_CORE = 10
DOCS = REPO_ROOT / "docs" / "architecture.md"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def census(tmp_path_factory):
    """A profiler on every thread of this process from before the workers start, and a worker
    whose runner counts its own process's files."""
    watch = Census()
    watch.install()
    folder = tmp_path_factory.mktemp("census")
    try:
        async with LocalProcessExecutor(workers=1, device="cpu", warm_models=("efficientnet-lite0",),
                                        runner_factory="tests.census:CensusRunner",
                                        runner_options={"census_dir": str(folder)}) as executor:
            yield watch, executor, folder
    finally:
        watch.uninstall()


async def _posted(world, job_id: int) -> None:
    """Until the job's result is posted and recorded as posted."""
    async with asyncio.timeout(LIMIT):
        while (record := await world.store.jobs.get(job_id)) is None or record.result_message_link is None:
            await asyncio.sleep(0.02)


async def _dream(world, photo, job_id: int) -> None:
    fake = world.fake
    await fake.dispatch_message("!dream steps:2 octaves:1 max_side:64", attachments=[fake.add_attachment(photo, "cat.png")])
    await _posted(world, job_id)


async def _files_of_one_dream(tmp_path, census, photo) -> set[str]:
    watch, executor, folder = census
    # A long heartbeat and delivery sweep: renewing leases and re-posting refused results are
    # background work, not part of serving this message.
    async with open_world(tmp_path, executor, RateLimits(user_burst=10, max_active_jobs=5), lease_seconds=300.0) as world, \
            world.bot(heartbeat_seconds=120.0, delivery_interval=600.0):
        await _dream(world, photo, 1)  # warm-up: models loaded, prefix cached, code paths primed
        watch.start()
        await _dream(world, photo, 2)
        bot_side = watch.stop()
        await _dream(world, photo, 3)  # makes the worker write what ran for job 2
    worker_side = set(json.loads((folder / "job-2.json").read_text()))
    return bot_side | worker_side


async def test_a_photo_dream_runs_in_few_files_and_the_architecture_page_walks_them(tmp_path, census, photo_bytes):
    files = await _files_of_one_dream(tmp_path, census, photo_bytes("chelsea.png", (96, 64)))
    outside_core = sorted(f for f in files if not f.startswith("core/"))
    report = f"{len(files)} files, {len(outside_core)} outside core: {sorted(files)}"
    assert len(files) <= MOST_FILES, report
    assert len(outside_core) <= MOST_OUTSIDE_CORE, report
    walk = _walk_of_dream()
    assert set(walk) == files, f"docs/architecture.md's !dream walk names {sorted(walk)}; the code ran {sorted(files)}"
    assert len(walk) == len(set(walk)), f"the walk names a file twice: {walk}"


def _walk_of_dream() -> list[str]:
    """The project files that the numbered walk of `!dream` in docs/architecture.md names, in order."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## The walk of `!dream`", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"`((?:bot|core)/[\w/]+\.py)`", section)
