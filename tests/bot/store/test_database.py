"""Opening the store: the schema check, the health check, and the URL an async engine needs. Every
test that takes a database runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import make_url, text
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


@asynccontextmanager
async def write_lock_held_elsewhere(url: str):
    """Another client holds what every write below waits for: SQLite's one write lock, or (on
    PostgreSQL, whose writers wait on row locks) an advisory lock. Yields the statement that waits."""
    if make_url(url).get_backend_name() == "sqlite":
        holder = sqlite3.connect(make_url(url).database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield "SELECT 1"  # a write transaction's BEGIN IMMEDIATE waits for the lock
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    engine = create_engine(url)
    try:
        async with engine.connect() as holder:
            await holder.execute(text("SELECT pg_advisory_lock(4242)"))
            try:
                yield "SELECT pg_advisory_xact_lock(4242)"
            finally:
                await holder.execute(text("SELECT pg_advisory_unlock(4242)"))
    finally:
        await engine.dispose()


async def test_reads_are_answered_while_many_writers_wait(url):
    """More writers than a pool holds wait for a lock another client holds; a read is answered
    meanwhile, because reads have their own pool (and on SQLite, one process's writers wait their
    turn in the event loop, not each in a pooled connection)."""
    async with Store.open(url, upgrade=True) as store:
        async def write(statement: str) -> None:
            async with store.database.writing() as session:
                await session.execute(text(statement))

        async with write_lock_held_elsewhere(url) as waiting_statement:
            writers = [asyncio.create_task(write(waiting_statement)) for _ in range(20)]
            await asyncio.sleep(0.2)  # the writers take what they take: connections, or their turn
            async with asyncio.timeout(10):
                await store.ping()
                assert await store.jobs.get(1) is None
            assert not any(writer.done() for writer in writers), "the writers were still waiting"
        async with asyncio.timeout(60):
            await asyncio.gather(*writers)


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
