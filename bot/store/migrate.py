"""Alembic driven from code: no alembic.ini on disk, the URL comes from our settings.

The revision files live in the repository's `migrations/` folder, which the package ships as
`bot.store.migrations` (see setup.py): an installed bot finds them beside its code, from any
working directory. `upgrade` is synchronous because env.py runs its own event loop; from async
code call `upgrade_async`, which runs it in a worker thread.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from .database import async_url

__all__ = ["MIGRATIONS_DIR", "alembic_config", "upgrade", "upgrade_async", "head_revision", "current_revision"]

MIGRATIONS_DIR = Path(str(resources.files("bot.store.migrations")))


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config pointing at MIGRATIONS_DIR; env.py reads the URL from `attributes["url"]`."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise RuntimeError(f"the migrations are missing from {MIGRATIONS_DIR}; reinstall dreambot")
    config = Config()
    # ConfigParser treats % as interpolation; a path may contain one.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        config.attributes["url"] = async_url(url)
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision`; a no-op when it is there already.

    env.py runs its own event loop, which cannot start in a thread whose loop is running; called
    from a coroutine, this blocks on a helper thread instead (prefer `upgrade_async` there).
    """
    config = alembic_config(url)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(config, revision)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(command.upgrade, config, revision).result()


async def upgrade_async(url: str, revision: str = "head") -> None:
    """`upgrade` in a worker thread, so the caller's event loop keeps running."""
    await asyncio.to_thread(upgrade, url, revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision stamped in the database; None for an empty (never migrated) database."""
    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
