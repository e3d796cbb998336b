"""Small dialect-aware statements the store needs: INSERT that ignores an existing key."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["insert_ignore"]


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
