"""The database connection every part of the store shares: the engine, short read and write
transactions, and the few dialect-aware statements the parts need.

SQLAlchemy 2.x async; SQLite by default, PostgreSQL through asyncpg, any URL with an async driver.
SQLite's drivers open transactions lazily with a plain (deferred) BEGIN, which takes the write lock
only at the first write: two processes that both read a rate-limit bucket and then write it would
race, or fail with "database is locked" on the lock upgrade. So write transactions begin with
`BEGIN IMMEDIATE`, which takes the lock before anything is read (SQLAlchemy's documented recipe:
switch the driver's own BEGIN off and emit ours from the `begin` event). On PostgreSQL, writers
lock the rows they decide on with SELECT ... FOR UPDATE instead.

Reads and writes draw on separate connection pools, and on SQLite one process's writers take turns
in the event loop before taking a connection: otherwise, under load, every pooled connection sits in
SQLite's busy wait for the one write lock and a read (`!queue`, a gallery page) waits for a free
connection behind them, for seconds.

Times in the store are epoch seconds (floats). Those that mark an event (a job created, started,
finished; an entry featured) are the database's clock (`Database.now`), so every process writing
them agrees on one clock whatever its own says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from sqlalchemy import ColumnElement, Float, Table, event, insert, literal, literal_column, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

__all__ = ["Database", "async_url", "create_engine", "write_engine", "insert_ignore", "database_clock", "BUSY_TIMEOUT_S"]

# Seconds a connection waits for another one's write lock before giving up; admissions hold the
# lock for a few milliseconds, so this only matters under heavy contention.
BUSY_TIMEOUT_S = 30.0

_WRITE_OPTION = "dreambot_write"

# Sync drivers people commonly put in DATABASE_URL, mapped to the async driver of the same database.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
}

# The database's clock as epoch seconds, per dialect. SQLite's 'now' has millisecond precision and
# holds still during one statement; PostgreSQL's clock_timestamp() is the moment of the call.
_CLOCKS = {
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
    "postgresql": "(EXTRACT(EPOCH FROM clock_timestamp())::double precision)",
}


class Database:
    """An engine and its sessions: `async with db.reading() as session`, `async with db.writing()`.

    Each block is one short transaction; a writing block holds the write lock from its start on
    SQLite, so what it reads cannot change before it writes, whichever process writes next.
    """

    def __init__(self, engine: AsyncEngine, read_engine: AsyncEngine | None = None) -> None:
        """engine: for writes (and migrations); read_engine: the same database through a pool of its
        own (`open` makes one), so that reads never wait for a connection behind writers."""
        self.engine = engine
        self._read_engine = read_engine
        self._read = async_sessionmaker(read_engine or engine, expire_on_commit=False)
        self._write = async_sessionmaker(write_engine(engine), expire_on_commit=False)
        # SQLite has one write lock per file: this process's writers queue here, not in the pool.
        self._write_turn = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self.now = database_clock(engine.dialect.name)  # a SQL expression: the database's clock

    @classmethod
    def open(cls, url: str, **engine_options: Any) -> Database:
        """The database at `url`, with one pool for writes and one for reads."""
        return cls(create_engine(url, **engine_options), create_engine(url, **engine_options))

    def clock(self, now: float | None = None) -> ColumnElement[float]:
        """The database's clock as SQL, or `now` (a test's fixed time) in its place."""
        return self.now if now is None else literal(float(now), Float)

    async def read_clock(self, session: AsyncSession, now: float | None = None) -> float:
        """`now` when given; else the database's clock, read in `session`."""
        return float((await session.execute(select(self.now))).scalar_one()) if now is None else now

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        async with AsyncExitStack() as turn:
            if self._write_turn is not None:
                await turn.enter_async_context(self._write_turn)
            async with self._write() as session, session.begin():
                yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        async with self._read() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._read_engine is not None:
            await self._read_engine.dispose()


def async_url(url: str) -> str:
    """`url` with its driver replaced by the async one (`sqlite:///x.db` -> `sqlite+aiosqlite:///x.db`)."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        return url
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def database_clock(dialect: str) -> ColumnElement[float]:
    """The database's clock in epoch seconds, as a SQL expression to write or compare with.

    A database without a known clock function gets this process's clock at the time of the call.
    """
    if dialect in _CLOCKS:
        return literal_column(_CLOCKS[dialect], Float)
    return literal(time.time(), Float)


def create_engine(url: str, *, foreign_keys: bool = True, **kwargs: Any) -> AsyncEngine:
    """An async engine for `url`; on SQLite with WAL, a busy timeout and controllable BEGIN.

    foreign_keys: SQLite enforces them (and their ON DELETE CASCADE). Migrations switch them off,
    as SQLite's documented table rebuild requires: dropping the old copy of a table would
    otherwise delete the rows that refer to it.
    """
    url = async_url(url)
    is_sqlite = make_url(url).get_backend_name() == "sqlite"
    if is_sqlite:
        kwargs.setdefault("connect_args", {}).setdefault("timeout", BUSY_TIMEOUT_S)
    engine = create_async_engine(url, **kwargs)
    if is_sqlite:
        _install_sqlite_hooks(engine, foreign_keys)
    return engine


def write_engine(engine: AsyncEngine) -> AsyncEngine:
    """A view of `engine` (same pool) whose transactions take the write lock up front on SQLite.

    Elsewhere it is the same engine; PostgreSQL callers lock rows with SELECT ... FOR UPDATE.
    """
    return engine.execution_options(**{_WRITE_OPTION: True})


def _install_sqlite_hooks(engine: AsyncEngine, foreign_keys: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop the driver from emitting its own deferred BEGIN; _on_begin below emits ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers proceed while one writer holds the lock; the setting persists in the file.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


async def insert_ignore(session: AsyncSession, table: Table, values: dict[str, Any]) -> bool:
    """Insert one row unless its key exists; True when a row was inserted. Race-free on every dialect."""
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        dialect_insert = sqlite_insert if dialect == "sqlite" else pg_insert
        result = await session.execute(dialect_insert(table).values(**values).on_conflict_do_nothing())
        return result.rowcount == 1
    # Other databases: let the unique key decide, inside a savepoint so the transaction survives.
    try:
        async with session.begin_nested():
            await session.execute(insert(table).values(**values))
        return True
    except IntegrityError:
        return False
