"""Opening the store: the schema check, the health check, and the URL an async engine needs. Every
test that takes a database runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from bot.store import Database, SchemaOutdated, Store, async_url, upgrade_async
from bot.store.database import create_engine
from tests.bot.store.test_migrations import HEAD


@pytest.fixture
def url(database_url):
    return database_url  # every test here runs on SQLite and on PostgreSQL


async def test_opening_an_unmigrated_database_says_so(url):
    with pytest.raises(SchemaOutdated, match="revision none"):
        async with Store.open(url):
            pass


async def test_opening_a_database_at_an_older_revision_says_which(url):
    await upgrade_async(url, "0007")
    with pytest.raises(SchemaOutdated, match=f"revision 0007, this code needs {HEAD}"):
        async with Store.open(url):
            pass
    async with Store.open(url, upgrade=True) as store:
        await store.ping()
    async with Store.open(url) as store:  # migrated: no complaint
        await store.ping()


async def test_ping_answers_while_the_database_is_reachable(url, tmp_path):
    async with Store.open(url, upgrade=True) as store:
        await store.ping()
    unreachable = Store(Database(create_engine(f"sqlite:///{tmp_path / 'no such folder' / 'store.db'}")))
    try:
        with pytest.raises(OperationalError):
            await unreachable.ping()
    finally:
        await unreachable.database.dispose()


@pytest.mark.parametrize(("given", "used"), [
    ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ("sqlite+pysqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ("postgres://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
    ("postgresql://u:p@h:5433/db", "postgresql+asyncpg://u:p@h:5433/db"),
    ("postgresql+psycopg2://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
])
def test_a_url_with_a_sync_driver_is_given_the_async_one(given, used):
    assert async_url(given) == used
