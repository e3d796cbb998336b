"""Fixtures of the executor's tests: an executor of the backend under test (see tests/bot/conftest.py's
`make_executor`) with fake runners and short timeouts, and a stand-in for torch where a worker's
`serve` loop runs inside the test process."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.executor import PoolExecutor
from tests.bot.executor.running import FAKE, Pool
from tests.bot.waiting import LIMIT


@pytest.fixture
def pool(make_executor: Pool) -> Pool:
    """A not yet started executor of the backend under test, with fake runners and short timeouts."""

    def build(workers: int = 1, **kwargs: Any) -> PoolExecutor:
        kwargs.setdefault("cancel_grace", 1.0)
        kwargs.setdefault("shutdown_timeout", 2.0)
        kwargs.setdefault("runner_factory", FAKE)
        return make_executor(workers=workers, **kwargs)

    return build


@pytest.fixture
async def executor(pool: Pool) -> AsyncIterator[PoolExecutor]:
    async with asyncio.timeout(LIMIT):
        await (ex := pool(warm_models=("inception",))).start()
    try:
        yield ex
    finally:
        async with asyncio.timeout(LIMIT):
            await ex.close()


class FakeTorch:
    """What `serve` asks of torch: it records the thread counts it is given."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def set_num_threads(self, count: int) -> None:
        self.threads.append(count)


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> FakeTorch:
    """For tests that run a worker's `serve` loop in this process: `serve` sets the thread
    variables and torch's threads of the process it runs in, so both are stood in for (and the
    environment is put back afterwards). No thread variable is set, as in a plain bot process."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    torch = FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", torch)
    return torch
