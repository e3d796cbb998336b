"""The workers the cogs' tests share within each module: the real engine on the bundled network,
and the fake runner for tests about the bot rather than the dream (both one worker, on CPU)."""

from __future__ import annotations

import pytest_asyncio

from bot.executor import LocalProcessExecutor
from tests.bot.discord_front.helpers import FAKE_RUNNER


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def executor():
    async with LocalProcessExecutor(workers=1, device="cpu", warm_models=("efficientnet-lite0",)) as pool:
        yield pool


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def fake_runner():
    async with LocalProcessExecutor(workers=1, runner_factory=FAKE_RUNNER) as pool:
        yield pool
