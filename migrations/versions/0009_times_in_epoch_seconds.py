"""Every time in the store becomes epoch seconds, as lease expiries and token buckets were already.

The times that record an event (a user first seen, a job created, started or finished, a gallery
entry made, featured or removed, a like, a settings change) were timezone-aware datetimes, which
SQLite keeps without their zone. They are now floats written from the database's clock, so all
processes write one clock and compare times in SQL without conversions. Existing values are
converted, to the microsecond on PostgreSQL and to the millisecond or so on SQLite.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> (column, nullable)
_TIMES = {
    "users": [("created_at", False)],
    "guild_settings": [("updated_at", False)],
    "jobs": [("created_at", False), ("started_at", True), ("finished_at", True)],
    "gallery_entries": [("created_at", False), ("removed_at", True), ("featured_at", True)],
    "likes": [("created_at", False)],
}
_INDEX = ("ix_gallery_entries_guild_id_created_at", "gallery_entries", ["guild_id", "created_at"])


def _to_seconds(column: str) -> str:
    if op.get_bind().dialect.name == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff', UTC
        return f"(julianday({column}) - 2440587.5) * 86400.0"
    return f"EXTRACT(EPOCH FROM {column})"


def _to_datetime(column: str) -> str:
    if op.get_bind().dialect.name == "sqlite":
        return f"strftime('%Y-%m-%d %H:%M:%f', {column}, 'unixepoch')"
    return f"to_timestamp({column})"


def _convert(new_type: sa.types.TypeEngine, convert) -> None:
    """Each time column replaced by one of `new_type` holding `convert(old value)`."""
    op.drop_index(_INDEX[0], table_name=_INDEX[1])
    for table, columns in _TIMES.items():
        with op.batch_alter_table(table) as batch:
            for column, _ in columns:
                batch.add_column(sa.Column(f"{column}_new", new_type, nullable=True))
        for column, _ in columns:
            op.execute(f"UPDATE {table} SET {column}_new = {convert(column)}")
        with op.batch_alter_table(table) as batch:
            for column, nullable in columns:
                batch.drop_column(column)
                batch.alter_column(f"{column}_new", new_column_name=column, existing_type=new_type, nullable=nullable)
    op.create_index(*_INDEX)


def upgrade() -> None:
    _convert(sa.Float(), _to_seconds)


def downgrade() -> None:
    _convert(sa.DateTime(timezone=True), _to_datetime)
