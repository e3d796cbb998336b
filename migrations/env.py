"""Alembic environment, async-aware. Run through bot.store.migrate, which sets the URL.

The URL comes from `config.attributes["url"]` (set by bot.store.migrate) or, for people who run the
`alembic` command with their own ini file, from `sqlalchemy.url`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from bot.store.database import create_engine, write_engine
from bot.store.models import Base

config = context.config
target_metadata = Base.metadata
_MIGRATION_LOCK = 0x64726561  # any constant key for pg_advisory_xact_lock, the same in every process


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: run migrations through bot.store.migrate.upgrade(url)")
    return url


def _configure(**kwargs: Any) -> None:
    # SQLite cannot ALTER most things in place; batch mode recreates the table when needed.
    # transactional_ddl: Alembic would otherwise commit after each revision on SQLite, releasing the
    # write lock between revisions, so processes migrating at once could run one revision twice.
    context.configure(target_metadata=target_metadata, compare_type=True, render_as_batch=True,
                      transactional_ddl=True, **kwargs)


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes starting on a fresh database at once: the second waits here, then finds
            # the first's revision and has nothing to do. (SQLite: BEGIN IMMEDIATE, below.)
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            # Foreign keys were off for the table rebuilds (see below); the rows must still agree.
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")


async def run_migrations_online() -> None:
    # Our engine factory, with the write lock taken at BEGIN on SQLite: the DDL is transactional
    # (one BEGIN for the upgrade), and a second process migrating at once waits for the first.
    # Foreign keys off on SQLite: a batch migration rebuilds a table by copying it and dropping the
    # old one, and with them on, dropping `jobs` would cascade to the gallery.
    engine = write_engine(create_engine(_url(), poolclass=NullPool, foreign_keys=False))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
