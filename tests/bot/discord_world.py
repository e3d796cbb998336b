"""What the end-to-end Discord tests share: a fake Discord, a store and a bot that can be (re)started."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp

from bot.discord_front import DreamBot
from bot.executor import Executor
from bot.results import LocalResults
from bot.service import Service
from bot.settings import Settings, load_settings
from bot.store import DEFAULT_LEASE_SECONDS, RateLimits, Store
from tests.fake_discord import FakeDiscord, running_bot

__all__ = ["World", "open_world", "LIMIT"]

LIMIT = 60.0


class World:
    """One test's fake Discord, store and the means to start (and restart) the bot.

    Each start gets its own service, closed when the bot stops, as a new process would: its jobs
    go back to the store for the next start. The warm worker pool is shared by the module.
    """

    def __init__(self, fake: FakeDiscord, store: Store, executor: Executor, settings: Settings,
                 session: aiohttp.ClientSession):
        self.fake, self.store, self.executor, self.settings, self.session = fake, store, executor, settings, session

    @asynccontextmanager
    async def bot(self, *, delivery_interval: float = 0.2, **service_options: Any) -> AsyncIterator[DreamBot]:
        """A started bot; `service_options` go to its Service (say, delivery_retry_seconds)."""
        async with Service.open(store=self.store, executor=self.executor, results=LocalResults(self.settings.results_dir),
                                **service_options) as service:
            client = DreamBot(
                service=service, settings=self.settings, http_session=self.session,
                cdn_hosts=("127.0.0.1",), progress_interval=0.3, guild_ready_timeout=0.05,
                delivery_interval=delivery_interval,
            )
            async with running_bot(self.fake, client, timeout=LIMIT):
                yield client


@asynccontextmanager
async def open_world(tmp_path: Path, executor: Executor, limits: RateLimits, *,
                     lease_seconds: float = DEFAULT_LEASE_SECONDS) -> AsyncIterator[World]:
    settings = load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", results_dir=tmp_path / "results",
                             device="cpu", _env_file=None)
    async with FakeDiscord(default_timeout=LIMIT) as fake, aiohttp.ClientSession() as session, \
            Store.open(settings.database_url, limits=limits, upgrade=True, lease_seconds=lease_seconds) as store:
        yield World(fake, store, executor, settings, session)
        assert fake.unknown_routes == [], fake.unknown_routes
