"""Engine construction: async driver selection and the SQLite settings the rate limiter relies on.

SQLite's Python drivers open transactions lazily with a plain (deferred) BEGIN, which takes the write
lock only at the first write. Two processes that both read a bucket and then write would race or
fail with "database is locked" on the lock upgrade. So write transactions here begin with
`BEGIN IMMEDIATE`, which takes the write lock before anything is read: the SQLAlchemy-documented
recipe of switching the driver's own BEGIN off and emitting ours from the `begin` event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["async_url", "create_engine", "write_engine", "BUSY_TIMEOUT_S"]

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


def async_url(url: str) -> str:
    """`url` with its driver replaced by the async one (`sqlite:///x.db` -> `sqlite+aiosqlite:///x.db`)."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        return url
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for `url`; on SQLite with WAL, a busy timeout and controllable BEGIN."""
    url = async_url(url)
    is_sqlite = make_url(url).get_backend_name() == "sqlite"
    if is_sqlite:
        kwargs.setdefault("connect_args", {}).setdefault("timeout", BUSY_TIMEOUT_S)
    engine = create_async_engine(url, **kwargs)
    if is_sqlite:
        _install_sqlite_hooks(engine)
    return engine


def write_engine(engine: AsyncEngine) -> AsyncEngine:
    """A view of `engine` (same pool) whose transactions take the write lock up front on SQLite.

    Elsewhere it is the same engine; PostgreSQL callers lock rows with SELECT ... FOR UPDATE.
    """
    return engine.execution_options(**{_WRITE_OPTION: True})


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop the driver from emitting its own deferred BEGIN; _on_begin below emits ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers proceed while one writer holds the lock; the setting persists in the file.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
